"""Embeddings for looking at representations: exact t-SNE with its gradient.

Members: :mod:`refimpl.embedding.t_sne` (the perplexity-calibrated affinities, the Student-t
affinities, the KL divergence and its VJP, scikit-learn's optimiser). Conventions:
``docs/conventions.rst``, section 7.1.
"""

from . import t_sne
from .t_sne import *  # noqa: F403  (each member's __all__ is its public API)

__all__ = [*t_sne.__all__]
