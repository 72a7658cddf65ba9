"""Plain-NumPy helpers shared by the independent candidates in tests/teeth_*.py.

The candidates must not import refimpl (they are its independent check), so
they share this instead of refimpl._validation.sum_to_shape.
"""

import numpy as np


def unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched to reach it."""
    g = np.sum(g, axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return np.sum(g, axis=stretched, keepdims=True) if stretched else g
