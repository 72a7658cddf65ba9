"""Flattening ``(N, ...) -> (N, prod(...))`` (``nn.Flatten()``), its VJP and layer class.

Convention (docs/conventions.rst, section 4.6): row-major (C order), the batch
axis kept; LRP passes relevance through it reshaped.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import ClassVar

from .._results import cotangent_type
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ._layer import Layer
from ._unfold import require_cotangent

__all__ = ["Flatten", "flatten", "flatten_vjp"]

FlattenCotangents = cotangent_type("FlattenCotangents", "x")


def _check(x):
    require_real_floating("x", x)
    if x.ndim < 1:
        raise ValueError(f"x must have a batch axis (shape (N, ...)), got shape {tuple(x.shape)}")
    return get_namespace(x)[0]


def flatten(x):
    """``(N, ...) -> (N, prod(...))`` in row-major order."""
    xp = _check(x)
    return xp.reshape(x, (x.shape[0], -1))


def flatten_vjp(x, cotangent):
    """Cotangent ``(x,)`` of :func:`flatten`: ``G`` reshaped back."""
    xp = _check(x)
    require_cotangent(cotangent, (x.shape[0], math.prod(x.shape[1:])))
    require_same_dtype(x=x, cotangent=cotangent)
    get_namespace(x, cotangent)
    return FlattenCotangents(xp.reshape(cotangent, tuple(x.shape)))


@dataclass(frozen=True, repr=False)
class Flatten(Layer):
    """``(N, ...) -> (N, prod(...))``, as ``nn.Flatten()``."""

    kind: ClassVar[str] = "reshape"

    def forward(self, x):
        return flatten(x)

    def input_vjp(self, x, g):
        return flatten_vjp(x, g)[0]
