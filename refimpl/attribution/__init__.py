"""Explanations of a network's decisions: layer-wise relevance propagation (LRP).

Members: :mod:`refimpl.attribution.relevance` (every standard LRP rule of
zennit, captum and iNNvestigate, the composites, and :func:`lrp` over a
list of :mod:`refimpl.nn` layers). Conventions: ``docs/conventions.rst``,
section 5.
"""

from . import relevance
from .relevance import *  # noqa: F403  (each member's __all__ is its public API)

__all__ = [*relevance.__all__]
