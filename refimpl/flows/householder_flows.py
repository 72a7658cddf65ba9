r"""Householder flow (Tomczak and Welling 2016): ``z' = H_K ... H_1 z``, volume preserving, on WY blocks.

Convention (docs/conventions.rst, section 3.6). The reflectors are the rows
``v_1, ..., v_K`` of ``V`` (``(K, d)``, shared by the samples, or
``(n, K, d)``, one set per sample as an encoder outputs them), each
``H_k = I - 2 v_k v_k^T / ||v_k||^2``, and ``H_1`` acts first:

.. math::  z_n = H_K \cdots H_1 x_n = U^T x_n,\qquad U = H(v_1) \cdots H(v_K),\qquad
           \log|\det| = 0,

``U`` being :func:`refimpl.linalg.householder_product`'s (section 1.1), so
``z = householder_product(V, x^T, transpose=True)^T`` runs on its compact WY
blocks in ``O(n d K)``. The inverse applies ``U``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._results import cotangent_type
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ..linalg import householder_product, householder_product_vjp
from ._bijector import (
    Bijector,
    FlowForward,
    FlowInverse,
    per_sample,
    require_flow_cotangents,
    require_samples,
)

__all__ = [
    "HouseholderFlow",
    "householder_flow",
    "householder_flow_inverse",
    "householder_flow_inverse_vjp",
    "householder_flow_vjp",
]

HouseholderFlowCotangents = cotangent_type("HouseholderFlowCotangents", "x V")
HouseholderFlowInverseCotangents = cotangent_type("HouseholderFlowInverseCotangents", "z V")


def _flow_inputs(x, V, data="x", **cotangents):
    """Validate ``x (n, d)`` and ``V`` ``(K, d)`` or ``(n, K, d)``; return the namespace."""
    require_samples(data, x, 2)
    require_real_floating("V", V)
    xp, _ = get_namespace(x, V, *cotangents.values())
    require_same_dtype(**{data: x, "V": V})
    if x.ndim != 2:
        raise ValueError(f"{data} must have shape (n, d), got shape {tuple(x.shape)}")
    n, d = x.shape
    if V.ndim not in (2, 3) or V.shape[-1] != d or (V.ndim == 3 and V.shape[0] != n):
        raise ValueError(f"V must have shape (K, d) or (n, K, d) with n, d = {n}, {d}, "
                         f"got {tuple(V.shape)}")
    return xp


def _columns(xp, V, x):
    """``x`` as the right-hand side of the products: ``x^T (d, n)``, or ``(n, d, 1)`` per sample."""
    return xp.matrix_transpose(x) if V.ndim == 2 else x[:, :, None]


def _rows(xp, V, Y):
    """Back from :func:`_columns`' layout to ``(n, d)``."""
    return xp.matrix_transpose(Y) if V.ndim == 2 else Y[:, :, 0]


def _apply(x, V, transpose, data):
    xp = _flow_inputs(x, V, data)
    return xp, _rows(xp, V, householder_product(V, _columns(xp, V, x), transpose=transpose))


def _apply_vjp(x, V, g, glogdet, transpose, data, out_name):
    xp = _flow_inputs(x, V, data, g=g, glogdet=glogdet)
    require_flow_cotangents(x, g, glogdet, out_name=out_name)
    dV, dX, _ = householder_product_vjp(V, _columns(xp, V, x), _columns(xp, V, g),
                                        transpose=transpose)
    return _rows(xp, V, dX), dV


def householder_flow(x, V):
    r"""Householder flow: ``z_n = H_K ... H_1 x_n``, log-determinant 0.

    .. math::  z_n = \Big(\prod_{k = K}^{1} (I - 2 v_k v_k^T / \lVert v_k\rVert^2)\Big) x_n

    Parameters
    ----------
    x : (n, d) array
    V : (K, d) or (n, K, d) array
        Reflectors as rows (shared, or per sample); a zero row is a ``ValueError``.

    Returns
    -------
    FlowForward(z, logdet) : (n, d) and (n,) arrays

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.flows import householder_flow
    >>> x, V = np.array([[1.0, 2.0]]), np.array([[1.0, 0.0]])
    >>> householder_flow(x, V).z.tolist()
    [[-1.0, 2.0]]
    """
    xp, z = _apply(x, V, True, "x")
    return FlowForward(z, per_sample(xp, 0.0, x))


def householder_flow_vjp(x, V, gz, glogdet):
    r"""Cotangents ``(x, V)`` of :func:`householder_flow`.

    :func:`refimpl.linalg.householder_product_vjp` of ``U^T x^T`` (its
    transposed-product backward); ``glogdet`` multiplies a log-determinant
    that is identically 0.
    """
    return HouseholderFlowCotangents(*_apply_vjp(x, V, gz, glogdet, True, "x", "z"))


def householder_flow_inverse(z, V):
    r"""Inverse of :func:`householder_flow`: ``x_n = H_1 ... H_K z_n = U z_n``, log-determinant 0."""
    xp, x = _apply(z, V, False, "z")
    return FlowInverse(x, per_sample(xp, 0.0, z))


def householder_flow_inverse_vjp(z, V, gx, glogdet):
    """Cotangents ``(z, V)`` of :func:`householder_flow_inverse` (the product backward of ``U z^T``)."""
    return HouseholderFlowInverseCotangents(*_apply_vjp(z, V, gx, glogdet, False, "z", "x"))


@dataclass(frozen=True, repr=False)
class HouseholderFlow(Bijector):
    """Householder flow (:func:`householder_flow`): reflectors ``V`` of shape ``(K, d)`` or ``(n, K, d)``."""

    V: Any

    def __post_init__(self):
        require_real_floating("V", self.V)
        if self.V.ndim not in (2, 3):
            raise ValueError(f"V must have shape (K, d) or (n, K, d), got {tuple(self.V.shape)}")

    def forward(self, x):
        return householder_flow(x, self.V)

    def inverse(self, z):
        return householder_flow_inverse(z, self.V)

    def forward_vjp(self, x, gz, glogdet):
        c = householder_flow_vjp(x, self.V, gz, glogdet)
        return c.x, HouseholderFlow(c.V)

    def inverse_vjp(self, z, gx, glogdet):
        c = householder_flow_inverse_vjp(z, self.V, gx, glogdet)
        return c.z, HouseholderFlow(c.V)
