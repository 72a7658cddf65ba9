"""Mean-field variational inference.

Members: :mod:`refimpl.vi.normal` (CAVI for the normal model with a
Normal-Gamma prior), :mod:`refimpl.vi.bgmm` (scikit-learn's Bayesian Gaussian
mixture fitted by CAVI, with its full ELBO) and :mod:`refimpl.vi.advi` (the
reparameterised Gaussian ELBO, its gradient and VJP). Conventions:
``docs/conventions.rst``, section 6.
"""

from . import advi, bgmm, normal
from .advi import *  # noqa: F403  (each member's __all__ is its public API)
from .bgmm import *  # noqa: F403
from .normal import *  # noqa: F403

__all__ = [*normal.__all__, *bgmm.__all__, *advi.__all__]
