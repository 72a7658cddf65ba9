"""Records of :mod:`refimpl.analysis.dissection` (docs/conventions.rst, section 8.2).

``dissection_iou``: ground truth written densely, ``numpy.quantile`` for the thresholds and
``numpy.interp`` along each axis for the upsampling (half-pixel centres, ends clamped); the
cases keep every upsampled value away from its unit's threshold, so that rounding cannot move
a pixel across it. ``ibd``: the greedy selection with ``scipy.optimize.nnls``; the cases keep
the best candidate of every step ahead of the next by a margin.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from scipy.optimize import nnls

from refimpl.analysis.dissection import dissection_iou, ibd

from ...checks import Err, mismatch, rel_error, run_outputs, worst
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng

REFERENCES = (
    "Bau, Zhou, Khosla, Oliva, Torralba 2017, Network dissection: quantifying interpretability "
    "of deep visual representations (CVPR)",
    "Zhou, Sun, Bau, Torralba 2018, Interpretable basis decomposition for visual explanation (ECCV)",
    "Lawson and Hanson 1974, Solving least squares problems (Prentice-Hall), chapter 23",
)


# -- dissection --------------------------------------------------------------------------


def upsample(maps, H, W):
    """Bilinear upsampling of ``(..., h, w)`` maps: ``numpy.interp`` at ``(o + 1/2) in/out - 1/2``
    along each axis (``interp`` holds the end values beyond the ends)."""
    h, w = maps.shape[-2:]
    rows = (np.arange(H) + 0.5) * h / H - 0.5
    cols = (np.arange(W) + 0.5) * w / W - 0.5
    along_cols = np.apply_along_axis(lambda r: np.interp(cols, np.arange(w), r), -1, maps)
    return np.apply_along_axis(lambda c: np.interp(rows, np.arange(h), c), -2, along_cols)


def _thresholds(activations, quantile):
    return np.quantile(np.moveaxis(activations, 1, -1).reshape(-1, activations.shape[1]),
                       1 - quantile, axis=0)


def _reference_dissection(activations, masks, *, quantile=0.005):
    threshold = _thresholds(activations, quantile)
    units = upsample(activations, *masks.shape[2:]) > threshold[:, None, None]
    intersection = np.einsum("nuhw,nkhw->uk", units, masks, dtype=np.float64)
    union = units.sum(axis=(0, 2, 3))[:, None] + masks.sum(axis=(0, 2, 3))[None, :] - intersection
    iou = np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
    return iou, threshold


def _margin(activations, masks, quantile):
    """The smallest distance of an upsampled value from its unit's threshold, relative to the
    activations' range."""
    threshold = _thresholds(activations, quantile)
    gap = np.abs(upsample(activations, *masks.shape[2:]) - threshold[:, None, None])
    return float(gap.min() / max(np.ptp(activations), 1e-300))


def _blobs(gen, n, k, H, W):
    """Concept masks: random rectangles, now and then a concept absent from every image."""
    masks = np.zeros((n, k, H, W), dtype=bool)
    for i in range(n):
        for c in range(k):
            if gen.uniform() < 0.7:
                y, x = gen.integers(0, H), gen.integers(0, W)
                masks[i, c, y:y + gen.integers(1, H + 1), x:x + gen.integers(1, W + 1)] = True
    return masks


@st.composite
def _dissection_cases(draw):
    """Activations partly driven by the concepts, upsampling factors 1 .. 3 (not only integers)."""
    gen = draw(rng())
    n, units, k = draw(st.integers(2, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, W = h * draw(st.sampled_from([1, 2, 3])) + draw(st.integers(0, 2)), w * draw(st.integers(1, 3))
    masks = _blobs(gen, n, k, H, W)
    coarse = masks[:, :, (np.arange(h) * H) // h][:, :, :, (np.arange(w) * W) // w].astype(float)
    activations = (np.einsum("uk,nkhw->nuhw", gen.uniform(0, 2, (units, k)), coarse)
                   + 0.5 * gen.standard_normal((n, units, h, w)))
    quantile = float(draw(st.sampled_from([0.005, 0.1, 0.3])))
    assume(_margin(activations, masks, quantile) > 1e-4)
    return Case({"activations": activations, "masks": masks}, {"quantile": quantile})


def _dissect(impl, case, ctx, **primals):
    return run_outputs(DISSECTION, impl, Case({**case.primals, **primals}, case.params), ctx)


@st.composite
def _unit_is_a_mask_cases(draw):
    """Activations at the masks' resolution, positive exactly on one concept's mask, and the
    quantile that puts the threshold between 0 and the smallest positive value."""
    gen = draw(rng())
    n, k = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    masks = _blobs(gen, n, k, draw(st.integers(2, 5)), draw(st.integers(2, 5)))
    c = draw(st.integers(0, k - 1))
    size = int(masks[:, c].sum())
    assume(0 < size < masks[:, c].size)
    activations = masks[:, c:c + 1] * gen.uniform(1.0, 2.0, (n, 1) + masks.shape[2:])
    return Case({"activations": activations, "masks": masks},
                {"quantile": (size - 0.5) / (activations.size - 1)})


def _unit_is_a_mask(impl, case, ctx):
    """A unit whose thresholded map is a concept's mask scores IoU 1 with that concept."""
    activations, masks = case.primals["activations"], case.primals["masks"]
    c = next(c for c in range(masks.shape[1]) if np.array_equal(masks[:, c], activations[:, 0] > 0))
    iou = _dissect(impl, case, ctx)["iou"]
    return Err(abs(iou[0, c] - 1.0), "iou")


def _images_reordered(impl, case, ctx):
    """Rotating the images' order (activations and masks together) changes nothing."""
    perm = np.roll(np.arange(case.primals["masks"].shape[0]), 1)  # never the identity
    base = _dissect(impl, case, ctx)
    moved = _dissect(impl, case, ctx, activations=case.primals["activations"][perm],
                     masks=case.primals["masks"][perm])
    return worst({name: rel_error(moved[name], base[name], scale=1.0) for name in base})


def _absent_concept(impl, case, ctx):
    """A concept absent from every mask scores 0 with every unit (an empty union counts 0)."""
    masks = case.primals["masks"]
    extended = np.concatenate([masks, np.zeros_like(masks[:, :1])], axis=1)
    iou = _dissect(impl, case, ctx, masks=extended)["iou"]
    return worst({"absent concept": float(np.abs(iou[:, -1]).max()),
                  "the others": rel_error(iou[:, :-1], _dissect(impl, case, ctx)["iou"], scale=1.0)})


def _dissection_bench_case(size):
    """``size = (n, units, h, concepts, H)``: activations on an ``h x h`` grid, concept masks
    on ``H x H`` (about 10 % of the pixels each)."""
    n, units, h, concepts, H = size
    gen = np.random.default_rng(0)
    return Case({"activations": gen.standard_normal((n, units, h, h)),
                 "masks": gen.uniform(size=(n, concepts, H, H)) < 0.1}, {"quantile": 0.005})


DISSECTION = register(Op(
    forward=dissection_iou,
    primals=(Primal("activations"), Primal("masks", dtype="bool")),
    outputs=(Output("iou"), Output("threshold")),
    cases=_dissection_cases,
    reference=_reference_dissection,
    properties=(
        Property("IoU is 1 for a unit that is the mask", _unit_is_a_mask,
                 "activations positive exactly on a concept's mask (no upsampling), the quantile "
                 "of that mask's size: IoU 1", cases=_unit_is_a_mask_cases),
        Property("reordering the images changes nothing", _images_reordered,
                 "activations and masks permuted along N together: the same thresholds and IoU"),
        Property("an absent concept scores 0", _absent_concept,
                 "a concept empty in every image: IoU 0 with every unit, the others unchanged"),
    ),
    tolerance={"float64": 1e-12, "float32": 1e-5},
    convention="T_u = numpy.quantile of the unit's low-resolution values at 1 - quantile (linear); "
               "maps upsampled bilinearly (half-pixel centres, clamped) then > T_u; IoU summed over "
               "the data set, 0 for an empty union.",
    section="8.2",
    references=REFERENCES,
    bench_case=_dissection_bench_case, bench_sizes=((16, 32, 7, 10, 28),),
    bench_anchor=Anchor("definition"),
))


# -- ibd ---------------------------------------------------------------------------------


def greedy_nnls(w, Q, k):
    """The greedy selection with ``scipy.optimize.nnls``; also each step's gap between the
    best and the second-best candidate residual."""
    chosen, residuals, gaps, coef = [], [], [], None
    for _ in range(k):
        fits = sorted((nnls(Q[chosen + [c]].T, w)[1], c, nnls(Q[chosen + [c]].T, w)[0])
                      for c in range(len(Q)) if c not in chosen)
        residual, c, coef = fits[0]
        gaps.append(fits[1][0] - residual if len(fits) > 1 else np.inf)
        chosen.append(c)
        residuals.append(residual)
    return np.array(chosen), coef, np.array(residuals), min(gaps)


def _reference_ibd(w, Q, *, k):
    return greedy_nnls(w, Q, k)[:3]


@st.composite
def _ibd_cases(draw):
    """``w`` a non-negative mix of a few concepts plus noise; every step's best candidate leads
    by ``1e-4 ||w||``."""
    gen = draw(rng())
    C, K = draw(st.integers(2, 8)), draw(st.integers(2, 8))
    Q = gen.standard_normal((K, C))
    mix = np.where(gen.uniform(size=K) < 0.4, gen.uniform(0.5, 2.0, K), 0.0)
    w = mix @ Q + 0.3 * gen.standard_normal(C)
    k = draw(st.integers(1, min(K, 4)))
    assume(greedy_nnls(w, Q, k)[3] > 1e-4 * np.linalg.norm(w))
    return Case({"w": w, "Q": Q}, {"k": k})


def _decompose(impl, case, ctx, **primals):
    return run_outputs(IBD, impl, Case({**case.primals, **primals}, case.params), ctx)


def _residuals_never_increase(impl, case, ctx):
    r = _decompose(impl, case, ctx)["residuals"]
    return Err(max(0.0, float(np.diff(r).max(initial=0.0))) / max(float(r.max()), 1e-300), "residuals")


def _coefficients_reproduce_the_residual(impl, case, ctx):
    """``coef >= 0`` and ``||w - Q[concepts]^T coef||`` is the last residual."""
    out = _decompose(impl, case, ctx)
    w, Q = ctx.rounded(case.primals["w"]), ctx.rounded(case.primals["Q"])
    fitted = np.linalg.norm(w - Q[out["concepts"]].T @ out["coef"])
    scale = np.linalg.norm(w)
    return worst({"negative coef": float(max(0.0, -out["coef"].min())) / scale,
                  "residual": abs(fitted - out["residuals"][-1]) / scale})


def _scaling_w(impl, case, ctx):
    """``w -> 3 w``: the same concepts, coefficients and residuals times 3."""
    base = _decompose(impl, case, ctx)
    scaled = _decompose(impl, case, ctx, w=3.0 * case.primals["w"])
    return worst({"concepts": mismatch(scaled["concepts"], base["concepts"]),
                  "coef": rel_error(scaled["coef"], 3.0 * base["coef"]),
                  "residuals": rel_error(scaled["residuals"], 3.0 * base["residuals"])})


def _ibd_bench_case(size):
    """``size = (concepts, d, k)``: ``w`` a non-negative mix of ``k`` concept vectors plus noise."""
    c, d, k = size
    gen = np.random.default_rng(0)
    Q = gen.standard_normal((c, d))
    w = gen.uniform(0.5, 1.5, k) @ Q[:k] + 0.01 * gen.standard_normal(d)
    return Case({"w": w, "Q": Q}, {"k": k})


IBD = register(Op(
    forward=ibd,
    primals=(Primal("w"), Primal("Q")),
    outputs=(Output("concepts", dtype="int"), Output("coef"), Output("residuals")),
    cases=_ibd_cases,
    reference=_reference_ibd,
    properties=(
        Property("residuals never increase", _residuals_never_increase,
                 "each added concept leaves the NNLS residual no larger"),
        Property("coefficients are non-negative and give the last residual",
                 _coefficients_reproduce_the_residual,
                 "coef >= 0 and ||w - Q[concepts]^T coef|| = residuals[-1]"),
        Property("scaling w scales the decomposition", _scaling_w,
                 "3 w: the same concepts, 3 coef, 3 residuals"),
    ),
    tolerance={"float64": 1e-10, "float32": 1e-4},
    convention="Greedy: at each of k steps the concept (row of Q) whose addition gives the smallest "
               "non-negative least-squares residual ||w - Q_S^T s||, ties to the lowest index; "
               "coef of the final fit, the residual after each step.",
    section="8.2",
    references=REFERENCES,
    bench_case=_ibd_bench_case, bench_sizes=((200, 512, 5),), bench_anchor=Anchor("definition"),
))
