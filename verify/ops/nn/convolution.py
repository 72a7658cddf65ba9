"""Record of :mod:`refimpl.nn.convolution` (docs/conventions.rst, section 4.2).

Ground truth is ``scipy.signal.correlate`` ('valid') of the zero-padded
input, summed over input channels and subsampled by the stride; the naive
forward (autograd.numpy) sums strided slices of the padded input over the
kernel offsets. Cases draw non-square kernels, strides and paddings as ints
or pairs, and the optional bias.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import scipy.signal
from hypothesis import strategies as st

from refimpl.nn.convolution import conv2d, conv2d_vjp

from ... import anchors
from ...registry import Anchor, Case, Op, Primal, register
from ...strategies import rng

TOL = {"float64": 1e-12, "float32": 2e-5}
REFERENCES = (
    "PyTorch documentation, torch.nn.functional.conv2d (cross-correlation, NCHW)",
    "Dumoulin and Visin 2016, A guide to convolution arithmetic for deep learning "
    "(arXiv:1603.07285)",
)


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _padded(np_, x, padding):
    ph, pw = _pair(padding)
    return np_.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant")


def _correlate(x, weight, stride, padding):
    """Sum over channels of SciPy's direct 'valid' correlations, every ``stride``-th entry kept.

    ``method="direct"``: sums of products, exact when they are (no FFT rounding).
    """
    xpad = _padded(np, x, padding)
    sh, sw = _pair(stride)

    def channel_sum(n, o):
        return sum(scipy.signal.correlate(xpad[n, c], weight[o, c], mode="valid", method="direct")
                   for c in range(x.shape[1]))

    full = np.array([[channel_sum(n, o) for o in range(weight.shape[0])] for n in range(x.shape[0])])
    return full[:, :, ::sh, ::sw]


def _shifted_sum(x, weight, stride, padding):
    """Sum over kernel offsets of strided slices of the padded input (autograd.numpy)."""
    xpad = _padded(anp, x, padding)
    (sh, sw), (kh, kw) = _pair(stride), weight.shape[2:]
    ho, wo = (xpad.shape[2] - kh) // sh + 1, (xpad.shape[3] - kw) // sw + 1
    out = 0.0
    for i in range(kh):
        for j in range(kw):
            patch = xpad[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            out = out + anp.einsum("nchw,oc->nohw", patch, weight[:, :, i, j])
    return out


def conv2d_reference(np_, x, weight, bias=None, stride=1, padding=0):
    """The convolution from its definition: SciPy for NumPy, strided slices for autograd."""
    y = (_correlate if np_ is np else _shifted_sum)(x, weight, stride, padding)
    return y if bias is None else y + np_.reshape(bias, (-1, 1, 1))


@st.composite
def _cases(draw):
    gen = draw(rng())
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.one_of(st.integers(0, min(kh, kw) // 2),
                             st.tuples(st.integers(0, kh // 2), st.integers(0, kw // 2))))
    stride = draw(st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    h, w = draw(st.integers(kh, 7)), draw(st.integers(kw, 7))
    primals = {"x": gen.standard_normal((n, c, h, w)), "weight": gen.standard_normal((o, c, kh, kw))}
    if draw(st.booleans()):
        primals["bias"] = gen.standard_normal(o)
    return Case(primals, {"stride": stride, "padding": padding})


def _bench_case(size):
    """``size = (n, c, side, o)``: 3x3 kernels, stride 1, padding 1 (the output keeps the side)."""
    n, c, side, o = size
    gen = np.random.default_rng(0)
    return Case({"x": gen.standard_normal((n, c, side, side)),
                 "weight": gen.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c),
                 "bias": gen.standard_normal(o)}, {"stride": 1, "padding": 1})


def _im2col(case):
    p = case.primals
    return anchors.im2col_conv2d(p["x"], p["weight"], **case.params)


OP = register(Op(
    forward=conv2d,
    vjp=conv2d_vjp,
    primals=(Primal("x"), Primal("weight"), Primal("bias", optional=True)),
    cases=_cases,
    reference=lambda x, weight, bias=None, *, stride=1, padding=0: conv2d_reference(
        np, x, weight, bias, stride, padding),
    naive=lambda x, weight, bias=None, *, stride=1, padding=0: conv2d_reference(
        anp, x, weight, bias, stride, padding),
    tolerance=TOL,
    convention="Cross-correlation (PyTorch F.conv2d): x (N, C, H, W), weight (O, C, kh, kw), "
               "bias (O,) optional, stride and symmetric zero padding in [0, k // 2] as ints or "
               "pairs; y has Ho = (H + 2 p_h - kh) // s_h + 1 rows.",
    section="4.2",
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((8, 8, 16, 16), (16, 16, 32, 32)),
    bench_anchor=Anchor("im2col_gemm", _im2col),
))
