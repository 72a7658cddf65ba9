"""Golden vectors: export, hashes, allow_pickle=False, and that they reproduce refimpl."""

import hashlib
import json

import numpy as np
import pytest
from _loading import load_module

import verify
from refimpl.linalg import householder_product, householder_product_vjp, svd_linear_slogdet
from verify.vectors import FORMAT

OPS = ["householder_product", "svd_linear_slogdet"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("vectors")
    manifest = verify.export_vectors(out, OPS, examples=3, seed=1)
    return out, manifest


def test_manifest_describes_every_file(exported):
    out, manifest = exported
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert manifest["format"] == FORMAT and manifest["seed"] == 1
    assert {"refimpl", "convention_version", "numpy", "scipy"} <= set(manifest)
    assert len(manifest["files"]) == 6
    for entry in manifest["files"]:
        data = (out / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert "method" not in entry["params"] and "block_size" not in entry["params"]
        record = manifest["ops"][entry["op"]]
        given = [p for p in record["primals"] if f"input_{p}" in entry["arrays"]]
        outputs = (["output"] if len(record["outputs"]) == 1
                   else [f"output_{o}" for o in record["outputs"]])
        cotangents = (["cotangent"] if len(record["cotangents"]) == 1
                      else [f"cotangent_{o}" for o in record["cotangents"]])
        vjps = {f"vjp_{p}" for p in given}
        assert set(entry["arrays"]) == ({f"input_{p}" for p in given} | vjps | set(outputs)
                                        | set(cotangents))
        assert set(entry["tolerance"]) == set(outputs) | vjps
        assert entry["tolerance"][outputs[-1]]["float64"]["rtol"] == 1e-12


def test_vectors_reproduce_refimpl_and_an_independent_implementation(exported):
    Reflectors = load_module("linalg/teeth_householder.py").Reflectors
    vectors = verify.load_vectors(exported[0])
    assert [v.op for v in vectors] == [op for op in OPS for _ in range(3)]
    for v in [v for v in vectors if v.op == "householder_product"]:
        independent = Reflectors()
        V, X, tau = v.inputs["V"], v.inputs["X"], v.inputs.get("tau")
        for forward, vjp in ((householder_product, householder_product_vjp),
                             (independent.forward, independent.vjp)):
            out = forward(V, X, tau=tau, **v.params)
            tol = v.tolerance["output"]["float64"]
            assert np.linalg.norm(out - v.output) <= tol["atol"]
            grads = vjp(V, X, v.cotangent, tau=tau, **v.params)
            for name, g in zip(v.inputs, grads):
                assert np.linalg.norm(g - v.vjp[name]) <= v.tolerance[f"vjp_{name}"]["float64"]["atol"]


def test_vectors_of_several_outputs(exported):
    for v in [v for v in verify.load_vectors(exported[0]) if v.op == "svd_linear_slogdet"]:
        assert set(v.outputs) == {"sign", "logabsdet"}
        expected = svd_linear_slogdet(v.inputs["Vu"], v.inputs["s"], v.inputs["Vv"])
        np.testing.assert_array_equal(v.outputs["sign"], expected.sign)
        np.testing.assert_allclose(v.outputs["logabsdet"], expected.logabsdet, rtol=1e-14)
        assert set(v.vjp) == {"Vu", "s", "Vv"} and len(v.cotangents) == 1


def test_same_seed_same_vectors(exported, tmp_path):
    verify.export_vectors(tmp_path, OPS[:1], examples=3, seed=1)
    again = verify.load_vectors(tmp_path)
    first = [v for v in verify.load_vectors(exported[0]) if v.op == OPS[0]]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.inputs["V"], b.inputs["V"])
        np.testing.assert_array_equal(a.vjp["X"], b.vjp["X"])


def _copy(src, dst):
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return json.loads((dst / "manifest.json").read_text())


def test_changed_file_is_refused(exported, tmp_path):
    manifest = _copy(exported[0], tmp_path)
    name = manifest["files"][0]["file"]
    with np.load(tmp_path / name) as data:
        arrays = dict(data)
    arrays["output"] = arrays["output"] + 1e-3
    np.savez(tmp_path / name, **arrays)
    with pytest.raises(verify.VectorError, match=f"{name}: SHA-256 does not match"):
        verify.load_vectors(tmp_path)


def test_missing_file_is_refused(exported, tmp_path):
    manifest = _copy(exported[0], tmp_path)
    (tmp_path / manifest["files"][2]["file"]).unlink()
    with pytest.raises(verify.VectorError, match="is missing"):
        verify.load_vectors(tmp_path)


def test_pickled_arrays_are_not_loaded(exported, tmp_path):
    """Even with a matching hash, an object array is refused (allow_pickle=False)."""
    manifest = _copy(exported[0], tmp_path)
    entry = manifest["files"][0]
    np.savez(tmp_path / entry["file"], output=np.array([{"evil": 1}], dtype=object))
    entry["sha256"] = hashlib.sha256((tmp_path / entry["file"]).read_bytes()).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(verify.VectorError, match="allow_pickle"):
        verify.load_vectors(tmp_path)


def test_not_a_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(verify.VectorError, match="not a refimpl-golden-vectors manifest"):
        verify.load_vectors(tmp_path)


@pytest.mark.parametrize("damage, match", [
    (lambda d, m: (d / "manifest.json").unlink(), "manifest.json is missing"),
    (lambda d, m: (d / "manifest.json").write_text("{not json"), "is not valid JSON"),
    (lambda d, m: (d / "manifest.json").write_text(json.dumps(
        {**m, "files": [{**m["files"][0], "file": "../outside.npz"}]})), "leave the directory"),
    (lambda d, m: (d / m["files"][0]["file"]).write_bytes(b"garbage"), "SHA-256 does not match"),
    (lambda d, m: (d / "manifest.json").write_text(json.dumps(
        {**m, "files": [{k: v for k, v in m["files"][0].items() if k != "op"}]})), "damaged"),
])
def test_every_damage_is_one_clear_error(exported, tmp_path, damage, match):
    manifest = _copy(exported[0], tmp_path)
    damage(tmp_path, manifest)
    with pytest.raises(verify.VectorError, match=match):
        verify.load_vectors(tmp_path)
