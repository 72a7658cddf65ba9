"""Records of :mod:`refimpl.attribution.perturbation` (docs/conventions.rst, section 5.6).

Ground truth loops over the windows (corners ``range(0, D - k + s, s)`` per axis,
NumPy slices cutting the last one at the border) or the groups, and evaluates
the naive network on each perturbed input. Properties: on an affine network,
one-element windows with baseline 0 give input times gradient, and one window
over everything gives ``f_t(x) - f_t(b)`` everywhere; feature ablation of an
additive network (block-diagonal first layer over the groups) splits
``f_t(x) - f_t(b)`` exactly, one term per group.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refimpl.attribution import feature_ablation, occlusion
from refimpl.nn import Linear, Tanh

from ...checks import Context, rel_error, run_outputs
from ...registry import Anchor, Case, Op, Primal, Property, register
from ...strategies import rng
from ._networks import (
    SMALL_BENCH_SIZES,
    affine,
    bench_case,
    naive_gradient,
    naive_score,
    network_cases,
)

TOL = {"float64": 1e-10, "float32": 1e-4}
REFERENCES = (
    "Zeiler and Fergus 2014, Visualizing and understanding convolutional networks (ECCV), "
    "occlusion",
    "captum: Occlusion and FeatureAblation (captum/attr/_core/occlusion.py, feature_ablation.py)",
)
PRIMALS = (Primal("layers", dtype="tree", differentiable=False), Primal("x"),
           Primal("target", dtype="int64"))


def _scores(layers, x, target, where, baseline):
    """``(f_t(x), f_t(x with x[:, where] = baseline))``, each ``(N,)``."""
    changed = x.copy()
    changed[(slice(None),) + where] = baseline
    return naive_score(np, layers, x, target), naive_score(np, layers, changed, target)


def _perturbed_drop(layers, x, target, where, baseline):
    """``f_t(x) - f_t(x with x[:, where] = baseline)``, ``(N,)``."""
    before, after = _scores(layers, x, target, where, baseline)
    return before - after


def _occlusion_reference(layers, x, target, *, window, strides, baseline=0.0, **_):
    total, count = np.zeros_like(x), np.zeros(x.shape[1:])
    corners = [range(0, n - k + s, s) for n, k, s in zip(x.shape[1:], window, strides)]
    for corner in itertools.product(*corners):
        where = tuple(slice(c, c + k) for c, k in zip(corner, window))
        drop = _perturbed_drop(layers, x, target, where, baseline)
        total[(slice(None),) + where] += drop.reshape((-1,) + (1,) * len(where))
        count[where] += 1
    return total / count


#: How closely the reference's own drops in float32 must match them in float64 in the cases:
#: a tenth of float32's tolerance. A drop is the difference of two scores, each rounded
#: relative to the network's intermediate sizes: where the target hardly depends on the
#: perturbed features (a ReLU layer nearly off, a saturated sigmoid), float32 rounding is a
#: visible part of the drops, for every implementation (refimpl's errors there were those of
#: the reference run in float32, up to 1.7e-4 against 1e-4).
DROP_RTOL = 1e-5
_FLOAT32 = Context(None, "float32")  # only its conversions: the inputs a float32 run sees


def _measurable(reference, case):
    """Whether ``reference``'s drops on ``case`` are not all 0 (a network that ignores its
    input: any rounding would be an infinite relative error) and hold in float32 to
    :data:`DROP_RTOL`."""
    single = _FLOAT32.local(case.primals)
    drops = reference(**_FLOAT32.rounded(case.primals), **case.params)
    return bool(np.any(drops != 0)) and rel_error(reference(**single, **case.params),
                                                  drops) <= DROP_RTOL


@st.composite
def _windows(draw, shape):
    """Window and stride per axis, shrinking towards few windows (whole axes, no overlap)."""
    window = tuple(n - draw(st.integers(0, n - 1)) for n in shape)
    return window, tuple(k - draw(st.integers(0, k - 1)) for k in window)


@st.composite
def _occlusion_cases(draw, **network_options):
    primals = draw(network_cases(**{"batchnorm": None, "max_batch": 2, **network_options}))
    window, strides = draw(_windows(primals["x"].shape[1:]))
    case = Case(primals, {"window": window, "strides": strides,
                          "baseline": draw(st.sampled_from([0.0, 0.5])),
                          "perturbations_per_eval": draw(st.sampled_from([1, 3, 8]))})
    assume(_measurable(_occlusion_reference, case))
    return case


def _rounded(case, ctx):
    return {k: ctx.rounded(v) for k, v in case.primals.items()}


def _linear_cases():
    return _occlusion_cases(kind="mlp").map(lambda c: Case(
        {**c.primals, "layers": affine(c.primals["layers"])}, c.params))


def _one_element_windows(impl, case, ctx):
    """Affine network, 1-element windows, baseline 0: ``R = x * grad f_t``."""
    ones = (1,) * (case.primals["x"].ndim - 1)
    single = Case(case.primals, {**case.params, "window": ones, "strides": ones, "baseline": 0.0})
    got = run_outputs(OCCLUSION, impl, single, ctx)["out"]
    p = _rounded(case, ctx)
    return rel_error(got, p["x"] * naive_gradient(p["layers"], p["x"], p["target"]))


def _one_window(impl, case, ctx):
    """One window over the whole sample: every feature receives ``f_t(x) - f_t(b)``, relative
    to ``|f_t(x)| + |f_t(b)|``."""
    shape = case.primals["x"].shape[1:]
    whole = Case(case.primals, {**case.params, "window": shape, "strides": shape})
    got = run_outputs(OCCLUSION, impl, whole, ctx)["out"]
    p = _rounded(case, ctx)
    before, after = _scores(p["layers"], p["x"], p["target"], (Ellipsis,), case.params["baseline"])

    def per_feature(v):
        return np.broadcast_to(v.reshape((-1,) + (1,) * len(shape)), got.shape)

    # The drop is a difference of two scores, each rounded relative to its own size.
    size = np.linalg.norm(per_feature(np.abs(before) + np.abs(after)))
    return rel_error(got, per_feature(before - after), scale=size)


@st.composite
def _border_cases(draw):
    """MLPs on ``d >= 3`` features, stride 2 and a window ``k`` with ``d - k`` odd: the last
    window starts at ``d - 1`` and covers one feature."""
    case = draw(_occlusion_cases(kind="mlp"))
    d = case.primals["x"].shape[1]
    x = case.primals["x"]
    if d < 3:  # widen the input: a first Linear layer of width d' >= 3 in front
        gen = draw(rng())
        wide = draw(st.integers(3, 6))
        layers = [Linear(gen.standard_normal((d, wide)) / np.sqrt(wide))] + case.primals["layers"]
        x, d = gen.uniform(-1.0, 1.0, (x.shape[0], wide)), wide
        case = Case({**case.primals, "layers": layers, "x": x}, case.params)
    k = draw(st.sampled_from([k for k in range(2, d) if (d - k) % 2]))
    case = Case(case.primals, {**case.params, "window": (k,), "strides": (2,)})
    assume(_measurable(_occlusion_reference, case))  # its own windows, maybe a wider network
    return case


def _border_windows(impl, case, ctx):
    """The windows cut at the border are placed and averaged as the others (reference)."""
    got = run_outputs(OCCLUSION, impl, case, ctx)["out"]
    p = _rounded(case, ctx)
    return rel_error(got, _occlusion_reference(p["layers"], p["x"], p["target"], **case.params))


OCCLUSION = register(Op(
    forward=occlusion,
    primals=PRIMALS,
    cases=_occlusion_cases,
    reference=_occlusion_reference,
    properties=(
        Property("one-element windows on an affine network are input times gradient",
                 _one_element_windows,
                 "affine MLPs (activations removed): window 1, stride 1, baseline 0 gives "
                 "x * grad f_t (autograd)", cases=_linear_cases),
        Property("one window over the sample gives the total drop", _one_window,
                 "window = the sample's shape: every feature receives f_t(x) - f_t(baseline), "
                 "relative to |f_t(x)| + |f_t(baseline)|"),
        Property("windows cut at the border count", _border_windows,
                 "stride 2 and d - k odd: the last window covers one feature and is averaged "
                 "in like the others (reference)", cases=_border_cases),
    ),
    tolerance=TOL,
    convention="occlusion(layers, x, target, window, strides=1, baseline=0.0): windows over the "
               "axes after the batch axis with corners at 0, s, 2s, ... (ceil((D - k)/s) + 1 per "
               "axis, the last cut at the border); each feature receives the mean over the "
               "windows covering it of f_t(x) - f_t(x with the window set to baseline) "
               "(captum's Occlusion, without its float32 cast).",
    section="5.6",
    references=REFERENCES,
    options=("perturbations_per_eval",),
    bench_case=lambda size: Case(bench_case(size).primals, {
        "window": (3, 4, 4), "strides": (3, 4, 4), "baseline": 0.0, "perturbations_per_eval": 8}),
    bench_sizes=SMALL_BENCH_SIZES, bench_anchor=Anchor("definition"),
))


def _ablation_reference(layers, x, target, feature_mask, *, baseline=0.0, **_):
    out = np.zeros_like(x)
    for group in np.unique(feature_mask):
        where = np.nonzero(feature_mask == group)
        out[(slice(None),) + where] = _perturbed_drop(layers, x, target, where, baseline)[:, None]
    return out


def _ablation_bench_case(size):
    """The benchmarks' CNN (:func:`._networks.bench_case`), features in 4 x 4 patches of all
    channels."""
    case = bench_case(size)
    side = size[1]
    patch = np.arange(side) // 4
    mask = np.broadcast_to(patch[:, None] * (side // 4) + patch[None, :], (3, side, side))
    return Case({**case.primals, "feature_mask": np.ascontiguousarray(mask)},
                {"baseline": 0.0, "perturbations_per_eval": 8})


@st.composite
def _ablation_cases(draw):
    primals = draw(network_cases(batchnorm=None, max_batch=2))
    gen = draw(rng())
    primals["feature_mask"] = gen.integers(0, draw(st.integers(1, 4)), primals["x"].shape[1:])
    case = Case(primals, {"baseline": draw(st.sampled_from([0.0, 0.5])),
                          "perturbations_per_eval": draw(st.sampled_from([1, 3, 8]))})
    assume(_measurable(_ablation_reference, case))
    return case


@st.composite
def _additive_cases(draw):
    """``f = W_2 tanh(W_1 x + b_1) + b_2`` with ``W_1`` block-diagonal over the groups."""
    gen = draw(rng())
    d, groups = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    mask = gen.integers(0, groups, d)
    hidden = np.repeat(np.arange(groups), 2)  # two hidden units per group
    w1 = gen.standard_normal((hidden.size, d)) * (hidden[:, None] == mask[None, :])
    classes = draw(st.integers(1, 3))
    layers = [Linear(w1, gen.standard_normal(hidden.size)), Tanh(),
              Linear(gen.standard_normal((classes, hidden.size)), gen.standard_normal(classes))]
    n = draw(st.integers(1, 2))
    return Case({"layers": layers, "x": gen.uniform(-1.0, 1.0, (n, d)),
                 "target": gen.integers(0, classes, n), "feature_mask": mask},
                {"baseline": draw(st.sampled_from([0.0, 0.5]))})


def _additive_is_exact(impl, case, ctx):
    """Per sample, the group terms (each counted once) sum to ``f_t(x) - f_t(b)``."""
    got = run_outputs(ABLATION, impl, case, ctx)["out"]
    p = _rounded(case, ctx)
    mask = case.primals["feature_mask"]
    sizes = np.array([np.sum(mask == g) for g in mask])
    drop = _perturbed_drop(p["layers"], p["x"], p["target"], (Ellipsis,), case.params["baseline"])
    return rel_error((got / sizes).sum(axis=1), drop, scale=np.abs(got).sum())


ABLATION = register(Op(
    forward=feature_ablation,
    primals=PRIMALS + (Primal("feature_mask", dtype="int64"),),
    cases=_ablation_cases,
    reference=_ablation_reference,
    properties=(Property("exact on an additive network", _additive_is_exact,
                         "f = W2 tanh(W1 x + b1) + b2 with W1 block-diagonal over the groups: the "
                         "group terms sum to f_t(x) - f_t(baseline)", cases=_additive_cases),),
    tolerance=TOL,
    convention="feature_ablation(layers, x, target, feature_mask, baseline=0.0): feature_mask "
               "(integer ids, the shape of one sample) groups the features; every feature of "
               "group g receives f_t(x) - f_t(x with group g set to baseline) (captum's "
               "FeatureAblation).",
    section="5.6",
    references=REFERENCES,
    options=("perturbations_per_eval",),
    bench_case=_ablation_bench_case, bench_sizes=SMALL_BENCH_SIZES,
    bench_anchor=Anchor("definition"),
))
