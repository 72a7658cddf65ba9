r"""Sequential networks: a list of layers, its forward, every intermediate value, and its VJP.

A network is a list of :mod:`refimpl.nn` layers (frozen dataclasses of
arrays: :class:`~refimpl.nn.Linear`, :class:`~refimpl.nn.Conv2d`, pools,
activations, :class:`~refimpl.nn.BatchNorm`, :class:`~refimpl.nn.Flatten`).
It is also the description a candidate framework reads to build its own
model: each layer's class name and fields (``layer.arrays()`` for the
parameters). Convention: docs/conventions.rst, section 4.7.
"""

from __future__ import annotations

from .._results import cotangent_type
from .._validation import require_real_floating
from ._layer import Layer

__all__ = ["activations", "sequential", "sequential_vjp"]

SequentialCotangents = cotangent_type("SequentialCotangents", "layers x")


def _in_layer(index, layer, fn, *args):
    """Run ``fn``; re-raise a shape or dtype error with the layer's index and type."""
    try:
        return fn(*args)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"layer {index} ({type(layer).__name__}): {exc}") from exc


def activations(layers, x) -> list:
    """``[x, layer_0(x), layer_1(layer_0(x)), ...]``: the input of every layer and the output."""
    require_real_floating("x", x)
    out = [x]
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"layer {i} must be a refimpl.nn layer, got {type(layer).__name__}")
        _in_layer(i, layer, layer.check_input, out[-1])
        out.append(_in_layer(i, layer, layer.forward, out[-1]))
    return out


def sequential(layers, x):
    r"""Output of the sequential network ``layers`` at ``x``: ``f_{L-1}(... f_1(f_0(x)))``.

    Parameters
    ----------
    layers : list of refimpl.nn layers
    x : (N, ...) array
        Input batch, in the first layer's layout.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import Linear, ReLU, sequential
    >>> net = [Linear(np.array([[1.0, -1.0]])), ReLU()]
    >>> sequential(net, np.array([[3.0, 1.0], [1.0, 3.0]])).tolist()
    [[2.0], [0.0]]
    """
    return activations(list(layers), x)[-1]


def sequential_vjp(layers, x, cotangent):
    r"""Cotangents ``(layers, x)`` of :func:`sequential` for ``G = dL/dy``.

    Backpropagation through the layers' hand-written VJPs, last layer first:
    ``g_L = G``, ``(g_i, dlayer_i) = layer_i.vjp(a_i, g_{i+1})`` with ``a_i``
    the input of layer ``i``. ``layers`` of the result is a list of layers of
    the same types holding the parameters' cotangents (settings unchanged);
    ``x * sequential_vjp(layers, x, R).x`` is gradient times input, the LRP-0
    relevance of a ReLU network.
    """
    layers = list(layers)
    acts = activations(layers, x)
    require_real_floating("cotangent", cotangent)
    if tuple(cotangent.shape) != tuple(acts[-1].shape):
        raise ValueError(f"cotangent must have the output's shape {tuple(acts[-1].shape)}, "
                         f"got {tuple(cotangent.shape)}")
    g, dlayers = cotangent, [None] * len(layers)
    for i in reversed(range(len(layers))):
        g, dlayers[i] = _in_layer(i, layers[i], layers[i].vjp, acts[i], g)
    return SequentialCotangents(dlayers, g)
