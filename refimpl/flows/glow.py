r"""Glow's invertible 1x1 convolution with the LU parametrisation ``W = P L (U + diag(s))``.

Convention (docs/conventions.rst, section 3.1). The ``k = 1`` case of
:func:`refimpl.conv.periodic_conv`: ``Z[..., :, h, w] = W X[..., :, h, w]``
per pixel, with ``W = P L~ (U~ + diag(s))``, ``L~`` unit lower and ``U~``
strictly upper triangular (Kingma and Dhariwal 2018). No FFT is needed:
``log|det| = H W sum log|s|``. The derivations of every VJP are in
``docs/blocks/flows.rst``.
"""

from __future__ import annotations

from .._results import SlogdetResult, cotangent_type
from .._validation import require_ndim, require_real_floating, require_same_dtype
from ..backend import device, get_namespace

__all__ = [
    "glow_conv1x1",
    "glow_conv1x1_inverse",
    "glow_conv1x1_inverse_vjp",
    "glow_conv1x1_slogdet",
    "glow_conv1x1_slogdet_vjp",
    "glow_conv1x1_vjp",
    "glow_lu_weight",
    "glow_lu_weight_vjp",
]

GlowCotangents = cotangent_type("GlowCotangents", "X L U s")
GlowInverseCotangents = cotangent_type("GlowInverseCotangents", "Z L U s")
GlowSlogdetCotangents = cotangent_type("GlowSlogdetCotangents", "s")
LUWeightCotangents = cotangent_type("LUWeightCotangents", "L U s")


def _check_perm(perm, c):
    """Validate a permutation of ``range(c)``; return it as a tuple (or None)."""
    if perm is None:
        return None
    try:
        perm = tuple(int(i) for i in perm)
    except (TypeError, ValueError):
        raise TypeError(f"perm must be a sequence of ints, got {perm!r}") from None
    if sorted(perm) != list(range(c)):
        raise ValueError(f"perm must be a permutation of range({c}), got {perm}")
    return perm


def _perm_sign(perm):
    """``det P``: the parity of the permutation (count of even-length cycles)."""
    seen, sign = set(), 1
    for start in range(len(perm)):
        length, i = 0, start
        while i not in seen:
            seen.add(i)
            i, length = perm[i], length + 1
        if length and length % 2 == 0:
            sign = -sign
    return sign


def _permute_rows(xp, A, perm):
    """``P A`` with ``(P A)[i] = A[perm[i]]``."""
    if perm is None:
        return A
    return xp.take(A, xp.asarray(perm, dtype=xp.int64, device=device(A)), axis=0)


def _unpermute_rows(xp, A, perm):
    """``P^T A``."""
    if perm is None:
        return A
    inverse = [0] * len(perm)
    for i, j in enumerate(perm):
        inverse[j] = i
    return _permute_rows(xp, A, inverse)


def _lu_inputs(L, U, s, perm, others=()):
    named = {"L": L, "U": U, "s": s, **dict(others)}
    for name, arr in named.items():
        if arr is None or not hasattr(arr, "shape"):
            raise TypeError(f"{name} must be an array, got {type(arr).__name__}")
        require_real_floating(name, arr)
    xp, _ = get_namespace(*named.values())
    require_same_dtype(**named)
    require_ndim("s", s, 1, "(c,)")
    c = s.shape[0]
    for name, arr in (("L", L), ("U", U)):
        if tuple(arr.shape) != (c, c):
            raise ValueError(f"{name} must have shape (c, c) = ({c}, {c}), got {tuple(arr.shape)}")
    return xp, _check_perm(perm, c)


def _glow_inputs(X, L, U, s, perm, **cotangents):
    if X is None or not hasattr(X, "shape"):
        raise TypeError(f"X must be an array, got {type(X).__name__}")
    xp, perm = _lu_inputs(L, U, s, perm, (("X", X),) + tuple(cotangents.items()))
    c = s.shape[0]
    require_ndim("X", X, 3, "(..., c, H, W)")
    if X.shape[-3] != c:
        raise ValueError(f"X must have shape (..., c, H, W) with c = len(s) = {c}, got {tuple(X.shape)}")
    for name, arr in cotangents.items():
        if tuple(arr.shape) != tuple(X.shape):
            raise ValueError(f"{name} must have the output's shape {tuple(X.shape)}, got {tuple(arr.shape)}")
    return xp, perm


def _lu_factors(xp, L, U, s):
    c = s.shape[0]
    eye = xp.eye(c, dtype=s.dtype, device=device(s))
    return xp.tril(L, k=-1) + eye, xp.triu(U, k=1) + eye * s


def _weight(xp, L, U, s, perm):
    Lt, M = _lu_factors(xp, L, U, s)
    return _permute_rows(xp, Lt @ M, perm)


def glow_lu_weight(L, U, s, *, perm=None):
    r"""Glow's LU-parametrised weight ``W = P L~ (U~ + diag(s))``.

    ``L~ = tril(L, -1) + I`` (unit lower) and ``U~ = triu(U, 1)`` (strictly
    upper): only those entries of ``L`` and ``U`` are parameters. The fixed
    permutation ``P`` is given by ``perm`` (``(P A)[i] = A[perm[i]]``, so
    ``scipy.linalg.lu``'s ``P`` has ``perm = P.argmax(axis=1)``; default
    ``I``). ``det W = det P prod s``.
    """
    xp, perm = _lu_inputs(L, U, s, perm)
    return _weight(xp, L, U, s, perm)


def glow_lu_weight_vjp(L, U, s, G, *, perm=None):
    r"""Cotangents ``(L, U, s)`` of :func:`glow_lu_weight` for ``G = dL/dW``.

    With ``A = P^T G`` and ``M = U~ + diag(s)``: ``dL = tril(A M^T, -1)``,
    ``dU = triu(L~^T A, 1)``, ``ds = diag(L~^T A)``.
    """
    xp, perm = _lu_inputs(L, U, s, perm, (("G", G),))
    c = s.shape[0]
    if tuple(G.shape) != (c, c):
        raise ValueError(f"G must have the output's shape ({c}, {c}), got {tuple(G.shape)}")
    return LUWeightCotangents(*_lu_weight_vjp(xp, L, U, s, perm, G))


def _lu_weight_vjp(xp, L, U, s, perm, dW):
    """``(dL, dU, ds)`` from ``dW`` through ``W = P L~ M``, ``M = U~ + diag(s)``.

    ``A = P^T dW``: ``dL = tril(A M^T, -1)``; ``B = L~^T A``: ``dU = triu(B, 1)``,
    ``ds = diag(B)``.
    """
    Lt, M = _lu_factors(xp, L, U, s)
    A = _unpermute_rows(xp, dW, perm)
    B = xp.matrix_transpose(Lt) @ A
    return xp.tril(A @ xp.matrix_transpose(M), k=-1), xp.triu(B, k=1), xp.linalg.diagonal(B)


def _pixels(xp, X):
    return xp.reshape(X, tuple(X.shape[:-2]) + (X.shape[-2] * X.shape[-1],))


def _batch_matrix_sum(xp, A):
    return xp.sum(A, axis=tuple(range(A.ndim - 2))) if A.ndim > 2 else A


def glow_conv1x1(X, L, U, s, *, perm=None):
    r"""Glow's invertible 1x1 convolution with the LU parametrisation.

    .. math::  Z[..., :, h, w] = W\, X[..., :, h, w],\qquad W = P\,\tilde L\,(\tilde U + \operatorname{diag}(s)),

    the periodic convolution with ``K = embed_kernel(W[:, :, None, None], (H, W))``
    (column-vector convention of PyTorch's ``conv2d``; TF's ``[1, 1, c_in, c_out]``
    kernel is ``W^T``).

    Parameters
    ----------
    X : (..., c, H, W) array
    L, U : (c, c) arrays
        Only the strictly lower part of ``L`` and strictly upper part of ``U`` are used.
    s : (c,) array
        Diagonal of the upper factor.
    perm : sequence of int, optional
        The fixed permutation, see :func:`glow_lu_weight`.

    Examples
    --------
    The weight of ``scipy.linalg.lu``'s factors, applied per pixel:

    >>> import numpy as np, scipy.linalg
    >>> from refimpl.flows import glow_conv1x1, glow_conv1x1_inverse, glow_conv1x1_slogdet
    >>> rng = np.random.default_rng(0)
    >>> W0, X = rng.standard_normal((3, 3)), rng.standard_normal((2, 3, 4, 5))
    >>> P, L, U = scipy.linalg.lu(W0)
    >>> s, perm = np.diag(U), P.argmax(axis=1)
    >>> Z = glow_conv1x1(X, L, U, s, perm=perm)
    >>> np.allclose(Z, np.einsum("oi,bihw->bohw", W0, X))
    True
    >>> np.allclose(glow_conv1x1_inverse(Z, L, U, s, perm=perm), X)
    True
    >>> sign, logabsdet = glow_conv1x1_slogdet(s, (4, 5), perm=perm)
    >>> bool(np.isclose(logabsdet, 20 * np.linalg.slogdet(W0).logabsdet))
    True
    """
    xp, perm = _glow_inputs(X, L, U, s, perm)
    return xp.reshape(_weight(xp, L, U, s, perm) @ _pixels(xp, X), tuple(X.shape))


def glow_conv1x1_vjp(X, L, U, s, G, *, perm=None):
    r"""Cotangents ``(dX, dL, dU, ds)`` of :func:`glow_conv1x1` for ``G = dL/dZ``.

    ``dX = W^T G`` per pixel and ``dW = sum_{batch, pixels} G X^T``, then
    through the factors: ``A = P^T dW``, ``dL = tril(A (U~ + diag s)^T, -1)``,
    ``dU = triu(L~^T A, 1)``, ``ds = diag(L~^T A)``.
    """
    xp, perm = _glow_inputs(X, L, U, s, perm, G=G)
    W = _weight(xp, L, U, s, perm)
    Xp, Gp = _pixels(xp, X), _pixels(xp, G)
    dX = xp.reshape(xp.matrix_transpose(W) @ Gp, tuple(X.shape))
    dW = _batch_matrix_sum(xp, Gp @ xp.matrix_transpose(Xp))
    return GlowCotangents(dX, *_lu_weight_vjp(xp, L, U, s, perm, dW))


def _require_nonzero_s(xp, s):
    if not bool(xp.all(s != 0)):
        i = int(xp.argmin(xp.abs(s)))
        raise ValueError(f"s[{i}] = 0: the 1x1 convolution is singular (det W = det P prod s)")


def glow_conv1x1_inverse(Z, L, U, s, *, perm=None):
    r"""Solve ``glow_conv1x1(X, L, U, s, perm=perm) = Z`` for ``X``: ``X = W^{-1} Z`` per pixel (``solve``).

    Raises ``ValueError`` naming the index when some ``s_i = 0``.
    """
    xp, perm = _glow_inputs(Z, L, U, s, perm)
    _require_nonzero_s(xp, s)
    W = _weight(xp, L, U, s, perm)
    return xp.reshape(xp.linalg.solve(W, _pixels(xp, Z)), tuple(Z.shape))


def glow_conv1x1_inverse_vjp(Z, L, U, s, G, *, perm=None):
    r"""Cotangents ``(dZ, dL, dU, ds)`` of :func:`glow_conv1x1_inverse` for ``G = dL/dX``.

    ``dZ = W^{-T} G`` and ``dW = -sum dZ X^T`` with ``X`` the inverse's output,
    then through the factors as in :func:`glow_conv1x1_vjp`.
    """
    xp, perm = _glow_inputs(Z, L, U, s, perm, G=G)
    _require_nonzero_s(xp, s)
    W = _weight(xp, L, U, s, perm)
    Xp = xp.linalg.solve(W, _pixels(xp, Z))
    dZ = xp.linalg.solve(xp.matrix_transpose(W), _pixels(xp, G))
    dW = -_batch_matrix_sum(xp, dZ @ xp.matrix_transpose(Xp))
    return GlowInverseCotangents(xp.reshape(dZ, tuple(Z.shape)), *_lu_weight_vjp(xp, L, U, s, perm, dW))


def _glow_slogdet_inputs(s, shape, perm, g=None):
    require_real_floating("s", s)
    if g is not None:
        require_real_floating("g", g)
    xp, _ = get_namespace(s, g)
    require_same_dtype(s=s, g=g)
    require_ndim("s", s, 1, "(c,)")
    try:
        H, W = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise TypeError(f"shape must be a pair of ints (H, W), got {shape!r}") from None
    _require_nonzero_s(xp, s)
    return xp, H * W, _check_perm(perm, s.shape[0])


def glow_conv1x1_slogdet(s, shape, *, perm=None):
    r"""Sign and log-absolute-determinant of the 1x1 convolution on an ``H x W`` grid.

    .. math::  \log|\det| = H W \sum_i \log|s_i|,\qquad
               \operatorname{sign} = (\det P \prod_i \operatorname{sign} s_i)^{HW}.

    Returns 0-d arrays ``(sign, logabsdet)``; ``ValueError`` if some ``s_i = 0``.
    """
    xp, hw, perm = _glow_slogdet_inputs(s, shape, perm)
    sign = xp.prod(xp.sign(s)) * float(1 if perm is None else _perm_sign(perm))
    return SlogdetResult(sign * sign if hw % 2 == 0 else sign, float(hw) * xp.sum(xp.log(xp.abs(s))))


def glow_conv1x1_slogdet_vjp(s, g, shape, *, perm=None):
    r"""Cotangent ``(ds,)`` of :func:`glow_conv1x1_slogdet`: ``ds = g H W / s``."""
    xp, hw, _ = _glow_slogdet_inputs(s, shape, perm, g)
    if g.ndim != 0:
        raise ValueError(f"g must be a 0-d array, got shape {tuple(g.shape)}")
    return GlowSlogdetCotangents(g * float(hw) / s)
