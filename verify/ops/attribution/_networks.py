"""Independent naive networks for the attribution records, differentiated by autograd.

Forward passes from the per-layer references of :mod:`verify.ops.nn` (never
refimpl), in NumPy or autograd.numpy, with two changes that fix the gradient
where autograd's own would differ from the convention of section 5.2:

* the ReLU is an autograd primitive whose VJP is the chosen rule
  (:data:`RELU_VJPS`: PyTorch's gradient with 0 at 0, guided backpropagation's or
  the deconvnet's), where ``anp.maximum`` would split ties at 0;
* max pooling is the window's entries times the one-hot of its first maximum, so
  that autograd routes the cotangent there, where ``anp.max`` would split ties.

Gradients of a target score ``f_t = y[n, t_n]`` come from ``autograd.grad``.
"""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive
from autograd.tracer import getval
from hypothesis import strategies as st

from refimpl.nn import AvgPool2d, MaxPool2d, ReLU, Sigmoid, Tanh

from ...strategies import networks
from ..nn.network import LAYER_REFERENCES
from ..nn.pooling import window_reduce

#: The ReLU's backward rule ``(input x, output cotangent g) -> input cotangent``, by name.
RELU_VJPS = {
    "gradient": lambda x, g: g * (x > 0),
    "guided": lambda x, g: np.maximum(g, 0.0) * (x > 0),
    "deconvnet": lambda x, g: np.maximum(g, 0.0),
}


def _relu(rule):
    @primitive
    def relu(x):
        return np.maximum(x, 0.0)

    defvjp(relu, lambda ans, x: lambda g: RELU_VJPS[rule](x, g))
    return relu


_RELUS = {rule: _relu(rule) for rule in RELU_VJPS}


def _first_maximum(np_, windows):
    """Each window's maximum as ``sum(w * onehot(argmax w))``: the gradient goes to the first one."""
    first = np.arange(windows.shape[-1]) == np.argmax(getval(windows), axis=-1)[..., None]
    return np_.sum(windows * first, axis=-1)


def _layer_table(relu):
    return {**LAYER_REFERENCES,
            ReLU: lambda np_, layer, x: _RELUS[relu](x),
            MaxPool2d: lambda np_, layer, x: window_reduce(np_, x, layer.kernel_size, layer.stride,
                                                           _first_maximum)}


def naive_activations(np_, layers, x, relu="gradient") -> list:
    """``[x, f_0(x), ...]`` from the references, ReLUs differentiated by rule ``relu``."""
    table = _layer_table(relu)
    out = [x]
    for layer in layers:
        out.append(table[type(layer)](np_, layer, out[-1]))
    return out


def naive_output(np_, layers, x, relu="gradient"):
    return naive_activations(np_, layers, x, relu)[-1]


def target_rows(target, classes) -> np.ndarray:
    """One-hot rows ``(N, classes)`` of ``target``."""
    return (np.arange(classes) == np.asarray(target)[:, None]).astype(np.float64)


def naive_score(np_, layers, x, target, relu="gradient"):
    """``f_t(x)`` per sample, ``(N,)``."""
    y = naive_output(np_, layers, x, relu)
    return np_.sum(y * target_rows(target, y.shape[1]), axis=1)


def naive_gradient(layers, x, target, relu="gradient"):
    r"""``\partial f_t / \partial x`` by autograd, ReLUs by rule ``relu``."""
    return autograd.grad(lambda v: anp.sum(naive_score(anp, layers, v, target, relu)))(x)


@st.composite
def network_cases(draw, **options):
    """``{layers, x, target}`` with :func:`verify.strategies.networks` (``options``) and one
    drawn target unit per sample."""
    layers, x = draw(networks(**options))
    classes = naive_output(np, layers, x).shape[1]
    target = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=x.shape[0],
                                    max_size=x.shape[0])), dtype=np.int64)
    return {"layers": layers, "x": x, "target": target}


def affine(layers) -> list:
    """The network without its activations, max pooling made average pooling: affine in ``x``."""
    return [AvgPool2d(layer.kernel_size, layer.stride) if isinstance(layer, MaxPool2d) else layer
            for layer in layers if not isinstance(layer, (ReLU, Tanh, Sigmoid))]
