r"""2-D cross-correlation with zero padding (PyTorch ``F.conv2d``), its VJP and layer class.

Convention (docs/conventions.rst, section 4.2): ``NCHW`` images, weight
``(out_c, in_c, kh, kw)``, symmetric zero padding in ``[0, kernel // 2]``:

.. math::  y_{n o p q} = b_o + \sum_{c, k, l} w_{o c k l}\,
           x^{\mathrm{pad}}_{n c,\, p s_h + k,\, q s_w + l},

computed as an *unfold* (im2col, written with array-API slicing) followed by
one matrix product; the VJP folds the column gradient back (col2im).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .._results import cotangent_type
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ._layer import Layer
from ._unfold import fold, image, out_size, pair, positive_pair, require_cotangent, selector, unfold

__all__ = ["Conv2d", "conv2d", "conv2d_vjp"]

Conv2dCotangents = cotangent_type("Conv2dCotangents", "x weight", "bias")


def _check_conv(x, weight, bias, stride, padding):
    for name, arr in (("weight", weight), ("bias", bias)):
        if arr is not None:
            require_real_floating(name, arr)
    if weight.ndim != 4:
        raise ValueError(f"weight must have shape (out_c, in_c, kh, kw), got shape {tuple(weight.shape)}")
    image("x", x, weight.shape[1])
    get_namespace(x, weight, bias)
    require_same_dtype(x=x, weight=weight, bias=bias)
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must have shape (out_c,) = ({weight.shape[0]},), got {tuple(bias.shape)}")
    kernel = tuple(weight.shape[2:])
    stride, padding = positive_pair("stride", stride), pair("padding", padding)
    if not all(0 <= p <= k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"padding must lie in [0, kernel // 2] (as in PyTorch), got {padding} "
                         f"for a kernel {kernel}")
    out_hw = tuple(out_size(n, k, s, p, "conv2d")
                   for n, k, s, p in zip(x.shape[2:], kernel, stride, padding))
    return kernel, stride, padding, out_hw


def conv2d(x, weight, bias=None, stride=1, padding=0):
    r"""2-D cross-correlation with zero padding (PyTorch ``F.conv2d``).

    .. math::  y_{n o p q} = b_o + \sum_{c,k,l} w_{o c k l}\, x^{\mathrm{pad}}_{n c,\, p s_h + k,\, q s_w + l}

    Parameters
    ----------
    x : (N, C, H, W) array
    weight : (O, C, kh, kw) array
    bias : (O,) array, optional
    stride, padding : int or pair of ints
        ``padding`` is symmetric zero padding in ``[0, kernel // 2]``.

    Returns
    -------
    y : (N, O, Ho, Wo) array, ``Ho = (H + 2 p_h - kh) // s_h + 1``.
    """
    kernel, stride, padding, out_hw = _check_conv(x, weight, bias, stride, padding)
    xp, device = get_namespace(x, weight)
    n, c = x.shape[:2]
    o = weight.shape[0]
    cols = unfold(xp, device, x, kernel, stride, padding, out_hw)
    cols = xp.reshape(cols, (n, c * kernel[0] * kernel[1], out_hw[0] * out_hw[1]))
    y = xp.reshape(xp.reshape(weight, (o, -1)) @ cols, (n, o) + out_hw)
    return y if bias is None else y + xp.reshape(bias, (o, 1, 1))


def _conv2d_transpose(xp, device, g, weight, in_hw, stride, padding):
    """Adjoint of the bias-free convolution with ``weight``: fold of ``W^T G``."""
    n, o = g.shape[:2]
    c, kh, kw = weight.shape[1:]
    cols = xp.matrix_transpose(xp.reshape(weight, (o, -1))) @ xp.reshape(g, (n, o, -1))
    cols = xp.reshape(cols, (n, c, kh * kw) + tuple(g.shape[2:]))
    return fold(xp, device, cols, in_hw, (kh, kw), stride, padding)


def conv2d_vjp(x, weight, cotangent, bias=None, stride=1, padding=0):
    r"""Cotangents ``(x, weight, bias)`` of :func:`conv2d` for ``G = dL/dy``.

    .. math::  \bar x = \operatorname{fold}(W^T \bar Y),\quad
               \bar W = \sum_n \bar Y_n \operatorname{unfold}(x)_n^T,\quad
               \bar b_o = \sum_{n,p,q} \bar y_{nopq}

    ``bias`` is ``None`` when no bias was given.
    """
    kernel, stride, padding, out_hw = _check_conv(x, weight, bias, stride, padding)
    xp, device = get_namespace(x, weight, cotangent)
    n, c = x.shape[:2]
    o = weight.shape[0]
    require_cotangent(cotangent, (n, o) + out_hw)
    require_same_dtype(x=x, cotangent=cotangent)
    dx = _conv2d_transpose(xp, device, cotangent, weight, tuple(x.shape[2:]), stride, padding)
    cols = unfold(xp, device, x, kernel, stride, padding, out_hw)
    cols = xp.reshape(xp.permute_dims(cols, (1, 2, 0, 3, 4)), (c * kernel[0] * kernel[1], -1))
    g2 = xp.reshape(xp.permute_dims(cotangent, (1, 0, 2, 3)), (o, -1))
    dweight = xp.reshape(g2 @ xp.matrix_transpose(cols), tuple(weight.shape))
    dbias = None if bias is None else xp.sum(cotangent, axis=(0, 2, 3))
    return Conv2dCotangents(dx, dweight, dbias)


@dataclass(frozen=True, repr=False)
class Conv2d(Layer):
    """2-D convolution (cross-correlation) with PyTorch layout; see :func:`conv2d`."""

    weight: Any
    bias: Any = None
    stride: Any = 1
    padding: Any = 0
    kind: ClassVar[str] = "weighted"

    def __post_init__(self):
        require_real_floating("weight", self.weight)
        if self.weight.ndim != 4:
            raise ValueError(f"weight must have shape (out_c, in_c, kh, kw), "
                             f"got {tuple(self.weight.shape)}")
        probe = self.weight[:1, :, :, :]  # a (1, in_c, kh, kw) image: checks stride, padding, bias
        _check_conv(probe, self.weight, self.bias, self.stride, self.padding)
        object.__setattr__(self, "stride", positive_pair("stride", self.stride))
        object.__setattr__(self, "padding", pair("padding", self.padding))

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def vjp(self, x, g):
        c = conv2d_vjp(x, self.weight, g, self.bias, self.stride, self.padding)
        return c.x, Conv2d(c.weight, c.bias, self.stride, self.padding)

    def input_vjp(self, x, g):
        out_hw = _check_conv(x, self.weight, None, self.stride, self.padding)[3]
        require_cotangent(g, (x.shape[0], self.weight.shape[0]) + out_hw)
        return self.apply_t(g, self.weight, tuple(x.shape))

    def apply(self, x, weight):
        """The bias-free convolution with ``weight`` (any out/in channel counts)."""
        return conv2d(x, weight, None, self.stride, self.padding)

    def apply_t(self, g, weight, in_shape):
        """Adjoint of :meth:`apply` (the transposed convolution), for inputs of ``in_shape``."""
        xp, device = get_namespace(g, weight)
        return _conv2d_transpose(xp, device, g, weight, tuple(in_shape[-2:]), self.stride, self.padding)

    def bias_map(self, bias, out_shape):
        xp, _ = get_namespace(bias)
        return xp.broadcast_to(xp.reshape(bias, (-1, 1, 1)), tuple(out_shape))

    def dense(self, weight, in_shape):
        r"""Per-sample matrix ``M[(c,h,w), (o,p,q)] = w_{o c k l}`` with ``h = p s + k - pad``.

        Built from 0/1 selectors by index arithmetic (no unfold), so it is
        independent of :meth:`apply`.
        """
        xp, device = get_namespace(weight)
        o, c, kh, kw = weight.shape
        h, w = in_shape[-2:]
        ho = out_size(h, kh, self.stride[0], self.padding[0], "conv2d")
        wo = out_size(w, kw, self.stride[1], self.padding[1], "conv2d")
        eh = selector(xp, device, weight.dtype, ho, kh, self.stride[0], self.padding[0], h)
        ew = selector(xp, device, weight.dtype, wo, kw, self.stride[1], self.padding[1], w)
        t = xp.tensordot(weight, eh, axes=([2], [1]))  # (o, c, kw, ho, h)
        t = xp.tensordot(t, ew, axes=([2], [1]))  # (o, c, ho, h, wo, w)
        t = xp.permute_dims(t, (1, 3, 5, 0, 2, 4))  # (c, h, w, o, ho, wo)
        return xp.reshape(t, (c * h * w, o * ho * wo))
