r"""Exact t-SNE: perplexity-calibrated affinities, the Student-t ``Q``, the KL divergence and its
gradient, and scikit-learn's optimiser.

Convention (docs/conventions.rst, section 7.1). Rows of ``X (N, D)`` are the data, rows of
``Y (N, d)`` their embedding; ``d_ij = ||x_i - x_j||^2``. Each point gets a Gaussian
conditional distribution whose precision ``beta_i`` is found by bisection so that its
entropy (in nats) is ``log(perplexity)``:

.. math::  p_{j|i} = \frac{e^{-\beta_i d_{ij}}}{\sum_{k\ne i} e^{-\beta_i d_{ik}}},\qquad
           P = \max\Bigl(\frac{C + C^T}{\sum_{ij} (C + C^T)_{ij}},\ \epsilon\Bigr)\ (i \ne j),

and the embedding a Student-t kernel with ``nu`` degrees of freedom,

.. math::  w_{ij} = \Bigl(1 + \frac{\lVert y_i - y_j\rVert^2}{\nu}\Bigr)^{-\frac{\nu+1}2},\qquad
           q_{ij} = \frac{w_{ij}}{\sum_{k\ne l} w_{kl}},\qquad
           \mathrm{KL}(P\Vert Q) = \sum_{i\ne j} p_{ij}\log\frac{p_{ij}}{q_{ij}}.

Its gradient (derived in ``docs/blocks/embedding.rst``) is

.. math::  \frac{\partial\,\mathrm{KL}}{\partial y_i} = \frac{2(\nu+1)}{\nu}\sum_j
           \bigl(p_{ij} - S\,q_{ij}\bigr)\Bigl(1 + \frac{\lVert y_i - y_j\rVert^2}{\nu}\Bigr)^{-1}
           (y_i - y_j),\qquad S = \sum_{k\ne l} p_{kl}.

The defaults are scikit-learn's (``sklearn.manifold.TSNE(method="exact")``, version 1.9):
every constant of its search and optimiser is a named keyword here.
"""

from __future__ import annotations

import math
import struct
from typing import Any, NamedTuple

from .._results import cotangent_type
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
    "AFFINITY_METHODS",
    "GRADIENTS",
    "MACHINE_EPSILON",
    "TSNEAffinities",
    "TSNEResult",
    "student_t_affinities",
    "student_t_affinities_vjp",
    "tsne",
    "tsne_affinities",
    "tsne_kl",
    "tsne_kl_vjp",
]

MACHINE_EPSILON = 2.0**-52  # numpy.finfo(float64).eps: scikit-learn's floor on P and Q
AFFINITY_METHODS = ("sklearn", "plain")
GRADIENTS = ("kl", "sklearn")

TSNEKLCotangents = cotangent_type("TSNEKLCotangents", "P Y")
StudentTCotangents = cotangent_type("StudentTCotangents", "Y")


class TSNEAffinities(NamedTuple):
    """The joint affinities ``P (N, N)`` and the conditional ones ``C (N, N)``, row ``i`` being
    ``p_{j|i}`` (zero diagonals)."""

    P: Any
    conditional: Any


class TSNEResult(NamedTuple):
    """A t-SNE fit.

    Attributes
    ----------
    embedding : (N, d) array
        The final ``Y``.
    kl_divergence : 0-d array
        ``KL(P || Q)`` of the final embedding (unexaggerated ``P``).
    n_iter : 0-d int64 array
        Gradient steps taken (scikit-learn's ``n_iter_`` is the index of the last one,
        ``n_iter - 1``).
    learning_rate : 0-d array
        The step size used (``"auto"`` resolved).
    kl_trace : (n_checks,) array
        The objective at each check (every ``n_iter_check`` steps), before that step's
        update: ``KL(alpha P || Q)`` during the exaggeration phase (what scikit-learn's
        ``verbose=2`` prints), ``KL(P || Q)`` after it.
    """

    embedding: Any
    kl_divergence: Any
    n_iter: Any
    learning_rate: Any
    kl_trace: Any


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (scikit-learn's Cython keeps these in ``float``)."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _points(name, A, check_finite, meaning):
    """A 2-D float array of at least two rows."""
    require_real_floating(name, A)
    if A.ndim != 2 or A.shape[0] < 2:
        raise ValueError(f"{name} must have shape {meaning} with N >= 2, got {tuple(A.shape)}")
    if check_finite:
        require_finite(name, A)


def _embedding_inputs(P, Y, check_finite, others=()):
    """Validate ``P (N, N) >= 0`` and ``Y (N, d)`` (and cotangents); return ``xp``."""
    _points("Y", Y, check_finite, "(N, d)")
    require_real_floating("P", P)
    named = {"P": P, "Y": Y, **dict(others)}
    for name, arr in others:
        require_real_floating(name, arr)
    xp, _ = get_namespace(*named.values())
    require_same_dtype(**named)
    n = Y.shape[0]
    if tuple(P.shape) != (n, n):
        raise ValueError(f"P must have shape (N, N) = ({n}, {n}) with N = Y.shape[0], "
                         f"got {tuple(P.shape)}")
    if check_finite:
        require_finite("P", P)
    if not bool(xp.all(P >= 0)):
        raise ValueError("P must be non-negative (joint probabilities)")
    return xp


# ---------------------------------------------------------------------------
# Distances and kernels
# ---------------------------------------------------------------------------


def _off_diagonal(xp, n, dtype, device):
    return 1.0 - xp.eye(n, dtype=dtype, device=device)


def _gram_distances(xp, X):
    r"""``d_ij = n_i + n_j - 2 <x_i, x_j>`` of the centred rows, clipped at 0 (one GEMM).

    Centring first keeps the cancellation at the scale of the data's spread, not of its
    distance from the origin.
    """
    Xc = X - xp.mean(X, axis=0)
    sq = xp.sum(Xc * Xc, axis=1)
    D = xp.clip(sq[:, None] + sq[None, :] - 2.0 * (Xc @ xp.matrix_transpose(Xc)), min=0.0)
    return D * _off_diagonal(xp, X.shape[0], X.dtype, X.device)


def _coordinate_distances(xp, Y):
    r"""``d_ij = \sum_k (y_ik - y_jk)^2`` coordinate by coordinate (scipy's ``pdist``).

    An embedding has few coordinates, so exact differences cost what the Gram form costs
    and avoid its cancellation, which the optimiser would amplify.
    """
    D = xp.zeros((Y.shape[0], Y.shape[0]), dtype=Y.dtype, device=Y.device)
    for k in range(Y.shape[1]):
        diff = Y[:, k, None] - Y[None, :, k]
        D = D + diff * diff
    if not bool(xp.isfinite(xp.max(D))):  # D >= 0: its maximum is finite iff every entry is
        raise ValueError("Y is too spread out: squared distances between its rows overflow")
    return D


def _squared_distances_vjp(xp, Y, T):
    r"""``dL/dy_i = 2 \sum_j T_ij (y_i - y_j)`` for ``d_ij = ||y_i - y_j||^2``, where
    ``T = \bar D + \bar D^T`` (symmetric) holds the cotangents of both orders of each pair.

    Differences coordinate by coordinate, as :func:`_coordinate_distances`.
    """
    columns = [xp.sum(T * (Y[:, k, None] - Y[None, :, k]), axis=1) for k in range(Y.shape[1])]
    return 2.0 * xp.stack(columns, axis=1)


class _Kernel(NamedTuple):
    """``w`` (zero diagonal), ``Q = w / Z`` and ``K = (1 + d / nu)^{-1}``."""

    w: Any
    Q: Any
    K: Any


def _student_t(xp, Y, dof) -> _Kernel:
    D = _coordinate_distances(xp, Y)
    base = 1.0 + D / dof
    # scikit-learn's order: base ** exponent, which for nu = 1 is an exact reciprocal.
    w = base ** (-(dof + 1.0) / 2.0) * _off_diagonal(xp, Y.shape[0], Y.dtype, Y.device)
    Z = xp.sum(w)
    if not bool(Z > 0):
        raise ValueError("every Student-t weight of Y underflows to 0: Y is too spread out "
                         f"for dof = {dof}")
    K = w if dof == 1.0 else 1.0 / base
    return _Kernel(w, w / Z, K)


def _kl_value(xp, P, Q, floor):
    """``sum_{i != j} p log(max(p, floor) / max(q, floor))``; terms with ``p = 0`` are 0."""
    ratio = xp.maximum(P, floor) / xp.maximum(Q, floor)
    return xp.sum(xp.where(P > 0, P * xp.log(xp.where(P > 0, ratio, 1.0)), 0.0))


def _kl_pair_cotangent(P, kern: _Kernel, dof, scale):
    r"""``T = dKL/dd + (dKL/dd)^T = (nu + 1)/nu K (p - S q)`` for a symmetric ``P`` (``scale`` is
    ``S``): :func:`_squared_distances_vjp`'s argument.

    Written directly rather than through the VJP of ``Q`` with ``dKL/dq = -p/q``, which
    divides by ``q``.
    """
    return ((dof + 1.0) / dof) * kern.K * (P - scale * kern.Q)


# ---------------------------------------------------------------------------
# P: the perplexity search
# ---------------------------------------------------------------------------


def _power_of_two_scale(xp, Xc):
    """``2^-e`` with ``max |Xc| 2^-e`` in ``[1/2, 1)``: exact, and no distance overflows."""
    largest = float(xp.max(xp.abs(Xc)))
    return math.ldexp(1.0, -math.frexp(largest)[1]) if largest > 0 else 1.0


def _conditional(xp, D, target, tol, max_steps):
    r"""Row-wise bisection on ``beta_i`` for ``H_i(beta_i) = target``, all rows at once.

    scikit-learn's search per row: ``beta = 1``; doubled (halved) while no upper (lower)
    bracket is known, then bisected; stop when ``|H - target| <= tol`` or after
    ``max_steps`` evaluations, keeping the last evaluated row. Each row's smallest
    distance ``m_i`` is subtracted before exponentiating (``p_{j|i}`` and
    ``H = log sum e^{-beta (d - m)} + beta sum_j p_{j|i} (d_ij - m_i)`` are unchanged), so
    that no row sum underflows.
    """
    n = D.shape[0]
    off = _off_diagonal(xp, n, D.dtype, D.device)
    nearest = xp.min(xp.where(off > 0, D, xp.inf), axis=1)
    shifted = (D - nearest[:, None]) * off
    beta = xp.ones(n, dtype=D.dtype, device=D.device)
    low = xp.full(n, -xp.inf, dtype=D.dtype, device=D.device)
    high = xp.full(n, xp.inf, dtype=D.dtype, device=D.device)
    done = xp.zeros(n, dtype=xp.bool, device=D.device)
    C = xp.zeros_like(D)
    for _ in range(max_steps):
        W = xp.exp(-shifted * beta[:, None]) * off
        sums = xp.sum(W, axis=1)
        rows = W / sums[:, None]
        excess = xp.log(sums) + beta * xp.sum(shifted * rows, axis=1) - target
        C = xp.where(done[:, None], C, rows)
        reached = xp.abs(excess) <= tol
        moving = ~(done | reached)
        up = excess > 0  # entropy too large: a narrower Gaussian, larger beta
        low = xp.where(moving & up, beta, low)
        high = xp.where(moving & ~up, beta, high)
        raised = xp.where(xp.isinf(high), 2.0 * beta, (beta + high) / 2.0)
        lowered = xp.where(xp.isinf(low), beta / 2.0, (beta + low) / 2.0)
        beta = xp.where(moving, xp.where(up, raised, lowered), beta)
        done = done | reached
        if bool(xp.all(done)):
            break
    return C


def tsne_affinities(X, *, perplexity=30.0, method="sklearn", tol=1e-5, max_steps=100,
                    floor=MACHINE_EPSILON, check_finite=True) -> TSNEAffinities:
    r"""t-SNE's joint affinities ``P`` of the rows of ``X`` for a given perplexity.

    For each point the precision ``beta_i`` of a Gaussian on the squared distances
    ``d_ij = ||x_i - x_j||^2`` is found by bisection so that the conditional distribution

    .. math::  p_{j|i} = \frac{e^{-\beta_i d_{ij}}}{\sum_{k\ne i} e^{-\beta_i d_{ik}}}

    has entropy ``log(perplexity)`` nats to within ``tol``; then
    ``P = max((C + C^T) / sum(C + C^T), floor)`` off the diagonal, ``P_ii = 0``
    (docs/conventions.rst, section 7.1). Duplicate rows of ``X`` are allowed: their distance
    is 0, the largest affinity. A row whose entropy cannot reach the target within
    ``max_steps`` steps (all its distances equal, say) keeps its last iterate, as in
    scikit-learn.

    Parameters
    ----------
    X : (N, D) array
        Data, one point per row.
    perplexity : float
        ``exp`` of each conditional's entropy; in ``(1, N - 1]``. scikit-learn's default 30.
    method : {"sklearn", "plain"}
        ``"sklearn"``: scikit-learn's ``_binary_search_perplexity`` conventions: the squared
        distances, the perplexity and ``tol`` rounded to float32, ``beta`` starting at 1
        in units of the squared distances. ``"plain"``: the input's precision, ``X``
        centred and scaled by a power of two into ``[-1, 1)`` first (exact; no overflow,
        and ``P`` is invariant under ``X -> 2^k X``).
    tol : float
        Entropy tolerance in nats (scikit-learn: ``1e-5``).
    max_steps : int
        Bisection steps per row (scikit-learn: 100).
    floor : float
        Lower bound of the off-diagonal ``P`` (scikit-learn: ``MACHINE_EPSILON``, float64's
        machine epsilon); 0 for none.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity in ``X``.

    Returns
    -------
    TSNEAffinities
        ``P`` and the conditional ``C`` (row ``i`` is ``p_{.|i}``), ``(N, N)``, zero
        diagonals, the dtype of ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.embedding import tsne_affinities
    >>> X = np.random.default_rng(0).standard_normal((10, 3))
    >>> P, C = tsne_affinities(X, perplexity=4.0)
    >>> bool(np.allclose(P, P.T)), bool(np.isclose(P.sum(), 1.0))
    (True, True)
    >>> H = -np.sum(C * np.log(np.where(C > 0, C, 1.0)), axis=1)
    >>> bool(np.allclose(H, np.log(4.0), atol=1e-5))
    True
    """
    _points("X", X, check_finite, "(N, D)")
    xp, _ = get_namespace(X)
    n = X.shape[0]
    perplexity = require_number("perplexity", perplexity, 1.0, n - 1, low_open=True,
                                why="a row's entropy is at most log(N - 1)")
    require_choice("method", method, AFFINITY_METHODS)
    tol = require_number("tol", tol, 0.0, low_open=True)
    max_steps = require_integer("max_steps", max_steps, 1)
    floor = require_number("floor", floor, 0.0)
    if method == "plain":
        Xc = X - xp.mean(X, axis=0)
        D = _gram_distances(xp, Xc * _power_of_two_scale(xp, Xc))
        C = _conditional(xp, D, math.log(perplexity), tol, max_steps)
    else:
        D32 = xp.astype(_gram_distances(xp, X), xp.float32)
        if not bool(xp.all(xp.isfinite(D32))):
            raise ValueError("the squared distances of X overflow float32 (method='sklearn' "
                             "rounds them to float32 as scikit-learn does): rescale X or use "
                             "method='plain'")
        D = xp.astype(D32, X.dtype)
        C = _conditional(xp, D, math.log(_float32(perplexity)), _float32(tol), max_steps)
    S = C + xp.matrix_transpose(C)
    P = xp.maximum(S / xp.sum(S), floor) * _off_diagonal(xp, n, X.dtype, X.device)
    return TSNEAffinities(P, C)


# ---------------------------------------------------------------------------
# Q and the KL divergence
# ---------------------------------------------------------------------------


def _check_dof(dof):
    return require_number("dof", dof, 0.0, low_open=True)


def student_t_affinities(Y, *, dof=1.0, check_finite=True):
    r"""t-SNE's Student-t affinities ``Q`` of the rows of ``Y``.

    .. math::  q_{ij} = \frac{w_{ij}}{\sum_{k\ne l} w_{kl}},\qquad
               w_{ij} = \Bigl(1 + \frac{\lVert y_i - y_j\rVert^2}{\nu}\Bigr)^{-\frac{\nu+1}2},
               \quad q_{ii} = 0,

    scikit-learn's kernel (``nu = dof``; docs/conventions.rst, section 7.1). Coincident rows
    have the largest affinity, ``w = 1``.

    Parameters
    ----------
    Y : (N, d) array
    dof : float
        Degrees of freedom ``nu > 0`` (scikit-learn: ``max(d - 1, 1)``; van der Maaten and
        Hinton, and openTSNE: 1).
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity in ``Y``.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.embedding import student_t_affinities
    >>> Q = student_t_affinities(np.array([[0.0], [1.0], [3.0]]))
    >>> w = 1 / (1 + np.array([1.0, 9.0, 4.0]))  # pairs (0, 1), (0, 2), (1, 2)
    >>> bool(np.isclose(Q[0, 2], w[1] / (2 * w.sum())))
    True
    """
    _points("Y", Y, check_finite, "(N, d)")
    xp, _ = get_namespace(Y)
    return _student_t(xp, Y, _check_dof(dof)).Q


def student_t_affinities_vjp(Y, G, *, dof=1.0, check_finite=True):
    r"""Cotangent ``(Y,)`` of :func:`student_t_affinities` for ``G = dL/dQ``.

    With ``<G, Q> = sum_ij G_ij q_ij`` and ``K = (1 + d/nu)^{-1}``: ``dL/dw_ij = (G_ij -
    <G, Q>) / Z`` and ``dw/dd = -(nu + 1)/(2 nu) w K``, so
    ``dL/dd_ij = -(nu + 1)/(2 nu) K_ij q_ij (G_ij - <G, Q>)``, then
    ``dL/dy_i = 2 sum_j (dL/dd_ij + dL/dd_ji)(y_i - y_j)`` (docs/blocks/embedding.rst).
    """
    _points("Y", Y, check_finite, "(N, d)")
    require_real_floating("G", G)
    xp, _ = get_namespace(Y, G)
    require_same_dtype(Y=Y, G=G)
    n = Y.shape[0]
    if tuple(G.shape) != (n, n):
        raise ValueError(f"G must have the output's shape ({n}, {n}), got {tuple(G.shape)}")
    if check_finite:
        require_finite("G", G)
    dof = _check_dof(dof)
    kern = _student_t(xp, Y, dof)
    D_bar = (-(dof + 1.0) / (2.0 * dof)) * kern.K * kern.Q * (G - xp.sum(G * kern.Q))
    return StudentTCotangents(_squared_distances_vjp(xp, Y, D_bar + xp.matrix_transpose(D_bar)))


def tsne_kl(P, Y, *, dof=1.0, floor=MACHINE_EPSILON, check_finite=True):
    r"""The t-SNE objective ``KL(P || Q)`` of an embedding ``Y``, a 0-d array.

    .. math::  \mathrm{KL} = \sum_{i\ne j} p_{ij} \log\frac{\max(p_{ij}, f)}{\max(q_{ij}, f)},

    ``Q`` of :func:`student_t_affinities`, ``f = floor`` (scikit-learn's
    ``MACHINE_EPSILON``; 0 for the plain divergence), terms with ``p_ij = 0`` are 0 and the
    diagonal of ``P`` is ignored (docs/conventions.rst, section 7.1). ``P`` need not be
    symmetric nor sum to 1 (early exaggeration multiplies it).

    Parameters
    ----------
    P : (N, N) array
        Non-negative joint affinities, from :func:`tsne_affinities`; not differentiated.
    Y : (N, d) array
        The embedding.
    dof : float
        Degrees of freedom of the kernel, see :func:`student_t_affinities`.
    floor : float
        Floor of ``p`` and ``q`` inside the logarithm.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity in ``P`` or ``Y``.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.embedding import student_t_affinities, tsne_kl
    >>> Y = np.random.default_rng(0).standard_normal((6, 2))
    >>> float(tsne_kl(student_t_affinities(Y), Y)) < 1e-12  # Q is its own best fit
    True
    """
    xp = _embedding_inputs(P, Y, check_finite)
    floor = require_number("floor", floor, 0.0)
    kern = _student_t(xp, Y, _check_dof(dof))
    return _kl_value(xp, P * _off_diagonal(xp, Y.shape[0], Y.dtype, Y.device), kern.Q, floor)


def tsne_kl_vjp(P, Y, g, *, dof=1.0, floor=MACHINE_EPSILON, check_finite=True):
    r"""Cotangents ``(P, Y)`` of :func:`tsne_kl` for the output cotangent ``g``: the t-SNE gradient.

    ``P`` is data: its cotangent is ``None``. With ``S = sum_{i != j} p_ij`` and
    ``P~ = (P + P^T) / 2``,

    .. math::  \frac{\partial\,\mathrm{KL}}{\partial y_i} = \frac{2(\nu+1)}{\nu} \sum_j
               (\tilde p_{ij} - S q_{ij}) \Bigl(1 + \frac{\lVert y_i - y_j\rVert^2}{\nu}\Bigr)^{-1}
               (y_i - y_j),

    the derivative of the KL without the floor (which only differs where some
    ``q_ij < floor``; docs/blocks/embedding.rst). For ``nu = 1`` and ``S = 1`` this is
    scikit-learn's ``_kl_divergence`` gradient; for ``nu != 1`` scikit-learn weighs the
    pairs by ``w_ij`` instead of ``(1 + d_ij/nu)^{-1}``, which is not the gradient of its
    objective (see :func:`tsne`, ``gradient``).
    """
    xp = _embedding_inputs(P, Y, check_finite, (("g", g),))
    if tuple(g.shape) != ():
        raise ValueError(f"g must be a 0-d array (the cotangent of the KL), got shape "
                         f"{tuple(g.shape)}")
    require_number("floor", floor, 0.0)
    dof = _check_dof(dof)
    kern = _student_t(xp, Y, dof)
    P = P * _off_diagonal(xp, Y.shape[0], Y.dtype, Y.device)
    T = _kl_pair_cotangent((P + xp.matrix_transpose(P)) / 2.0, kern, dof, xp.sum(P))
    return TSNEKLCotangents(None, g * _squared_distances_vjp(xp, Y, T))


# ---------------------------------------------------------------------------
# The optimiser
# ---------------------------------------------------------------------------


class _Schedule(NamedTuple):
    """The optimiser's settings shared by both phases."""

    learning_rate: float
    min_gain: float
    min_grad_norm: float
    n_iter_check: int
    dof: float
    gradient: str


def _descend(xp, P_eff, Y, start, stop, momentum, patience, s: _Schedule):
    r"""scikit-learn's ``_gradient_descent`` for steps ``start <= i < stop``.

    Per step: gradient with weights ``(P_eff - Q)``; gains ``+0.2`` where the update and
    the gradient disagree in sign, ``*0.8`` elsewhere, at least ``min_gain``;
    ``update = momentum update - lr gains grad``. Every ``n_iter_check`` steps: the
    objective (before the update) joins the trace, and the descent stops when it has not
    improved for more than ``patience`` steps or the norm of ``gains * grad`` is at most
    ``min_grad_norm``. Returns ``(Y, index of the last step or start - 1, trace)``.
    """
    update = xp.zeros_like(Y)
    gains = xp.ones_like(Y)
    best_error, best_iter, last, trace = math.inf, start, start - 1, []
    for i in range(start, stop):
        last = i
        kern = _student_t(xp, Y, s.dof)
        if s.gradient == "sklearn":
            kern = kern._replace(K=kern.w)
        grad = _squared_distances_vjp(xp, Y, _kl_pair_cotangent(P_eff, kern, s.dof, 1.0))
        check = (i + 1) % s.n_iter_check == 0
        if check:
            error = float(_kl_value(xp, P_eff, kern.Q, MACHINE_EPSILON))
            trace.append(error)
        gains = xp.clip(xp.where(update * grad < 0.0, gains + 0.2, gains * 0.8), min=s.min_gain)
        grad = grad * gains
        update = momentum * update - s.learning_rate * grad
        Y = Y + update
        if check:
            if error < best_error:
                best_error, best_iter = error, i
            elif i - best_iter > patience:
                break
            if float(xp.linalg.vector_norm(grad)) <= s.min_grad_norm:
                break
    return Y, last, trace


def _resolve_learning_rate(learning_rate, n, early_exaggeration):
    if learning_rate == "auto":
        return max(n / early_exaggeration / 4.0, 50.0)
    return require_number("learning_rate", learning_rate, 0.0, low_open=True, why="or 'auto'")


def tsne(X, Y0, *, perplexity=30.0, early_exaggeration=12.0, learning_rate="auto",
         max_iter=1000, n_iter_without_progress=300, min_grad_norm=1e-7, dof=1.0,
         exaggeration_iter=250, momentum=(0.5, 0.8), min_gain=0.01, n_iter_check=50,
         gradient="kl", affinity_method="sklearn", check_finite=True) -> TSNEResult:
    r"""Exact t-SNE of the rows of ``X`` from the initial embedding ``Y0``: scikit-learn's optimiser.

    ``P = tsne_affinities(X, perplexity=perplexity, method=affinity_method).P``, then
    gradient descent with momentum and per-coordinate gains on ``KL(P || Q)``
    (docs/conventions.rst, section 7.1):

    1. ``exaggeration_iter`` steps with ``P`` multiplied by ``early_exaggeration`` in the
       attraction (weights ``alpha p_ij - q_ij``) and momentum ``momentum[0]``;
    2. steps up to ``max_iter`` in all with ``P`` and momentum ``momentum[1]``, the
       update and the gains reset.

    Each step: ``grad`` the gradient of :func:`tsne_kl_vjp` (weights ``alpha p - q``),
    ``gains = max(gains + 0.2 if update * grad < 0 else 0.8 gains, min_gain)``,
    ``update = m update - learning_rate gains grad``, ``Y += update``. Every
    ``n_iter_check`` steps a phase stops when the objective has not improved for more
    than ``n_iter_without_progress`` steps (phase 1: ``exaggeration_iter``) or when
    ``||gains * grad|| <= min_grad_norm``. With the defaults and ``dof = 1`` this is
    ``sklearn.manifold.TSNE(method="exact", init=Y0)`` (``n_components = d``) step for
    step, up to rounding, which the optimiser amplifies (docs/blocks/embedding.rst says
    how far the trajectories agree).

    Parameters
    ----------
    X : (N, D) array
        Data.
    Y0 : (N, d) array
        Initial embedding (scikit-learn's ``init`` array; its ``"random"`` is
        ``1e-4 * standard normal``). Coincident rows of ``Y0`` separate unless the
        corresponding rows of ``X`` coincide too; an all-equal ``Y0`` has a zero
        gradient and stays (each phase stops at its first check).
    perplexity, affinity_method : float, str
        Of :func:`tsne_affinities` (``method``).
    early_exaggeration : float
        ``alpha >= 1`` (scikit-learn: 12).
    learning_rate : float or "auto"
        ``"auto"``: ``max(N / early_exaggeration / 4, 50)`` (scikit-learn's; openTSNE's
        ``N / early_exaggeration`` is for a gradient 4 times smaller).
    max_iter : int
        Total steps, at least ``exaggeration_iter`` (scikit-learn: 1000).
    n_iter_without_progress : int
        Patience of the second phase, in steps (scikit-learn: 300).
    min_grad_norm : float
        scikit-learn: ``1e-7``.
    dof : float
        Degrees of freedom of the kernel (van der Maaten's 1; scikit-learn uses
        ``max(d - 1, 1)``).
    exaggeration_iter : int
        Length of the first phase (scikit-learn's ``_EXPLORATION_MAX_ITER``: 250).
    momentum : (float, float)
        Of the two phases (scikit-learn: 0.5, 0.8).
    min_gain : float
        scikit-learn: 0.01.
    n_iter_check : int
        Steps between checks (scikit-learn's ``_N_ITER_CHECK``: 50).
    gradient : {"kl", "sklearn"}
        ``"kl"``: the gradient of the objective. ``"sklearn"``: scikit-learn's pair weight
        ``w_ij`` in place of ``(1 + d_ij/nu)^{-1}``; the two agree for ``dof = 1``, and
        ``dof = d - 1, gradient="sklearn"`` reproduces scikit-learn for ``d >= 3``.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity in ``X`` or ``Y0``.

    Returns
    -------
    TSNEResult
        ``embedding, kl_divergence, n_iter, learning_rate, kl_trace``.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.embedding import tsne
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (10, 4)), rng.normal(8, 1, (10, 4))])
    >>> fit = tsne(X, 1e-4 * rng.standard_normal((20, 2)), perplexity=5.0, max_iter=300)
    >>> int(fit.n_iter), float(fit.learning_rate)
    (300, 50.0)
    >>> Y = fit.embedding  # every point's nearest neighbour is in its own cluster
    >>> D = np.sum((Y[:, None] - Y[None]) ** 2, axis=-1) + np.diag(np.full(20, np.inf))
    >>> bool(np.all((D.argmin(axis=1) < 10) == (np.arange(20) < 10)))
    True
    """
    _points("X", X, check_finite, "(N, D)")
    _points("Y0", Y0, check_finite, "(N, d)")
    xp, _ = get_namespace(X, Y0)
    require_same_dtype(X=X, Y0=Y0)
    n = X.shape[0]
    if Y0.shape[0] != n:
        raise ValueError(f"Y0 must have one row per row of X ({n}), got shape {tuple(Y0.shape)}")
    early_exaggeration = require_number("early_exaggeration", early_exaggeration, 1.0)
    exaggeration_iter = require_integer("exaggeration_iter", exaggeration_iter, 0)
    max_iter = require_integer("max_iter", max_iter, max(exaggeration_iter, 1))
    require_integer("n_iter_without_progress", n_iter_without_progress)
    schedule = _Schedule(
        _resolve_learning_rate(learning_rate, n, early_exaggeration),
        require_number("min_gain", min_gain, 0.0),
        require_number("min_grad_norm", min_grad_norm, 0.0),
        require_integer("n_iter_check", n_iter_check, 1), _check_dof(dof),
        require_choice("gradient", gradient, GRADIENTS))
    if len(momentum) != 2:
        raise ValueError(f"momentum must be a pair (exaggeration phase, final), got {momentum!r}")
    momenta = [require_number("momentum", m, 0.0, 1.0) for m in momentum]
    P = tsne_affinities(X, perplexity=perplexity, method=affinity_method, check_finite=False).P
    Y, last, early = _descend(xp, early_exaggeration * P, Y0, 0, exaggeration_iter, momenta[0],
                              exaggeration_iter, schedule)
    Y, last, final = _descend(xp, P, Y, last + 1, max_iter, momenta[1], n_iter_without_progress,
                              schedule)
    kl = _kl_value(xp, P, _student_t(xp, Y, schedule.dof).Q, MACHINE_EPSILON)
    return TSNEResult(Y, kl, xp.asarray(last + 1, dtype=xp.int64, device=Y.device),
                      xp.asarray(schedule.learning_rate, dtype=Y.dtype, device=Y.device),
                      xp.asarray(early + final, dtype=Y.dtype, device=Y.device))
