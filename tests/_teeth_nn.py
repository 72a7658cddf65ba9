"""Plain-NumPy layers for the nn and attribution teeth (no refimpl): forward passes and VJPs by loops.

PyTorch layouts (NCHW, Linear weight ``(out, in)``, Conv2d weight ``(out, in, kh, kw)``)
and VJPs derived here::

    linear  y = x W^T + b:       dx = G W,  dW = G^T x (batch axes summed),  db = sum G;
    conv2d  y[n,o,i,j] = b[o] + sum_{c,a,b} xpad[n, c, s_h i + a, s_w j + b] w[o, c, a, b]:
            dxpad[n, c, s_h i + a, s_w j + b] += G[n,o,i,j] w[o,c,a,b] (then unpad),
            dw[o, c, a, b] = sum G[n,o,i,j] xpad[n, c, s_h i + a, s_w j + b],  db = sum_{n,i,j} G;
    pools   each output's cotangent goes to its window: 1/k to every element (average),
            all to the first row-major maximum (max), 1/|bin| over PyTorch's adaptive bins;
    batch norm  y = (x - m) r g + b, r = (v + eps)^(-1/2):  dx = G g r,  dg = sum G (x - m) r,
            db = sum G,  dm = -sum G g r,  dv = -sum G (x - m) g r^3 / 2.

:func:`network` builds a list of ``(forward, vjp)`` from layer objects' class names and
fields, as a candidate framework reads refimpl's layers.
"""

from __future__ import annotations

import math

import numpy as np


def pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


# -- dense -------------------------------------------------------------------------------------


def linear(x, weight, bias=None):
    y = x @ weight.T
    return y if bias is None else y + bias


def linear_vjp(x, weight, G, bias=None):
    G2, x2 = G.reshape(-1, weight.shape[0]), x.reshape(-1, weight.shape[1])
    return G @ weight, G2.T @ x2, None if bias is None else G2.sum(axis=0)


# -- convolution -------------------------------------------------------------------------------


def _geometry(x, weight, stride, padding):
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = weight.shape[2:]
    return xpad, ((xpad.shape[2] - kh) // sh + 1, (xpad.shape[3] - kw) // sw + 1), (sh, sw)


def _taps(kh, kw, stride, out_hw):
    """``((a, b), index)``: every kernel offset and the padded-input slice it reads."""
    (sh, sw), (ho, wo) = stride, out_hw
    return [((a, b), (slice(None), slice(None), slice(a, a + sh * (ho - 1) + 1, sh),
                      slice(b, b + sw * (wo - 1) + 1, sw)))
            for a in range(kh) for b in range(kw)]


def conv2d(x, weight, bias=None, stride=1, padding=0):
    xpad, out_hw, s = _geometry(x, weight, stride, padding)
    out = np.zeros((x.shape[0], weight.shape[0]) + out_hw, dtype=x.dtype)
    for (a, b), index in _taps(*weight.shape[2:], s, out_hw):
        out += np.einsum("nchw,oc->nohw", xpad[index], weight[:, :, a, b])
    return out if bias is None else out + bias[:, None, None]


def conv2d_input_vjp(G, weight, in_hw, stride=1, padding=0, dx_shift=0):
    """The adjoint of the bias-free convolution: ``dx`` for inputs of spatial shape ``in_hw``."""
    ph, pw = pair(padding)
    x = np.zeros((G.shape[0], weight.shape[1]) + tuple(in_hw), dtype=G.dtype)
    xpad, out_hw, s = _geometry(x, weight, stride, padding)
    for (a, b), index in _taps(*weight.shape[2:], s, out_hw):
        xpad[index] += np.einsum("nohw,oc->nchw", G, weight[:, :, a, b])
    h, w = in_hw
    return xpad[:, :, ph + dx_shift:ph + dx_shift + h, pw:pw + w]


def conv2d_vjp(x, weight, G, bias=None, stride=1, padding=0):
    xpad, out_hw, s = _geometry(x, weight, stride, padding)
    dw = np.zeros_like(weight)
    for (a, b), index in _taps(*weight.shape[2:], s, out_hw):
        dw[:, :, a, b] = np.einsum("nohw,nchw->oc", G, xpad[index])
    dx = conv2d_input_vjp(G, weight, x.shape[2:], stride, padding)
    return dx, dw, None if bias is None else G.sum(axis=(0, 2, 3))


# -- pooling -----------------------------------------------------------------------------------


def windows(in_hw, kernel_size, stride=None):
    """``(i, j, rows, cols)`` of every output position of a pooling (no padding)."""
    (kh, kw) = pair(kernel_size)
    sh, sw = pair(kernel_size if stride is None else stride)
    h, w = in_hw
    return [(i, j, slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw))
            for i in range((h - kh) // sh + 1) for j in range((w - kw) // sw + 1)]


def pooled(x, positions, reduce):
    rows, cols = 1 + max(p[0] for p in positions), 1 + max(p[1] for p in positions)
    out = np.empty(x.shape[:2] + (rows, cols), dtype=x.dtype)
    for i, j, r, c in positions:
        out[:, :, i, j] = reduce(x[:, :, r, c])
    return out


def avg_pool2d(x, kernel_size, stride=None):
    return pooled(x, windows(x.shape[2:], kernel_size, stride), lambda w: w.mean(axis=(2, 3)))


def avg_pool2d_vjp(x, G, kernel_size, stride=None):
    dx = np.zeros_like(x)
    size = math.prod(pair(kernel_size))
    for i, j, r, c in windows(x.shape[2:], kernel_size, stride):
        dx[:, :, r, c] += G[:, :, i, j, None, None] / size
    return dx


def first_max_mask(w):
    """1 at the first row-major maximum of each ``(n, c)`` window, 0 elsewhere."""
    flat = w.reshape(w.shape[:2] + (-1,))
    hot = np.arange(flat.shape[-1]) == np.argmax(flat, axis=-1)[..., None]
    return hot.reshape(w.shape).astype(w.dtype)


def max_pool2d(x, kernel_size, stride=None):
    return pooled(x, windows(x.shape[2:], kernel_size, stride), lambda w: w.max(axis=(2, 3)))


def max_pool2d_vjp(x, G, kernel_size, stride=None):
    dx = np.zeros_like(x)
    for i, j, r, c in windows(x.shape[2:], kernel_size, stride):
        dx[:, :, r, c] += G[:, :, i, j, None, None] * first_max_mask(x[:, :, r, c])
    return dx


def bins(n_in, n_out):
    """PyTorch's adaptive bins ``(i, start, stop)``, ``[floor(i n / o), ceil((i + 1) n / o))``."""
    return [(i, i * n_in // n_out, -(-(i + 1) * n_in // n_out)) for i in range(n_out)]


def _adaptive_cells(x, output_size):
    oh, ow = pair(output_size)
    return [(i, j, slice(r0, r1), slice(c0, c1))
            for i, r0, r1 in bins(x.shape[2], oh) for j, c0, c1 in bins(x.shape[3], ow)]


def adaptive_avg_pool2d(x, output_size):
    return pooled(x, _adaptive_cells(x, output_size), lambda w: w.mean(axis=(2, 3)))


def adaptive_avg_pool2d_vjp(x, G, output_size):
    dx = np.zeros_like(x)
    for i, j, r, c in _adaptive_cells(x, output_size):
        dx[:, :, r, c] += G[:, :, i, j, None, None] / ((r.stop - r.start) * (c.stop - c.start))
    return dx


# -- batch norm --------------------------------------------------------------------------------


def _channels(v, ndim):
    return v.reshape((-1,) + (1,) * (ndim - 2))


def batch_norm(x, weight, bias, mean, var, eps=1e-5):
    r = 1.0 / np.sqrt(var + eps)
    return (x - _channels(mean, x.ndim)) * _channels(weight * r, x.ndim) + _channels(bias, x.ndim)


def batch_norm_vjp(x, weight, bias, mean, var, G, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    r = 1.0 / np.sqrt(var + eps)
    centred = x - _channels(mean, x.ndim)
    g_centred = (G * centred).sum(axis=axes)
    return (G * _channels(weight * r, x.ndim), g_centred * r, G.sum(axis=axes),
            -G.sum(axis=axes) * weight * r, -0.5 * g_centred * weight * r ** 3)


# -- activations -------------------------------------------------------------------------------


def sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# -- networks from layer objects ---------------------------------------------------------------


def _weighted(forward, vjp, layer, **geometry):
    params = {"bias": layer.bias, **geometry}
    return (lambda x: forward(x, layer.weight, **params),
            lambda x, G: _named(vjp(x, layer.weight, G, **params), layer))


def _named(cotangents, layer):
    """``(dx, {field: cotangent})`` for the layer's array fields (``None`` fields dropped)."""
    dx, *grads = cotangents
    names = ["weight", "bias", "running_mean", "running_var"]
    return dx, {n: g for n, g in zip(names, grads) if g is not None}


def _batch_norm_layer(layer):
    params = (layer.weight, layer.bias, layer.running_mean, layer.running_var)
    return (lambda x: batch_norm(x, *params, eps=layer.eps),
            lambda x, G: _named(batch_norm_vjp(x, *params, G, eps=layer.eps), layer))


def _parameter_free(forward, vjp):
    return forward, lambda x, G: (vjp(x, G), {})


#: ``(forward(x), vjp(x, G) -> (dx, {field: cotangent}))`` by layer class name.
LAYERS = {
    "Linear": lambda l: _weighted(linear, linear_vjp, l),
    "Conv2d": lambda l: _weighted(conv2d, conv2d_vjp, l, stride=l.stride, padding=l.padding),
    "ReLU": lambda l: _parameter_free(lambda x: np.maximum(x, 0), lambda x, G: G * (x > 0)),
    "Tanh": lambda l: _parameter_free(np.tanh, lambda x, G: G * (1 - np.tanh(x) ** 2)),
    "Sigmoid": lambda l: _parameter_free(sigmoid,
                                         lambda x, G: G * sigmoid(x) * (1 - sigmoid(x))),
    "AvgPool2d": lambda l: _parameter_free(lambda x: avg_pool2d(x, l.kernel_size, l.stride),
                                           lambda x, G: avg_pool2d_vjp(x, G, l.kernel_size,
                                                                       l.stride)),
    "MaxPool2d": lambda l: _parameter_free(lambda x: max_pool2d(x, l.kernel_size, l.stride),
                                           lambda x, G: max_pool2d_vjp(x, G, l.kernel_size,
                                                                       l.stride)),
    "AdaptiveAvgPool2d": lambda l: _parameter_free(
        lambda x: adaptive_avg_pool2d(x, l.output_size),
        lambda x, G: adaptive_avg_pool2d_vjp(x, G, l.output_size)),
    "BatchNorm": _batch_norm_layer,
    "Flatten": lambda l: _parameter_free(lambda x: x.reshape(x.shape[0], -1),
                                         lambda x, G: G.reshape(x.shape)),
}


def network(layers, table=LAYERS):
    """``[(forward, vjp)]`` of every layer, from its class name and fields."""
    return [table[type(layer).__name__](layer) for layer in layers]


def network_forward(layers, x, table=LAYERS):
    for forward, _ in network(layers, table):
        x = forward(x)
    return x


def network_vjp(layers, x, G, table=LAYERS):
    """``(per-layer {field: cotangent}, dx)``: backpropagation, last layer first."""
    steps, grads = [], []
    for forward, vjp in network(layers, table):
        steps.append((x, vjp))
        x = forward(x)
    for a, vjp in reversed(steps):
        G, grad = vjp(a, G)
        grads.append(grad)
    return grads[::-1], G
