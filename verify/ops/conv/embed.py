"""Records of :mod:`refimpl.conv.embed` (docs/conventions.rst, section 2.4).

``embed_kernel`` is linear in ``w`` (its VJP is a gather: the adjoint test).
Ground truth writes every tap ``w[o, i, a, b]`` to
``K[o, i, (p_h - a) mod H, (p_w - b) mod W]`` one at a time. The layer
properties convolve an image with the candidate's ``K`` by the definition
(verify's sum of rolls, no FFT, no refimpl) and compare with the deep-learning
layer written two independent ways: ``scipy.ndimage.correlate(mode="wrap")``
and circular padding by ``k // 2`` followed by a cross-correlation (PyTorch's
``conv2d`` with ``padding_mode="circular"``).
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import scipy.ndimage as ndimage
from hypothesis import strategies as st

from refimpl.conv.embed import LAYOUTS, embed_kernel, embed_kernel_vjp

from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Primal, Property, register
from ...strategies import rng
from .circular import REFERENCES, TOL
from .periodic import periodic_reference

CONVENTION = (
    "K[o, i, (p_h - a) mod H, (p_w - b) mod W] = w[o, i, a, b] with p = k // 2 and odd k <= grid, "
    "so that periodic_conv(x, K) is the cross-correlation layer with circular padding; layouts "
    "'oihw' (PyTorch) and 'hwio' (TensorFlow)."
)


def _taps(np_, w, shape, layout):
    """``(o, i, a, b)``-ordered kernel and the one-hot grid position of every tap ``(a, b)``."""
    if layout == "hwio":
        w = np_.transpose(w, (3, 2, 0, 1))
    kh, kw = w.shape[2:]
    H, W = shape
    for a in range(kh):
        for b in range(kw):
            onehot = np.zeros((H, W))
            onehot[(kh // 2 - a) % H, (kw // 2 - b) % W] = 1.0
            yield w[:, :, a, b][:, :, None, None], onehot


def _reference(w, shape, layout="oihw"):
    return sum(tap * onehot for tap, onehot in _taps(np, w, shape, layout))


def _naive(w, shape, layout="oihw"):
    return sum(tap * onehot for tap, onehot in _taps(anp, w, shape, layout))


@st.composite
def _cases(draw):
    gen = draw(rng())
    H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    kh = draw(st.sampled_from([k for k in (1, 3, 5) if k <= H]))
    kw = draw(st.sampled_from([k for k in (1, 3, 5) if k <= W]))
    c_out, c_in = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    layout = draw(st.sampled_from(LAYOUTS))
    shape = (c_out, c_in, kh, kw) if layout == "oihw" else (kh, kw, c_in, c_out)
    return Case({"w": gen.standard_normal(shape)}, {"shape": (H, W), "layout": layout})


# -- invariants (impl.forward may be refimpl's or a candidate's) ----------------------------


def _layer(impl, case, ctx):
    """``(x, w, z)``: a fixed image through the periodic convolution with ``impl``'s kernel.

    ``w`` in ``oihw``, rounded to the check's dtype; ``z`` by the definition
    (:func:`verify.ops.conv.periodic.periodic_reference`) from the candidate's ``K``.
    """
    w = ctx.rounded(case.primals["w"])
    w = w if case.params["layout"] == "oihw" else np.transpose(w, (3, 2, 0, 1))
    x = ctx.rounded(np.random.default_rng(9).standard_normal((w.shape[1],) + tuple(case.params["shape"])))
    K = run_outputs(OP, impl, case, ctx)["out"]
    return x, w, periodic_reference(x, K)


def _layer_matches_ndimage(impl, case, ctx):
    x, w, z = _layer(impl, case, ctx)
    expected = np.stack([sum(ndimage.correlate(x[i], w[o, i], mode="wrap") for i in range(w.shape[1]))
                         for o in range(w.shape[0])])
    return rel_error(z, expected)


def _layer_matches_padded_xcorr(impl, case, ctx):
    """The layer as PyTorch writes it: circular padding by ``k // 2``, then a cross-correlation."""
    x, w, z = _layer(impl, case, ctx)
    kh, kw = w.shape[2:]
    H, W = x.shape[1:]
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)), mode="wrap")
    expected = np.zeros_like(z)
    for a in range(kh):
        for b in range(kw):
            expected += np.einsum("oi,ihw->ohw", w[:, :, a, b], padded[:, a:a + H, b:b + W])
    return rel_error(z, expected)


def _bench_case(size):
    """``size = (c, k)``: a ``c x c x k x k`` layer (PyTorch layout) on a 32 x 32 grid."""
    c, k = size
    return Case({"w": np.random.default_rng(0).standard_normal((c, c, k, k))}, {"shape": (32, 32)})


def _numpy_pad_roll(case):
    """The same data movement in plain NumPy: zero-pad to the grid, flip, roll by ``k // 2 + 1``."""
    w, (H, W) = case.primals["w"], case.params["shape"]
    k = w.shape[-1]
    pad = ((0, 0), (0, 0), (0, H - k), (0, W - k))
    return lambda: np.roll(np.pad(w, pad)[:, :, ::-1, ::-1], (k // 2 + 1, k // 2 + 1), axis=(2, 3))


OP = register(Op(
    forward=embed_kernel,
    vjp=embed_kernel_vjp,
    primals=(Primal("w"),),
    cases=_cases,
    reference=_reference,
    naive=_naive,
    properties=(
        Property("layer matches scipy.ndimage.correlate (wrap)", _layer_matches_ndimage,
                 "periodic convolution with embed_kernel(w) = sum_i ndimage.correlate(x_i, w_oi, "
                 "mode='wrap')"),
        Property("layer matches circular padding + cross-correlation", _layer_matches_padded_xcorr,
                 "= conv2d of np.pad(x, k // 2, mode='wrap') with w (PyTorch's layer)"),
    ),
    linear_in=("w",),
    tolerance=TOL,
    convention=CONVENTION,
    section="2.4",
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((16, 3), (32, 5)),
    bench_anchor=Anchor("numpy_pad_roll", _numpy_pad_roll),
))
