r"""Products of Householder reflections, in compact WY form (the FastH algorithm).

Convention (CONVENTIONS.md section 1). The reflectors are the **rows** of
``V`` with shape ``(..., n, d)``; ``H(v) = I - tau v v^T`` with
``tau = 2 / ||v||^2`` by default (so ``H(c v) = H(v)``), or an explicit
LAPACK-style ``tau`` (``tau = 0`` meaning ``H = I``). The product is

.. math::  U = H(v_1) H(v_2) \cdots H(v_n),

``householder_product(V, X)`` returns ``U @ X`` (``H(v_n)`` acts first) and
``transpose=True`` returns ``U^T @ X``. With row ``i`` of ``V`` equal to
column ``i`` of ``tril(A, -1) + I`` and LAPACK's ``tau``, ``U`` is LAPACK's
``Q`` from ``dorgqr`` (and ``torch.linalg.householder_product``).

Compact WY. A block of ``k`` consecutive reflectors with rows ``V_b`` and
parameters ``tau_b`` is

.. math::  B = H_1 \cdots H_k = I - V_b^T T V_b,\qquad
           T = (I + D S)^{-1} D,\quad S = \operatorname{striu}(V_b V_b^T),\ D = \operatorname{diag}(\tau_b),

which is the familiar ``T^{-1} = striu(V_b V_b^T) + diag(1/tau)`` when every
``tau`` is nonzero, and stays well defined (without dlarft's column recurrence)
when some ``tau_i = 0``. ``I + D S`` is unit upper triangular, so its inverse
is exact back substitution. See ``docs/householder.rst`` for the derivation of
the VJP implemented by :func:`householder_product_vjp`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._validation import (
    broadcast_batch,
    require_finite,
    require_ndim,
    require_real_floating,
    require_same_dtype,
    sum_to_shape,
)
from .backend import get_namespace

__all__ = [
    "METHODS",
    "default_block_size",
    "householder_matrix",
    "householder_product",
    "householder_product_vjp",
]

METHODS = ("wy", "sequential", "dense")


def default_block_size(n: int) -> int:
    """Block size used when ``block_size=None``.

    Measured with ``asv_benchmarks`` (float64, one BLAS thread): 32 is within a
    few percent of the best block size for d in 64..1024 and m in 1..256;
    smaller blocks leave BLAS-3 speed unused, larger ones pay ``O(d k^2)``
    for T and the in-block triangle.
    """
    return max(1, min(n, 32))


@dataclass
class _Inputs:
    xp: object
    V: object
    X: object
    tau: object  # always an array here: the default is filled in
    default_tau: bool


def _reflectors(V, tau, check_finite, others=()) -> tuple:
    """Validate ``V`` and ``tau`` (and ``others``); fill in ``tau = 2 / ||v||^2``.

    Returns ``(xp, tau, default_tau)``.
    """
    named = (("V", V), ("tau", tau)) + tuple(others)
    for name, arr in named:
        if arr is not None:
            require_real_floating(name, arr)
    xp, _ = get_namespace(*(arr for _, arr in named))
    require_same_dtype(**{name: arr for name, arr in named})
    require_ndim("V", V, 2, "(..., n, d)")
    if tau is not None and tuple(tau.shape) != tuple(V.shape[:-1]):
        raise ValueError(
            f"tau must have shape V.shape[:-1] = {tuple(V.shape[:-1])}, got {tuple(tau.shape)}"
        )
    if check_finite:
        for name, arr in named:
            if arr is not None:
                require_finite(name, arr)
    if tau is not None:
        return xp, tau, False
    sq_norms = xp.sum(V * V, axis=-1)
    if not bool(xp.all(sq_norms > 0)):
        raise ValueError(
            "V has a zero row: a zero reflector is undefined with the default "
            "tau = 2 / ||v||^2 (pass an explicit tau, with tau = 0 for the identity)"
        )
    return xp, 2.0 / sq_norms, True


def _prepare(V, X, tau, check_finite, G=None) -> _Inputs:
    """Validate the arguments of a product (and its cotangent ``G``)."""
    if X is None or not hasattr(X, "shape"):
        raise TypeError(f"X must be an array, got {type(X).__name__}")
    xp, tau_full, default_tau = _reflectors(V, tau, check_finite, (("X", X), ("G", G)))
    require_ndim("X", X, 2, "(..., d, m)")
    d = V.shape[-1]
    if X.shape[-2] != d:
        raise ValueError(
            f"X must have shape (..., d, m) with d = V.shape[-1] = {d}, got shape {tuple(X.shape)}"
        )
    batch = broadcast_batch(V=V.shape[:-2], X=X.shape[:-2])
    if G is not None:
        expected = batch + (d, X.shape[-1])
        if tuple(G.shape) != expected:
            raise ValueError(f"G must have the output's shape {expected}, got {tuple(G.shape)}")
    return _Inputs(xp, V, X, tau_full, default_tau)


def _check_method(method, block_size, n):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if block_size is None:
        return default_block_size(n)
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    return min(block_size, n)


# ---------------------------------------------------------------------------
# Compact WY blocks
# ---------------------------------------------------------------------------


@dataclass
class _Blocks:
    """Reflectors cut into ``nb`` blocks of ``k`` rows, with their WY factors.

    ``V`` is ``(..., nb, k, d)`` and ``tau`` ``(..., nb, k)``: the last block is
    padded with zero rows and ``tau = 0``, which are identities and leave every
    product unchanged. ``S = striu(V V^T)``, ``Minv = (I + D S)^{-1}``,
    ``T = Minv D``.
    """

    V: object
    tau: object
    S: object
    Minv: object
    T: object


def _wy_blocks(xp, V, tau, k) -> _Blocks:
    n, d = V.shape[-2], V.shape[-1]
    nb = -(-n // k)
    pad = nb * k - n
    if pad:
        dev = V.device
        V = xp.concat([V, xp.zeros(V.shape[:-2] + (pad, d), dtype=V.dtype, device=dev)], axis=-2)
        tau = xp.concat([tau, xp.zeros(tau.shape[:-1] + (pad,), dtype=tau.dtype, device=dev)], axis=-1)
    Vb = xp.reshape(V, V.shape[:-2] + (nb, k, d))
    taub = xp.reshape(tau, tau.shape[:-1] + (nb, k))
    S = xp.triu(Vb @ xp.matrix_transpose(Vb), k=1)
    eye = xp.eye(k, dtype=V.dtype, device=V.device)
    # I + D S is unit upper triangular: LU without pivoting is back substitution.
    Minv = xp.linalg.solve(eye + taub[..., :, None] * S, xp.broadcast_to(eye, S.shape))
    return _Blocks(Vb, taub, S, Minv, Minv * taub[..., None, :])


def _block(blocks: _Blocks, j):
    return blocks.V[..., j, :, :], blocks.T[..., j, :, :]


def _block_order(nb, transpose):
    # U X applies the last block first; U^T X = B_nb^T ... B_1^T X applies the first first.
    return range(nb) if transpose else range(nb - 1, -1, -1)


def _apply_blocks(xp, blocks: _Blocks, X, transpose, keep_inputs=False):
    """Apply all blocks to X; optionally return each block's input and ``V_b X``."""
    nb = blocks.V.shape[-3]
    inputs = []
    for j in _block_order(nb, transpose):
        Vj, Tj = _block(blocks, j)
        A = Vj @ X
        if keep_inputs:
            inputs.append((j, X, A))
        Tj = xp.matrix_transpose(Tj) if transpose else Tj
        X = X - xp.matrix_transpose(Vj) @ (Tj @ A)
    return X, inputs


# ---------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------


def _sequential(xp, V, tau, X, transpose):
    n = V.shape[-2]
    order = range(n) if transpose else range(n - 1, -1, -1)
    for i in order:
        v = V[..., i : i + 1, :]
        X = X - tau[..., i, None, None] * (xp.matrix_transpose(v) @ (v @ X))
    return X


def _matrix(xp, V, tau):
    """Dense ``U = I - V^T T V`` (all reflectors in one WY block)."""
    blocks = _wy_blocks(xp, V, tau, V.shape[-2])
    V1, T1 = _block(blocks, 0)
    d = V.shape[-1]
    return xp.eye(d, dtype=V.dtype, device=V.device) - xp.matrix_transpose(V1) @ (T1 @ V1)


def householder_matrix(V, tau=None, *, check_finite=True):
    r"""The orthogonal matrix ``U = H(v_1) ... H(v_n)``, shape ``(..., d, d)``.

    Formed as one compact WY block, ``U = I - V^T T V`` (the "parallel"
    algorithm); ``O(n^2 d + n d^2)``. Meant for checks and small ``d``:
    :func:`householder_product` never forms ``U``.

    Parameters
    ----------
    V : (..., n, d) array
        Reflectors as rows.
    tau : (..., n) array, optional
        LAPACK-style scalars; default ``2 / ||v_i||^2``.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity.
    """
    xp, tau_full, _ = _reflectors(V, tau, check_finite)
    return _matrix(xp, V, tau_full)


def householder_product(
    V, X, *, tau=None, transpose=False, method="wy", block_size=None, check_finite=True
):
    r"""Apply ``U = H(v_1) H(v_2) ... H(v_n)`` (or ``U^T``) to ``X`` without forming ``U``.

    .. math::  Y = U X \quad\text{or}\quad Y = U^T X,\qquad
               H(v) = I - \tau v v^T,\ \tau = 2 / \lVert v \rVert^2.

    Parameters
    ----------
    V : (..., n, d) array
        Reflectors as **rows**; leading axes are batch axes and broadcast with ``X``'s.
    X : (..., d, m) array
        Right-hand side, same dtype as ``V``.
    tau : (..., n) array, optional
        LAPACK-style scalars (``tau = 0`` is the identity). Default
        ``2 / ||v_i||^2``, under which a zero row of ``V`` is a ``ValueError``.
    transpose : bool
        Return ``U^T X = H(v_n) ... H(v_1) X`` instead.
    method : {"wy", "sequential", "dense"}
        ``"wy"``: blocks of ``block_size`` reflectors in compact WY form, two
        GEMMs per block, ``4 d n m`` flops (the fast path). ``"sequential"``:
        one reflector at a time (BLAS-2; the reference). ``"dense"``: form
        ``U`` (see :func:`householder_matrix`) then one GEMM.
    block_size : int, optional
        Reflectors per WY block; need not divide ``n``. Results do not
        depend on it beyond rounding. Default :func:`default_block_size`.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity in the inputs (as SciPy).

    Returns
    -------
    Y : (..., d, m) array
        Same namespace, device and dtype as the inputs; batch shape is the
        broadcast of ``V``'s and ``X``'s.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.householder import householder_product, householder_matrix
    >>> rng = np.random.default_rng(0)
    >>> V, X = rng.standard_normal((5, 5)), rng.standard_normal((5, 2))
    >>> np.allclose(householder_product(V, X), householder_matrix(V) @ X)
    True
    """
    inp = _prepare(V, X, tau, check_finite)
    xp = inp.xp
    k = _check_method(method, block_size, inp.V.shape[-2])
    if method == "sequential":
        return _sequential(xp, inp.V, inp.tau, inp.X, transpose)
    if method == "dense":
        U = _matrix(xp, inp.V, inp.tau)
        return (xp.matrix_transpose(U) if transpose else U) @ inp.X
    Y, _ = _apply_blocks(xp, _wy_blocks(xp, inp.V, inp.tau, k), inp.X, transpose)
    return Y


# ---------------------------------------------------------------------------
# VJP
# ---------------------------------------------------------------------------


def _block_vjp(xp, Vj, Tj, Minv_j, S_j, tau_j, X_in, A, G, transpose):
    r"""Cotangents of one block ``Y = B X`` (or ``B^T X``), ``B = I - V^T T V``.

    With ``A = V X`` and ``G_v = V G``, let ``(P, Q) = (G_v, A)`` for ``B`` and
    ``(A, G_v)`` for ``B^T``; ``P~ = T^T P = D M^{-T} P``, ``Q~ = T Q``,
    ``C = P~ Q~^T``, ``E = striu(C)``. Then (docs/householder.rst)

    * ``dX = G - V^T P~`` (``B``) or ``G - V^T Q~`` (``B^T``),
    * ``dV = -(Q~ G^T + P~ X^T) + (E + E^T) V`` (roles of P~, Q~ swapped for ``B^T``),
    * ``dtau_i = [M^{-T} P]_i . [S Q~ - Q]_i`` (row-wise dot products).
    """
    mT = xp.matrix_transpose
    Gv = Vj @ G
    P, Q = (A, Gv) if transpose else (Gv, A)
    W = mT(Minv_j) @ P
    Pt = tau_j[..., :, None] * W
    Qt = Tj @ Q
    E = xp.triu(Pt @ mT(Qt), k=1)
    first, second = (Pt, Qt) if transpose else (Qt, Pt)
    dV = (E + mT(E)) @ Vj - first @ mT(G) - second @ mT(X_in)
    dtau = xp.sum(W * (S_j @ Qt - Q), axis=-1)
    dX = G - mT(Vj) @ second
    return dV, dtau, dX


def _wy_vjp(xp, V, tau, X, G, transpose, k):
    blocks = _wy_blocks(xp, V, tau, k)
    _, inputs = _apply_blocks(xp, blocks, X, transpose, keep_inputs=True)
    dV_blocks, dtau_blocks = {}, {}
    for j, X_in, A in reversed(inputs):
        Vj, Tj = _block(blocks, j)
        dV_blocks[j], dtau_blocks[j], G = _block_vjp(
            xp, Vj, Tj, blocks.Minv[..., j, :, :], blocks.S[..., j, :, :],
            blocks.tau[..., j, :], X_in, A, G, transpose,
        )
    nb, n = len(inputs), V.shape[-2]
    dV = xp.concat([dV_blocks[j] for j in range(nb)], axis=-2)[..., :n, :]
    dtau = xp.concat([dtau_blocks[j] for j in range(nb)], axis=-1)[..., :n]
    return dV, dtau, G


def _sequential_vjp(xp, V, tau, X, G, transpose):
    """Reference VJP: one reflector at a time, inputs stored in the forward."""
    mT = xp.matrix_transpose
    n = V.shape[-2]
    order = list(range(n) if transpose else range(n - 1, -1, -1))
    inputs = []
    for i in order:
        v, t = V[..., i : i + 1, :], tau[..., i, None, None]
        inputs.append(X)
        X = X - t * (mT(v) @ (v @ X))
    dV, dtau = [None] * n, [None] * n
    for i, X_in in zip(reversed(order), reversed(inputs)):
        v, t = V[..., i : i + 1, :], tau[..., i, None, None]
        a, g = v @ X_in, v @ G
        dV[i] = -t * (a @ mT(G) + g @ mT(X_in))
        dtau[i] = -xp.sum(g * a, axis=(-2, -1))[..., None]
        G = G - t * (mT(v) @ g)
    return xp.concat(dV, axis=-2), xp.concat(dtau, axis=-1), G


def householder_product_vjp(
    V, X, G, *, tau=None, transpose=False, method="wy", block_size=None, check_finite=True
):
    r"""Cotangents of :func:`householder_product` for the output cotangent ``G``.

    Returns ``(dV, dX)``, or ``(dV, dX, dtau)`` when ``tau`` is given: the
    gradients of ``L = <G, householder_product(V, X, ...)>``. Cotangents have
    the shapes of their primals (broadcast batch axes are summed).

    With the default ``tau = 2 / ||v||^2`` the dependence of ``tau`` on ``V``
    is included, ``dV_i += -tau_i^2 dtau_i v_i``, so that ``v_i . dV_i = 0``
    (scale invariance). The ``"wy"`` backward walks the blocks in reverse with
    the inputs stored by a forward pass: about ``8 d n m`` flops, all GEMMs
    with one dimension ``k``. ``method="sequential"`` is the per-reflector
    reference and ``"dense"`` treats all reflectors as one block.

    Parameters
    ----------
    V, X, tau, transpose, method, block_size, check_finite
        As :func:`householder_product`.
    G : (..., d, m) array
        Cotangent of the output, of the output's shape.
    """
    inp = _prepare(V, X, tau, check_finite, G=G)
    xp = inp.xp
    n = inp.V.shape[-2]
    k = _check_method(method, block_size, n)
    if method == "sequential":
        dV, dtau, dX = _sequential_vjp(xp, inp.V, inp.tau, inp.X, G, transpose)
    else:
        k = n if method == "dense" else k
        dV, dtau, dX = _wy_vjp(xp, inp.V, inp.tau, inp.X, G, transpose, k)
    dV = sum_to_shape(xp, dV, tuple(V.shape))
    dtau = sum_to_shape(xp, dtau, tuple(V.shape[:-1]))
    dX = sum_to_shape(xp, dX, tuple(X.shape))
    if inp.default_tau:
        return dV - (inp.tau * inp.tau * dtau)[..., None] * inp.V, dX
    return dV, dX, dtau
