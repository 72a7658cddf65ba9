"""refimpl: reference implementations with hand-derived VJPs, for NumPy and CuPy.

Every op takes its array namespace from its inputs (array API standard), so
the same code runs on NumPy, CuPy and any array-API library; every
differentiable op ``f`` has ``f_vjp``. The verification suite lives in the
sibling package :mod:`verify`. Layer-wise relevance propagation is the
namespace :mod:`refimpl.lrp` (its function ``lrp`` would hide the module).
"""

from .backend import (
    available_backends,
    get_backend,
    get_namespace,
    set_backend,
    to_numpy,
    use_backend,
)
from . import fftconv, householder, lrp, lrp_layers, svd_layer, vi, vi_bgmm
from .fftconv import *  # noqa: F403  (each module's __all__ is its public API)
from .householder import *  # noqa: F403
from .svd_layer import *  # noqa: F403
from .vi import *  # noqa: F403
from .vi_bgmm import *  # noqa: F403

__version__ = "0.1.0"
CONVENTION_VERSION = "1"

__all__ = [
    "available_backends",
    "get_backend",
    "get_namespace",
    "set_backend",
    "to_numpy",
    "use_backend",
    "lrp",  # the module: refimpl.lrp.lrp, its rules, layers and composites
    *fftconv.__all__,
    *householder.__all__,
    *svd_layer.__all__,
    *vi.__all__,
    *vi_bgmm.__all__,
]
