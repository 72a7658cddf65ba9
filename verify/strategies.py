"""Hypothesis strategies shared by the op records, public for candidates and tests.

Inputs are built from a drawn seed and a few drawn sizes, not element by
element: hypothesis then shrinks sizes and seeds (small, readable
counterexamples) while the values stay well conditioned by construction.
A candidate restricted to a sub-domain passes a strategy of
:class:`~verify.registry.Case` as ``verify.check(..., cases=...)``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg.lapack as lapack
from hypothesis import strategies as st

from .registry import Case

__all__ = [
    "batch_shapes",
    "clustered_points",
    "lapack_reflectors",
    "lapack_reflector_cases",
    "moderate_kernel",
    "moderate_periodic_kernel",
    "near_identity_kernel",
    "near_orthogonal_periodic_kernel",
    "rng",
    "rows_with_norms",
]


def rng() -> st.SearchStrategy[np.random.Generator]:
    """A NumPy generator from a drawn seed (shrinks towards seed 0)."""
    return st.integers(0, 2**32 - 1).map(np.random.default_rng)


def clustered_points(gen: np.random.Generator, n: int, d: int, k: int, spread=6.0) -> np.ndarray:
    """``n`` points in ``d`` dimensions around ``k`` centres ``spread`` standard deviations apart.

    Point ``i`` belongs to cluster ``i mod k``; the centres are ``spread`` times standard
    normal, the points unit Gaussians around them: well separated, no duplicates.
    """
    centres = spread * gen.standard_normal((k, d))
    return centres[np.arange(n) % k] + gen.standard_normal((n, d))


def batch_shapes() -> st.SearchStrategy[tuple[tuple, tuple]]:
    """Pairs of leading batch shapes that broadcast (shrinks towards no batch)."""
    return st.sampled_from([((), ()), ((2,), ()), ((), (2,)), ((3,), (3,)), ((1,), (2,))])


def rows_with_norms(gen: np.random.Generator, shape, low=0.5, high=2.0) -> np.ndarray:
    """Gaussian rows rescaled to norms drawn uniformly in ``[low, high]``."""
    a = gen.standard_normal(shape)
    norms = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / norms * gen.uniform(low, high, size=norms.shape)


def lapack_reflectors(gen: np.random.Generator, d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(V, tau)`` straight from LAPACK ``dgeqrf`` of a random ``d x n`` matrix (``n <= d``).

    Row ``i`` of ``V`` is column ``i`` of ``tril(A, -1) + I``: a unit at
    position ``i`` and zeros before it (LAPACK form, as
    ``torch.linalg.householder_product`` and ``jax.lax.linalg.householder_product``
    take it).
    """
    a, tau, _, info = lapack.dgeqrf(gen.standard_normal((d, n)))
    assert info == 0
    return (np.tril(a, -1) + np.eye(d, n)).T.copy(), tau


@st.composite
def lapack_reflector_cases(draw, max_d=8, max_m=4):
    """Householder cases ``V, X, tau`` in LAPACK form, ``transpose`` drawn."""
    gen = draw(rng())
    d = draw(st.integers(1, max_d))
    n = draw(st.integers(1, d))
    V, tau = lapack_reflectors(gen, d, n)
    X = gen.standard_normal((d, draw(st.integers(1, max_m))))
    return Case({"V": V, "X": X, "tau": tau}, {"transpose": draw(st.booleans())})


# -- convolution kernels (refimpl.conv): spectra bounded away from zero ---------------------------


def near_identity_kernel(gen: np.random.Generator, grid, max_ratio=0.8) -> np.ndarray:
    """``a delta + P`` on ``grid`` with ``||P||_1 = r |a|``, ``r`` uniform in ``[0, max_ratio]``.

    Every eigenvalue ``K_hat[f] = a + P_hat[f]`` of the circular convolution
    lies in ``|a| [1 - r, 1 + r]`` (``|P_hat[f]| <= ||P||_1``), so its
    condition number is at most ``(1 + r) / (1 - r)`` by construction; ``a``
    has a random sign and ``|a|`` is uniform in ``[0.5, 2]``.
    """
    a = gen.choice([-1.0, 1.0]) * gen.uniform(0.5, 2.0)
    P = gen.standard_normal(grid)
    r = gen.uniform(0.0, max_ratio)
    K = P * (r * abs(a) / np.abs(P).sum())
    K[(0,) * len(grid)] += a
    return K


def moderate_kernel(gen: np.random.Generator, grid, limit=30.0) -> np.ndarray:
    """A Gaussian kernel with ``max|K_hat| / min|K_hat| <= limit`` (redrawn until it holds).

    Unlike :func:`near_identity_kernel` its eigenvalues take both signs on
    the self-conjugate frequencies, so the sign of the determinant varies.
    Falls back to :func:`near_identity_kernel` after 200 draws.
    """
    for _ in range(200):
        K = gen.standard_normal(grid)
        mags = np.abs(np.fft.fftn(K))
        if mags.max() <= limit * mags.min():
            return K
    return near_identity_kernel(gen, grid)


def near_orthogonal_periodic_kernel(gen: np.random.Generator, c, H, W, max_ratio=0.8) -> np.ndarray:
    """``Q delta + P``, shape ``(c, c, H, W)``, ``Q`` orthogonal, ``sum_m ||P[:, :, m]||_2 = r``.

    Every per-frequency matrix ``K_hat(f) = Q + P_hat(f)`` has
    ``||P_hat(f)||_2 <= r``, so its singular values lie in ``[1 - r, 1 + r]``
    (``r`` uniform in ``[0, max_ratio]``): the periodic convolution is
    invertible with condition number at most ``(1 + r) / (1 - r)``.
    """
    Q, _ = np.linalg.qr(gen.standard_normal((c, c)))
    P = gen.standard_normal((c, c, H, W))
    r = gen.uniform(0.0, max_ratio)
    norms = sum(np.linalg.norm(P[:, :, h, w], 2) for h in range(H) for w in range(W))
    K = P * (r / norms)
    K[:, :, 0, 0] += Q
    return K


def moderate_periodic_kernel(gen: np.random.Generator, c, H, W, limit=100.0) -> np.ndarray:
    """A Gaussian ``(c, c, H, W)`` kernel with every ``cond(K_hat(f)) <= limit`` (redrawn).

    Determinant signs of both kinds occur. Falls back to
    :func:`near_orthogonal_periodic_kernel` after 200 draws.
    """
    for _ in range(200):
        K = gen.standard_normal((c, c, H, W))
        A = np.moveaxis(np.fft.fft2(K), (0, 1), (-2, -1))
        if np.all(np.linalg.cond(A) <= limit):
            return K
    return near_orthogonal_periodic_kernel(gen, c, H, W)
