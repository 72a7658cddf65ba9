"""Golden vectors: refimpl's inputs, outputs and VJPs as files, for frameworks outside Python.

:func:`export_vectors` writes, for each op, a few drawn cases as one ``.npz``
each (``input_<primal>``, ``output``, ``cotangent``, ``vjp_<primal>``, all
float64) and a ``manifest.json`` with the op, its convention version, the
keyword params of each case, the shape and dtype of every array, the seed,
tolerances per output, the refimpl/NumPy/SciPy versions and the SHA-256 of
each file. :func:`load_vectors` checks the hashes before it reads anything and
loads with ``allow_pickle=False``. Vectors are generated on demand (they are
not committed); the same seed and versions give the same values.

Tolerances are normwise, as everywhere in :mod:`verify`: an output passes when
``||actual - expected||_F <= rtol ||expected||_F``. For a VJP output the
denominator is the largest norm among the op's VJP outputs. ``atol`` is that
bound in absolute terms, ``rtol`` times the denominator; it also bounds every
entry, so ``max |actual - expected| <= atol`` is a (weaker) elementwise test.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass

import numpy as np
import scipy
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from .registry import Case, Op, ops

__all__ = ["FORMAT", "Vector", "export_vectors", "load_vectors"]

FORMAT = "refimpl-golden-vectors"
_FORMAT_VERSION = 1
_MANIFEST = "manifest.json"


def _draw(op: Op, count: int, seed: int) -> list[Case]:
    """``count`` cases from the op's strategy, the same for the same seed and versions."""
    drawn: list[Case] = []

    @settings(max_examples=count, database=None, deadline=None, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck))
    @given(op.cases())
    def collect(case):
        drawn.append(case)

    hypothesis_seed(seed)(collect)()
    return drawn[:count]


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _tolerances(op: Op, expected: np.ndarray, scale: float | None = None) -> dict:
    denom = float(np.linalg.norm(expected)) if scale is None else scale
    return {dt: {"rtol": tol, "atol": tol * denom} for dt, tol in op.tolerance.items()}


def _arrays(op: Op, case: Case, index: int, seed: int) -> tuple[dict, dict, dict]:
    """Arrays of one case, the keyword params a candidate takes, tolerances per output."""
    params = {k: v for k, v in case.params.items() if k not in op.options}
    primals = [case.primals[n] for n in op.primals]
    output = np.asarray(op.forward(*primals, **params))
    cotangent = np.random.default_rng([seed, index]).standard_normal(output.shape)
    vjps = [np.asarray(g) for g in op.vjp(*primals, cotangent, **params)]
    scale = max(float(np.linalg.norm(g)) for g in vjps)
    arrays = {f"input_{n}": x for n, x in zip(op.primals, primals)}
    arrays.update(output=output, cotangent=cotangent)
    arrays.update({f"vjp_{n}": g for n, g in zip(op.primals, vjps)})
    tolerance = {"output": _tolerances(op, output)}
    tolerance.update({f"vjp_{n}": _tolerances(op, g, scale) for n, g in zip(op.primals, vjps)})
    return arrays, params, tolerance


def export_vectors(out_dir, op_names=None, *, examples: int = 5, seed: int = 0) -> dict:
    """Write ``examples`` golden cases per op (all ops, or those named) to ``out_dir``.

    Returns the manifest, also written to ``out_dir/manifest.json``.
    """
    from refimpl import CONVENTION_VERSION, __version__

    os.makedirs(out_dir, exist_ok=True)
    manifest = {
        "format": FORMAT, "format_version": _FORMAT_VERSION,
        "refimpl": __version__, "convention_version": CONVENTION_VERSION,
        "numpy": np.__version__, "scipy": scipy.__version__, "python": platform.python_version(),
        "seed": seed, "dtype": "float64",
        "tolerance": "pass when ||actual - expected||_F <= rtol * ||expected||_F = atol "
                     "(VJPs: the largest ||expected|| among the op's VJP outputs)",
        "ops": {}, "files": [],
    }
    for op in ops(op_names):
        manifest["ops"][op.name] = {"primals": list(op.primals), "convention": op.convention}
        for i, case in enumerate(_draw(op, examples, seed)):
            arrays, params, tolerance = _arrays(op, case, i, seed)
            name = f"{op.name}_{i:03d}.npz"
            np.savez(os.path.join(out_dir, name), **arrays)
            manifest["files"].append({
                "file": name, "op": op.name, "sha256": _sha256(os.path.join(out_dir, name)),
                "params": params,
                "arrays": {k: {"shape": list(a.shape), "dtype": a.dtype.name}
                           for k, a in arrays.items()},
                "tolerance": tolerance,
            })
    with open(os.path.join(out_dir, _MANIFEST), "w") as fh:
        json.dump(manifest, fh, indent=2)
    return manifest


@dataclass(frozen=True)
class Vector:
    """One golden case: ``op(*inputs.values(), **params) == output`` and its VJP."""

    op: str
    file: str
    params: dict
    inputs: dict
    output: np.ndarray
    cotangent: np.ndarray
    vjp: dict
    tolerance: dict


def _read_checked(directory: str, entry: dict) -> dict:
    path = os.path.join(directory, entry["file"])
    if os.path.basename(entry["file"]) != entry["file"] or not os.path.isfile(path):
        raise ValueError(f"golden vector file {entry['file']!r} is missing from {directory}")
    if _sha256(path) != entry["sha256"]:
        raise ValueError(f"{entry['file']}: SHA-256 does not match the manifest (file changed)")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    described = {k: (tuple(v["shape"]), v["dtype"]) for k, v in entry["arrays"].items()}
    found = {k: (a.shape, a.dtype.name) for k, a in arrays.items()}
    if found != described:
        raise ValueError(f"{entry['file']}: arrays {found} differ from the manifest's {described}")
    return arrays


def load_vectors(directory) -> list[Vector]:
    """The golden vectors in ``directory``, after checking every file's SHA-256."""
    with open(os.path.join(directory, _MANIFEST)) as fh:
        manifest = json.load(fh)
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{directory}/{_MANIFEST} is not a {FORMAT} manifest")
    vectors = []
    for entry in manifest["files"]:
        arrays = _read_checked(directory, entry)
        primals = manifest["ops"][entry["op"]]["primals"]
        vectors.append(Vector(
            op=entry["op"], file=entry["file"], params=entry["params"],
            inputs={n: arrays[f"input_{n}"] for n in primals},
            output=arrays["output"], cotangent=arrays["cotangent"],
            vjp={n: arrays[f"vjp_{n}"] for n in primals}, tolerance=entry["tolerance"],
        ))
    return vectors
