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
    "lapack_reflectors",
    "lapack_reflector_cases",
    "rng",
    "rows_with_norms",
]


def rng() -> st.SearchStrategy[np.random.Generator]:
    """A NumPy generator from a drawn seed (shrinks towards seed 0)."""
    return st.integers(0, 2**32 - 1).map(np.random.default_rng)


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
