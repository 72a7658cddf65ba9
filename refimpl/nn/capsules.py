r"""Capsule networks (Sabour et al., 2017): the squash non-linearity and dynamic routing, with VJPs.

Convention (docs/conventions.rst, section 4.10): capsules are the last axis;
``squash(s) = |s|^2 / (1 + |s|^2) s / |s|`` without an epsilon (``squash(0) = 0``,
evaluated without overflow for any finite ``s``); ``dynamic_routing`` is
Procedure 1 of the paper on predictions ``u_hat[..., i, j, :]`` (input
capsule ``i``, parent capsule ``j``), the coupling coefficients a softmax
over the parents ``j``, the logits starting at 0; its VJP runs back through
the unrolled iterations.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._results import cotangent_type
from .._validation import require_finite, require_real_floating, require_same_dtype
from ..backend import get_namespace
from ._unfold import require_cotangent
from .categorical import probabilities, softmax_backward

__all__ = ["dynamic_routing", "dynamic_routing_vjp", "squash", "squash_vjp"]

SquashCotangents = cotangent_type("SquashCotangents", "s")
RoutingCotangents = cotangent_type("RoutingCotangents", "u_hat")


# -- squash ------------------------------------------------------------------------------------


def _norm(xp, s):
    """``|s|`` over the last axis, scaled by the largest entry (no overflow, no underflow)."""
    big = xp.max(xp.abs(s), axis=-1, keepdims=True)
    safe = xp.where(big > 0, big, 1.0)
    return big * xp.sqrt(xp.sum((s / safe) ** 2, axis=-1, keepdims=True))


class _Squash(NamedTuple):
    """``v = f(n) s`` with ``n = |s|``: the pieces the VJP reuses."""

    n: Any       # |s|, keepdims
    f: Any       # n / (1 + n^2)
    slope: Any   # n f'(n) = n (1 - n^2) / (1 + n^2)^2


def _squash_parts(xp, s) -> _Squash:
    r"""``f(n) = n / (1 + n^2)`` and ``n f'(n)`` through ``t = min(n, 1/n)`` (no ``n^2`` formed).

    ``f`` is symmetric under ``n -> 1/n``, so ``f = t / (1 + t^2)``, and
    ``n f'(n) = n (1 - n^2) / (1 + n^2)^2 = \pm t (1 - t^2) / (1 + t^2)^2``, minus for ``n > 1``.
    """
    n = _norm(xp, s)
    t = xp.where(n > 1.0, 1.0 / xp.where(n > 1.0, n, 1.0), n)
    one_plus = 1.0 + t * t
    slope = t * (1.0 - t * t) / (one_plus * one_plus)
    return _Squash(n, t / one_plus, xp.where(n > 1.0, -slope, slope))


def _squash_backward(xp, s, parts: _Squash, g):
    r""":math:`\bar s = f\, G + n f'(n)\, \hat s\, \langle \hat s, G\rangle` with :math:`\hat s = s / n` (0 at ``s = 0``)."""
    unit = s / xp.where(parts.n > 0, parts.n, 1.0)
    return parts.f * g + parts.slope * unit * xp.sum(unit * g, axis=-1, keepdims=True)


def _check_squash(s, check_finite, cotangent=None):
    require_real_floating("s", s)
    xp, _ = get_namespace(s, cotangent)
    if s.ndim < 1:
        raise ValueError("s must have at least one axis (the capsule's components), got a scalar")
    if cotangent is not None:
        require_cotangent(cotangent, tuple(s.shape))
        require_same_dtype(s=s, cotangent=cotangent)
    if check_finite:
        require_finite("s", s)
    return xp


def squash(s, *, check_finite=True):
    r"""The capsule non-linearity over the last axis (Sabour et al., eq. 1).

    .. math::  v = \frac{|s|^2}{1 + |s|^2} \frac{s}{|s|} = \frac{|s|}{1 + |s|^2}\, s,
               \qquad v(0) = 0

    Short vectors shrink to almost zero, long ones to just below unit length.
    No epsilon is added (implementations that put one under the root differ
    from this by about epsilon). Convention: docs/conventions.rst, section 4.10.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import squash
    >>> squash(np.array([[3.0, 4.0], [0.0, 0.0]])).round(12).tolist()  # |v| = 25 / 26
    [[0.576923076923, 0.769230769231], [0.0, 0.0]]
    """
    xp = _check_squash(s, check_finite)
    return _squash_parts(xp, s).f * s


def squash_vjp(s, cotangent, *, check_finite=True):
    r"""Cotangent ``(s,)`` of :func:`squash`.

    With :math:`f(n) = n / (1 + n^2)`, :math:`v = f(|s|)\, s`, :math:`n = |s|` and
    :math:`f'(n) = (1 - n^2) / (1 + n^2)^2`:

    .. math::  \bar s = f\, G + n f'(n)\, \hat s\, \langle \hat s, G\rangle,\qquad \hat s = s / |s|,

    which is 0 at ``s = 0`` (the Jacobian there is 0).
    """
    xp = _check_squash(s, check_finite, cotangent)
    return SquashCotangents(_squash_backward(xp, s, _squash_parts(xp, s), cotangent))


# -- dynamic routing ---------------------------------------------------------------------------


class _Iteration(NamedTuple):
    c: Any       # coupling coefficients (..., n_in, n_out): softmax of the logits over j
    s: Any       # weighted sums (..., n_out, d)
    parts: Any   # _Squash of s
    v: Any       # squash(s)


def _route(xp, u_hat, n_iter) -> list[_Iteration]:
    """Procedure 1, every iteration kept (the VJP runs back through them)."""
    b = xp.zeros(u_hat.shape[:-1], dtype=u_hat.dtype, device=u_hat.device)
    trace = []
    for r in range(n_iter):
        c = probabilities(xp, b, -1)
        s = xp.sum(c[..., None] * u_hat, axis=-3)
        parts = _squash_parts(xp, s)
        v = parts.f * s
        trace.append(_Iteration(c, s, parts, v))
        if r + 1 < n_iter:  # the last agreement update does not reach the output
            b = b + xp.sum(u_hat * v[..., None, :, :], axis=-1)
    return trace


def _check_routing(u_hat, n_iter, check_finite, cotangent=None):
    require_real_floating("u_hat", u_hat)
    xp, _ = get_namespace(u_hat, cotangent)
    if u_hat.ndim < 3:
        raise ValueError(f"u_hat must have shape (..., n_in, n_out, d), got {tuple(u_hat.shape)}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter must be a positive int, got {n_iter!r}")
    if cotangent is not None:
        require_cotangent(cotangent, tuple(u_hat.shape[:-3]) + tuple(u_hat.shape[-2:]))
        require_same_dtype(u_hat=u_hat, cotangent=cotangent)
    if check_finite:
        require_finite("u_hat", u_hat)
    return xp


def dynamic_routing(u_hat, *, n_iter=3, check_finite=True):
    r"""Routing by agreement (Sabour et al., 2017, Procedure 1).

    With logits :math:`b_{ij} = 0`, repeat ``n_iter`` times:

    .. math::  c_{ij} = \operatorname{softmax}_j(b_{ij}),\quad
               s_j = \sum_i c_{ij}\, \hat u_{j|i},\quad
               v_j = \operatorname{squash}(s_j),\quad
               b_{ij} \leftarrow b_{ij} + \langle \hat u_{j|i}, v_j\rangle

    and return the last :math:`v`. Convention: docs/conventions.rst, section 4.10.

    Parameters
    ----------
    u_hat : (..., n_in, n_out, d) array
        Predictions :math:`\hat u_{j|i} = W_{ij} u_i` of every input capsule
        ``i`` for every parent capsule ``j``.
    n_iter : int
        Routing iterations (the paper uses 3); with 1, :math:`c_{ij} = 1/n_{out}`.
    check_finite : bool
        Raise ValueError on NaN or infinity in ``u_hat``.

    Returns
    -------
    v : (..., n_out, d) array

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import dynamic_routing, squash
    >>> u_hat = np.random.default_rng(0).standard_normal((4, 2, 3))
    >>> bool(np.allclose(dynamic_routing(u_hat, n_iter=1), squash(u_hat.sum(axis=0) / 2)))
    True
    """
    xp = _check_routing(u_hat, n_iter, check_finite)
    return _route(xp, u_hat, n_iter)[-1].v


def dynamic_routing_vjp(u_hat, cotangent, *, n_iter=3, check_finite=True):
    r"""Cotangent ``(u_hat,)`` of :func:`dynamic_routing`, through the unrolled iterations.

    Backward from :math:`\bar v^{(R)} = G`, :math:`\bar b = 0`, for
    :math:`r = R, \dots, 1` (docs, section 4.10):

    .. math::  \bar v^{(r)} \mathrel{+}= \sum_i \bar b_{ij} \hat u_{j|i},\ \
               \bar{\hat u}_{j|i} \mathrel{+}= \bar b_{ij} v^{(r)}_j \ (r < R);\qquad
               \bar s^{(r)} = \operatorname{squash}'(s^{(r)})^T \bar v^{(r)};\qquad
               \bar{\hat u}_{j|i} \mathrel{+}= c^{(r)}_{ij} \bar s^{(r)}_j,\ \
               \bar b \mathrel{+}= \operatorname{softmax}'\big(\langle \hat u_{j|i}, \bar s^{(r)}_j\rangle\big)

    where the softmax backward is :math:`c \odot (\bar c - \sum_j c \bar c)` over the parents.
    """
    xp = _check_routing(u_hat, n_iter, check_finite, cotangent)
    trace = _route(xp, u_hat, n_iter)
    du = xp.zeros_like(u_hat)
    db = None  # the cotangent of the logits b entering the iteration below
    g_v = cotangent
    for it in reversed(trace):
        if db is not None:  # b_next = b + <u_hat, v>
            g_v = xp.sum(db[..., None] * u_hat, axis=-3)
            du = du + db[..., None] * it.v[..., None, :, :]
        g_s = _squash_backward(xp, it.s, it.parts, g_v)
        du = du + it.c[..., None] * g_s[..., None, :, :]
        db_here = softmax_backward(xp, it.c, xp.sum(u_hat * g_s[..., None, :, :], axis=-1))
        db = db_here if db is None else db + db_here
    return RoutingCotangents(du)
