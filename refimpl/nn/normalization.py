r"""Batch normalisation in inference mode, its VJP, its layer class, and merging into the layer before.

Convention (docs/conventions.rst, section 4.5): over axis 1 (``BatchNorm1d/2d``),

.. math::  y = (x - \mu) \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}} + \beta,

with the running statistics ``mu``, ``sigma^2`` as inputs (inference mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .._results import cotangent_type
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ._layer import Layer
from ._unfold import require_cotangent
from .convolution import Conv2d
from .dense import Linear

__all__ = ["BatchNorm", "batch_norm", "batch_norm_vjp", "merge_batchnorm"]

BatchNormCotangents = cotangent_type("BatchNormCotangents",
                                     "x weight bias running_mean running_var")


def _check_batch_norm(x, weight, bias, running_mean, running_var, eps, cotangent=None):
    named = dict(weight=weight, bias=bias, running_mean=running_mean, running_var=running_var)
    for name, arr in named.items():
        require_real_floating(name, arr)
        if arr.ndim != 1 or arr.shape != weight.shape:
            raise ValueError(f"{name} must have shape (C,) = {tuple(weight.shape)}, "
                             f"got {tuple(arr.shape)}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if x is not None:
        require_real_floating("x", x)
        named["x"] = x
        if x.ndim < 2 or x.shape[1] != weight.shape[0]:
            raise ValueError(f"x must have {weight.shape[0]} channels on axis 1 (shape (N, C, ...)), "
                             f"got shape {tuple(x.shape)}")
    if cotangent is not None:
        require_cotangent(cotangent, tuple(x.shape))
        named["cotangent"] = cotangent
    xp, _ = get_namespace(*named.values())
    require_same_dtype(**named)
    return xp


def _channels(xp, v, ndim):
    """A per-channel vector shaped to broadcast over axis 1 of an ``ndim`` array."""
    return xp.reshape(v, (-1,) + (1,) * (ndim - 2))


def batch_norm(x, weight, bias, running_mean, running_var, eps=1e-5):
    r"""Inference-mode batch normalisation over axis 1.

    .. math::  y = (x - \mu) s + \beta,\qquad s = \gamma / \sqrt{\sigma^2 + \epsilon}

    Parameters
    ----------
    x : (N, C, ...) array
    weight, bias, running_mean, running_var : (C,) arrays
        ``gamma``, ``beta``, ``mu``, ``sigma^2``.
    eps : float
        Added to the variance (PyTorch's default ``1e-5``).
    """
    xp = _check_batch_norm(x, weight, bias, running_mean, running_var, eps)
    s = weight / xp.sqrt(running_var + eps)
    return (x - _channels(xp, running_mean, x.ndim)) * _channels(xp, s, x.ndim) \
        + _channels(xp, bias, x.ndim)


def batch_norm_vjp(x, weight, bias, running_mean, running_var, cotangent, eps=1e-5):
    r"""Cotangents ``(x, weight, bias, running_mean, running_var)`` of :func:`batch_norm`.

    With ``r = 1 / sqrt(sigma^2 + eps)``, ``s = gamma r`` and sums over every
    axis but 1:

    .. math::  \bar x = G s,\quad \bar\gamma = \sum G (x - \mu) r,\quad \bar\beta = \sum G,\quad
               \bar\mu = -\sum G s,\quad \bar{\sigma^2} = -\tfrac12 \sum G (x - \mu)\, \gamma r^3.
    """
    xp = _check_batch_norm(x, weight, bias, running_mean, running_var, eps, cotangent)
    axes = (0,) + tuple(range(2, x.ndim))
    r = 1.0 / xp.sqrt(running_var + eps)
    centred = x - _channels(xp, running_mean, x.ndim)
    g_centred = xp.sum(cotangent * centred, axis=axes)
    return BatchNormCotangents(
        cotangent * _channels(xp, weight * r, x.ndim),
        g_centred * r,
        xp.sum(cotangent, axis=axes),
        -xp.sum(cotangent, axis=axes) * weight * r,
        -0.5 * g_centred * weight * r * r * r,
    )


@dataclass(frozen=True, repr=False)
class BatchNorm(Layer):
    r"""Batch normalisation in inference mode, over axis 1; see :func:`batch_norm`.

    LRP merges it into the preceding weighted layer first
    (:func:`merge_batchnorm`, zennit), or applies the epsilon rule to its affine
    map (captum, iNNvestigate).
    """

    weight: Any
    bias: Any
    running_mean: Any
    running_var: Any
    eps: float = 1e-5
    kind: ClassVar[str] = "batchnorm"

    def __post_init__(self):
        _check_batch_norm(None, self.weight, self.bias, self.running_mean, self.running_var,
                          self.eps)

    def _params(self):
        return self.weight, self.bias, self.running_mean, self.running_var

    def scale(self):
        """``gamma / sqrt(var + eps)`` per channel."""
        xp, _ = get_namespace(self.running_var)
        return self.weight / xp.sqrt(self.running_var + self.eps)

    def forward(self, x):
        return batch_norm(x, *self._params(), eps=self.eps)

    def vjp(self, x, g):
        c = batch_norm_vjp(x, *self._params(), g, eps=self.eps)
        return c.x, BatchNorm(c.weight, c.bias, c.running_mean, c.running_var, self.eps)

    def input_vjp(self, x, g):
        _check_batch_norm(x, *self._params(), self.eps, g)
        xp, _ = get_namespace(g)
        return g * _channels(xp, self.scale(), x.ndim)

    def as_affine(self):
        """The layer as a per-channel affine map ``x s + (beta - mu s)`` with weighted-layer methods."""
        return _ChannelAffine(self.scale(), self.bias - self.running_mean * self.scale())


@dataclass(frozen=True, repr=False)
class _ChannelAffine(Layer):
    """``y = x w_c + b_c`` per channel (axis 1): an unmerged BatchNorm seen by the epsilon rule."""

    weight: Any
    bias: Any
    kind: ClassVar[str] = "weighted"

    def _channels(self, v, ndim):
        xp, _ = get_namespace(v)
        return _channels(xp, v, ndim)

    def forward(self, x):
        return self.apply(x, self.weight) + self._channels(self.bias, x.ndim)

    def input_vjp(self, x, g):
        return self.apply_t(g, self.weight, tuple(x.shape))

    def apply(self, x, weight):
        return x * self._channels(weight, x.ndim)

    def apply_t(self, g, weight, in_shape):
        return g * self._channels(weight, g.ndim)

    def bias_map(self, bias, out_shape):
        xp, _ = get_namespace(bias)
        return xp.broadcast_to(self._channels(bias, len(out_shape) + 1), tuple(out_shape))

    def dense(self, weight, in_shape):
        """Per-sample diagonal matrix of the channel weights."""
        xp, device = get_namespace(weight)
        diagonal = xp.reshape(self.bias_map(weight, tuple(in_shape[1:])), (-1,))
        return xp.eye(diagonal.shape[0], dtype=weight.dtype, device=device) * diagonal


def merge_batchnorm(layers) -> list:
    r"""Fold every :class:`BatchNorm` into the :class:`Linear` or :class:`Conv2d` before it.

    .. math::  W' = W \operatorname{diag}(s),\quad b' = (b - \mu) s + \beta,\quad
               s = \gamma / \sqrt{\sigma^2 + \epsilon}

    (``s`` scales the output rows/channels). Returns a new list; the merged
    network gives the same outputs (to rounding). A BatchNorm that does not
    follow a weighted layer raises ``ValueError`` naming its index.
    """
    merged: list = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, BatchNorm):
            merged.append(layer)
            continue
        prev = merged[-1] if merged else None
        if not isinstance(prev, (Linear, Conv2d)) or prev is not layers[i - 1]:
            raise ValueError(f"layer {i} (BatchNorm) must directly follow a Linear or Conv2d layer "
                             "to be merged")
        merged[-1] = _merged(prev, layer, i)
    return merged


def _merged(prev, bn, index):
    xp, _ = get_namespace(prev.weight, bn.weight)
    if prev.weight.shape[0] != bn.weight.shape[0]:
        raise ValueError(f"layer {index} (BatchNorm) has {bn.weight.shape[0]} channels but layer "
                         f"{index - 1} has {prev.weight.shape[0]} outputs")
    s = bn.scale()
    weight = prev.weight * xp.reshape(s, (-1,) + (1,) * (prev.weight.ndim - 1))
    bias = bn.bias - bn.running_mean * s
    if prev.bias is not None:
        bias = bias + prev.bias * s
    if isinstance(prev, Linear):
        return Linear(weight, bias)
    return Conv2d(weight, bias, prev.stride, prev.padding)
