r"""Pooling: average, max and PyTorch's adaptive average pooling, with VJPs and layer classes.

Convention (docs/conventions.rst, section 4.3): ``NCHW``, no padding, ``stride``
defaulting to the kernel. The max-pooling gradient goes to the first maximum
of each window in row-major order (PyTorch). Adaptive bin ``i`` of ``n_out``
covers ``[floor(i n_in / n_out), ceil((i + 1) n_in / n_out))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .._results import cotangent_type
from .._validation import require_same_dtype
from ..backend import get_namespace
from ._layer import Layer
from ._unfold import fold, image, out_size, positive_pair, require_cotangent, selector, unfold

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "MaxPool2d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_vjp",
    "avg_pool2d",
    "avg_pool2d_vjp",
    "max_pool2d",
    "max_pool2d_vjp",
]

PoolCotangents = cotangent_type("PoolCotangents", "x")


def _check_pool(x, kernel_size, stride):
    image("x", x)
    kernel = positive_pair("kernel_size", kernel_size)
    stride = kernel if stride is None else positive_pair("stride", stride)
    out_hw = tuple(out_size(n, k, s, 0, "pooling") for n, k, s in zip(x.shape[2:], kernel, stride))
    return kernel, stride, out_hw


def _pool_windows(x, kernel_size, stride):
    """``(xp, device, kernel, stride, windows)``, windows ``(N, C, kh*kw, Ho, Wo)``."""
    kernel, stride, out_hw = _check_pool(x, kernel_size, stride)
    xp, device = get_namespace(x)
    return xp, device, kernel, stride, unfold(xp, device, x, kernel, stride, (0, 0), out_hw)


def _fold_pool(x, routed, kernel, stride):
    """VJP tail of a pooling: window cotangents ``routed`` back to ``x``'s grid."""
    xp, device = get_namespace(x, routed)
    require_same_dtype(x=x, cotangent=routed)
    return PoolCotangents(fold(xp, device, routed, tuple(x.shape[2:]), kernel, stride, (0, 0)))


def _pool_cotangent(x, cotangent, windows):
    require_cotangent(cotangent, tuple(x.shape[:2]) + tuple(windows.shape[3:]))
    xp, _ = get_namespace(x, cotangent)
    return xp.expand_dims(cotangent, axis=2)


def avg_pool2d(x, kernel_size, stride=None):
    r"""Average over each ``kh x kw`` window (no padding; ``stride`` defaults to the kernel).

    .. math::  y_{ncpq} = \frac{1}{k_h k_w} \sum_{k,l} x_{nc,\, p s_h + k,\, q s_w + l}
    """
    xp, _, _, _, windows = _pool_windows(x, kernel_size, stride)
    return xp.mean(windows, axis=2)


def avg_pool2d_vjp(x, cotangent, kernel_size, stride=None):
    """Cotangent ``(x,)`` of :func:`avg_pool2d`: each window receives ``G / (kh kw)``."""
    xp, _, kernel, stride, windows = _pool_windows(x, kernel_size, stride)
    g = _pool_cotangent(x, cotangent, windows)
    return _fold_pool(x, xp.broadcast_to(g / windows.shape[2], tuple(windows.shape)), kernel, stride)


def max_pool2d(x, kernel_size, stride=None):
    r"""Maximum over each ``kh x kw`` window (no padding; ``stride`` defaults to the kernel)."""
    xp, _, _, _, windows = _pool_windows(x, kernel_size, stride)
    return xp.max(windows, axis=2)


def max_pool2d_vjp(x, cotangent, kernel_size, stride=None):
    """Cotangent ``(x,)`` of :func:`max_pool2d`: ``G`` goes to the window's first maximum
    (row-major), as PyTorch."""
    xp, device, kernel, stride, windows = _pool_windows(x, kernel_size, stride)
    g = _pool_cotangent(x, cotangent, windows)
    taps = xp.reshape(xp.arange(windows.shape[2], device=device), (1, 1, -1, 1, 1))
    winner = taps == xp.expand_dims(xp.argmax(windows, axis=2), axis=2)
    return _fold_pool(x, xp.where(winner, g, 0.0), kernel, stride)


def _bins(xp, device, dtype, n_in, n_out):
    """PyTorch's adaptive bins as an averaging matrix ``P`` (n_out, n_in).

    Bin ``i`` covers ``[floor(i n_in / n_out), ceil((i + 1) n_in / n_out))``.
    """
    i = xp.reshape(xp.arange(n_out, device=device), (n_out, 1))
    start = (i * n_in) // n_out
    stop = ((i + 1) * n_in + n_out - 1) // n_out
    h = xp.reshape(xp.arange(n_in, device=device), (1, n_in))
    inside = xp.astype((h >= start) & (h < stop), dtype)
    return inside / xp.astype(stop - start, dtype)


def _check_adaptive(x, output_size):
    image("x", x)
    out_hw = positive_pair("output_size", output_size)
    xp, device = get_namespace(x)
    ph = _bins(xp, device, x.dtype, x.shape[2], out_hw[0])
    pw = _bins(xp, device, x.dtype, x.shape[3], out_hw[1])
    return xp, out_hw, ph, pw


def adaptive_avg_pool2d(x, output_size):
    r"""PyTorch's ``adaptive_avg_pool2d``: ``Y = P_h X P_w^T`` per sample and channel."""
    xp, _, ph, pw = _check_adaptive(x, output_size)
    return ph @ x @ xp.matrix_transpose(pw)


def adaptive_avg_pool2d_vjp(x, cotangent, output_size):
    r"""Cotangent ``(x,)`` of :func:`adaptive_avg_pool2d`: ``P_h^T G P_w``."""
    xp, out_hw, ph, pw = _check_adaptive(x, output_size)
    require_cotangent(cotangent, tuple(x.shape[:2]) + out_hw)
    return PoolCotangents(xp.matrix_transpose(ph) @ cotangent @ pw)


def _per_channel(xp, device, a, ph, pw):
    """``M[(c,h,w), (c',p,q)] = [c = c'] ph[p, h] pw[q, w]`` for one sample of ``a``."""
    c, h, w = a.shape[1:]
    eye = xp.eye(c, dtype=a.dtype, device=device)
    m = (xp.reshape(eye, (c, 1, 1, c, 1, 1))
         * xp.reshape(xp.matrix_transpose(ph), (1, h, 1, 1, ph.shape[0], 1))
         * xp.reshape(xp.matrix_transpose(pw), (1, 1, w, 1, 1, pw.shape[0])))
    return xp.reshape(m, (c * h * w, c * ph.shape[0] * pw.shape[0]))


class _Pool(Layer):
    def __post_init__(self):
        kernel = positive_pair("kernel_size", self.kernel_size)
        object.__setattr__(self, "kernel_size", kernel)
        object.__setattr__(self, "stride", kernel if self.stride is None
                           else positive_pair("stride", self.stride))

    def forward(self, x):
        return self._op(x, self.kernel_size, self.stride)

    def input_vjp(self, x, g):
        return self._op_vjp(x, g, self.kernel_size, self.stride)[0]

    def _windows(self, xp, device, dtype, in_shape):
        """Per-channel window selectors ``(Eh, Ew)`` of this pooling."""
        h, w = in_shape[-2:]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        eh = selector(xp, device, dtype, out_size(h, kh, sh, 0, "pooling"), kh, sh, 0, h)
        ew = selector(xp, device, dtype, out_size(w, kw, sw, 0, "pooling"), kw, sw, 0, w)
        return eh, ew


@dataclass(frozen=True, repr=False)
class AvgPool2d(_Pool):
    """Average pooling (no padding); see :func:`avg_pool2d`."""

    kernel_size: Any
    stride: Any = None
    kind: ClassVar[str] = "avgpool"
    _op = staticmethod(avg_pool2d)
    _op_vjp = staticmethod(avg_pool2d_vjp)

    def dense(self, a):
        """Per-sample averaging matrix ``(C H W, C Ho Wo)``, from the window selectors."""
        xp, device = get_namespace(a)
        eh, ew = self._windows(xp, device, a.dtype, a.shape)
        k = self.kernel_size[0] * self.kernel_size[1]
        return _per_channel(xp, device, a, xp.sum(eh, axis=1), xp.sum(ew, axis=1)) / k


@dataclass(frozen=True, repr=False)
class MaxPool2d(_Pool):
    """Max pooling (no padding); see :func:`max_pool2d`."""

    kernel_size: Any
    stride: Any = None
    kind: ClassVar[str] = "maxpool"
    _op = staticmethod(max_pool2d)
    _op_vjp = staticmethod(max_pool2d_vjp)

    def dense(self, a):
        r"""Per-sample winner matrices ``(N, C H W, C Ho Wo)``: 1 at each window's first maximum.

        The windows are gathered with the selectors (exact: one nonzero term per sum),
        independently of the unfold used by :meth:`forward`.
        """
        xp, device = get_namespace(a)
        eh, ew = self._windows(xp, device, a.dtype, a.shape)
        (ho, kh, h), (wo, kw, w) = eh.shape, ew.shape
        win = xp.tensordot(xp.tensordot(a, eh, axes=([2], [2])), ew, axes=([2], [2]))
        win = xp.permute_dims(win, (0, 1, 2, 4, 3, 5))  # (n, c, ho, wo, kh, kw)
        win = xp.reshape(win, tuple(win.shape[:4]) + (kh * kw,))
        taps = xp.reshape(xp.arange(kh * kw, device=device), (1, 1, 1, 1, -1))
        first = xp.astype(taps == xp.expand_dims(xp.argmax(win, axis=4), axis=4), a.dtype)
        first = xp.reshape(first, tuple(win.shape[:4]) + (kh, kw))
        # m[n, c, h, w, p, q] = sum_{k,l} first[n, c, p, q, k, l] eh[p, k, h] ew[q, l, w]
        m = xp.tensordot(first, eh, axes=([4], [1]))  # (n, c, ho, wo, kw, ho', h)
        m = xp.sum(m * xp.reshape(xp.eye(ho, dtype=a.dtype, device=device), (1, 1, ho, 1, 1, ho, 1)),
                   axis=5)  # (n, c, ho, wo, kw, h)
        m = xp.tensordot(m, ew, axes=([4], [1]))  # (n, c, ho, wo, h, wo', w)
        m = xp.sum(m * xp.reshape(xp.eye(wo, dtype=a.dtype, device=device), (1, 1, 1, wo, 1, wo, 1)),
                   axis=5)  # (n, c, ho, wo, h, w)
        n, c = a.shape[:2]
        eye = xp.reshape(xp.eye(c, dtype=a.dtype, device=device), (1, c, 1, 1, c, 1, 1))
        m = xp.reshape(xp.permute_dims(m, (0, 1, 4, 5, 2, 3)), (n, c, h, w, 1, ho, wo)) * eye
        return xp.reshape(m, (n, c * h * w, c * ho * wo))


@dataclass(frozen=True, repr=False)
class AdaptiveAvgPool2d(Layer):
    """Adaptive average pooling to ``output_size`` (PyTorch bins); see :func:`adaptive_avg_pool2d`."""

    output_size: Any
    kind: ClassVar[str] = "avgpool"

    def __post_init__(self):
        object.__setattr__(self, "output_size", positive_pair("output_size", self.output_size))

    def forward(self, x):
        return adaptive_avg_pool2d(x, self.output_size)

    def input_vjp(self, x, g):
        return adaptive_avg_pool2d_vjp(x, g, self.output_size)[0]

    def dense(self, a):
        """Per-sample averaging matrix ``(C H W, C Ho Wo)``."""
        xp, device = get_namespace(a)
        ph = _bins(xp, device, a.dtype, a.shape[2], self.output_size[0])
        pw = _bins(xp, device, a.dtype, a.shape[3], self.output_size[1])
        return _per_channel(xp, device, a, ph, pw)
