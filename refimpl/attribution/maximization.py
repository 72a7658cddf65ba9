r"""Activation maximisation: gradient ascent on an output unit with an L2 penalty.

Convention (docs/conventions.rst, section 5.8). For each sample, plain gradient
ascent from the given start :math:`x_0` on

.. math::  J(x) = f_u(x) - \lambda \|x\|^2,\qquad
           x_{k+1} = x_k + \eta\, \big(\nabla f_u(x_k) - 2 \lambda x_k\big),

:math:`k = 0, \dots, n - 1` (``lr`` :math:`\eta`, ``l2`` :math:`\lambda`,
``n_steps`` :math:`n`), the gradient through the layers' hand-written VJPs. The
result is the end point :math:`x_n` and :math:`J(x_n)` per sample. No momentum,
no clipping, no image transformations: the textbook iteration, so that
trajectories can be compared step for step.
"""

from __future__ import annotations

from typing import NamedTuple

from .._validation import require_integer, require_number, require_finite, require_real_floating
from ..backend import get_namespace
from ._network import target_gradient, target_score

__all__ = ["ActivationMaximizationResult", "activation_maximization"]


class ActivationMaximizationResult(NamedTuple):
    """``x``: the end of the ascent (``x0``'s shape); ``objective``: :math:`J(x)` per sample."""

    x: object
    objective: object


def activation_maximization(layers, x0, unit, *, l2=0.01, lr=0.1, n_steps=100, check_finite=True):
    r"""Gradient ascent on :math:`f_u(x) - \lambda \|x\|^2` from ``x0``, ``n_steps`` steps.

    .. math::  x_{k+1} = x_k + \eta\, \big(\nabla f_u(x_k) - 2 \lambda x_k\big)

    Parameters
    ----------
    layers : list of refimpl.nn layers
        The network; its output has shape ``(N, C)``.
    x0 : (N, ...) array
        Starting points, one per sample.
    unit : (N,) integer array
        The output unit maximised for each sample.
    l2 : float
        :math:`\lambda \ge 0`.
    lr : float
        Step size :math:`\eta > 0`.
    n_steps : int
        Number of steps :math:`n \ge 0` (0 returns ``x0``).
    check_finite : bool
        Check ``x0`` for NaN and infinity.

    Returns
    -------
    ActivationMaximizationResult
        ``x`` (:math:`x_n`) and ``objective`` (:math:`J(x_n)`, ``(N,)``).

    Examples
    --------
    A linear unit with weight :math:`w`: the maximiser is :math:`w / (2\lambda)`, reached
    in one step when :math:`\eta = 1 / (2\lambda)`:

    >>> import numpy as np
    >>> from refimpl.nn import Linear
    >>> from refimpl.attribution import activation_maximization
    >>> net = [Linear(np.array([[1.0, -2.0]]))]
    >>> res = activation_maximization(net, np.zeros((1, 2)), np.array([0]), l2=0.5, lr=1.0,
    ...                               n_steps=3)
    >>> res.x.tolist(), res.objective.tolist()
    ([[1.0, -2.0]], [2.5])
    """
    l2 = require_number("l2", l2, 0.0)
    lr = require_number("lr", lr, 0.0, low_open=True)
    n_steps = require_integer("n_steps", n_steps, 0)
    require_real_floating("x0", x0)
    if check_finite:
        require_finite("x0", x0)
    xp, _ = get_namespace(x0)
    x = x0
    for _ in range(n_steps):
        gradient = target_gradient(layers, x, unit, names=("x0", "unit"))[1]
        x = x + lr * (gradient - (2.0 * l2) * x)
    squares = xp.sum(xp.reshape(x * x, (x.shape[0], -1)), axis=1)
    objective = target_score(layers, x, unit, ("x0", "unit")) - l2 * squares
    return ActivationMaximizationResult(x, objective)
