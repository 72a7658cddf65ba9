"""Baselines of the ratio benchmarks (:class:`verify.registry.Anchor`), in plain NumPy.

Each function takes the shapes of a bench case and returns a function of no
arguments that does the dense work at those sizes: a matrix product, a
solve, a log-determinant. Their cost depends on the shapes only, so the
operands are random Gaussian arrays (nonsingular with probability one), not
the op's own matrix formed densely; set-up happens here, outside the timing.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = [
    "fft_round_trip",
    "gemm",
    "operand",
    "periodic_fft",
    "periodic_fft_slogdet",
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
