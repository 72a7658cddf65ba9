"""Records of :mod:`refimpl.compression.pruning` (docs/conventions.rst, section 9.1).

Masks are boolean outputs, compared exactly. Ground truth ranks the weights
with Python's ``sorted`` on ``(|w|, index)`` keys and counts with Python's
``round``; the invariants (the exact count, no kept weight below a pruned
one, the tie rule, monotonicity in the threshold) are checked on the
candidate's own masks. Weights are drawn with many ties in magnitude
(:func:`verify.strategies.weights_with_ties`) and sparsities that put
``s n`` on half-integers.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from refimpl.compression.pruning import dsd_masks, prune_magnitude, prune_threshold

from ...checks import Err, mismatch, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng, weights_with_ties

REFERENCES = (
    "Han, Pool, Tran and Dally 2015, Learning both weights and connections for efficient neural "
    "networks (NeurIPS)",
    "Han, Mao and Dally 2016, Deep compression (ICLR), section 2",
    "Han et al. 2017, DSD: dense-sparse-dense training for deep neural networks (ICLR), "
    "Algorithm 1",
    "torch.nn.utils.prune.l1_unstructured (count round(amount * n)); TF-MOT prune_low_magnitude "
    "(kept count rounded)",
)
EXACT = {"float64": 0.0, "float32": 0.0}
MASK = (Output("out", dtype="bool"),)


# -- the definitions ------------------------------------------------------------------------------


def _count(n, sparsity, count="pruned"):
    return round(sparsity * n) if count == "pruned" else n - round((1.0 - sparsity) * n)


def _ranked(a, ties):
    """Flat indices by increasing ``|a|``, equal magnitudes by increasing (or decreasing) index."""
    sign = 1 if ties == "low_index" else -1
    return sorted(range(a.size), key=lambda i: (abs(a.flat[i]), sign * i))


def _smallest_pruned(a, k, ties):
    """The mask keeping all but the ``k`` first of the ranking (``prune_all``: all ``<=`` the k-th)."""
    keep = np.ones(a.size, dtype=bool)
    if k and ties == "prune_all":
        keep = np.abs(a.ravel()) > sorted(np.abs(a.ravel()))[k - 1]
    elif k:
        keep[_ranked(a, ties)[:k]] = False
    return keep.reshape(a.shape)


def _reference_magnitude(w, *, sparsity, ties="low_index", count="pruned", **_):
    return _smallest_pruned(w, _count(w.size, sparsity, count), ties)


def _reference_threshold(w, *, threshold, at_threshold="prune", **_):
    return np.abs(w) >= threshold if at_threshold == "keep" else np.abs(w) > threshold


def _reference_dsd(snapshots, *, sparsities, ties="prune_all", count="pruned", **_):
    n = snapshots[0].size
    return np.stack([_smallest_pruned(w, _count(n, s, count), ties)
                     for w, s in zip(snapshots, sparsities)])


# -- inputs -----------------------------------------------------------------------------------------


def _shape(draw):
    """Mostly an odd number of weights: where rounding the kept count differs from the pruned."""
    return draw(st.sampled_from([(1,), (5,), (7,), (12,), (3, 5), (3, 7), (4, 6), (3, 3, 3)]))


def _sparsity(draw, n):
    """Mostly ``(2i + 1) / (2n)``: ``s n`` a half-integer, where the rounding conventions differ;
    else uniform, 0 or 1."""
    kind = draw(st.sampled_from(["half-integer", "half-integer", "uniform", "edge"]))
    if kind == "half-integer":
        return (2 * draw(st.integers(0, n - 1)) + 1) / (2 * n)
    if kind == "uniform":
        return draw(st.floats(0.0, 1.0))
    return draw(st.sampled_from([0.0, 1.0]))


@st.composite
def _magnitude_cases(draw):
    shape = _shape(draw)
    w = weights_with_ties(draw(rng()), shape)
    return Case({"w": w}, {"sparsity": _sparsity(draw, w.size),
                           "ties": draw(st.sampled_from(("low_index", "high_index"))),
                           "count": draw(st.sampled_from(("pruned", "kept")))})


@st.composite
def _threshold_cases(draw):
    # float32 numbers, so that the threshold compares alike in both dtypes of the checks.
    w = weights_with_ties(draw(rng()), _shape(draw)).astype(np.float32).astype(np.float64)
    # Often exactly one of the magnitudes: the case the at_threshold convention decides.
    threshold = draw(st.one_of(st.sampled_from(sorted(set(np.abs(w).ravel().tolist()))),
                               st.floats(0.0, 3.0, width=32)))
    return Case({"w": w}, {"threshold": threshold,
                           "at_threshold": draw(st.sampled_from(("prune", "keep")))})


@st.composite
def _dsd_cases(draw):
    gen = draw(rng())
    shape = _shape(draw)
    n_phases = draw(st.integers(1, 5))
    snapshots = np.stack([weights_with_ties(gen, shape) for _ in range(n_phases)])
    n = snapshots[0].size
    sparsities = tuple(0.0 if p % 2 == 0 else _sparsity(draw, n) for p in range(n_phases))
    return Case({"snapshots": snapshots}, {"sparsities": sparsities,
                                           "ties": draw(st.sampled_from(("prune_all", "low_index",
                                                                         "high_index"))),
                                           "count": draw(st.sampled_from(("pruned", "kept")))})


# -- invariants --------------------------------------------------------------------------------------


def _mask(op, impl, case, ctx):
    return run_outputs(op, impl, case, ctx)["out"].astype(bool)


def _magnitudes(case, ctx, name):
    return np.abs(ctx.rounded(case.primals[name]))


def _exact_count(impl, case, ctx):
    mask = _mask(MAGNITUDE, impl, case, ctx)
    p = case.params
    return Err(mismatch(np.count_nonzero(~mask), _count(mask.size, p["sparsity"], p["count"])),
               "number pruned")


def _ordered(mask, a):
    """0 when no kept magnitude is below a pruned one, else infinity."""
    if mask.all() or not mask.any():
        return 0.0
    return 0.0 if a[mask].min() >= a[~mask].max() else float("inf")


def _keeps_the_largest(impl, case, ctx):
    return Err(_ordered(_mask(MAGNITUDE, impl, case, ctx), _magnitudes(case, ctx, "w")),
               "kept below pruned")


def _tie_rule(impl, case, ctx):
    """Among the weights at the threshold magnitude, the pruned ones precede (or follow) the kept."""
    mask = _mask(MAGNITUDE, impl, case, ctx).ravel()
    a = _magnitudes(case, ctx, "w").ravel()
    if mask.all() or not mask.any():
        return Err(0.0)
    at = np.flatnonzero(a == a[~mask].max())
    pruned, kept = at[~mask[at]], at[mask[at]]
    if not len(kept):
        return Err(0.0)
    low_first = case.params["ties"] == "low_index"
    ordered = pruned.max() < kept.min() if low_first else pruned.min() > kept.max()
    return Err(0.0 if ordered else float("inf"), "tie order")


def _monotone_in_threshold(impl, case, ctx):
    """A larger threshold keeps a subset of the weights."""
    mask = _mask(THRESHOLD, impl, case, ctx)
    higher = _mask(THRESHOLD, impl, Case(case.primals, {**case.params,
                                                        "threshold": case.params["threshold"] + 0.5}),
                   ctx)
    return Err(0.0 if np.all(mask | ~higher) else float("inf"), "kept at a higher threshold only")


def _dense_phases_keep_all(impl, case, ctx):
    masks = _mask(DSD, impl, case, ctx)
    dense = [p for p, s in enumerate(case.params["sparsities"]) if s == 0]
    return Err(0.0 if masks[dense].all() else float("inf"), "dense phase")


def _phases_prune_the_smallest(impl, case, ctx):
    """Each phase prunes at least its count and never keeps a magnitude below a pruned one."""
    masks = _mask(DSD, impl, case, ctx)
    a = _magnitudes(case, ctx, "snapshots")
    n = masks[0].size
    for mask, magnitudes, s in zip(masks, a, case.params["sparsities"]):
        k = _count(n, s, case.params["count"])
        if np.count_nonzero(~mask) < k or _ordered(mask, magnitudes):
            return Err(float("inf"), "phase mask")
    return Err(0.0)


def _bench_case(size):
    return Case({"w": np.random.default_rng(0).standard_normal(size)}, {"sparsity": 0.9})


MAGNITUDE = register(Op(
    forward=prune_magnitude,
    primals=(Primal("w"),),
    outputs=MASK,
    cases=_magnitude_cases,
    reference=_reference_magnitude,
    properties=(
        Property("prunes exactly the stated count", _exact_count,
                 "round(s n) pruned (n - round((1 - s) n) with count='kept'), Python's round"),
        Property("keeps the largest magnitudes", _keeps_the_largest,
                 "no kept |w| is smaller than a pruned one"),
        Property("ties follow the flat index", _tie_rule,
                 "at the threshold magnitude the lower indices go first (ties='low_index') or the "
                 "higher ones (ties='high_index')"),
    ),
    tolerance=EXACT,
    convention="Mask True where kept; round(s n) of the smallest |w| pruned (round half to even "
               "on the double product; count='kept' rounds (1 - s) n), equal magnitudes by flat "
               "index, the lower first (ties='low_index').",
    section="9.1",
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((10**4,), (10**5,)),
    bench_anchor=Anchor("definition"),
))

def _threshold_bench_case(size):
    return Case({"w": np.random.default_rng(0).standard_normal(size)}, {"threshold": 1.0})


THRESHOLD = register(Op(
    forward=prune_threshold,
    primals=(Primal("w"),),
    outputs=MASK,
    cases=_threshold_cases,
    reference=_reference_threshold,
    properties=(
        Property("monotone in the threshold", _monotone_in_threshold,
                 "threshold + 0.5 keeps a subset of what threshold keeps"),
    ),
    tolerance=EXACT,
    convention="Mask |w| > t (a weight at the threshold is pruned); at_threshold='keep': |w| >= t.",
    section="9.1",
    references=REFERENCES,
    bench_case=_threshold_bench_case, bench_sizes=((10**5,), (10**6,)),
    bench_anchor=Anchor("definition"),
))

def _dsd_bench_case(size):
    """Three snapshots of ``size`` weights, pruned to 50 %, 70 % and 90 %."""
    return Case({"snapshots": np.random.default_rng(0).standard_normal((3,) + size)},
                {"sparsities": (0.5, 0.7, 0.9)})


DSD = register(Op(
    forward=dsd_masks,
    primals=(Primal("snapshots"),),
    outputs=MASK,
    cases=_dsd_cases,
    reference=_reference_dsd,
    properties=(
        Property("dense phases keep every weight", _dense_phases_keep_all,
                 "a phase of sparsity 0 has an all-True mask"),
        Property("each phase prunes the smallest", _phases_prune_the_smallest,
                 "at least round(s n) pruned, no kept |w| below a pruned one, phase by phase"),
    ),
    tolerance=EXACT,
    convention="Mask of phase p from snapshots[p] at sparsities[p]; DSD's rule by default: "
               "lambda = the round(s n)-th smallest |w|, keep |w| > lambda (ties at lambda pruned).",
    section="9.1",
    references=REFERENCES,
    bench_case=_dsd_bench_case, bench_sizes=((10**4,), (10**5,)),
    bench_anchor=Anchor("definition"),
))
