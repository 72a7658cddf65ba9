"""Normalizing-flow layers: invertible maps with exact log-determinants and VJPs.

Members: :mod:`refimpl.flows.glow` (Glow's invertible 1x1 convolution, LU
parametrisation). Conventions: ``docs/conventions.rst``, section 3.
"""

from . import glow
from .glow import *  # noqa: F403  (each member's __all__ is its public API)

__all__ = [*glow.__all__]
