r"""nflows' ``LULinear``: an invertible dense layer with an LU-parametrised weight.

Convention (docs/conventions.rst, section 3.5). For ``x (n, d)``:

.. math::  z = x W^T + b,\qquad W = \tilde L\,\tilde U,\qquad
           \tilde L = \operatorname{tril}(L, -1) + I,\quad
           \tilde U = \operatorname{triu}(U, 1) + \operatorname{diag}(\operatorname{softplus}(u) + \epsilon),

``log|det| = sum_i log(softplus(u_i) + eps)`` per sample, ``eps = 1e-3``
(nflows). Only the strictly lower part of ``lower``, the strictly upper part
of ``upper`` and ``unconstrained_diag`` are parameters: nflows'
``lower_entries`` fill ``numpy.tril_indices(d, -1)`` row by row, its
``upper_entries`` ``numpy.triu_indices(d, 1)``. The weight is Glow's
(:func:`refimpl.flows.glow_lu_weight` with ``s = softplus(u) + eps`` and no
permutation), applied in PyTorch's ``nn.Linear`` row layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._results import cotangent_type
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ..nn import sigmoid
from ._bijector import (
    Bijector,
    FlowForward,
    FlowInverse,
    per_sample,
    require_flow_cotangents,
    require_samples,
)
from .glow import _lu_weight_vjp, _weight

__all__ = [
    "NFLOWS_LU_EPS",
    "LULinear",
    "lu_linear",
    "lu_linear_inverse",
    "lu_linear_inverse_vjp",
    "lu_linear_vjp",
]

NFLOWS_LU_EPS = 1e-3

LUCotangents = cotangent_type("LUCotangents", "x lower upper unconstrained_diag", "bias")
LUInverseCotangents = cotangent_type("LUInverseCotangents", "z lower upper unconstrained_diag",
                                     "bias")


@dataclass(frozen=True)
class _LU:
    """The weight ``W`` and the diagonal ``s = softplus(u) + eps`` of one call."""

    xp: Any
    W: Any
    s: Any


def _check_lu(x, lower, upper, unconstrained_diag, bias, eps, data="x", **cotangents):
    """Validate a call (``x (n, d)``, the factors, ``bias``, ``eps``); return the namespace."""
    require_samples(data, x, 2)
    named = {data: x, "lower": lower, "upper": upper, "unconstrained_diag": unconstrained_diag,
             "bias": bias}
    for name, arr in named.items():
        if arr is not None:
            require_real_floating(name, arr)
    xp, _ = get_namespace(*named.values(), *cotangents.values())
    require_same_dtype(**named)
    if x.ndim != 2:
        raise ValueError(f"{data} must have shape (n, d), got shape {tuple(x.shape)}")
    d = x.shape[1]
    shapes = {"lower": (d, d), "upper": (d, d), "unconstrained_diag": (d,), "bias": (d,)}
    for name, shape in shapes.items():
        if named[name] is not None and tuple(named[name].shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for {data} of shape "
                             f"{tuple(x.shape)}, got {tuple(named[name].shape)}")
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0):
        raise ValueError(f"eps must be a positive number (it keeps the diagonal away from 0), "
                         f"got {eps!r}")
    return xp


def _lu_inputs(x, lower, upper, unconstrained_diag, bias, eps, data="x", **cotangents) -> _LU:
    """Validate a call and form ``W`` and ``s = softplus(u) + eps``."""
    xp = _check_lu(x, lower, upper, unconstrained_diag, bias, eps, data, **cotangents)
    u = unconstrained_diag
    s = xp.logaddexp(xp.zeros_like(u), u) + eps  # softplus, no overflow for large u
    return _LU(xp, _weight(xp, lower, upper, s, None), s)


def _factor_cotangents(p: _LU, lower, upper, unconstrained_diag, dW, ds):
    """``(dlower, dupper, du)`` from the weight's cotangent and an extra one of ``s``."""
    d_lower, d_upper, d_s = _lu_weight_vjp(p.xp, lower, upper, p.s, None, dW)
    return d_lower, d_upper, (d_s + ds) * sigmoid(unconstrained_diag)


def lu_linear(x, lower, upper, unconstrained_diag, bias=None, *, eps=NFLOWS_LU_EPS):
    r"""nflows' ``LULinear``: ``z = x W^T + b`` with ``W = L~ (U~ + diag(softplus(u) + eps))``.

    .. math::  z = x W^T + b,\qquad \log|\det| = \sum_i \log(\operatorname{softplus}(u_i) + \epsilon)

    Parameters
    ----------
    x : (n, d) array
    lower, upper : (d, d) arrays
        Only the strictly lower part of ``lower`` and the strictly upper part
        of ``upper`` are read.
    unconstrained_diag : (d,) array
        ``u``: the diagonal of ``U~`` is ``softplus(u) + eps > 0``.
    bias : (d,) array, optional
    eps : float
        nflows' floor of the diagonal (default ``1e-3``).

    Returns
    -------
    FlowForward(z, logdet) : (n, d) and (n,) arrays

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.flows import lu_linear, lu_linear_inverse
    >>> rng = np.random.default_rng(0)
    >>> L, U = rng.standard_normal((2, 3, 3))
    >>> u, x = rng.standard_normal(3), rng.standard_normal((2, 3))
    >>> z, logdet = lu_linear(x, L, U, u)
    >>> W = (np.tril(L, -1) + np.eye(3)) @ (np.triu(U, 1) + np.diag(np.logaddexp(0, u) + 1e-3))
    >>> bool(np.allclose(z, x @ W.T) and np.allclose(logdet, np.linalg.slogdet(W)[1]))
    True
    >>> bool(np.allclose(lu_linear_inverse(z, L, U, u).x, x))
    True
    """
    p = _lu_inputs(x, lower, upper, unconstrained_diag, bias, eps)
    z = x @ p.xp.matrix_transpose(p.W)
    return FlowForward(z if bias is None else z + bias, per_sample(p.xp, p.xp.sum(p.xp.log(p.s)), x))


def lu_linear_vjp(x, lower, upper, unconstrained_diag, gz, glogdet, bias=None, *,
                  eps=NFLOWS_LU_EPS):
    r"""Cotangents ``(x, lower, upper, unconstrained_diag, bias)`` of :func:`lu_linear`.

    ``dx = G W``, ``dW = G^T x``, ``db = sum G`` (``None`` without a bias); ``dW``
    goes through the factors as in :func:`refimpl.flows.glow_lu_weight_vjp`,
    the log-determinant adds ``sum(glogdet) / s`` to ``ds``, and
    ``du = ds sigmoid(u)``.
    """
    p = _lu_inputs(x, lower, upper, unconstrained_diag, bias, eps, gz=gz, glogdet=glogdet)
    require_flow_cotangents(x, gz, glogdet)
    xp = p.xp
    dW = xp.matrix_transpose(gz) @ x
    factors = _factor_cotangents(p, lower, upper, unconstrained_diag, dW, xp.sum(glogdet) / p.s)
    return LUCotangents(gz @ p.W, *factors, None if bias is None else xp.sum(gz, axis=0))


def _solve_rows(xp, W, y):
    """``y W^{-T}``: each row ``r`` becomes the solution of ``W x = r``."""
    return xp.matrix_transpose(xp.linalg.solve(W, xp.matrix_transpose(y)))


def lu_linear_inverse(z, lower, upper, unconstrained_diag, bias=None, *, eps=NFLOWS_LU_EPS):
    r"""Inverse of :func:`lu_linear`: ``x = (z - b) W^{-T}`` (a solve), ``logdet = -sum log s``.

    The diagonal ``softplus(u) + eps`` is positive, so ``W`` is invertible.
    """
    p = _lu_inputs(z, lower, upper, unconstrained_diag, bias, eps, data="z")
    x = _solve_rows(p.xp, p.W, z if bias is None else z - bias)
    return FlowInverse(x, per_sample(p.xp, -p.xp.sum(p.xp.log(p.s)), z))


def lu_linear_inverse_vjp(z, lower, upper, unconstrained_diag, gx, glogdet, bias=None, *,
                          eps=NFLOWS_LU_EPS):
    r"""Cotangents ``(z, lower, upper, unconstrained_diag, bias)`` of :func:`lu_linear_inverse`.

    With ``x`` the output: ``dz = G W^{-1}`` (rows solved with ``W^T``),
    ``dW = -dz^T x``, ``db = -sum dz``; the log-determinant adds
    ``-sum(glogdet) / s`` to ``ds``.
    """
    p = _lu_inputs(z, lower, upper, unconstrained_diag, bias, eps, data="z", gx=gx,
                   glogdet=glogdet)
    require_flow_cotangents(z, gx, glogdet, out_name="x")
    xp = p.xp
    x = _solve_rows(xp, p.W, z if bias is None else z - bias)
    dz = _solve_rows(xp, xp.matrix_transpose(p.W), gx)
    factors = _factor_cotangents(p, lower, upper, unconstrained_diag,
                                 -xp.matrix_transpose(dz) @ x, -xp.sum(glogdet) / p.s)
    return LUInverseCotangents(dz, *factors, None if bias is None else -xp.sum(dz, axis=0))


@dataclass(frozen=True, repr=False)
class LULinear(Bijector):
    """nflows' ``LULinear`` (:func:`lu_linear`): ``lower``, ``upper``, ``unconstrained_diag``, ``bias``."""

    lower: Any
    upper: Any
    unconstrained_diag: Any
    bias: Any = None
    eps: float = NFLOWS_LU_EPS

    def __post_init__(self):
        require_real_floating("unconstrained_diag", self.unconstrained_diag)
        if self.unconstrained_diag.ndim != 1:
            raise ValueError(f"unconstrained_diag must have shape (d,), "
                             f"got {tuple(self.unconstrained_diag.shape)}")
        # A (1, d) probe input checks the shapes, dtypes and namespaces of every field.
        _check_lu(self.unconstrained_diag[None, :], *self._params(), self.bias, self.eps)

    def _params(self):
        return (self.lower, self.upper, self.unconstrained_diag)

    def forward(self, x):
        return lu_linear(x, *self._params(), bias=self.bias, eps=self.eps)

    def inverse(self, z):
        return lu_linear_inverse(z, *self._params(), bias=self.bias, eps=self.eps)

    def forward_vjp(self, x, gz, glogdet):
        dx, *grads = lu_linear_vjp(x, *self._params(), gz, glogdet, bias=self.bias, eps=self.eps)
        return dx, LULinear(*grads, eps=self.eps)

    def inverse_vjp(self, z, gx, glogdet):
        dz, *grads = lu_linear_inverse_vjp(z, *self._params(), gx, glogdet, bias=self.bias,
                                           eps=self.eps)
        return dz, LULinear(*grads, eps=self.eps)
