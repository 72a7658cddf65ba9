"""Plain-NumPy pieces of the attribution teeth (no refimpl): target scores, gradients, upsampling.

The network runs through tests/_teeth_nn.py (layers read by class name and fields);
the backward pass is seeded with the target's one-hot rows, and a ReLU may pass
its cotangent back by another rule::

    gradient   G [x > 0]        guided   max(G, 0) [x > 0]        deconvnet   max(G, 0)

Upsampling builds each axis's interpolation matrix from PyTorch's coordinate
formulas: bilinear source ``(d + 1/2) n/m - 1/2`` clamped at 0 with the upper tap
clamped at the border; nearest ``floor(d * n/m)`` and nearest-exact
``floor((d + 1/2) n/m)``, both in float32 as PyTorch computes them.
"""

from __future__ import annotations

import numpy as np
from _teeth_nn import LAYERS, network_forward, network_vjp

RELU_BACKWARD = {
    "gradient": lambda x, G: G * (x > 0),
    "guided": lambda x, G: np.maximum(G, 0) * (x > 0),
    "deconvnet": lambda x, G: np.maximum(G, 0),
}


def layer_table(relu="gradient"):
    """The layer table of tests/_teeth_nn.py with the ReLU's backward rule ``relu``."""
    backward = RELU_BACKWARD[relu] if isinstance(relu, str) else relu
    return {**LAYERS, "ReLU": lambda layer: (lambda x: np.maximum(x, 0),
                                             lambda x, G: (backward(x, G), {}))}


def seed(y, target):
    G = np.zeros_like(y)
    G[np.arange(y.shape[0]), target] = 1
    return G


def scores(layers, x, target):
    """``f_t(x) = y[n, t_n]`` per sample."""
    y = network_forward(layers, x)
    return y[np.arange(y.shape[0]), target]


def gradient(layers, x, target, relu="gradient"):
    """``d f_t / d x`` by backpropagation, ReLUs by rule ``relu``."""
    table = layer_table(relu)
    return network_vjp(layers, x, seed(network_forward(layers, x, table), target), table)[1]


def split(layers, x, stop):
    """``(A, tail)``: the output of ``layers[stop - 1]`` and the layers after it."""
    return network_forward(layers[:stop], x), layers[stop:]


def _f32(value):
    return float(np.float32(value))


def axis_matrix(n, m, mode):
    """The ``m x n`` interpolation matrix of one axis (PyTorch's formulas)."""
    P = np.zeros((m, n))
    scale32 = np.float32(n) / np.float32(m)
    for d in range(m):
        if mode == "bilinear":
            source = max((d + 0.5) * n / m - 0.5, 0.0)
            low = int(source)
            P[d, low] += 1 - (source - low)
            P[d, min(low + 1, n - 1)] += source - low
        elif mode == "nearest":
            index = d if m == n else d // 2 if m == 2 * n else int(np.floor(np.float32(d) * scale32))
            P[d, min(index, n - 1)] = 1
        else:
            P[d, min(int(np.floor(_f32((d + 0.5) * float(scale32)))), n - 1)] = 1
    return P


def upsample(maps, size, mode):
    rows, cols = (axis_matrix(n, m, mode).astype(maps.dtype) for n, m in zip(maps.shape[2:], size))
    return np.einsum("ph,nchw,qw->ncpq", rows, maps, cols)
