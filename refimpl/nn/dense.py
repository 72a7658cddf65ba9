r"""The dense layer ``y = x W^T + b`` (PyTorch ``nn.Linear`` layout), its VJP and layer class.

Convention (docs/conventions.rst, section 4.1): ``weight`` is ``(out, in)``,
``bias`` ``(out,)`` or absent; leading axes of ``x`` are batch axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .._results import cotangent_type
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ._layer import Layer
from ._unfold import require_cotangent

__all__ = ["Linear", "linear", "linear_vjp"]

LinearCotangents = cotangent_type("LinearCotangents", "x weight", "bias")


def _transpose(a):
    """``a^T`` for a 2-D array of any namespace."""
    xp, _ = get_namespace(a)
    return xp.matrix_transpose(a)


def _check_linear(x, weight, bias, cotangent=None):
    for name, arr in (("x", x), ("weight", weight), ("bias", bias), ("cotangent", cotangent)):
        if arr is not None:
            require_real_floating(name, arr)
    get_namespace(x, weight, bias, cotangent)
    require_same_dtype(x=x, weight=weight, bias=bias, cotangent=cotangent)
    if weight.ndim != 2:
        raise ValueError(f"weight must have shape (out, in), got shape {tuple(weight.shape)}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"x must have shape (..., in) with in = weight.shape[1] = {weight.shape[1]}, "
            f"got shape {tuple(x.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must have shape (out,) = ({weight.shape[0]},), got {tuple(bias.shape)}")


def linear(x, weight, bias=None):
    r"""Dense layer ``y = x W^T + b`` (PyTorch ``nn.Linear`` layout).

    .. math::  y_{\dots j} = \sum_i x_{\dots i} W_{ji} + b_j

    Parameters
    ----------
    x : (..., in) array
    weight : (out, in) array
    bias : (out,) array, optional

    Returns
    -------
    y : (..., out) array

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import linear
    >>> linear(np.ones((2, 3)), np.eye(3), bias=np.arange(3.0)).tolist()
    [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    """
    _check_linear(x, weight, bias)
    y = x @ _transpose(weight)
    return y if bias is None else y + bias


def linear_vjp(x, weight, cotangent, bias=None):
    r"""Cotangents ``(x, weight, bias)`` of :func:`linear` for ``G = dL/dy``.

    .. math::  \bar x = G W,\qquad \bar W = \sum_{\text{batch}} G^T x,\qquad \bar b = \sum_{\text{batch}} G

    ``bias`` is ``None`` when no bias was given.
    """
    _check_linear(x, weight, bias, cotangent)
    xp, _ = get_namespace(x)
    require_cotangent(cotangent, tuple(x.shape[:-1]) + (weight.shape[0],))
    g2 = xp.reshape(cotangent, (-1, weight.shape[0]))
    x2 = xp.reshape(x, (-1, weight.shape[1]))
    dbias = None if bias is None else xp.sum(g2, axis=0)
    return LinearCotangents(cotangent @ weight, xp.matrix_transpose(g2) @ x2, dbias)


@dataclass(frozen=True, repr=False)
class Linear(Layer):
    """Dense layer ``y = x W^T + b``; ``weight`` (out, in), ``bias`` (out,) or None."""

    weight: Any
    bias: Any = None
    kind: ClassVar[str] = "weighted"

    def __post_init__(self):
        require_real_floating("weight", self.weight)
        if self.weight.ndim != 2:
            raise ValueError(f"weight must have shape (out, in), got shape {tuple(self.weight.shape)}")
        _check_linear(self.weight[:1, :], self.weight, self.bias)  # a (1, in) probe checks bias

    def forward(self, x):
        return linear(x, self.weight, bias=self.bias)

    def vjp(self, x, g):
        c = linear_vjp(x, self.weight, g, bias=self.bias)
        return c.x, Linear(c.weight, c.bias)

    def input_vjp(self, x, g):
        require_cotangent(g, tuple(x.shape[:-1]) + (self.weight.shape[0],))
        return g @ self.weight

    def apply(self, x, weight):
        """``x W^T`` for a weight of this layer's layout (no bias)."""
        return x @ _transpose(weight)

    def apply_t(self, g, weight, in_shape):
        """Adjoint of :meth:`apply`: ``G W``."""
        return g @ weight

    def bias_map(self, bias, out_shape):
        """``bias`` broadcast over one sample's output."""
        return bias

    def dense(self, weight, in_shape):
        """Per-sample matrix ``M[i, j] = w_ji`` (input ``i`` to output ``j``)."""
        return _transpose(weight)
