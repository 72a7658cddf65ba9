"""Records of :mod:`refimpl.attribution.maps` (docs/conventions.rst, section 5.5).

``upsample``: ground truth follows PyTorch's CPU kernels output pixel by output
pixel (``area_pixel_compute_source_index`` for bilinear: two source taps and
their weights per axis; ``nearest_idx`` and the exact variant for nearest, in
float32 arithmetic with NumPy scalars), gathered by fancy indexing, so the same
code is the autograd-differentiable naive forward. ``refine``: the product
``A * P``. Both are linear in each array argument (adjoint tests).
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.attribution import UPSAMPLE_MODES, refine, refine_vjp, upsample, upsample_vjp

from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Primal, Property, register
from ...strategies import rng

TOL = {"float64": 1e-12, "float32": 2e-6}
REFERENCES = (
    "PyTorch documentation, torch.nn.functional.interpolate (align_corners=False), and its "
    "CPU kernels aten/src/ATen/native/UpSample.h",
    "captum: LayerAttribution.interpolate",
)


def _nearest_index(d, n, m, exact):
    """PyTorch's ``nearest_idx`` / ``nearest_neighbor_exact_compute_source_index`` (float32)."""
    if not exact and m == n:
        return d
    if not exact and m == 2 * n:
        return d // 2
    scale = np.float32(n) / np.float32(m)
    if exact:
        position = np.float32(np.float64(d + 0.5) * np.float64(scale))
    else:
        position = np.float32(d) * scale
    return min(int(np.floor(position)), n - 1)


def _taps(n, m, mode):
    """``[(indices, weights)]`` per tap of one axis: two taps for bilinear, one for nearest."""
    if mode != "bilinear":
        return [(np.array([_nearest_index(d, n, m, mode == "nearest-exact") for d in range(m)]),
                 np.ones(m))]
    low, high, weight = [], [], []
    for d in range(m):
        source = max((n / m) * (d + 0.5) - 0.5, 0.0)
        i = int(np.floor(source))
        low.append(i)
        high.append(i + 1 if i < n - 1 else i)
        weight.append(source - i)
    weight = np.array(weight)
    return [(np.array(low), 1.0 - weight), (np.array(high), weight)]


def upsample_reference(np_, maps, size, mode):
    """``sum_{a,b} w_a[p] w_b[q] maps[..., i_a[p], j_b[q]]`` over the taps of both axes."""
    rows, cols = (_taps(n, m, mode) for n, m in zip(maps.shape[2:], size))
    out = 0.0
    for i, wi in rows:
        for j, wj in cols:
            out = out + maps[:, :, i, :][:, :, :, j] * np_.reshape(wi, (-1, 1)) * wj
    return out


def _upsample_bench_case(size):
    """``size = (n, c, H, W)``: ``(n, c, 7, 7)`` maps upsampled bilinearly to ``(H, W)``."""
    maps = np.random.default_rng(0).standard_normal(size[:2] + (7, 7))
    return Case({"maps": maps}, {"size": size[2:], "mode": "bilinear"})


@st.composite
def _upsample_cases(draw):
    gen = draw(rng())
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 5)),
             draw(st.integers(1, 5)))
    size = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    return Case({"maps": gen.standard_normal(shape)},
                {"size": size, "mode": draw(st.sampled_from(UPSAMPLE_MODES))})


def _constant_maps_stay_constant(impl, case, ctx):
    """Every output pixel is a convex combination: a constant map stays that constant."""
    maps = np.full_like(case.primals["maps"], 1.75)
    got = run_outputs(UPSAMPLE, impl, case, ctx, primals={"maps": maps})["out"]
    return rel_error(got, np.full_like(got, 1.75))


def _same_size_is_identity(impl, case, ctx):
    maps = case.primals["maps"]
    same = Case(case.primals, {**case.params, "size": tuple(maps.shape[2:])})
    return rel_error(run_outputs(UPSAMPLE, impl, same, ctx)["out"], ctx.rounded(maps))


UPSAMPLE = register(Op(
    forward=upsample,
    vjp=upsample_vjp,
    primals=(Primal("maps"),),
    cases=_upsample_cases,
    reference=lambda maps, *, size, mode: upsample_reference(np, maps, size, mode),
    bench_case=_upsample_bench_case,
    bench_sizes=((8, 16, 28, 28), (16, 32, 56, 56)), bench_anchor=Anchor("definition"),
    naive=lambda maps, *, size, mode: upsample_reference(anp, maps, size, mode),
    linear_in=("maps",),
    properties=(
        Property("constant maps stay constant", _constant_maps_stay_constant,
                 "the weights of every output pixel sum to 1 (borders included)"),
        Property("same size is the identity", _same_size_is_identity,
                 "size = (H, W) returns the maps unchanged in every mode"),
    ),
    tolerance=TOL,
    convention="upsample(maps, size, mode='bilinear'): (N, C, H, W) -> (N, C, *size) as "
               "torch.nn.functional.interpolate(maps, size, mode) without align_corners: "
               "bilinear with half-pixel centres (source s (d + 1/2) - 1/2 clamped at 0, "
               "s = in/out, upper tap clamped at the border); 'nearest' PyTorch's floor(d s) "
               "(not half-pixel), 'nearest-exact' floor((d + 1/2) s), both in float32 "
               "arithmetic; separable, no antialiasing.",
    section="5.5",
    references=REFERENCES,
))


def _refine_bench_case(shape):
    """Attributions of ``shape`` and one probability per sample."""
    gen = np.random.default_rng(0)
    return Case({"attribution": gen.standard_normal(shape), "probability": gen.uniform(size=shape[0])})


@st.composite
def _refine_cases(draw):
    gen = draw(rng())
    shape = (draw(st.integers(1, 3)),) + tuple(draw(st.lists(st.integers(1, 4), max_size=3)))
    per_sample = draw(st.booleans())
    return Case({"attribution": gen.standard_normal(shape),
                 "probability": gen.uniform(0.0, 1.0, shape[:1] if per_sample else shape)})


def _refined(np_, attribution, probability):
    """``A * P``, a per-sample ``P`` broadcast over each sample's entries."""
    shape = probability.shape + (1,) * (attribution.ndim - probability.ndim)
    return attribution * np_.reshape(probability, shape)


register(Op(
    forward=refine,
    vjp=refine_vjp,
    primals=(Primal("attribution"), Primal("probability")),
    cases=_refine_cases,
    reference=lambda attribution, probability: _refined(np, attribution, probability),
    bench_case=_refine_bench_case, bench_sizes=((8, 3, 32, 32), (64, 3, 64, 64)),
    bench_anchor=Anchor("definition"),
    naive=lambda attribution, probability: _refined(anp, attribution, probability),
    linear_in=("attribution", "probability"),
    tolerance=TOL,
    convention="refine(attribution, probability) = A * P with P in [0, 1] of the attribution's "
               "shape or (N,), one probability per sample broadcast over its entries.",
    section="5.5",
    references=("Probabilistic saliency: an attribution weighted by the model's probability",),
))
