r"""Channel correspondence between two networks (Li et al., "Convergent learning").

Convention (docs/conventions.rst, section 8.1). Activations ``A (N, C1, ...)`` and
``B (N, C2, ...)`` of two networks on the same ``N`` inputs; every trailing position is
one more sample, so channel ``a`` of ``A`` is the vector of its ``M = N * prod(...)`` values.
Channels are *standardised* over those samples,

.. math::  z_a = \frac{a - \bar a}{\sigma_a},\qquad \sigma_a^2 = \frac1M \sum (a - \bar a)^2,

and compared by their correlation ``rho_ab = <z_a, z_b> / M``, matched one to one
(``bipartite_matching``, maximum total correlation) or each to its best partner
(``semi_matching``), or predicted from one another by (sparse) linear regression
(``channel_regression``). A constant channel has no standardisation: by default it is a
``ValueError`` naming it, with ``constant="zero"`` its ``z`` is 0 (a dead unit correlates
with nothing and is predicted perfectly).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .._validation import (
    require_choice,
    require_finite,
    require_integer,
    require_number,
    require_real_floating,
    require_same_dtype,
)
from ..backend import get_namespace

__all__ = [
    "CONSTANT_CHANNELS",
    "ChannelRegression",
    "bipartite_matching",
    "channel_correlation",
    "channel_regression",
    "semi_matching",
]

CONSTANT_CHANNELS = ("raise", "zero")


class ChannelRegression(NamedTuple):
    """Least-squares or lasso prediction of ``B``'s standardised channels from ``A``'s.

    Attributes
    ----------
    coef : (C1, C2) array
        ``W``: column ``b`` predicts ``z_b`` as ``Z_A W[:, b]``.
    loss : (C2,) array
        Mean squared error of each prediction, ``||z_b - Z_A w_b||^2 / M`` (``1 - R^2`` for
        least squares): 0 for a perfectly predicted channel, about 1 for an unrelated one.
    n_used : (C2,) int64 array
        Channels of ``A`` with a nonzero coefficient in each prediction.
    """

    coef: Any
    loss: Any
    n_used: Any


# ---------------------------------------------------------------------------
# Standardised channels
# ---------------------------------------------------------------------------


def _activations(name, A, check_finite):
    require_real_floating(name, A)
    if A.ndim < 2 or A.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, C, ...) with C >= 1, got {tuple(A.shape)}")
    if check_finite:
        require_finite(name, A)


def _pair(A, B, check_finite):
    """Validate ``A (N, C1, ...)`` and ``B (N, C2, ...)`` with the same ``N`` and positions."""
    _activations("A", A, check_finite)
    _activations("B", B, check_finite)
    xp, _ = get_namespace(A, B)
    require_same_dtype(A=A, B=B)
    if A.shape[0] != B.shape[0] or tuple(A.shape[2:]) != tuple(B.shape[2:]):
        raise ValueError(f"A (N, C1, ...) and B (N, C2, ...) must share N and the positions, got "
                         f"{tuple(A.shape)} and {tuple(B.shape)}")
    samples = math.prod(A.shape[:1] + A.shape[2:])
    if samples < 2:
        raise ValueError(f"A and B need at least 2 samples (N times positions), got {samples}")
    return xp


def _standardised(xp, name, A, constant):
    r"""``Z (M, C)``: each channel centred and divided by its (population) standard deviation.

    A channel is constant when its largest and smallest values are equal (its computed mean
    need not equal them exactly). Each centred channel is divided by its largest magnitude
    before squaring, so that nothing overflows whatever the activations' scale.
    """
    C = A.shape[1]
    flat = xp.reshape(xp.moveaxis(A, 1, -1), (-1, C))
    constant_channels = xp.max(flat, axis=0) == xp.min(flat, axis=0)
    if bool(xp.any(constant_channels)) and constant == "raise":
        where = [i for i in range(C) if bool(constant_channels[i])]
        raise ValueError(f"{name} has constant channels {where}: their standardisation is "
                         "undefined (pass constant='zero' to treat them as uncorrelated)")
    centred = xp.where(constant_channels, 0.0, flat - xp.mean(flat, axis=0))
    peak = xp.where(constant_channels, 1.0, xp.max(xp.abs(centred), axis=0))
    unit = centred / peak
    # A constant channel's unit is 0: adding 1 under the root keeps its z at 0, not 0/0.
    return unit / xp.sqrt(xp.mean(unit * unit, axis=0) + xp.astype(constant_channels, A.dtype))


def channel_correlation(A, B, *, constant="raise", check_finite=True):
    r"""Correlation of every channel of ``A`` with every channel of ``B``, shape ``(C1, C2)``.

    .. math::  \rho_{ab} = \frac1M \sum_{n,\,p} z_a[n, p]\, z_b[n, p],

    means and variances over the ``M`` samples and positions (docs/conventions.rst, section
    8.1), clipped to ``[-1, 1]`` as ``numpy.corrcoef`` does.

    Parameters
    ----------
    A : (N, C1, ...) array
        Activations of the first network (``(N, C1)`` for dense layers, ``(N, C1, H, W)``
        for convolutional ones).
    B : (N, C2, ...) array
        Activations of the second network on the same inputs, the same positions.
    constant : {"raise", "zero"}
        A constant channel: ``ValueError`` naming it, or correlation 0 with everything.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.analysis import channel_correlation
    >>> A = np.random.default_rng(0).standard_normal((50, 3, 4, 4))
    >>> B = np.stack([2 * A[:, 2] + 1, -A[:, 0]], axis=1)
    >>> rho = channel_correlation(A, B)
    >>> rho.shape, round(float(rho[2, 0]), 12), round(float(rho[0, 1]), 12)
    ((3, 2), 1.0, -1.0)
    """
    xp = _pair(A, B, check_finite)
    require_choice("constant", constant, CONSTANT_CHANNELS)
    ZA, ZB = _standardised(xp, "A", A, constant), _standardised(xp, "B", B, constant)
    return xp.clip(xp.matrix_transpose(ZA) @ ZB / ZA.shape[0], min=-1.0, max=1.0)


# ---------------------------------------------------------------------------
# Matchings
# ---------------------------------------------------------------------------


def _correlations(rho, check_finite):
    require_real_floating("rho", rho)
    if rho.ndim != 2 or 0 in rho.shape:
        raise ValueError(f"rho must have shape (C1, C2) with C1, C2 >= 1, got {tuple(rho.shape)}")
    if check_finite:
        require_finite("rho", rho)
    return get_namespace(rho)


def semi_matching(rho, *, check_finite=True):
    r"""Each channel of the first network's best partner in the second: ``argmax_b rho[a, b]``.

    Ties go to the lowest index (``numpy.argmax``). Pass ``abs(rho)`` to match on absolute
    correlation (docs/conventions.rst, section 8.1).

    Parameters
    ----------
    rho : (C1, C2) array
        Correlations, from :func:`channel_correlation`.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity.

    Returns
    -------
    (C1,) int64 array

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.analysis import semi_matching
    >>> semi_matching(np.array([[0.9, 0.1], [0.8, 0.2], [0.0, -0.5]]))
    array([0, 0, 0])
    """
    xp, _ = _correlations(rho, check_finite)
    return xp.astype(xp.argmax(rho, axis=1), xp.int64)


def _augmenting_path(xp, cost, u, v, row4col, start):
    r"""Dijkstra on reduced costs from row ``start`` to the nearest unassigned column.

    Returns ``(sink, shortest, path, rows_seen, cols_seen, distance)``: the column reached,
    the reduced-cost distances ``shortest`` (final on the scanned columns), ``path[j]`` the
    row before column ``j``, the scanned rows and columns (masks) and the distance to
    ``sink``. ``row4col`` is a list (the bookkeeping stays on the host: one transfer, the
    next column, per step).
    """
    nr, nc = cost.shape
    device = cost.device
    shortest = xp.full(nc, xp.inf, dtype=cost.dtype, device=device)
    path = xp.full(nc, -1, dtype=xp.int64, device=device)
    rows_seen = xp.zeros(nr, dtype=xp.bool, device=device)
    cols_seen = xp.zeros(nc, dtype=xp.bool, device=device)
    distance, i = 0.0, start
    while True:
        rows_seen[i] = True
        reduced = distance + cost[i, :] - u[i] - v
        better = ~cols_seen & (reduced < shortest)
        path = xp.where(better, i, path)
        shortest = xp.where(better, reduced, shortest)
        open_distances = xp.where(cols_seen, xp.inf, shortest)
        j = int(xp.argmin(open_distances))
        distance = open_distances[j]
        cols_seen[j] = True
        i = row4col[j]
        if i < 0:
            return j, shortest, path, rows_seen, cols_seen, distance


def _assign(xp, cost):
    r"""Minimum-cost assignment of every row of ``cost (nr, nc)``, ``nr <= nc``: a list.

    The shortest augmenting path method with dual variables ``u, v`` (Jonker and Volgenant;
    Crouse 2016, as ``scipy.optimize.linear_sum_assignment``): row by row, an augmenting
    path of least reduced cost, then the duals updated so that every reduced cost stays
    non-negative and matched pairs have reduced cost 0. ``O(nr^2 nc)``.
    """
    nr, nc = cost.shape
    device = cost.device
    u = xp.zeros(nr, dtype=cost.dtype, device=device)
    v = xp.zeros(nc, dtype=cost.dtype, device=device)
    col4row, row4col = [-1] * nr, [-1] * nc
    rows = xp.arange(nr, device=device)
    for start in range(nr):
        sink, shortest, path, rows_seen, cols_seen, distance = _augmenting_path(
            xp, cost, u, v, row4col, start)
        matched = xp.take(shortest, xp.asarray([max(j, 0) for j in col4row], device=device))
        u = u + xp.where(rows == start, distance, xp.where(rows_seen, distance - matched, 0.0))
        v = v - xp.where(cols_seen, distance - shortest, 0.0)
        j = sink
        while True:  # flip the path's edges: each row on it takes the column after it
            i = int(path[j])
            row4col[j] = i
            col4row[i], j = j, col4row[i]
            if i == start:
                break
    return col4row


def bipartite_matching(rho, *, check_finite=True):
    r"""One-to-one matching of channels with the largest total correlation.

    .. math::  \max_{\pi} \sum_a \rho_{a, \pi(a)},\quad \pi \text{ injective}

    (on the smaller side), ``scipy.optimize.linear_sum_assignment(rho, maximize=True)``'s
    optimum (docs/conventions.rst, section 8.1). Rows left over when ``C1 > C2`` get ``-1``.
    When several matchings reach the maximum, which one is returned is unspecified.

    Parameters
    ----------
    rho : (C1, C2) array
        Correlations (any real weights), from :func:`channel_correlation`.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity.

    Returns
    -------
    (C1,) int64 array
        The column matched to each row; a permutation when ``C1 = C2``.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.analysis import bipartite_matching, semi_matching
    >>> rho = np.array([[0.9, 0.8], [0.7, 0.1]])
    >>> semi_matching(rho), bipartite_matching(rho)
    (array([0, 0]), array([1, 0]))
    """
    xp, _ = _correlations(rho, check_finite)
    c1, c2 = rho.shape
    if c1 <= c2:
        matched = _assign(xp, -rho)
    else:
        matched = [-1] * c1
        for col, row in enumerate(_assign(xp, -xp.matrix_transpose(rho))):
            matched[row] = col
    return xp.asarray(matched, dtype=xp.int64, device=rho.device)


# ---------------------------------------------------------------------------
# Regression
# ---------------------------------------------------------------------------


def _least_squares(xp, ZA, ZB):
    r"""Minimum-norm ``W`` of ``min ||Z_B - Z_A W||`` by the SVD; singular values below
    ``max(M, C1) eps s_max`` are dropped (``numpy.linalg.lstsq``'s default cut-off)."""
    U, s, Vt = xp.linalg.svd(ZA, full_matrices=False)
    cutoff = max(ZA.shape) * xp.finfo(ZA.dtype).eps * xp.max(s)
    inverse = xp.where(s > cutoff, 1.0 / xp.where(s > cutoff, s, 1.0), 0.0)
    return xp.matrix_transpose(Vt) @ (inverse[:, None] * (xp.matrix_transpose(U) @ ZB))


def _lasso(xp, ZA, ZB, l1, tol, max_iter):
    r"""Cyclic coordinate descent on ``(1/2M) ||z_b - Z_A w||^2 + l1 ||w||_1``, all targets at once.

    In Gram form, ``G = Z_A^T Z_A / M``, ``c = Z_A^T Z_B / M``, keeping the residual
    correlations ``R = c - G W``: coordinate ``j`` becomes
    ``S(R_j + G_jj W_j, l1) / G_jj`` (soft thresholding). Stops after the sweep in which no
    coefficient moves by more than ``tol * max |W|``; ``RuntimeError`` after ``max_iter``
    sweeps.
    """
    M, C1 = ZA.shape
    G = xp.matrix_transpose(ZA) @ ZA / M
    R = xp.matrix_transpose(ZA) @ ZB / M
    W = xp.zeros_like(R)
    # A zero channel (constant="zero") has G_jj = 0 and keeps coefficient 0.
    live = [j for j in range(C1) if bool(G[j, j] > 0)]
    for _ in range(max_iter):
        largest_step = xp.zeros((), dtype=W.dtype, device=W.device)
        for j in live:
            g = G[j, j]
            target = R[j, :] + g * W[j, :]
            new = xp.sign(target) * xp.clip(xp.abs(target) - l1, min=0.0) / g
            step = new - W[j, :]
            R = R - G[:, j, None] * step[None, :]
            W[j, :] = new
            largest_step = xp.maximum(largest_step, xp.max(xp.abs(step)))
        if bool(largest_step <= tol * xp.max(xp.abs(W))):
            return W
    raise RuntimeError(f"channel_regression: the lasso did not converge in max_iter = {max_iter} "
                       f"sweeps (tol = {tol}); raise max_iter or tol")


def channel_regression(A, B, *, l1=None, constant="raise", tol=None, max_iter=10_000,
                       check_finite=True) -> ChannelRegression:
    r"""Predict each standardised channel of ``B`` linearly from all of ``A``'s.

    Least squares (``l1=None``), or the lasso in scikit-learn's scaling,

    .. math::  \min_{w_b}\ \frac1{2M} \lVert z_b - Z_A w_b\rVert^2 + \ell_1 \lVert w_b\rVert_1,

    (``sklearn.linear_model.Lasso(alpha=l1, fit_intercept=False)`` on the standardised
    channels; the intercept is 0 since every channel has mean 0), for every channel ``b``
    of ``B`` (docs/conventions.rst, section 8.1).

    Parameters
    ----------
    A : (N, C1, ...) array
        The predicting network's activations.
    B : (N, C2, ...) array
        The predicted network's activations, the same positions.
    l1 : float, optional
        Lasso penalty ``> 0``; ``None`` for least squares (minimum-norm when ``Z_A`` is rank
        deficient, as ``numpy.linalg.lstsq``).
    constant : {"raise", "zero"}
        A constant channel: ``ValueError`` naming it, or ``z = 0`` (never used, perfectly
        predicted with loss 0).
    tol : float, optional
        Lasso stopping tolerance on the largest coefficient change per sweep, relative to
        ``max |W|``; default ``100 eps`` of the dtype.
    max_iter : int
        Lasso sweeps before ``RuntimeError``.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity.

    Returns
    -------
    ChannelRegression
        ``coef (C1, C2)``, ``loss (C2,)``, ``n_used (C2,)``.

    Examples
    --------
    A network regressed on itself loses nothing; the lasso drops unneeded channels:

    >>> import numpy as np
    >>> from refimpl.analysis import channel_regression
    >>> A = np.random.default_rng(0).standard_normal((200, 4))
    >>> fit = channel_regression(A, A)
    >>> bool(np.allclose(fit.coef, np.eye(4))), bool(np.all(fit.loss < 1e-20))
    (True, True)
    >>> sparse = channel_regression(A, A[:, :1] + 0.1 * A[:, 1:2], l1=0.2)
    >>> sparse.n_used
    array([1])
    """
    xp = _pair(A, B, check_finite)
    require_choice("constant", constant, CONSTANT_CHANNELS)
    if l1 is not None:
        l1 = require_number("l1", l1, 0.0, low_open=True, why="or None for least squares")
    max_iter = require_integer("max_iter", max_iter, 1)
    tol = require_number("tol", 100 * float(xp.finfo(A.dtype).eps) if tol is None else tol, 0.0,
                         low_open=True)
    ZA, ZB = _standardised(xp, "A", A, constant), _standardised(xp, "B", B, constant)
    W = _least_squares(xp, ZA, ZB) if l1 is None else _lasso(xp, ZA, ZB, l1, tol, max_iter)
    residual = ZB - ZA @ W
    loss = xp.mean(residual * residual, axis=0)
    return ChannelRegression(W, loss, xp.sum(xp.astype(W != 0, xp.int64), axis=0))
