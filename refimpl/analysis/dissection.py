r"""Network dissection (Bau et al. 2017) and the interpretable basis decomposition (Zhou et al. 2018).

Convention (docs/conventions.rst, section 8.2). ``dissection_iou``: each unit's activation
maps ``(N, U, h, w)`` are thresholded at the unit's top-``quantile`` level over the whole
data set, upsampled to the concept masks' resolution ``(H, W)`` and scored against every
concept by the intersection over union summed over the data set (NetDissect-Lite's
conventions). ``ibd``: a class's weight vector ``w`` decomposed greedily into at most ``k``
concept vectors (rows of ``Q``) with non-negative coefficients.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .._validation import (
    require_finite,
    require_integer,
    require_number,
    require_real_floating,
    require_same_dtype,
)
from ..backend import get_namespace

__all__ = ["Dissection", "IBDResult", "dissection_iou", "ibd"]


class Dissection(NamedTuple):
    """``iou (U, K)``, unit by concept, and each unit's activation ``threshold (U,)``."""

    iou: Any
    threshold: Any


class IBDResult(NamedTuple):
    """The greedy decomposition ``w ~ sum_i coef_i Q[concepts_i]``.

    Attributes
    ----------
    concepts : (k,) int64 array
        The rows of ``Q`` in the order they were chosen.
    coef : (k,) array
        Their non-negative coefficients in the final fit (some may be 0).
    residuals : (k,) array
        ``||w - Q_S^T s||`` after each step: never increasing.
    """

    concepts: Any
    coef: Any
    residuals: Any


# ---------------------------------------------------------------------------
# Network dissection
# ---------------------------------------------------------------------------


def _upper_quantile(xp, values, quantile):
    r"""Per column of ``values (M, U)``: the ``1 - quantile`` quantile, linear interpolation
    between order statistics (``numpy.quantile``'s default): position ``(M - 1)(1 - q)``."""
    ordered = xp.sort(values, axis=0)
    position = (values.shape[0] - 1) * (1.0 - quantile)
    low = min(math.floor(position), values.shape[0] - 1)
    high = min(low + 1, values.shape[0] - 1)
    fraction = position - low
    return ordered[low, :] + fraction * (ordered[high, :] - ordered[low, :])


def _interpolation_matrix(xp, out_size, in_size, dtype, device):
    r"""``R (out, in)`` of linear interpolation with half-pixel centres and clamped edges.

    Output pixel ``o`` samples the input at ``x = (o + 1/2) in / out - 1/2``, clamped to
    ``[0, in - 1]``: PyTorch's ``interpolate(..., align_corners=False)`` and PIL's bilinear
    upsampling, one axis at a time.
    """
    o = xp.arange(out_size, dtype=dtype, device=device)
    x = xp.clip((o + 0.5) * (in_size / out_size) - 0.5, min=0.0, max=in_size - 1.0)
    i = xp.arange(in_size, dtype=dtype, device=device)
    return xp.clip(1.0 - xp.abs(x[:, None] - i[None, :]), min=0.0)


def dissection_iou(activations, masks, *, quantile=0.005, check_finite=True) -> Dissection:
    r"""Network dissection's IoU of every unit with every concept.

    .. math::  T_u = \text{quantile}_{1-q}\{a_u[n, y, x]\},\qquad
               M_u[n] = \operatorname{up}(a_u[n]) > T_u,\qquad
               \mathrm{IoU}_{uk} = \frac{\sum_n |M_u[n] \cap L_k[n]|}{\sum_n |M_u[n] \cup L_k[n]|},

    the quantile over all samples and positions of the unit's low-resolution maps
    (``numpy.quantile``'s linear interpolation), ``up`` bilinear upsampling to the masks'
    resolution (half-pixel centres, clamped edges), the strict ``>``, and the sums over the
    whole data set (docs/conventions.rst, section 8.2). An empty union (a concept absent
    from every mask, and a unit whose mask is empty) scores 0, as NetDissect-Lite's ``+1e-10``
    in the denominator gives.

    Parameters
    ----------
    activations : (N, U, h, w) array
        Unit activation maps.
    masks : (N, K, H, W) bool array
        Concept masks, ``H >= h``, ``W >= w``.
    quantile : float
        Top fraction ``q`` in ``(0, 1)`` (Bau et al.: 0.005).
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity in ``activations``.

    Returns
    -------
    Dissection
        ``iou (U, K)`` and ``threshold (U,)``, the dtype of ``activations``.

    Examples
    --------
    A unit that is a concept's mask scores 1 for it:

    >>> import numpy as np
    >>> from refimpl.analysis import dissection_iou
    >>> masks = np.zeros((2, 2, 4, 4), dtype=bool)
    >>> masks[0, 0, :2, :2] = masks[1, 0, 2:, 1:3] = masks[:, 1, 0, 2:] = True
    >>> unit = masks[:, :1].astype(float) * np.arange(1.0, 17.0).reshape(4, 4)
    >>> iou, threshold = dissection_iou(unit, masks, quantile=0.25)
    >>> iou
    array([[1., 0.]])
    """
    require_real_floating("activations", activations)
    xp, device = get_namespace(activations, masks)
    if activations.ndim != 4 or masks.ndim != 4:
        raise ValueError(f"activations must have shape (N, U, h, w) and masks (N, K, H, W), got "
                         f"{tuple(activations.shape)} and {tuple(masks.shape)}")
    if masks.dtype != xp.bool:
        raise TypeError(f"masks must be a boolean array, got dtype {masks.dtype}")
    n, units, h, w = activations.shape
    if masks.shape[0] != n or masks.shape[2] < h or masks.shape[3] < w:
        raise ValueError(f"masks (N, K, H, W) must have N = {n} and H >= h = {h}, W >= w = {w} "
                         f"(upsampling only), got {tuple(masks.shape)}")
    quantile = require_number("quantile", quantile, 0.0, 1.0, low_open=True, high_open=True)
    if check_finite:
        require_finite("activations", activations)
    dtype, (H, W) = activations.dtype, masks.shape[2:]
    threshold = _upper_quantile(
        xp, xp.reshape(xp.moveaxis(activations, 1, -1), (-1, units)), quantile)
    Rh = _interpolation_matrix(xp, H, h, dtype, device)
    Rw = _interpolation_matrix(xp, W, w, dtype, device)
    upsampled = Rh @ activations @ xp.matrix_transpose(Rw)
    # Pixel counts are exact in float64 up to 2^53, whatever the activations' dtype.
    unit_masks = xp.astype(upsampled > threshold[:, None, None], xp.float64)
    concepts = xp.astype(masks, xp.float64)
    flat_units = xp.reshape(xp.moveaxis(unit_masks, 1, 0), (units, -1))
    flat_concepts = xp.reshape(xp.moveaxis(concepts, 1, 0), (masks.shape[1], -1))
    intersection = flat_units @ xp.matrix_transpose(flat_concepts)
    union = xp.sum(flat_units, axis=1)[:, None] + xp.sum(flat_concepts, axis=1)[None, :] - intersection
    iou = xp.where(union > 0, intersection / xp.where(union > 0, union, 1.0), 0.0)
    return Dissection(xp.astype(iou, dtype), threshold)


# ---------------------------------------------------------------------------
# Interpretable basis decomposition
# ---------------------------------------------------------------------------


def _nnls(xp, A, b):
    r"""``argmin_{x >= 0} ||A x - b||`` by Lawson and Hanson's active set method (Gram form).

    Each passive-set solve is written with masks, ``(G o pp^T + diag(1 - p)) z = c o p``, so
    that no boolean indexing is needed. The gradient ``c - G x`` counts as non-positive below
    ``tol = 10 max(m, n) eps ||A||_1 ||b||``. ``RuntimeError`` after ``3 n`` outer steps
    (scipy's default limit).
    """
    n = A.shape[1]
    G = xp.matrix_transpose(A) @ A
    c = xp.matrix_transpose(A) @ b
    eye = xp.eye(n, dtype=A.dtype, device=A.device)
    eps = float(xp.finfo(A.dtype).eps)
    tol = 10 * max(A.shape) * eps * float(xp.max(xp.sum(xp.abs(A), axis=0))) * float(
        xp.linalg.vector_norm(b))
    x = xp.zeros(n, dtype=A.dtype, device=A.device)
    passive = xp.zeros(n, dtype=xp.bool, device=A.device)

    def solve(mask):
        p = xp.astype(mask, A.dtype)
        return xp.linalg.solve(G * (p[:, None] * p[None, :]) + eye * (1.0 - p), c * p)

    for _ in range(3 * n + 1):
        gradient = c - G @ x
        if bool(xp.all(passive)) or not bool(xp.any(~passive & (gradient > tol))):
            return x
        passive[int(xp.argmax(xp.where(passive, -xp.inf, gradient)))] = True
        z = solve(passive)
        while bool(xp.any(passive & (z <= 0))):
            blocking = passive & (z <= 0)
            alpha = xp.min(xp.where(blocking, x / xp.where(blocking, x - z, 1.0), xp.inf))
            x = x + alpha * (z - x)
            passive = passive & (x > tol)
            z = solve(passive)
        x = xp.where(passive, z, 0.0)
    raise RuntimeError(f"ibd: non-negative least squares did not converge in {3 * n} steps")


def ibd(w, Q, *, k, check_finite=True) -> IBDResult:
    r"""Interpretable basis decomposition: greedy non-negative decomposition of ``w`` into concepts.

    .. math::  S_t = S_{t-1} \cup \{\arg\min_{c \notin S_{t-1}} r(S_{t-1} \cup \{c\})\},\qquad
               r(S) = \min_{s \ge 0} \Bigl\lVert w - \sum_{c \in S} s_c Q_c \Bigr\rVert,

    each ``r`` a non-negative least-squares fit (``scipy.optimize.nnls``), ``k`` steps
    (docs/conventions.rst, section 8.2). Ties go to the lowest concept index (a zero ``w``
    selects ``0, 1, ..., k - 1``). The residuals never increase: a larger set can keep the
    previous coefficients.

    Parameters
    ----------
    w : (C,) array
        The class's weight vector over ``C`` features.
    Q : (K, C) array
        Concept vectors as rows.
    k : int
        Concepts to select, ``1 <= k <= K``.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity.

    Returns
    -------
    IBDResult
        ``concepts (k,)``, ``coef (k,)`` of the final fit, ``residuals (k,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.analysis import ibd
    >>> Q = np.eye(4)[:3] + 0.1
    >>> fit = ibd(2 * Q[2] + 0.5 * Q[0], Q, k=2)
    >>> fit.concepts, np.round(fit.coef, 12), np.round(fit.residuals, 6)
    (array([2, 0]), array([2. , 0.5]), array([0.546248, 0.      ]))
    """
    for name, arr in (("w", w), ("Q", Q)):
        require_real_floating(name, arr)
    xp, device = get_namespace(w, Q)
    require_same_dtype(w=w, Q=Q)
    if w.ndim != 1 or Q.ndim != 2 or Q.shape[1] != w.shape[0]:
        raise ValueError(f"w must have shape (C,) and Q (K, C), got {tuple(w.shape)} and "
                         f"{tuple(Q.shape)}")
    K = Q.shape[0]
    require_integer("k", k, 1, K)
    if check_finite:
        require_finite("w", w)
        require_finite("Q", Q)
    chosen, residuals, coef = [], [], None
    for step in range(k):
        best = None
        for c in range(K):
            if c in chosen:
                continue
            A = xp.matrix_transpose(xp.take(Q, xp.asarray(chosen + [c], device=device), axis=0))
            s = _nnls(xp, A, w)
            r = float(xp.linalg.vector_norm(w - A @ s))
            if best is None or r < best[0]:
                best = (r, c, s)
        residuals.append(best[0])
        chosen.append(best[1])
        coef = best[2]
    return IBDResult(xp.asarray(chosen, dtype=xp.int64, device=device), coef,
                     xp.asarray(residuals, dtype=w.dtype, device=device))
