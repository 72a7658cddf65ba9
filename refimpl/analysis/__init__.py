"""Looking inside networks: channel correspondence and network dissection.

Members: :mod:`refimpl.analysis.correspondence` (channel correlations, semi- and bipartite
matchings, regression of one network's channels on another's; Li et al., "Convergent
learning") and :mod:`refimpl.analysis.dissection` (network dissection's IoU and the
interpretable basis decomposition; Bau et al., Zhou et al.). Conventions:
``docs/conventions.rst``, sections 8.1 and 8.2.
"""

from . import correspondence, dissection
from .correspondence import *  # noqa: F403  (each member's __all__ is its public API)
from .dissection import *  # noqa: F403

__all__ = [*correspondence.__all__, *dissection.__all__]
