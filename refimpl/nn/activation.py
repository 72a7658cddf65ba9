r"""Elementwise activations: ReLU, tanh and the logistic sigmoid, with VJPs and layer classes.

Convention (docs/conventions.rst, section 4.4): the ReLU gradient at ``x = 0``
is 0 (PyTorch's subgradient); the sigmoid is evaluated without overflow for
any finite ``x``. LRP passes relevance through these layers unchanged
(the ``Pass`` rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._results import cotangent_type
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ._layer import Layer
from ._unfold import require_cotangent

__all__ = ["ReLU", "Sigmoid", "Tanh", "relu", "relu_vjp", "sigmoid", "sigmoid_vjp", "tanh",
           "tanh_vjp"]

ActivationCotangents = cotangent_type("ActivationCotangents", "x")


def _check(x, cotangent=None):
    require_real_floating("x", x)
    if cotangent is not None:
        require_cotangent(cotangent, tuple(x.shape))
        require_same_dtype(x=x, cotangent=cotangent)
    return get_namespace(x, cotangent)[0]


def relu(x):
    """``max(x, 0)`` elementwise."""
    xp = _check(x)
    return xp.maximum(x, 0.0)


def relu_vjp(x, cotangent):
    """Cotangent ``(x,)`` of :func:`relu`: ``G * [x > 0]`` (0 at ``x = 0``, as PyTorch)."""
    xp = _check(x, cotangent)
    return ActivationCotangents(xp.where(x > 0, cotangent, 0.0))


def tanh(x):
    """``tanh(x)`` elementwise."""
    return _check(x).tanh(x)


def tanh_vjp(x, cotangent):
    r"""Cotangent ``(x,)`` of :func:`tanh`: ``G (1 - tanh(x)^2)``."""
    xp = _check(x, cotangent)
    t = xp.tanh(x)
    return ActivationCotangents(cotangent * (1.0 - t * t))


def sigmoid(x):
    r"""The logistic function ``1 / (1 + exp(-x))``, evaluated as ``exp(-|x|)`` ratios (no overflow).

    .. math::  \sigma(x) = \begin{cases} 1 / (1 + e^{-x}) & x \ge 0 \\ e^{x} / (1 + e^{x}) & x < 0 \end{cases}
    """
    xp = _check(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_vjp(x, cotangent):
    r"""Cotangent ``(x,)`` of :func:`sigmoid`: ``G sigma(x) (1 - sigma(x))``."""
    _check(x, cotangent)
    s = sigmoid(x)
    return ActivationCotangents(cotangent * s * (1.0 - s))


class _Elementwise(Layer):
    kind: ClassVar[str] = "activation"

    def forward(self, x):
        return self._op(x)

    def input_vjp(self, x, g):
        return self._op_vjp(x, g)[0]


@dataclass(frozen=True, repr=False)
class ReLU(_Elementwise):
    """Rectifier ``max(x, 0)``; LRP passes relevance through unchanged."""

    _op = staticmethod(relu)
    _op_vjp = staticmethod(relu_vjp)


@dataclass(frozen=True, repr=False)
class Tanh(_Elementwise):
    """``tanh(x)``; LRP passes relevance through unchanged."""

    _op = staticmethod(tanh)
    _op_vjp = staticmethod(tanh_vjp)


@dataclass(frozen=True, repr=False)
class Sigmoid(_Elementwise):
    """The logistic sigmoid; LRP passes relevance through unchanged."""

    _op = staticmethod(sigmoid)
    _op_vjp = staticmethod(sigmoid_vjp)
