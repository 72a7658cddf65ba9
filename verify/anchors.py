"""Baselines of the ratio benchmarks (:class:`verify.registry.Anchor`) that several records share.

Each function takes a bench case's shapes or arrays and returns a function
of no arguments that does the standard work at those sizes: a matrix
product, a solve, a log-determinant, a convolution as one GEMM, a pooling. Where the
cost depends on the shapes
only, the operands are random Gaussian arrays (nonsingular with probability
one), not the op's own matrix formed densely; set-up happens here, outside
the timing. Baselines that one record alone uses are written in that record;
``Anchor(name)`` without ``build`` times the record's own reference (the op's
definition written the direct way, or the peer routine it calls).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


__all__ = [
    "fft_round_trip",
    "gemm",
    "im2col_conv2d",
    "operand",
    "periodic_fft",
    "periodic_fft_slogdet",
    "pooling",
    "slogdet",
    "solve",
]


def operand(shape, seed: int = 0) -> np.ndarray:
    """A random Gaussian array of ``shape``, the same for the same seed."""
    return np.random.default_rng(seed).standard_normal(tuple(shape))


def gemm(a_shape, b_shape) -> Callable[[], Any]:
    """``A @ B`` for operands of the given (possibly batched) shapes."""
    A, B = operand(a_shape, 0), operand(b_shape, 1)
    return lambda: A @ B


def solve(a_shape, b_shape) -> Callable[[], Any]:
    """``numpy.linalg.solve(A, B)`` (LAPACK ``gesv``: LU with partial pivoting, then the solves)."""
    A, B = operand(a_shape, 0), operand(b_shape, 1)
    return lambda: np.linalg.solve(A, B)


def slogdet(shape) -> Callable[[], Any]:
    """``numpy.linalg.slogdet(A)`` (LAPACK ``getrf``) of a square (batch of) matrices."""
    A = operand(shape, 0)
    return lambda: np.linalg.slogdet(A)


def fft_round_trip(X, axes) -> Callable[[], Any]:
    """``irfftn(rfftn(X))`` over ``axes``: the FFT floor of a circular convolution of ``X``."""
    s = tuple(X.shape[a] for a in axes)
    return lambda: np.fft.irfftn(np.fft.rfftn(X, s=s, axes=axes), s=s, axes=axes)


def _frequency_matrices(K):
    """``K_hat(f)`` of a ``(c_out, c_in, H, W)`` kernel as ``(H, W // 2 + 1, c_out, c_in)``."""
    return np.moveaxis(np.fft.rfftn(K, axes=(-2, -1)), (0, 1), (-2, -1))


def periodic_fft(X, K, per_frequency, *, kernel_spectrum_timed=True) -> Callable[[], Any]:
    """A multi-channel periodic convolution written plainly: FFTs and one batched NumPy call.

    ``X`` is ``(c_in, H, W)``, ``K`` ``(c_out, c_in, H, W)``; the function
    transforms ``X``, applies ``per_frequency(K_hat(f), x_hat(f))`` at every
    frequency at once (``numpy.matmul`` for the convolution,
    ``numpy.linalg.solve`` for its inverse) and transforms back. The kernel's
    FFT is inside the timing unless ``kernel_spectrum_timed=False`` (a cached
    spectrum).
    """
    grid = X.shape[-2:]
    cached = None if kernel_spectrum_timed else _frequency_matrices(K)

    def run():
        A = _frequency_matrices(K) if cached is None else cached
        x = np.moveaxis(np.fft.rfftn(X, axes=(-2, -1)), 0, -1)[..., None]
        y = per_frequency(A, x)[..., 0]
        return np.fft.irfftn(np.moveaxis(y, -1, 0), s=grid, axes=(-2, -1))

    return run


def periodic_fft_slogdet(K) -> Callable[[], Any]:
    """``numpy.linalg.slogdet`` of every ``K_hat(f)``, after the kernel's FFT."""
    return lambda: np.linalg.slogdet(_frequency_matrices(K))


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _windows(x, kernel_size, stride):
    """Every ``kh x kw`` window of ``x`` (N, C, H, W) every ``stride``: a view (N, C, P, Q, kh, kw)."""
    (sh, sw) = _pair(stride)
    return sliding_window_view(x, _pair(kernel_size), axis=(2, 3))[:, :, ::sh, ::sw]


def im2col_conv2d(x, weight, stride=1, padding=0) -> Callable[[], Any]:
    """The cross-correlation of ``x`` (N, C, H, W) with ``weight`` (O, C, kh, kw) as one GEMM.

    Zero padding (``numpy.pad``), the windows unfolded by ``sliding_window_view``
    and contracted with the weight by ``numpy.tensordot``, which copies them into
    the ``(N P Q, C kh kw)`` matrix of im2col and calls one GEMM.
    """
    ph, pw = _pair(padding)

    def run():
        padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        columns = _windows(padded, weight.shape[2:], stride)
        return np.tensordot(columns, weight, axes=((1, 4, 5), (1, 2, 3)))

    return run


def pooling(x, kernel_size, stride, reduce) -> Callable[[], Any]:
    """``reduce`` (``numpy.mean``, ``numpy.max``) over every window of ``x`` (N, C, H, W), no padding."""
    return lambda: reduce(_windows(x, kernel_size, stride), axis=(-2, -1))

