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
from .svd_linear import (
    condition_number,
    condition_number_vjp,
    spectral_norm,
    spectral_norm_vjp,
    spectral_normalize,
    spectral_normalize_vjp,
    svd_linear,
    svd_linear_inverse,
    svd_linear_inverse_vjp,
    svd_linear_matrix,
    svd_linear_matrix_vjp,
    svd_linear_slogdet,
    svd_linear_slogdet_vjp,
    svd_linear_vjp,
    sym_cayley_apply,
    sym_cayley_apply_vjp,
    sym_expm_apply,
    sym_expm_apply_vjp,
)

__version__ = "0.1.0"
CONVENTION_VERSION = "1"

__all__ = [
    "available_backends",
    "condition_number",
    "condition_number_vjp",
    "get_backend",
    "get_namespace",
    "householder_matrix",
    "householder_product",
    "householder_product_vjp",
    "set_backend",
    "spectral_norm",
    "spectral_norm_vjp",
    "spectral_normalize",
    "spectral_normalize_vjp",
    "svd_linear",
    "svd_linear_inverse",
    "svd_linear_inverse_vjp",
    "svd_linear_matrix",
    "svd_linear_matrix_vjp",
    "svd_linear_slogdet",
    "svd_linear_slogdet_vjp",
    "svd_linear_vjp",
    "sym_cayley_apply",
    "sym_cayley_apply_vjp",
    "sym_expm_apply",
    "sym_expm_apply_vjp",
    "to_numpy",
    "use_backend",
]
