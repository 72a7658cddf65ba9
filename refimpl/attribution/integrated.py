r"""Integrated gradients with captum's quadrature rules, written out exactly.

Convention (docs/conventions.rst, section 5.3). Along the straight path
:math:`\gamma(\alpha) = b + \alpha (x - b)` from the baseline :math:`b` to the input,

.. math::  \mathrm{IG}(x) = (x - b) \odot \int_0^1 \nabla f_t(\gamma(\alpha))\, d\alpha
           \approx (x - b) \odot \sum_{k=1}^{n} w_k\, \nabla f_t(\gamma(\alpha_k)),

with the points :math:`\alpha_k` and weights :math:`w_k` of ``method`` (``n = n_steps``):

* ``riemann_left``: :math:`\alpha_k = (k-1)/n`, :math:`w_k = 1/n`;
* ``riemann_right``: :math:`\alpha_k = k/n`, :math:`w_k = 1/n`;
* ``riemann_middle``: :math:`\alpha_k = (k - 1/2)/n`, :math:`w_k = 1/n`;
* ``riemann_trapezoid``: :math:`\alpha_k = (k-1)/(n-1)`; captum's weights :math:`1/n`
  with the two ends :math:`1/(2n)` (they sum to :math:`1 - 1/n`), or with
  ``trapezoid="textbook"`` :math:`1/(n-1)` with the ends halved;
* ``gausslegendre``: :math:`\alpha_k = (1 + t_k)/2`, :math:`w_k = v_k/2` with
  :math:`(t_k, v_k)` the ``n``-point Gauss-Legendre rule on :math:`[-1, 1]`
  (exact for polynomials of degree :math:`2n - 1`).

``delta`` is captum's convergence delta, per sample
:math:`\sum_i \mathrm{IG}_i - (f_t(x) - f_t(b))` (completeness: 0 for the exact
integral). Each point costs one forward and one backward pass; ``delta`` two
more forward passes.
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

from .._validation import require_choice, require_integer, require_finite, require_real_floating
from ..backend import get_namespace
from ._network import require_like, target_gradient, target_score

__all__ = ["IntegratedGradientsResult", "PATH_METHODS", "TRAPEZOID_WEIGHTS", "integrated_gradients"]

PATH_METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid",
                "gausslegendre")
TRAPEZOID_WEIGHTS = ("captum", "textbook")


class IntegratedGradientsResult(NamedTuple):
    """``attribution`` (the shape of ``x``) and ``delta`` ``(N,)``, the completeness gap."""

    attribution: object
    delta: object


def _legendre(n, theta):
    r"""``(P_n(t), dP_n / d\theta)`` at :math:`t = \cos\theta`, by the three-term recurrence.

    :math:`dP_n/d\theta = n (t P_n - P_{n-1}) / \sin\theta`: no cancellation near
    :math:`t = \pm 1`, where :math:`P_n'(t)` divided by :math:`1 - t^2` would lose digits.
    """
    t = math.cos(theta)
    previous, current = 1.0, t
    for k in range(2, n + 1):
        previous, current = current, ((2 * k - 1) * t * current - (k - 1) * previous) / k
    return current, n * (t * current - previous) / math.sin(theta)


def _gauss_legendre(n):
    r"""The ``n``-point Gauss-Legendre rule on [-1, 1], nodes ascending.

    Newton's method on :math:`P_n(\cos\theta)` in :math:`\theta` from
    :math:`\pi (i - 1/4) / (n + 1/2)` (quadratic convergence from there); weights
    :math:`2 / (dP_n/d\theta)^2`, which is :math:`2 / ((1 - t^2) P_n'(t)^2)`.
    """
    nodes, weights = [], []
    for i in range(1, n + 1):
        theta = math.pi * (i - 0.25) / (n + 0.5)
        for _ in range(100):
            value, slope = _legendre(n, theta)
            step = value / slope
            theta -= step
            if abs(step) <= 1e-15 * theta:
                break
        slope = _legendre(n, theta)[1]
        nodes.append(math.cos(theta))
        weights.append(2.0 / (slope * slope))
    return nodes[::-1], weights[::-1]


def _float32(value):
    """``value`` rounded to the nearest float32 (what ``torch.tensor(...).float()`` keeps)."""
    return struct.unpack("f", struct.pack("f", value))[0]


def path_rule(method, n_steps, trapezoid="captum", float32_weights=False):
    """``(points, weights)``: the quadrature of ``method`` on [0, 1] as lists of floats.

    ``float32_weights`` rounds the weights, and the Riemann points (captum takes
    them from a float32 ``torch.linspace``), to float32 as captum does.
    """
    n = n_steps
    if method == "gausslegendre":
        nodes, weights = _gauss_legendre(n)
        points, weights = [0.5 * (1.0 + t) for t in nodes], [0.5 * v for v in weights]
    elif method == "riemann_trapezoid":
        points = [k / (n - 1) for k in range(n)]
        weights = [1.0 / n] * n if trapezoid == "captum" else [1.0 / (n - 1)] * n
        weights[0] /= 2.0
        weights[-1] /= 2.0
    else:
        shift = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
        points, weights = [(k + shift) / n for k in range(n)], [1.0 / n] * n
    if not float32_weights:
        return points, weights
    if method != "gausslegendre":
        points = [_float32(a) for a in points]
    return points, [_float32(w) for w in weights]


def _check(method, n_steps, trapezoid):
    require_choice("method", method, PATH_METHODS)
    require_choice("trapezoid", trapezoid, TRAPEZOID_WEIGHTS)
    return require_integer("n_steps", n_steps, 2 if method == "riemann_trapezoid" else 1)


def integrated_gradients(layers, x, target, baseline=None, *, n_steps=50, method="gausslegendre",
                         trapezoid="captum", float32_weights=False, check_finite=True):
    r"""Integrated gradients of the target score along the straight path from ``baseline`` to ``x``.

    .. math::  \mathrm{IG}(x) = (x - b) \odot \sum_{k=1}^{n} w_k\,
               \nabla f_t\big(b + \alpha_k (x - b)\big),\qquad
               \delta = \sum_i \mathrm{IG}_i - \big(f_t(x) - f_t(b)\big)

    Points and weights per ``method``: docs/conventions.rst, section 5.3 (captum's).

    Parameters
    ----------
    layers, x, target
        As :func:`~refimpl.attribution.saliency`.
    baseline : array, optional
        The path's start :math:`b`, the shape of ``x``; zeros by default (captum's).
    n_steps : int
        Number of points :math:`n` (at least 2 for ``riemann_trapezoid``); captum's 50.
    method : str
        One of :data:`PATH_METHODS`; captum's default ``"gausslegendre"``.
    trapezoid : {"captum", "textbook"}
        ``riemann_trapezoid`` weights: captum's :math:`1/n` with halved ends (they
        sum to :math:`1 - 1/n`, so ``delta`` tends to 0 like :math:`1/n` even for
        a linear model), or the textbook :math:`1/(n-1)` with halved ends.
    float32_weights : bool
        Round the weights (and the Riemann points) to float32 as captum does
        (``torch.tensor(step_sizes).float()``, a float32 ``torch.linspace``); off
        by default: no loss of precision in float64.
    check_finite : bool
        Check ``x`` and ``baseline`` for NaN and infinity.

    Returns
    -------
    IntegratedGradientsResult
        ``attribution`` (the shape of ``x``) and ``delta`` ``(N,)``.

    Examples
    --------
    On a linear model every method but captum's trapezoid is exact (``delta = 0``):

    >>> import numpy as np
    >>> from refimpl.nn import Linear
    >>> from refimpl.attribution import integrated_gradients
    >>> net = [Linear(np.array([[2.0, -1.0]]))]
    >>> ig = integrated_gradients(net, np.array([[1.0, 3.0]]), np.array([0]))
    >>> np.round(ig.attribution, 12).tolist(), bool(abs(ig.delta[0]) < 1e-12)
    ([[2.0, -3.0]], True)
    """
    n_steps = _check(method, n_steps, trapezoid)
    require_real_floating("x", x)
    xp, _ = get_namespace(x)
    if baseline is None:
        baseline = xp.zeros_like(x)
    require_like("baseline", baseline, x)
    if check_finite:
        require_finite("x", x)
        require_finite("baseline", baseline)
    points, weights = path_rule(method, n_steps, trapezoid, float32_weights)
    step = x - baseline
    total = None
    for alpha, weight in zip(points, weights):
        gradient = target_gradient(layers, baseline + alpha * step, target)[1]
        total = weight * gradient if total is None else total + weight * gradient
    attribution = step * total
    gap = (target_score(layers, x, target)
           - target_score(layers, baseline, target, ("baseline", "target")))
    delta = xp.sum(xp.reshape(attribution, (x.shape[0], -1)), axis=1) - gap
    return IntegratedGradientsResult(attribution, delta)
