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

import dataclasses
import hashlib
import json
import os
import platform
import zipfile
from dataclasses import dataclass

import numpy as np
import scipy
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from ._tree import is_array, tree_leaves
from .checks import call_forward, call_vjp, cotangents_of, outputs_of
from .registry import Case, Op, ops

__all__ = ["FORMAT", "Vector", "VectorError", "export_vectors", "load_vectors"]

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


def _jsonable(value):
    """Params and tree structures as JSON: dataclasses by type and fields, the rest by repr."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__,
                **{f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def _store(arrays: dict, key: str, value) -> tuple:
    """Put an array, or a tree's array leaves as ``key.0, key.1, ...``.

    Returns ``(description, keys)``: the array's key, or the tree with every
    leaf replaced by its key (written to the manifest as JSON), and the keys added.
    """
    if is_array(value):
        arrays[key] = np.asarray(value)
        return key, [key]
    keys = [f"{key}.{i}" for i in range(len(tree_leaves(value)))]
    names = iter(keys)

    def place(a):
        name = next(names)
        arrays[name] = np.asarray(a)
        return name

    return _described(value, place), keys


def _described(tree, place):
    """``tree`` as JSON-ready data, each array leaf replaced by ``place(leaf)``, in the order of
    :func:`~verify._tree.tree_map`; a dataclass becomes ``{"type": name, field: ...}`` (never
    rebuilt around its keys: layer classes validate their fields)."""
    if is_array(tree):
        return place(tree)
    if isinstance(tree, (list, tuple)):
        return [_described(v, place) for v in tree]
    if isinstance(tree, dict):
        return {k: _described(v, place) for k, v in tree.items()}
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        return {"type": type(tree).__name__,
                **{f.name: _described(getattr(tree, f.name), place)
                   for f in dataclasses.fields(tree) if f.init}}
    return tree


def _single(names, prefix, name):
    return prefix if len(names) == 1 else f"{prefix}_{name}"


def _arrays(op: Op, case: Case, index: int, seed: int) -> tuple[dict, dict, dict, dict]:
    """One case's arrays, the params a candidate takes, tolerances per array, tree structures."""
    params = {k: v for k, v in case.params.items() if k not in op.options}
    arrays, trees, tolerance = {}, {}, {}
    for name, value in case.primals.items():
        described, _ = _store(arrays, f"input_{name}", value)
        if not is_array(value):
            trees[f"input_{name}"] = described
    result = call_forward(op, op.forward, case.primals, params, lambda a: a)
    outputs = {k: np.asarray(v) for k, v in outputs_of(op, result).items()
               if not isinstance(v, (list, tuple))}  # per-layer sequences are never compared
    compared = [o.name for o in op.outputs if o.compared]
    for name in compared:
        key = _single(compared, "output", name)
        arrays[key] = outputs[name]
        if op.output(name).dtype == "float":
            tolerance[key] = _tolerances(op, outputs[name])
    if op.vjp is None:
        return arrays, params, tolerance, trees
    gen = np.random.default_rng([seed, index])
    diff = [o.name for o in op.differentiable_outputs]
    cotangents = [gen.standard_normal(outputs[n].shape) for n in diff]
    for name, c in zip(diff, cotangents):
        arrays[_single(diff, "cotangent", name)] = c
    vjps = cotangents_of(op, call_vjp(op, op.vjp, case.primals, cotangents, params, lambda a: a),
                         case.primals)
    scale = max(float(np.linalg.norm(leaf)) for v in vjps.values() for leaf in tree_leaves(v))
    for name, g in vjps.items():
        described, keys = _store(arrays, f"vjp_{name}", g)
        if not is_array(g):
            trees[f"vjp_{name}"] = described
        tolerance.update({k: _tolerances(op, arrays[k], scale) for k in keys})
    return arrays, params, tolerance, trees


def _write_json(path: str, payload: dict) -> None:
    """Write ``path`` atomically: a temporary file renamed into place, so it is never truncated."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh, indent=2, default=_jsonable)
    os.replace(tmp, path)


def export_vectors(out_dir, op_names=None, *, examples: int = 5, seed: int = 0) -> dict:
    """Write ``examples`` golden cases per op (all ops, or those named) to ``out_dir``.

    Returns the manifest, written last (atomically) to ``out_dir/manifest.json``:
    an export that fails midway leaves no manifest, or the previous one.
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
        manifest["ops"][op.name] = {
            "primals": list(op.primal_names), "outputs": [o.name for o in op.outputs],
            "cotangents": [o.name for o in op.differentiable_outputs] if op.vjp else [],
            "signature": op.signature(), "convention": op.convention,
        }
        for i, case in enumerate(_draw(op, examples, seed)):
            arrays, params, tolerance, trees = _arrays(op, case, i, seed)
            name = f"{op.name}_{i:03d}.npz"
            np.savez(os.path.join(out_dir, name), **arrays)
            manifest["files"].append({
                "file": name, "op": op.name, "sha256": _sha256(os.path.join(out_dir, name)),
                "params": params, "trees": trees,
                "arrays": {k: {"shape": list(a.shape), "dtype": a.dtype.name}
                           for k, a in arrays.items()},
                "tolerance": tolerance,
            })
    _write_json(os.path.join(out_dir, _MANIFEST), manifest)
    return json.loads(json.dumps(manifest, default=_jsonable))


@dataclass(frozen=True)
class Vector:
    """One golden case: ``op(*inputs, **params)`` gives ``outputs``; its VJP at ``cotangents``.

    Tree inputs (network layers) come back as the manifest's JSON structure
    (``{"type": "Linear", "weight": array, ...}``) with their arrays in place.
    ``output`` and ``cotangent`` are the single output and its cotangent of
    one-output ops.
    """

    op: str
    file: str
    params: dict
    inputs: dict
    outputs: dict
    cotangents: list
    vjp: dict
    tolerance: dict

    @property
    def output(self) -> np.ndarray:
        (value,) = self.outputs.values()
        return value

    @property
    def cotangent(self) -> np.ndarray:
        (value,) = self.cotangents
        return value


class VectorError(ValueError):
    """A golden-vector directory that cannot be trusted: a damaged or missing file, a path
    outside the directory, a manifest that is not valid. Every problem :func:`load_vectors`
    finds is one of these, with the file and what is wrong."""


def _read_checked(directory: str, entry: dict) -> dict:
    name = entry["file"]
    if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
        raise VectorError(f"manifest entry {name!r} is not a file name inside {directory} "
                          "(paths that leave the directory are refused)")
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise VectorError(f"golden vector file {name!r} is missing from {directory}")
    if _sha256(path) != entry["sha256"]:
        raise VectorError(f"{name}: SHA-256 does not match the manifest (file changed)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as exc:  # object arrays: allow_pickle=False refuses them
        raise VectorError(f"{name}: cannot be read without pickle (allow_pickle=False): {exc}") \
            from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise VectorError(f"{name}: not a readable .npz file ({exc})") from None
    described = {k: (tuple(v["shape"]), v["dtype"]) for k, v in entry["arrays"].items()}
    found = {k: (a.shape, a.dtype.name) for k, a in arrays.items()}
    if found != described:
        raise VectorError(f"{name}: arrays {found} differ from the manifest's {described}")
    return arrays


def _rebuild(described, arrays):
    """A stored tree's JSON description with its array keys replaced by the arrays."""
    if isinstance(described, str):
        return arrays.get(described, described)
    if isinstance(described, list):
        return [_rebuild(v, arrays) for v in described]
    if isinstance(described, dict):
        return {k: _rebuild(v, arrays) for k, v in described.items()}
    return described


def _named(arrays, prefix, names):
    if len(names) == 1 and prefix in arrays:
        return {names[0]: arrays[prefix]}
    return {n: arrays[f"{prefix}_{n}"] for n in names if f"{prefix}_{n}" in arrays}


def _manifest(directory) -> dict:
    path = os.path.join(directory, _MANIFEST)
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise VectorError(f"{path} is missing (an export that did not finish writes none)") \
            from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VectorError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise VectorError(f"{path} is not a {FORMAT} manifest")
    return manifest


def load_vectors(directory) -> list[Vector]:
    """The golden vectors in ``directory``, after checking every file's SHA-256.

    Raises :class:`VectorError` for every problem: a missing, changed,
    unreadable or pickled file, a path outside ``directory``, a manifest
    that is missing, not JSON or not of this format, or an entry it does
    not describe.
    """
    manifest = _manifest(directory)
    try:
        return [_vector(directory, manifest, entry) for entry in manifest["files"]]
    except (KeyError, TypeError, AttributeError) as exc:
        raise VectorError(f"{directory}/{_MANIFEST} is damaged: missing or malformed entry "
                          f"{exc!s}") from None


def _vector(directory, manifest, entry) -> Vector:
    """One manifest entry as a :class:`Vector`, its file checked first."""
    arrays = _read_checked(directory, entry)
    record = manifest["ops"][entry["op"]]
    trees = entry.get("trees", {})

    def value(key):
        return _rebuild(trees[key], arrays) if key in trees else arrays.get(key)

    inputs = {n: value(f"input_{n}") for n in record["primals"]}
    return Vector(
        op=entry["op"], file=entry["file"], params=entry["params"],
        inputs={n: v for n, v in inputs.items() if v is not None},
        outputs=_named(arrays, "output", record["outputs"]),
        cotangents=list(_named(arrays, "cotangent", record["cotangents"]).values()),
        vjp={n: value(f"vjp_{n}") for n in record["primals"]
             if f"vjp_{n}" in arrays or f"vjp_{n}" in trees},
        tolerance=entry["tolerance"],
    )
