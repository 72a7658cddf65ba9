r"""The network side of the gradient attribution methods: a target's score and its gradient.

Every method of :mod:`refimpl.attribution` explains the score
:math:`f_t(x) = y_{n, t_n}` of one output unit per sample, ``y = sequential(layers, x)``
of shape ``(N, C)``, and reaches the network only through the layers' forward
passes and their hand-written input VJPs (``layer.input_vjp``): no autodiff.
The backward pass seeds the output with the one-hot rows of ``target`` and may
replace the ReLU's backward rule (guided backpropagation, deconvnet).
"""

from __future__ import annotations

from .._validation import require_integer_array, require_real_floating, require_same_dtype
from ..backend import get_namespace
from ..nn import ReLU, activations

def one_hot(target, y, name="target"):
    """Rows ``e_{t_n}`` of shape ``(N, C)`` in ``y``'s dtype; ``target`` (called ``name``) is
    checked against ``y``."""
    require_integer_array(name, target)
    xp, device = get_namespace(y, target)
    if y.ndim != 2:
        raise ValueError(f"the network's output must have shape (N, classes) to pick a target "
                         f"unit, got shape {tuple(y.shape)}")
    n, classes = y.shape
    if tuple(target.shape) != (n,):
        raise ValueError(f"{name} must have shape (N,) = ({n},), one output index per sample, "
                         f"got shape {tuple(target.shape)}")
    if bool(xp.any((target < 0) | (target >= classes))):
        raise ValueError(f"{name} must hold output indices in [0, {classes}) (the network has "
                         f"{classes} outputs)")
    units = xp.reshape(xp.arange(classes, device=device), (1, classes))
    return xp.astype(units == xp.reshape(xp.astype(target, units.dtype), (n, 1)), y.dtype)


def score(y, seed):
    """``f_t = sum_c y_c e_c``: the target unit's value per sample, ``(N,)``."""
    xp, _ = get_namespace(y)
    return xp.sum(y * seed, axis=1)


def network_activations(layers, x, name="x"):
    """The input of every layer and the output (``refimpl.nn.activations``), ``x`` checked."""
    require_real_floating(name, x)
    return activations(list(layers), x)


def relu_backward(xp, a, g, rule):
    """The cotangent a ReLU with input ``a`` passes back under ``rule``: ``"gradient"``
    ``g [a > 0]``, ``"guided"`` ``max(g, 0) [a > 0]``, ``"deconvnet"`` ``max(g, 0)``."""
    if rule == "deconvnet":
        return xp.maximum(g, 0.0)
    if rule == "guided":
        g = xp.maximum(g, 0.0)
    return xp.where(a > 0, g, 0.0)


def backward(layers, acts, g, relu="gradient", stop=0):
    """The cotangent at the input of layer ``stop`` for the cotangent ``g`` of the output.

    Layer by layer through ``input_vjp``, ReLUs by the rule ``relu`` (:func:`relu_backward`).
    """
    xp, _ = get_namespace(g)
    for i in reversed(range(stop, len(layers))):
        layer = layers[i]
        if isinstance(layer, ReLU):
            g = relu_backward(xp, acts[i], g, relu)
        else:
            g = layer.input_vjp(acts[i], g)
    return g


def target_gradient(layers, x, target, relu="gradient", names=("x", "target")):
    r"""``(f_t(x), \partial f_t / \partial x)``: one forward pass and one backward pass.

    ``names`` are the argument names of ``x`` and ``target`` in error messages.
    """
    layers = list(layers)
    acts = network_activations(layers, x, names[0])
    seed = one_hot(target, acts[-1], names[1])
    return score(acts[-1], seed), backward(layers, acts, seed, relu)


def target_score(layers, x, target, names=("x", "target")):
    """``f_t(x)`` per sample: one forward pass."""
    y = network_activations(layers, x, names[0])[-1]
    return score(y, one_hot(target, y, names[1]))


def require_like(name, value, x):
    """``value`` is an array of ``x``'s shape, dtype, namespace and device."""
    require_real_floating(name, value)
    get_namespace(x, value)
    require_same_dtype(x=x, **{name: value})
    if tuple(value.shape) != tuple(x.shape):
        raise ValueError(f"{name} must have the shape of x {tuple(x.shape)}, "
                         f"got {tuple(value.shape)}")
