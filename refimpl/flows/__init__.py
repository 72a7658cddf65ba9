"""Normalizing flows: invertible layers with exact log-determinants and VJPs, their compositions and uses.

Every layer keeps one protocol (``forward(x) -> (z, logdet)``,
``inverse(z) -> (x, logdet)`` and the VJPs of both with respect to the input
and every parameter; see :mod:`refimpl.flows._bijector`). Members:
:mod:`~refimpl.flows.glow` (Glow's invertible 1x1 convolution, LU
parametrisation), :mod:`~refimpl.flows.coupling` (NICE's additive and
RealNVP's affine coupling), :mod:`~refimpl.flows.permutations`,
:mod:`~refimpl.flows.activation_norm` (with its data-dependent initialisation),
:mod:`~refimpl.flows.lulinear` (nflows' ``LULinear``),
:mod:`~refimpl.flows.householder_flows`, :mod:`~refimpl.flows.bijectors`
(the 1x1, circular and periodic convolutions and the SVD layer as flow
layers), :mod:`~refimpl.flows.sequential` (compositions, ``log_prob``,
``sample``), :mod:`~refimpl.flows.counterfactuals` and
:mod:`~refimpl.flows.vae` (the Householder-flow VAE bound).
Conventions: ``docs/conventions.rst``, section 3.
"""

from . import (
    activation_norm,
    bijectors,
    counterfactuals,
    coupling,
    glow,
    householder_flows,
    lulinear,
    permutations,
    sequential,
    vae,
)
from .activation_norm import *  # noqa: F403  (each member's __all__ is its public API)
from .bijectors import *  # noqa: F403
from .counterfactuals import *  # noqa: F403
from .coupling import *  # noqa: F403
from .glow import *  # noqa: F403
from .householder_flows import *  # noqa: F403
from .lulinear import *  # noqa: F403
from .permutations import *  # noqa: F403
from .sequential import *  # noqa: F403
from .vae import *  # noqa: F403

__all__ = [*glow.__all__, *coupling.__all__, *permutations.__all__, *activation_norm.__all__,
           *lulinear.__all__, *householder_flows.__all__, *bijectors.__all__, *sequential.__all__,
           *counterfactuals.__all__, *vae.__all__]
