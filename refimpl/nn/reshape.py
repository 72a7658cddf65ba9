"""Flattening ``(N, ...) -> (N, prod(...))`` (``nn.Flatten()``), its VJP and layer class.

Convention (docs/conventions.rst, section 4.6): row-major (C order), the batch
axis kept; LRP passes relevance through it reshaped.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import ClassVar

from .._results import cotangent_type
from .._validation import require_float_arrays, require_output_cotangent
from ._layer import Layer

__all__ = ["Flatten", "flatten", "flatten_vjp"]

FlattenCotangents = cotangent_type("FlattenCotangents", "x")


def _check(x, check_finite):
    xp, _ = require_float_arrays(x=x, check_finite=check_finite)
    if x.ndim < 1:
        raise ValueError(f"x must have a batch axis (shape (N, ...)), got shape {tuple(x.shape)}")
    return xp


def _flat_shape(x) -> tuple:
    # sizes spelled out: a -1 cannot be inferred for an empty batch
    return (x.shape[0], math.prod(x.shape[1:]))


def flatten(x, *, check_finite=True):
    """``(N, ...) -> (N, prod(...))`` in row-major order; NaN or infinity in ``x`` is refused
    unless ``check_finite=False``."""
    xp = _check(x, check_finite)
    return xp.reshape(x, _flat_shape(x))


def flatten_vjp(x, cotangent, *, check_finite=True):
    """Cotangent ``(x,)`` of :func:`flatten`: ``G`` reshaped back."""
    xp = _check(x, check_finite)
    require_output_cotangent("cotangent", cotangent, _flat_shape(x), x=x, check_finite=check_finite)
    return FlattenCotangents(xp.reshape(cotangent, tuple(x.shape)))


@dataclass(frozen=True, repr=False)
class Flatten(Layer):
    """``(N, ...) -> (N, prod(...))``, as ``nn.Flatten()``."""

    kind: ClassVar[str] = "reshape"

    def forward(self, x):
        return flatten(x, check_finite=False)

    def input_vjp(self, x, g):
        return flatten_vjp(x, g, check_finite=False)[0]
