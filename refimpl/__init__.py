"""refimpl: reference implementations with hand-derived VJPs, for NumPy and CuPy.

Every op takes its array namespace from its inputs (array API standard), so
the same code runs on NumPy, CuPy and any array-API library; every
differentiable op ``f`` has ``f_vjp``. The verification suite lives in the
sibling package :mod:`verify`.
"""

from .backend import (
    available_backends,
    get_backend,
    get_namespace,
    set_backend,
    to_numpy,
    use_backend,
)
from .householder import householder_matrix, householder_product, householder_product_vjp
from . import lrp  # the module: refimpl.lrp.lrp, its rules, layers and composites

__version__ = "0.1.0"
CONVENTION_VERSION = "1"

__all__ = [
    "available_backends",
    "get_backend",
    "get_namespace",
    "householder_matrix",
    "householder_product",
    "householder_product_vjp",
    "lrp",
    "set_backend",
    "to_numpy",
    "use_backend",
]
