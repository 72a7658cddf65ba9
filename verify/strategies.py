"""Hypothesis strategies shared by the op records.

Inputs are built from a drawn seed and a few drawn sizes, not element by
element: hypothesis then shrinks sizes and seeds (small, readable
counterexamples) while the values stay well conditioned by construction.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

__all__ = ["batch_shapes", "rng", "rows_with_norms"]


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
