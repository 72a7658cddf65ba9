r"""Layers for layer-wise relevance propagation: forward passes and hand-written VJPs.

Layouts follow PyTorch (CONVENTIONS.md section 5): images are ``NCHW``, a dense
weight is ``(out, in)``, a convolution weight ``(out_c, in_c, kh, kw)``. The
convolution is a cross-correlation with zero padding,

.. math::  y_{n o p q} = b_o + \sum_{c, k, l} w_{o c k l}\,
           x^{\mathrm{pad}}_{n c,\, p s_h + k,\, q s_w + l},

computed as an *unfold* (im2col, written with array-API slicing) followed by
one matrix product; its VJP folds the column gradient back (col2im, a sum of
strided slices). Pooling uses the same unfold. Every functional op ``f`` has
``f_vjp(*primals, cotangent, **params)`` returning one cotangent per primal.

The layer classes wrap these ops for :func:`forward` and for the rules of
:mod:`refimpl.lrp`. Weighted layers (:class:`Linear`, :class:`Conv2d`) also
expose the map with *any* weight of their layout (``apply``/``apply_t``, used
by the modified backward passes) and its dense matrix ``dense`` built from the
definition by index arithmetic (used by the explicit matrix-form rules).
"""

from __future__ import annotations

from ._validation import require_real_floating, require_same_dtype
from .backend import get_namespace

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm",
    "Conv2d",
    "Flatten",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "activations",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_vjp",
    "avg_pool2d",
    "avg_pool2d_vjp",
    "conv2d",
    "conv2d_vjp",
    "forward",
    "forward_vjp",
    "linear",
    "linear_vjp",
    "max_pool2d",
    "max_pool2d_vjp",
    "merge_batchnorm",
    "relu",
    "relu_vjp",
]


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------


def _pair(name, value) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair


def _positive_pair(name, value) -> tuple[int, int]:
    pair = _pair(name, value)
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return pair


def _image(name, x, channels=None):
    require_real_floating(name, x)
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channels (shape (N, {channels}, H, W)), "
            f"got shape {tuple(x.shape)}"
        )


def _out_size(n, k, s, p, what) -> int:
    if n + 2 * p < k:
        raise ValueError(f"{what}: the padded input ({n} + 2*{p}) is smaller than the kernel ({k})")
    return (n + 2 * p - k) // s + 1


def _require_cotangent(g, shape):
    require_real_floating("cotangent", g)
    if tuple(g.shape) != tuple(shape):
        raise ValueError(f"cotangent must have the output's shape {tuple(shape)}, got {tuple(g.shape)}")


# ---------------------------------------------------------------------------
# unfold (im2col) and fold (col2im)
# ---------------------------------------------------------------------------


def _pad(xp, device, x, padding):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    out = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype, device=device)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _window(i, j, out_hw, stride):
    """Slices of the padded input seen by kernel offset ``(i, j)`` at every output position."""
    (ho, wo), (sh, sw) = out_hw, stride
    return slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw)


def _unfold(xp, device, x, kernel, stride, padding, out_hw):
    """``(N, C, H, W) -> (N, C, kh*kw, Ho, Wo)``: every window, kernel offsets row-major."""
    xpad = _pad(xp, device, x, padding)
    kh, kw = kernel
    pieces = []
    for i in range(kh):
        for j in range(kw):
            rows, cols = _window(i, j, out_hw, stride)
            pieces.append(xpad[:, :, rows, cols])
    return xp.stack(pieces, axis=2)


def _fold(xp, device, cols, in_hw, kernel, stride, padding):
    """Adjoint of :func:`_unfold`: add every window entry back to its input position."""
    n, c, _, ho, wo = cols.shape
    (h, w), (ph, pw), (kh, kw) = in_hw, padding, kernel
    out = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype, device=device)
    for i in range(kh):
        for j in range(kw):
            rows, cs = _window(i, j, (ho, wo), stride)
            out[:, :, rows, cs] += cols[:, :, i * kw + j, ...]
    return out[:, :, ph:ph + h, pw:pw + w]


def _selector(xp, device, dtype, n_out, k, s, p, n_in):
    """``E[o, t, i] = 1`` where input ``i`` is tap ``t`` of output ``o`` (``i = o s + t - p``)."""
    o = xp.reshape(xp.arange(n_out, device=device), (n_out, 1, 1))
    t = xp.reshape(xp.arange(k, device=device), (1, k, 1))
    i = xp.reshape(xp.arange(n_in, device=device), (1, 1, n_in))
    return xp.astype(i == o * s + t - p, dtype)


# ---------------------------------------------------------------------------
# functional ops and their VJPs
# ---------------------------------------------------------------------------


def linear(x, weight, bias=None):
    r"""Dense layer ``y = x W^T + b`` (PyTorch ``nn.Linear`` layout).

    Parameters
    ----------
    x : (..., in) array
    weight : (out, in) array
    bias : (out,) array or None

    Returns
    -------
    y : (..., out) array
    """
    _check_linear(x, weight, bias)
    y = x @ _transpose(weight)
    return y if bias is None else y + bias


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


def linear_vjp(x, weight, bias, cotangent):
    r"""VJP of :func:`linear`: ``(G W, G^T x, sum G)`` summed over batch axes.

    Returns ``(dx, dweight, dbias)``; ``dbias`` is ``None`` when ``bias`` is.
    """
    _check_linear(x, weight, bias, cotangent)
    xp, _ = get_namespace(x)
    _require_cotangent(cotangent, tuple(x.shape[:-1]) + (weight.shape[0],))
    g2 = xp.reshape(cotangent, (-1, weight.shape[0]))
    x2 = xp.reshape(x, (-1, weight.shape[1]))
    dbias = None if bias is None else xp.sum(g2, axis=0)
    return cotangent @ weight, xp.matrix_transpose(g2) @ x2, dbias


def _check_conv(x, weight, bias, stride, padding):
    for name, arr in (("weight", weight), ("bias", bias)):
        if arr is not None:
            require_real_floating(name, arr)
    if weight.ndim != 4:
        raise ValueError(f"weight must have shape (out_c, in_c, kh, kw), got shape {tuple(weight.shape)}")
    _image("x", x, weight.shape[1])
    get_namespace(x, weight, bias)
    require_same_dtype(x=x, weight=weight, bias=bias)
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must have shape (out_c,) = ({weight.shape[0]},), got {tuple(bias.shape)}")
    kernel = tuple(weight.shape[2:])
    stride, padding = _positive_pair("stride", stride), _pair("padding", padding)
    if not all(0 <= p <= k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"padding must lie in [0, kernel // 2] (as in PyTorch), got {padding} "
                         f"for a kernel {kernel}")
    out_hw = tuple(_out_size(n, k, s, p, "conv2d")
                   for n, k, s, p in zip(x.shape[2:], kernel, stride, padding))
    return kernel, stride, padding, out_hw


def conv2d(x, weight, bias=None, stride=1, padding=0):
    r"""2-D cross-correlation with zero padding (PyTorch ``F.conv2d``).

    .. math::  y_{n o p q} = b_o + \sum_{c,k,l} w_{o c k l}\, x^{\mathrm{pad}}_{n c,\, p s_h + k,\, q s_w + l}

    Parameters
    ----------
    x : (N, C, H, W) array
    weight : (O, C, kh, kw) array
    bias : (O,) array or None
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
    cols = _unfold(xp, device, x, kernel, stride, padding, out_hw)
    cols = xp.reshape(cols, (n, c * kernel[0] * kernel[1], out_hw[0] * out_hw[1]))
    y = xp.reshape(xp.reshape(weight, (o, -1)) @ cols, (n, o) + out_hw)
    return y if bias is None else y + xp.reshape(bias, (o, 1, 1))


def _conv2d_transpose(xp, device, g, weight, in_hw, stride, padding):
    """Adjoint of the bias-free convolution with ``weight``: fold of ``W^T G``."""
    n, o = g.shape[:2]
    c, kh, kw = weight.shape[1:]
    cols = xp.matrix_transpose(xp.reshape(weight, (o, -1))) @ xp.reshape(g, (n, o, -1))
    cols = xp.reshape(cols, (n, c, kh * kw) + tuple(g.shape[2:]))
    return _fold(xp, device, cols, in_hw, (kh, kw), stride, padding)


def conv2d_vjp(x, weight, bias, cotangent, stride=1, padding=0):
    r"""VJP of :func:`conv2d`.

    .. math::  \bar x = \operatorname{fold}(W^T \bar Y),\quad
               \bar W = \sum_n \bar Y_n \operatorname{unfold}(x)_n^T,\quad
               \bar b_o = \sum_{n,p,q} \bar y_{nopq}

    Returns ``(dx, dweight, dbias)``; ``dbias`` is ``None`` when ``bias`` is.
    """
    kernel, stride, padding, out_hw = _check_conv(x, weight, bias, stride, padding)
    xp, device = get_namespace(x, weight, cotangent)
    n, c = x.shape[:2]
    o = weight.shape[0]
    _require_cotangent(cotangent, (n, o) + out_hw)
    dx = _conv2d_transpose(xp, device, cotangent, weight, tuple(x.shape[2:]), stride, padding)
    cols = _unfold(xp, device, x, kernel, stride, padding, out_hw)
    cols = xp.reshape(xp.permute_dims(cols, (1, 2, 0, 3, 4)), (c * kernel[0] * kernel[1], -1))
    g2 = xp.reshape(xp.permute_dims(cotangent, (1, 0, 2, 3)), (o, -1))
    dweight = xp.reshape(g2 @ xp.matrix_transpose(cols), tuple(weight.shape))
    dbias = None if bias is None else xp.sum(cotangent, axis=(0, 2, 3))
    return dx, dweight, dbias


def relu(x):
    """``max(x, 0)`` elementwise."""
    require_real_floating("x", x)
    xp, _ = get_namespace(x)
    return xp.maximum(x, 0.0)


def relu_vjp(x, cotangent):
    """VJP of :func:`relu`: ``G * [x > 0]`` (the subgradient 0 at ``x = 0``, as PyTorch)."""
    require_real_floating("x", x)
    _require_cotangent(cotangent, tuple(x.shape))
    xp, _ = get_namespace(x, cotangent)
    return (xp.where(x > 0, cotangent, 0.0),)


def _check_pool(x, kernel_size, stride):
    _image("x", x)
    kernel = _positive_pair("kernel_size", kernel_size)
    stride = kernel if stride is None else _positive_pair("stride", stride)
    out_hw = tuple(_out_size(n, k, s, 0, "pooling") for n, k, s in zip(x.shape[2:], kernel, stride))
    return kernel, stride, out_hw


def _pool_windows(x, kernel_size, stride):
    """``(xp, device, kernel, stride, windows)``, windows ``(N, C, kh*kw, Ho, Wo)``."""
    kernel, stride, out_hw = _check_pool(x, kernel_size, stride)
    xp, device = get_namespace(x)
    return xp, device, kernel, stride, _unfold(xp, device, x, kernel, stride, (0, 0), out_hw)


def _fold_pool(x, routed, kernel, stride):
    """VJP tail of a pooling: window cotangents ``routed`` back to ``x``'s grid."""
    xp, device = get_namespace(x, routed)
    require_same_dtype(x=x, cotangent=routed)
    return (_fold(xp, device, routed, tuple(x.shape[2:]), kernel, stride, (0, 0)),)


def _pool_cotangent(x, cotangent, windows):
    _require_cotangent(cotangent, tuple(x.shape[:2]) + tuple(windows.shape[3:]))
    xp, _ = get_namespace(x, cotangent)
    return xp.expand_dims(cotangent, axis=2)


def avg_pool2d(x, kernel_size, stride=None):
    r"""Average over each ``kh x kw`` window (no padding; ``stride`` defaults to the kernel)."""
    xp, _, _, _, windows = _pool_windows(x, kernel_size, stride)
    return xp.mean(windows, axis=2)


def avg_pool2d_vjp(x, cotangent, kernel_size, stride=None):
    """VJP of :func:`avg_pool2d`: each window receives ``G / (kh kw)``."""
    xp, _, kernel, stride, windows = _pool_windows(x, kernel_size, stride)
    g = _pool_cotangent(x, cotangent, windows)
    return _fold_pool(x, xp.broadcast_to(g / windows.shape[2], tuple(windows.shape)), kernel, stride)


def max_pool2d(x, kernel_size, stride=None):
    r"""Maximum over each ``kh x kw`` window (no padding; ``stride`` defaults to the kernel)."""
    xp, _, _, _, windows = _pool_windows(x, kernel_size, stride)
    return xp.max(windows, axis=2)


def max_pool2d_vjp(x, cotangent, kernel_size, stride=None):
    """VJP of :func:`max_pool2d`: ``G`` goes to the window's first maximum (row-major), as PyTorch."""
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
    _image("x", x)
    out_hw = _positive_pair("output_size", output_size)
    xp, device = get_namespace(x)
    ph = _bins(xp, device, x.dtype, x.shape[2], out_hw[0])
    pw = _bins(xp, device, x.dtype, x.shape[3], out_hw[1])
    return xp, out_hw, ph, pw


def adaptive_avg_pool2d(x, output_size):
    r"""PyTorch's ``adaptive_avg_pool2d``: ``Y = P_h X P_w^T`` per sample and channel."""
    xp, _, ph, pw = _check_adaptive(x, output_size)
    return ph @ x @ xp.matrix_transpose(pw)


def adaptive_avg_pool2d_vjp(x, cotangent, output_size):
    r"""VJP of :func:`adaptive_avg_pool2d`: ``P_h^T G P_w``."""
    xp, out_hw, ph, pw = _check_adaptive(x, output_size)
    _require_cotangent(cotangent, tuple(x.shape[:2]) + out_hw)
    return (xp.matrix_transpose(ph) @ cotangent @ pw,)


# ---------------------------------------------------------------------------
# layer objects
# ---------------------------------------------------------------------------


class _Layer:
    """A layer: ``forward(x)``, ``vjp(x, G)`` (input cotangent) and its LRP ``kind``."""

    kind = ""
    params: tuple = ()

    def __repr__(self):
        shapes = ", ".join(f"{n}={tuple(getattr(self, n).shape)}" for n in self.params
                           if getattr(self, n) is not None)
        return f"{type(self).__name__}({shapes})"


class Linear(_Layer):
    """Dense layer ``y = x W^T + b``; ``weight`` (out, in), ``bias`` (out,) or None."""

    kind = "weighted"
    params = ("weight", "bias")

    def __init__(self, weight, bias=None):
        require_real_floating("weight", weight)
        if weight.ndim != 2:
            raise ValueError(f"weight must have shape (out, in), got shape {tuple(weight.shape)}")
        _check_linear(weight[:1, :], weight, bias)  # a (1, in) probe validates bias too
        self.weight, self.bias = weight, bias

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def vjp(self, x, g):
        _require_cotangent(g, tuple(x.shape[:-1]) + (self.weight.shape[0],))
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


class Conv2d(_Layer):
    """2-D convolution (cross-correlation) with PyTorch layout; see :func:`conv2d`."""

    kind = "weighted"
    params = ("weight", "bias")

    def __init__(self, weight, bias=None, stride=1, padding=0):
        require_real_floating("weight", weight)
        if weight.ndim != 4:
            raise ValueError(f"weight must have shape (out_c, in_c, kh, kw), got {tuple(weight.shape)}")
        probe = weight[:1, :, :, :]  # a (1, in_c, kh, kw) image: validates stride, padding, bias
        _check_conv(probe, weight, bias, stride, padding)
        self.weight, self.bias = weight, bias
        self.stride, self.padding = _positive_pair("stride", stride), _pair("padding", padding)

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def vjp(self, x, g):
        out_hw = _check_conv(x, self.weight, None, self.stride, self.padding)[3]
        _require_cotangent(g, (x.shape[0], self.weight.shape[0]) + out_hw)
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
        ho = _out_size(h, kh, self.stride[0], self.padding[0], "conv2d")
        wo = _out_size(w, kw, self.stride[1], self.padding[1], "conv2d")
        eh = _selector(xp, device, weight.dtype, ho, kh, self.stride[0], self.padding[0], h)
        ew = _selector(xp, device, weight.dtype, wo, kw, self.stride[1], self.padding[1], w)
        t = xp.tensordot(weight, eh, axes=([2], [1]))  # (o, c, kw, ho, h)
        t = xp.tensordot(t, ew, axes=([2], [1]))  # (o, c, ho, h, wo, w)
        t = xp.permute_dims(t, (1, 3, 5, 0, 2, 4))  # (c, h, w, o, ho, wo)
        return xp.reshape(t, (c * h * w, o * ho * wo))


class ReLU(_Layer):
    """Rectifier ``max(x, 0)``; LRP passes relevance through unchanged."""

    kind = "activation"

    def forward(self, x):
        return relu(x)

    def vjp(self, x, g):
        return relu_vjp(x, g)[0]


class Flatten(_Layer):
    """``(N, ...) -> (N, prod(...))``, as ``nn.Flatten()``."""

    kind = "reshape"

    def forward(self, x):
        xp, _ = get_namespace(x)
        return xp.reshape(x, (x.shape[0], -1))

    def vjp(self, x, g):
        xp, _ = get_namespace(x, g)
        return xp.reshape(g, tuple(x.shape))


class _Pool(_Layer):
    def __init__(self, kernel_size, stride=None):
        self.kernel_size = _positive_pair("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _positive_pair("stride", stride)

    def __repr__(self):
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"

    def forward(self, x):
        return self._op(x, self.kernel_size, self.stride)

    def vjp(self, x, g):
        return self._op_vjp(x, g, self.kernel_size, self.stride)[0]

    def _windows(self, xp, device, dtype, in_shape):
        """Per-channel window selectors ``(Eh, Ew)`` of this pooling."""
        h, w = in_shape[-2:]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        eh = _selector(xp, device, dtype, _out_size(h, kh, sh, 0, "pooling"), kh, sh, 0, h)
        ew = _selector(xp, device, dtype, _out_size(w, kw, sw, 0, "pooling"), kw, sw, 0, w)
        return eh, ew


class AvgPool2d(_Pool):
    """Average pooling (no padding); see :func:`avg_pool2d`."""

    kind = "avgpool"

    _op, _op_vjp = staticmethod(avg_pool2d), staticmethod(avg_pool2d_vjp)

    def dense(self, a):
        """Per-sample averaging matrix ``(C H W, C Ho Wo)``, from the window selectors."""
        xp, device = get_namespace(a)
        eh, ew = self._windows(xp, device, a.dtype, a.shape)
        k = self.kernel_size[0] * self.kernel_size[1]
        return _per_channel(xp, device, a, xp.sum(eh, axis=1), xp.sum(ew, axis=1)) / k


class AdaptiveAvgPool2d(_Layer):
    """Adaptive average pooling to ``output_size`` (PyTorch bins); see :func:`adaptive_avg_pool2d`."""

    kind = "avgpool"

    def __init__(self, output_size):
        self.output_size = _positive_pair("output_size", output_size)

    def __repr__(self):
        return f"AdaptiveAvgPool2d(output_size={self.output_size})"

    def forward(self, x):
        return adaptive_avg_pool2d(x, self.output_size)

    def vjp(self, x, g):
        return adaptive_avg_pool2d_vjp(x, g, self.output_size)[0]

    def dense(self, a):
        """Per-sample averaging matrix ``(C H W, C Ho Wo)``."""
        xp, device = get_namespace(a)
        ph = _bins(xp, device, a.dtype, a.shape[2], self.output_size[0])
        pw = _bins(xp, device, a.dtype, a.shape[3], self.output_size[1])
        return _per_channel(xp, device, a, ph, pw)


def _per_channel(xp, device, a, ph, pw):
    """``M[(c,h,w), (c',p,q)] = [c = c'] ph[p, h] pw[q, w]`` for one sample of ``a``."""
    c, h, w = a.shape[1:]
    eye = xp.eye(c, dtype=a.dtype, device=device)
    m = (xp.reshape(eye, (c, 1, 1, c, 1, 1))
         * xp.reshape(xp.matrix_transpose(ph), (1, h, 1, 1, ph.shape[0], 1))
         * xp.reshape(xp.matrix_transpose(pw), (1, 1, w, 1, 1, pw.shape[0])))
    return xp.reshape(m, (c * h * w, c * ph.shape[0] * pw.shape[0]))


class MaxPool2d(_Pool):
    """Max pooling (no padding); see :func:`max_pool2d`."""

    kind = "maxpool"

    _op, _op_vjp = staticmethod(max_pool2d), staticmethod(max_pool2d_vjp)

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


class BatchNorm(_Layer):
    r"""Batch normalisation in inference mode, over axis 1 (``BatchNorm1d/2d``).

    .. math::  y = (x - \mu) \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}} + \beta

    LRP merges it into the preceding weighted layer first
    (:func:`merge_batchnorm`, zennit), or applies the epsilon rule to its affine
    map (captum, iNNvestigate).
    """

    kind = "batchnorm"
    params = ("weight", "bias", "running_mean", "running_var")

    def __init__(self, weight, bias, running_mean, running_var, eps=1e-5):
        named = dict(weight=weight, bias=bias, running_mean=running_mean, running_var=running_var)
        for name, arr in named.items():
            require_real_floating(name, arr)
            if arr.ndim != 1 or arr.shape != weight.shape:
                raise ValueError(f"{name} must have shape (C,) = {tuple(weight.shape)}, "
                                 f"got {tuple(arr.shape)}")
        get_namespace(*named.values())
        require_same_dtype(**named)
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.weight, self.bias = weight, bias
        self.running_mean, self.running_var, self.eps = running_mean, running_var, eps

    def scale(self):
        """``gamma / sqrt(var + eps)`` per channel."""
        xp, _ = get_namespace(self.running_var)
        return self.weight / xp.sqrt(self.running_var + self.eps)

    def _channels(self, v, x):
        xp, _ = get_namespace(v)
        if x.ndim < 2 or x.shape[1] != v.shape[0]:
            raise ValueError(f"x must have {v.shape[0]} channels on axis 1, got shape {tuple(x.shape)}")
        return xp.reshape(v, (-1,) + (1,) * (x.ndim - 2))

    def forward(self, x):
        require_real_floating("x", x)
        shift = self.bias - self.running_mean * self.scale()
        return x * self._channels(self.scale(), x) + self._channels(shift, x)

    def vjp(self, x, g):
        return g * self._channels(self.scale(), x)

    def as_affine(self):
        """The layer as a per-channel affine map ``x s + (beta - mu s)`` with weighted-layer methods."""
        return _ChannelAffine(self.scale(), self.bias - self.running_mean * self.scale())


class _ChannelAffine(_Layer):
    """``y = x w_c + b_c`` per channel (axis 1): an unmerged BatchNorm seen by the epsilon rule."""

    kind = "weighted"
    params = ("weight", "bias")

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias

    def _channels(self, v, ndim):
        xp, _ = get_namespace(v)
        return xp.reshape(v, (-1,) + (1,) * (ndim - 2))

    def forward(self, x):
        return self.apply(x, self.weight) + self._channels(self.bias, x.ndim)

    def vjp(self, x, g):
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


# ---------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------


def _in_layer(index, layer, fn, *args):
    """Run ``fn``; re-raise a shape or dtype error with the layer's index and type."""
    try:
        return fn(*args)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"layer {index} ({type(layer).__name__}): {exc}") from exc


def _check_params(layer, x):
    """The layer's parameters share the namespace, device and dtype of ``x``."""
    named = {name: getattr(layer, name) for name in layer.params if getattr(layer, name) is not None}
    get_namespace(x, *named.values())
    require_same_dtype(x=x, **named)


def activations(layers, x) -> list:
    """``[x, layer_0(x), layer_1(layer_0(x)), ...]``: the input of every layer and the output."""
    require_real_floating("x", x)
    out = [x]
    for i, layer in enumerate(layers):
        if not isinstance(layer, _Layer):
            raise TypeError(f"layer {i} must be a refimpl.lrp layer, got {type(layer).__name__}")
        _in_layer(i, layer, _check_params, layer, x)
        out.append(_in_layer(i, layer, layer.forward, out[-1]))
    return out


def forward(layers, x):
    """Output of the sequential network ``layers`` at ``x`` (a list of layer objects)."""
    return activations(layers, x)[-1]


def forward_vjp(layers, x, cotangent):
    """VJP of :func:`forward` with respect to ``x``: returns ``(dx,)``.

    ``x * forward_vjp(layers, x, R)[0]`` is gradient times input, the
    LRP-0 relevance of a ReLU network.
    """
    acts = activations(layers, x)
    if tuple(cotangent.shape) != tuple(acts[-1].shape):
        raise ValueError(f"cotangent must have the output's shape {tuple(acts[-1].shape)}, "
                         f"got {tuple(cotangent.shape)}")
    g = cotangent
    for i in reversed(range(len(layers))):
        g = _in_layer(i, layers[i], layers[i].vjp, acts[i], g)
    return (g,)


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
        if not isinstance(prev, (Linear, Conv2d)) or (merged and _was_merged(prev, layers, i)):
            raise ValueError(f"layer {i} (BatchNorm) must directly follow a Linear or Conv2d layer "
                             "to be merged")
        merged[-1] = _merged(prev, layer, i)
    return merged


def _was_merged(prev, layers, i):
    """True when ``prev`` is already a merge product (two BatchNorms in a row)."""
    return prev is not layers[i - 1]


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
