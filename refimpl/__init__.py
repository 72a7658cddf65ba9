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
from .fftconv import (
    circular_conv,
    circular_conv_inverse,
    circular_conv_inverse_vjp,
    circular_conv_slogdet,
    circular_conv_slogdet_vjp,
    circular_conv_vjp,
    embed_kernel,
    embed_kernel_vjp,
    glow_conv1x1,
    glow_conv1x1_inverse,
    glow_conv1x1_inverse_vjp,
    glow_conv1x1_slogdet,
    glow_conv1x1_slogdet_vjp,
    glow_conv1x1_vjp,
    glow_lu_weight,
    kernel_spectrum,
    periodic_conv,
    periodic_conv_inverse,
    periodic_conv_inverse_vjp,
    periodic_conv_slogdet,
    periodic_conv_slogdet_vjp,
    periodic_conv_vjp,
    periodic_kernel_spectrum,
)
from .householder import householder_matrix, householder_product, householder_product_vjp

__version__ = "0.1.0"
CONVENTION_VERSION = "1"

__all__ = [
    "available_backends",
    "circular_conv",
    "circular_conv_inverse",
    "circular_conv_inverse_vjp",
    "circular_conv_slogdet",
    "circular_conv_slogdet_vjp",
    "circular_conv_vjp",
    "embed_kernel",
    "embed_kernel_vjp",
    "get_backend",
    "get_namespace",
    "glow_conv1x1",
    "glow_conv1x1_inverse",
    "glow_conv1x1_inverse_vjp",
    "glow_conv1x1_slogdet",
    "glow_conv1x1_slogdet_vjp",
    "glow_conv1x1_vjp",
    "glow_lu_weight",
    "householder_matrix",
    "householder_product",
    "householder_product_vjp",
    "kernel_spectrum",
    "periodic_conv",
    "periodic_conv_inverse",
    "periodic_conv_inverse_vjp",
    "periodic_conv_slogdet",
    "periodic_conv_slogdet_vjp",
    "periodic_conv_vjp",
    "periodic_kernel_spectrum",
    "set_backend",
    "to_numpy",
    "use_backend",
]
