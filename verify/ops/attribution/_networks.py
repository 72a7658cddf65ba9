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

from refimpl.nn import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)

from ...registry import Case
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


#: ``(n, side)`` of the attribution benchmarks: ``n`` RGB images of ``side x side`` pixels.
BENCH_SIZES = ((4, 8), (8, 16))
#: The one size of the perturbation, path and surrogate methods, whose references run the
#: naive network once per window, step or coalition.
SMALL_BENCH_SIZES = ((2, 8),)
#: The index of the bench network's last ReLU (its last image layer: Grad-CAM's layer).
BENCH_CAM_LAYER = 4


def bench_case(size, noise_samples=0, cam=False) -> Case:
    """A CNN on ``n`` images ``(n, 3, side, side)`` with one target class each.

    Conv2d(3, 8, 3x3, padding 1), ReLU, MaxPool2d(2), Conv2d(8, 16, 3x3,
    padding 1), ReLU (layer :data:`BENCH_CAM_LAYER`), Flatten, Linear(16 (side
    / 2)^2, 10), weights ``N(0, 1) / sqrt(fan_in)``; with ``cam``, a global
    average pooling before Flatten and Linear(16, 10) (a CAM network);
    ``noise_samples`` draws of ``0.1 N(0, 1)`` noise (SmoothGrad's) when
    positive.
    """
    n, side = size
    gen = np.random.default_rng(0)

    def weight(*shape):
        return gen.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))

    features = 16 if cam else 16 * (side // 2) ** 2
    layers = [Conv2d(weight(8, 3, 3, 3), gen.standard_normal(8), padding=1), ReLU(), MaxPool2d(2),
              Conv2d(weight(16, 8, 3, 3), gen.standard_normal(16), padding=1), ReLU(),
              *([AdaptiveAvgPool2d((1, 1))] if cam else []), Flatten(),
              Linear(weight(10, features), gen.standard_normal(10))]
    x = gen.standard_normal((n, 3, side, side))
    primals = {"layers": layers, "x": x, "target": gen.integers(0, 10, n)}
    if noise_samples:
        primals["noise"] = 0.1 * gen.standard_normal((noise_samples,) + x.shape)
    return Case(primals)
