"""Linear algebra: Householder products in compact WY form (FastH) and the SVD-parametrised layer.

Members: :mod:`refimpl.linalg.householder` (products of reflections, their
WY blocks and VJPs) and :mod:`refimpl.linalg.svd_layer` (``W = U diag(s) V^T``
with ``U``, ``V`` Householder products: forward, inverse, log-determinant,
spectral quantities, matrix functions). Conventions: ``docs/conventions.rst``,
sections 1.1 and 1.2.
"""

from . import householder, svd_layer
from .householder import *  # noqa: F403  (each member's __all__ is its public API)
from .svd_layer import *  # noqa: F403

__all__ = [*householder.__all__, *svd_layer.__all__]
