"""Records of :mod:`refimpl.nn.pooling` (docs/conventions.rst, section 4.3).

Ground truth loops over the output positions and reduces each window (mean
or max), or each of PyTorch's adaptive bins ``[floor(i n / o), ceil((i + 1) n / o))``
written with :func:`math.floor`/:func:`math.ceil`; the same loops in
autograd.numpy are the naive forwards. Average pooling is linear in ``x``
(adjoint test). Cases draw kernels and strides as ints or pairs (overlapping
windows when the stride is smaller than the kernel) and adaptive output sizes
up to two more than the input size (bins then overlap).
"""

from __future__ import annotations

import functools
import math

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.nn.pooling import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_vjp,
    avg_pool2d,
    avg_pool2d_vjp,
    max_pool2d,
    max_pool2d_vjp,
)

from ... import anchors
from ...registry import Anchor, Case, Op, Primal, register
from ...strategies import rng

TOL = {"float64": 1e-12, "float32": 2e-5}
REFERENCES = ("PyTorch documentation, torch.nn.functional.avg_pool2d, max_pool2d and "
              "adaptive_avg_pool2d",)


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _reduce(np_, windows, reduce):
    """Reduce each ``(N, C, rows, cols)`` window over its last two axes; stack to ``(N, C, P, Q)``."""
    rows = [np_.stack([reduce(np_, np_.reshape(w, w.shape[:2] + (-1,))) for w in row], axis=-1)
            for row in windows]
    return np_.stack(rows, axis=-2)


def _windows(x, kernel_size, stride):
    (kh, kw) = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ho, wo = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    return [[x[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw] for q in range(wo)] for p in range(ho)]


def _mean(np_, w):
    return np_.mean(w, axis=-1)


def _max(np_, w):
    return np_.max(w, axis=-1)


def window_reduce(np_, x, kernel_size, stride, reduce):
    """``reduce(np_, window)`` of every ``kh x kw`` window, each flattened to ``(N, C, kh kw)``."""
    return _reduce(np_, _windows(x, kernel_size, stride), reduce)


def avg_pool_reference(np_, x, kernel_size, stride=None):
    """Mean of every ``kh x kw`` window (no padding; ``stride`` defaults to the kernel)."""
    return window_reduce(np_, x, kernel_size, stride, _mean)


def max_pool_reference(np_, x, kernel_size, stride=None):
    """Maximum of every ``kh x kw`` window."""
    return window_reduce(np_, x, kernel_size, stride, _max)


def adaptive_bins(n_in, n_out):
    """PyTorch's bins ``[floor(i n_in / n_out), ceil((i + 1) n_in / n_out))``."""
    return [(math.floor(i * n_in / n_out), math.ceil((i + 1) * n_in / n_out)) for i in range(n_out)]


def adaptive_reference(np_, x, output_size):
    """Mean over every pair of PyTorch adaptive bins."""
    rows, cols = (adaptive_bins(n, o) for n, o in zip(x.shape[2:], _pair(output_size)))
    return _reduce(np_, [[x[:, :, a:b, c:d] for c, d in cols] for a, b in rows], _mean)


@st.composite
def _images(draw, kernel=None):
    """``x`` of shape (N, C, H, W) with ``H, W`` at least the kernel's."""
    gen = draw(rng())
    kh, kw = kernel or (1, 1)
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    return gen.standard_normal((n, c, draw(st.integers(kh, 7)), draw(st.integers(kw, 7))))


@st.composite
def _window_cases(draw):
    kernel_size = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    stride = draw(st.one_of(st.none(), st.integers(1, 2), st.tuples(st.integers(1, 3),
                                                                    st.integers(1, 3))))
    x = draw(_images(_pair(kernel_size)))
    return Case({"x": x}, {"kernel_size": kernel_size, "stride": stride})


@st.composite
def _adaptive_cases(draw):
    x = draw(_images())
    size = (draw(st.integers(1, x.shape[2] + 2)), draw(st.integers(1, x.shape[3] + 2)))
    return Case({"x": x}, {"output_size": draw(st.sampled_from([size, size[0]]))})


BENCH_SIZES = ((16, 16, 32), (32, 32, 64))  # (n, c, side): a batch of n images, c channels
BENCH_KERNEL = 2  # 2x2 windows, stride 2 (the adaptive pooling: side / 4 bins of 4)


def _bench_case(size, adaptive=False):
    n, c, side = size
    x = np.random.default_rng(0).standard_normal((n, c, side, side))
    if adaptive:
        return Case({"x": x}, {"output_size": side // 4})
    return Case({"x": x}, {"kernel_size": BENCH_KERNEL, "stride": BENCH_KERNEL})


def _windows_anchor(name, reduce):
    """``window_<name>``: NumPy's ``reduce`` over strided window views (bins of 4 for the adaptive case, which
    divides the side exactly: the same windows)."""
    def build(case):
        x = case.primals["x"]
        k = x.shape[-1] // case.params["output_size"] if "output_size" in case.params \
            else case.params["kernel_size"]
        return anchors.pooling(x, k, k, reduce)

    return Anchor(f"window_{name}", build)


def _record(forward, vjp, cases, reference, convention, anchor, **relations):
    return register(Op(
        forward=forward, vjp=vjp, primals=(Primal("x"),), cases=cases,
        reference=lambda x, **params: reference(np, x, **params),
        naive=lambda x, **params: reference(anp, x, **params),
        tolerance=TOL, convention=convention, section="4.3", references=REFERENCES,
        bench_case=functools.partial(_bench_case, adaptive=cases is _adaptive_cases),
        bench_sizes=BENCH_SIZES, bench_anchor=_windows_anchor(*anchor), **relations,
    ))


_WINDOWS = ("x (N, C, H, W), kernel_size and stride ints or pairs, stride defaulting to the "
            "kernel, no padding")
_record(avg_pool2d, avg_pool2d_vjp, _window_cases, avg_pool_reference,
        f"Mean over kh x kw windows: {_WINDOWS}.", ("mean", np.mean), linear_in=("x",))
_record(max_pool2d, max_pool2d_vjp, _window_cases, max_pool_reference,
        f"Maximum over kh x kw windows: {_WINDOWS}; the cotangent goes to the first maximum of "
        "each window in row-major order (PyTorch).", ("max", np.max))
_record(adaptive_avg_pool2d, adaptive_avg_pool2d_vjp, _adaptive_cases, adaptive_reference,
        "Mean over PyTorch's adaptive bins [floor(i H / Ho), ceil((i + 1) H / Ho)) (and the same "
        "in W); output_size an int or a pair, larger than the input allowed (bins overlap).",
        ("mean", np.mean), linear_in=("x",))
