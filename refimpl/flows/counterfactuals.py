r"""Counterfactuals through an invertible network: remove the representation's part along ``beta``.

Convention (docs/conventions.rst, section 3.9). For the classifier
``p(y = 1 | x) = sigmoid(beta^T f(x))`` with ``f`` an invertible network (a
flow), the counterfactual of ``x`` is the input whose representation is
``f(x)`` with its component along ``beta`` removed:

.. math::  x' = f^{-1}\Big(f(x) - \frac{\beta^T f(x)}{\lVert\beta\rVert^2}\,\beta\Big).

Then the logit ``beta^T f(x')`` is 0 (``p = 1/2``: on the decision
boundary), and the representation moves only along ``beta``:
``f(x') - f(x) = -(beta^T f(x) / ||beta||^2) beta``; among all inputs on the
boundary, ``f(x')`` is the closest to ``f(x)`` in the representation.
"""

from __future__ import annotations

from .._results import cotangent_type
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ._bijector import add_trees, require_bijector, require_samples, sample_axes

__all__ = ["counterfactual", "counterfactual_vjp"]

CounterfactualCotangents = cotangent_type("CounterfactualCotangents", "flow beta x")


def _inner(xp, u, z):
    """``<u, z_n>`` per sample, shaped to broadcast against ``z``."""
    return xp.sum(u * z, axis=sample_axes(z), keepdims=True)


def _unit(xp, beta):
    """``(beta / ||beta||, ||beta||)``, the norm scaled by ``max|beta|`` (no overflow)."""
    big = xp.max(xp.abs(beta))
    if not bool(big > 0):
        raise ValueError("beta must not be zero: the classifier sigmoid(beta^T f(x)) has no "
                         "direction to remove")
    scaled = beta / big
    norm = xp.sqrt(xp.sum(scaled * scaled))
    return scaled / norm, big * norm


def _inputs(flow, beta, x, **others):
    require_bijector("flow", flow)
    require_samples("x", x, 2, "(n, ...)")
    require_real_floating("beta", beta)
    for name, arr in others.items():
        require_real_floating(name, arr)
    xp, _ = get_namespace(beta, x, *others.values())
    require_same_dtype(beta=beta, x=x, **others)
    z, _ = flow.forward(x)
    if tuple(beta.shape) != tuple(z.shape[1:]):
        raise ValueError(f"beta must have the shape of one representation f(x)[n], "
                         f"{tuple(z.shape[1:])}, got {tuple(beta.shape)}")
    u, norm = _unit(xp, beta)
    return xp, z, u, norm


def counterfactual(flow, beta, x):
    r"""The counterfactual ``x' = f^{-1}(f(x) - (beta^T f(x) / ||beta||^2) beta)`` of each sample.

    .. math::  x'_n = f^{-1}\big(P f(x_n)\big),\qquad P = I - \frac{\beta\beta^T}{\beta^T\beta}

    Parameters
    ----------
    flow : flow layer
        The invertible network ``f`` (a layer or :class:`~refimpl.flows.Sequential`).
    beta : array
        The classifier's weights, of the shape of one representation ``f(x)[n]``;
        zero is a ``ValueError``.
    x : (n, ...) array

    Returns
    -------
    x' : array of ``x``'s shape, with ``beta^T f(x'_n) = 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.flows import ActNorm, counterfactual, flow_forward
    >>> flow = ActNorm(np.log(np.array([2.0, 0.5])), np.array([1.0, -1.0]))
    >>> beta, x = np.array([1.0, 2.0]), np.array([[0.3, 4.0]])
    >>> x_cf = counterfactual(flow, beta, x)
    >>> bool(np.isclose(flow_forward(flow, x_cf).z @ beta, 0.0))
    True
    """
    xp, z, u, _ = _inputs(flow, beta, x)
    return flow.inverse(z - _inner(xp, u, z) * u).x


def counterfactual_vjp(flow, beta, x, g):
    r"""Cotangents ``(flow, beta, x)`` of :func:`counterfactual` for ``g`` of ``x``'s shape.

    With ``u = beta / ||beta||``, ``a_n = <u, z_n>`` and ``w`` the cotangent of
    ``z' = z - a u`` (the inverse's backward at ``z'``), ``b_n = <u, w_n>``:

    .. math::  \bar z = w - b\,u,\qquad \bar u = -\sum_n (b_n z_n + a_n w_n),\qquad
               \bar\beta = (\bar u - \langle\bar u, u\rangle u) / \lVert\beta\rVert,

    then ``bar z`` goes through the forward's backward at ``x``; the flow's
    cotangent is the sum of both backwards' (the flow is used twice).
    """
    xp, z, u, norm = _inputs(flow, beta, x, g=g)
    if tuple(g.shape) != tuple(x.shape):
        raise ValueError(f"g must have the output's shape {tuple(x.shape)}, got {tuple(g.shape)}")
    a = _inner(xp, u, z)
    no_logdet = xp.zeros((x.shape[0],), dtype=x.dtype, device=x.device)
    w, dflow_inverse = flow.inverse_vjp(z - a * u, g, no_logdet)
    b = _inner(xp, u, w)
    du = -xp.sum(b * z + a * w, axis=0)
    dbeta = (du - xp.sum(du * u) * u) / norm
    dx, dflow_forward = flow.forward_vjp(x, w - b * u, no_logdet)
    return CounterfactualCotangents(add_trees(dflow_forward, dflow_inverse), dbeta, dx)
