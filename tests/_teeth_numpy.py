"""Plain-NumPy helpers shared by the independent candidates in tests/<family>/teeth_*.py.

The candidates must not import refimpl (they are its independent check), so
they share this instead of refimpl._validation.sum_to_shape.
"""

import numpy as np

GRADIENT_CHECKS = {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"}


def unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched to reach it."""
    g = np.sum(g, axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return np.sum(g, axis=stretched, keepdims=True) if stretched else g


def self_conjugate(grid):
    """Mask of the DFT bins with ``f = -f mod N`` on every axis of ``grid``."""
    mask = np.ones(grid, dtype=bool)
    for j, n in enumerate(grid):
        f = np.arange(n).reshape([-1 if k == j else 1 for k in range(len(grid))])
        mask = mask & ((2 * f) % n == 0)
    return mask


def class_teeth(cls, forward, vjp, bugs, caught_by, **options):
    """:class:`verify.testing.Teeth` from a candidate class: ``cls(bug).<forward>``, ``.<vjp>``.

    ``cls(None)`` is the correct candidate, ``cls(bug)`` for each of ``bugs``
    a mutant; ``vjp`` is ``None`` for an op without a gradient; ``options`` go to
    :func:`verify.check`.
    """
    from verify import Candidate
    from verify.testing import Teeth

    def make(bug):
        obj = cls(bug)
        return Candidate(getattr(obj, forward), vjp=getattr(obj, vjp) if vjp else None)

    return Teeth(correct=make(None), mutants={bug: make(bug) for bug in bugs},
                 caught_by=caught_by, options=options)
