r"""Products of Householder reflections, in compact WY form (the FastH algorithm).

Convention (docs/conventions.rst, section 1.1). The reflectors are the **rows** of
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
is exact back substitution. See ``docs/blocks/linalg.rst`` for the derivation
of the VJP implemented by :func:`householder_product_vjp`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._results import cotangent_type
from .._validation import (
    all_finite,
    broadcast_batch,
    power_of_two_scales,
    require_arrays,
    require_finite_arrays,
    require_ndim,
    require_shape,
    sum_to_shape,
)
from ..backend import device

__all__ = [
    "HouseholderResiduals",
    "HouseholderWY",
    "default_block_size",
    "householder_matrix",
    "householder_matrix_vjp",
    "householder_product",
    "householder_product_bwd",
    "householder_product_fwd",
    "householder_product_vjp",
    "householder_wy",
    "householder_wy_apply",
]

METHODS = ("wy", "sequential", "dense")

HouseholderProductCotangents = cotangent_type("HouseholderProductCotangents", "V X", "tau")
HouseholderMatrixCotangents = cotangent_type("HouseholderMatrixCotangents", "V", "tau")


def default_block_size(n: int, m: int | None = None) -> int:
    """Block size used when ``block_size=None``: 32, or 64 when ``m > 64`` columns.

    A block of ``k`` reflectors costs ``2 d k^2`` flops to build (``V_b V_b^T``)
    and ``4 d k m`` to apply, and GEMMs with a dimension ``k`` run faster for
    larger ``k``; FastH takes ``k = m``. Measured (float64, one BLAS thread,
    ``asv_benchmarks``): 32 is best or within a few percent for ``m <= 64``, 64
    for ``m = 256``. See ``docs/blocks/linalg.rst`` for the figures.
    """
    return max(1, min(n, 64 if m is not None and m > 64 else 32))


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """Validated reflectors as the products use them.

    ``V`` are the given rows, divided by ``scale`` (a power of two per row)
    when some squared norm ``||v||^2`` would overflow or lose digits to
    underflow, else the given rows themselves (``scale`` is ``None``); ``tau``
    goes with these rows (``tau_given * scale^2``, or ``2 / ||V_i||^2`` by
    default), so ``I - tau v v^T`` is the given reflector exactly.
    """

    xp: object
    V: object
    tau: object
    default_tau: bool
    scale: object = None


def _safe_squared_norms(xp, sq, dtype) -> bool:
    """Every ``||v||^2`` finite and at least ``tiny / eps`` (below it, squares of entries
    underflow and the norm loses digits)."""
    info = xp.finfo(dtype)
    return bool(xp.all((sq >= info.smallest_normal / info.eps) & (sq <= info.max)))


def _reflectors(V, tau, check_finite, others=(), name="V") -> _Rows:
    """Validate ``V`` (called ``name``) and ``tau`` (and ``others``); fill in ``tau = 2 / ||v||^2``.

    ``||v||^2`` is computed once, and doubles as ``V``'s finiteness check
    when it lies in the safe range; rows of extreme scale are divided by a
    power of two first (``H(c v) = H(v)``), so a zero row is reported only
    when it is zero.
    """
    named = {name: V, "tau": tau, **dict(others)}
    xp, _ = require_arrays(**named)
    require_ndim(name, V, 2, "(..., n, d)")
    if tau is not None and tuple(tau.shape) != tuple(V.shape[:-1]):
        raise ValueError(f"tau must have shape {name}.shape[:-1] = {tuple(V.shape[:-1])}, "
                         f"got {tuple(tau.shape)}")
    require_finite_arrays(check_finite, **{k: v for k, v in named.items() if k != name})
    sq, scale = xp.vecdot(V, V), None
    if not _safe_squared_norms(xp, sq, V.dtype):
        require_finite_arrays(check_finite, **{name: V})
        scale = power_of_two_scales(xp, V)
        V = V / scale[..., None]
        sq = xp.vecdot(V, V)
    if tau is None:
        if not bool(xp.all(sq > 0)):
            raise ValueError(
                f"{name} has a zero row: a zero reflector is undefined with the default "
                "tau = 2 / ||v||^2 (pass an explicit tau, with tau = 0 for the identity)"
            )
        return _Rows(xp, V, 2.0 / sq, True, scale)
    if scale is not None:
        tau = tau * scale * scale
        if check_finite and not all_finite(xp, tau):
            raise ValueError(f"tau * ||v||^2 overflows for some row of {name}: the reflector "
                             "I - tau v v^T has entries beyond the floating-point range")
    return _Rows(xp, V, tau, False, scale)


def _given_rows_cotangent(rows: _Rows, dV):
    """The cotangent of the given rows from that of the rows used (``V_used = V / scale``)."""
    return dV if rows.scale is None else dV / rows.scale[..., None]


def _check_rhs(name, V, X):
    """``X`` must be ``(..., d, m)`` with ``d = V.shape[-1]`` and a batch that broadcasts."""
    if X is None or not hasattr(X, "shape"):
        raise TypeError(f"{name} must be an array, got {type(X).__name__}")
    require_ndim(name, X, 2, "(..., d, m)")
    d = V.shape[-1]
    if X.shape[-2] != d:
        raise ValueError(
            f"{name} must have shape (..., d, m) with d = V.shape[-1] = {d}, "
            f"got shape {tuple(X.shape)}"
        )
    return broadcast_batch(V=V.shape[:-2], **{name: X.shape[:-2]}) + tuple(X.shape[-2:])


def _check_operand(name, V, arr, check_finite):
    """An extra array (``X`` or ``G``) must match ``V``'s namespace, device and dtype."""
    require_arrays(V=V, **{name: arr})
    require_finite_arrays(check_finite, **{name: arr})


def _check_method(method, block_size, n, m=None):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if block_size is None:
        return default_block_size(n, m)
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    return max(1, min(block_size, n))  # no reflectors (n = 0): one empty block size


# ---------------------------------------------------------------------------
# Compact WY blocks
# ---------------------------------------------------------------------------


@dataclass
class _Factors:
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


def _wy_factors(xp, V, tau, k) -> _Factors:
    n, d = V.shape[-2], V.shape[-1]
    nb = -(-n // k)
    pad = nb * k - n
    if pad:
        dev = device(V)
        V = xp.concat([V, xp.zeros(V.shape[:-2] + (pad, d), dtype=V.dtype, device=dev)], axis=-2)
        tau = xp.concat([tau, xp.zeros(tau.shape[:-1] + (pad,), dtype=tau.dtype, device=dev)], axis=-1)
    Vb = xp.reshape(V, V.shape[:-2] + (nb, k, d))
    taub = xp.reshape(tau, tau.shape[:-1] + (nb, k))
    S = xp.triu(Vb @ xp.matrix_transpose(Vb), k=1)
    eye = xp.eye(k, dtype=V.dtype, device=device(V))
    # I + D S is unit upper triangular: LU without pivoting is back substitution.
    Minv = xp.linalg.solve(eye + taub[..., :, None] * S, xp.broadcast_to(eye, S.shape))
    return _Factors(Vb, taub, S, Minv, Minv * taub[..., None, :])


@dataclass
class HouseholderWY:
    """Compact WY representation of ``U = H(v_1) ... H(v_n)``, built once, applied often.

    Made by :func:`householder_wy`; applied by :func:`householder_wy_apply`.
    Building costs about ``2 d n k`` flops (the ``V_b V_b^T`` of each block),
    applying ``4 d n m``.
    """

    xp: object
    V: object  # the reflectors, (..., n, d): the given ones divided by ``scale`` when it is set
    tau: object  # (..., n), for these rows; the default 2 / ||v||^2 filled in
    default_tau: bool
    factors: _Factors
    scale: object = None  # (..., n) powers of two, or None: see householder_wy

    @property
    def block_size(self) -> int:
        return self.factors.V.shape[-2]


def householder_wy(V, *, tau=None, block_size=None, check_finite=True) -> HouseholderWY:
    r"""Build the compact WY blocks of ``U = H(v_1) ... H(v_n)``.

    Each block of ``k`` reflectors becomes ``B = I - V_b^T T V_b`` with
    ``T = (I + D S)^{-1} D``, ``S = striu(V_b V_b^T)``, ``D = diag(tau_b)``.

    Parameters
    ----------
    V : (..., n, d) array
        Reflectors as rows.
    tau : (..., n) array, optional
        LAPACK-style scalars; default ``2 / ||v_i||^2``.
    block_size : int, optional
        Reflectors per block (need not divide ``n``); default :func:`default_block_size`.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity.

    Rows whose squared norms would overflow or underflow are divided by a
    power of two (``scale``) and ``tau`` multiplied by its square: the
    reflectors are the same, and the product is representable whenever the
    result is.
    """
    rows = _reflectors(V, tau, check_finite)
    return _wy(rows, _check_method("wy", block_size, V.shape[-2]))


def _wy(rows: _Rows, k) -> HouseholderWY:
    return HouseholderWY(rows.xp, rows.V, rows.tau, rows.default_tau,
                         _wy_factors(rows.xp, rows.V, rows.tau, k), rows.scale)


def _block(f: _Factors, j):
    return f.V[..., j, :, :], f.T[..., j, :, :]


def _block_order(nb, transpose):
    # U X applies the last block first; U^T X = B_nb^T ... B_1^T X applies the first first.
    return range(nb) if transpose else range(nb - 1, -1, -1)


def _apply_blocks(xp, f: _Factors, X, transpose, keep_inputs=False):
    """Apply all blocks to X; optionally return each block's input and ``V_b X``."""
    nb = f.V.shape[-3]
    inputs = []
    for j in _block_order(nb, transpose):
        Vj, Tj = _block(f, j)
        A = Vj @ X
        if keep_inputs:
            inputs.append((j, X, A))
        Tj = xp.matrix_transpose(Tj) if transpose else Tj
        X = X - xp.matrix_transpose(Vj) @ (Tj @ A)
    return X, inputs


def householder_wy_apply(wy: HouseholderWY, X, *, transpose=False, check_finite=True):
    """``U @ X`` (or ``U^T @ X``) from prebuilt WY blocks; see :func:`householder_product`."""
    if not isinstance(wy, HouseholderWY):
        raise TypeError(f"wy must come from householder_wy, got {type(wy).__name__}")
    _check_operand("X", wy.V, X, check_finite)
    _check_rhs("X", wy.V, X)
    return _apply_blocks(wy.xp, wy.factors, X, transpose)[0]


# ---------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------


def _sequential(xp, V, tau, X, transpose, keep_inputs=False):
    """One reflector at a time; optionally return each reflector's input ``(i, X_i)``."""
    n = V.shape[-2]
    inputs = []
    for i in range(n) if transpose else range(n - 1, -1, -1):
        v = V[..., i : i + 1, :]
        if keep_inputs:
            inputs.append((i, X))
        X = X - tau[..., i, None, None] * (xp.matrix_transpose(v) @ (v @ X))
    return X, inputs


def _dense_matrix(xp, V, tau):
    """``U = I - V^T T V`` with all reflectors in one block (``I`` for no reflectors)."""
    eye = xp.eye(V.shape[-1], dtype=V.dtype, device=device(V))
    if V.shape[-2] == 0:
        return xp.broadcast_to(eye, V.shape[:-2] + tuple(eye.shape))
    V1, T1 = _block(_wy_factors(xp, V, tau, V.shape[-2]), 0)
    return eye - xp.matrix_transpose(V1) @ (T1 @ V1)


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
    rows = _reflectors(V, tau, check_finite)
    return _dense_matrix(rows.xp, rows.V, rows.tau)


def householder_matrix_vjp(V, G, tau=None, *, check_finite=True):
    r"""Cotangents ``(V, tau)`` of :func:`householder_matrix` for ``G = dL/dU``.

    :func:`householder_product_vjp` with ``X = I`` (``U = U I``), the
    cotangent of ``X`` dropped; ``tau`` is ``None`` when no ``tau`` was given.
    """
    xp = _reflectors(V, tau, check_finite, (("G", G),)).xp
    d = V.shape[-1]
    require_shape("G", G, tuple(V.shape[:-2]) + (d, d))
    eye = xp.eye(d, dtype=V.dtype, device=device(V))
    dV, _, dtau = householder_product_vjp(V, eye, G, tau=tau, check_finite=False)
    return HouseholderMatrixCotangents(dV, dtau)


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

    See Also
    --------
    householder_wy, householder_wy_apply : build the WY blocks once, apply them often.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.linalg import householder_product, householder_matrix
    >>> rng = np.random.default_rng(0)
    >>> V, X = rng.standard_normal((5, 5)), rng.standard_normal((5, 2))
    >>> bool(np.allclose(householder_product(V, X), householder_matrix(V) @ X))
    True
    """
    rows = _reflectors(V, tau, check_finite, (("X", X),))
    xp = rows.xp
    _check_rhs("X", V, X)
    k = _check_method(method, block_size, V.shape[-2], X.shape[-1])
    if method == "sequential":
        return _sequential(xp, rows.V, rows.tau, X, transpose)[0]
    if method == "dense":
        U = _dense_matrix(xp, rows.V, rows.tau)
        return (xp.matrix_transpose(U) if transpose else U) @ X
    return _apply_blocks(xp, _wy_factors(xp, rows.V, rows.tau, k), X, transpose)[0]


# ---------------------------------------------------------------------------
# VJP
# ---------------------------------------------------------------------------


@dataclass
class HouseholderResiduals:
    """What :func:`householder_product_fwd` keeps for :func:`householder_product_bwd`.

    The WY blocks, and each block's input ``X_j`` and ``V_b X_j``: ``n/k``
    arrays of the shape of ``X`` (the backward then needs no recomputation).
    """

    wy: HouseholderWY
    X: object
    transpose: bool
    inputs: list
    out_shape: tuple


def householder_product_fwd(
    V, X, *, tau=None, transpose=False, method="wy", block_size=None, check_finite=True
):
    """``(Y, residuals)``: :func:`householder_product` and what its backward needs.

    ``method`` is ``"wy"`` or ``"dense"`` (all reflectors in one block). With
    :func:`householder_product_bwd` this is the forward/backward split of
    ``jax.custom_vjp``: build and forward once, then one backward per cotangent.
    """
    if method == "sequential":
        raise ValueError("householder_product_fwd supports method 'wy' or 'dense'; "
                         "the sequential reference VJP is householder_product_vjp(method='sequential')")
    rows = _reflectors(V, tau, check_finite, (("X", X),))
    return _forward_with_residuals(rows, X, transpose, method, block_size)


def _forward_with_residuals(rows: _Rows, X, transpose, method, block_size):
    out_shape = _check_rhs("X", rows.V, X)
    n = rows.V.shape[-2]
    k = max(n, 1) if method == "dense" else _check_method(method, block_size, n, X.shape[-1])
    wy = _wy(rows, k)
    Y, inputs = _apply_blocks(wy.xp, wy.factors, X, transpose, keep_inputs=True)
    return Y, HouseholderResiduals(wy, X, transpose, inputs, out_shape)


def _propagate(xp, f: _Factors, res, G):
    """Sequential part of the backward: ``G`` through each block, in reverse.

    Returns ``G = dL/dX`` and, stacked over blocks in block order, each block's
    output cotangent ``G_j``, ``P_j`` and ``M_j^{-T} P_j`` (see :func:`_block_cotangents`).
    """
    mT = xp.matrix_transpose
    nb = f.V.shape[-3]
    outs, Ps, Ws = [None] * nb, [None] * nb, [None] * nb
    for j, X_in, A in reversed(res.inputs):
        Vj = f.V[..., j, :, :]
        Gv = Vj @ G
        P = A if res.transpose else Gv
        W = mT(f.Minv[..., j, :, :]) @ P
        # dX of this block: G - V^T T^T P (B) or G - V^T T Gv (B^T)
        step = f.T[..., j, :, :] @ Gv if res.transpose else f.tau[..., j, :, None] * W
        outs[j], Ps[j], Ws[j] = G, P, W
        G = G - mT(Vj) @ step
    return G, xp.stack(outs, axis=-3), xp.stack(Ps, axis=-3), xp.stack(Ws, axis=-3)


def _block_cotangents(xp, f: _Factors, X_in, A, G_out, P, W, transpose):
    r"""``dV`` and ``dtau`` of all blocks at once (batched over the block axis).

    For one block ``Y = B X`` (or ``B^T X``), ``B = I - V^T T V``, with
    ``A = V X`` and ``G_v = V G``: ``(P, Q) = (G_v, A)`` for ``B`` and
    ``(A, G_v)`` for ``B^T``; ``W = M^{-T} P``, ``P~ = D W = T^T P``,
    ``Q~ = T Q``, ``E = striu(P~ Q~^T)``. Then (docs/blocks/linalg.rst)

    * ``dV = (E + E^T) V - Q~ G^T - P~ X^T`` for ``B``; ``P~`` and ``Q~`` swap for ``B^T``,
    * ``dtau_i = W_i . (S Q~ - Q)_i`` (row-wise dot products),
    * ``dX = G - V^T P~`` for ``B``, ``G - V^T Q~`` for ``B^T`` (in :func:`_propagate`).
    """
    mT = xp.matrix_transpose
    Q = (f.V @ G_out) if transpose else A
    Pt = f.tau[..., :, None] * W
    Qt = f.T @ Q
    E = xp.triu(Pt @ mT(Qt), k=1)
    first, second = (Pt, Qt) if transpose else (Qt, Pt)
    dV = (E + mT(E)) @ f.V - first @ mT(G_out) - second @ mT(X_in)
    dtau = xp.sum(W * (f.S @ Qt - Q), axis=-1)
    return dV, dtau


def householder_product_bwd(res: HouseholderResiduals, G, *, check_finite=True):
    """Cotangents ``(V, X, tau)`` from residuals (``tau`` is ``None`` for the default tau).

    Walks the blocks in reverse for ``dX`` (three GEMMs per block), then forms
    ``dV`` and ``dtau`` of all blocks in batched products: about ``8 d n m``
    flops in all. See :func:`householder_product_vjp` for the conventions.
    """
    if not isinstance(res, HouseholderResiduals):
        raise TypeError(f"res must come from householder_product_fwd, got {type(res).__name__}")
    _check_operand("G", res.wy.V, G, check_finite)
    require_shape("G", G, res.out_shape)
    return _backward(res, G)


def _backward(res: HouseholderResiduals, G):
    wy, xp = res.wy, res.wy.xp
    rows = _Rows(xp, wy.V, wy.tau, wy.default_tau, wy.scale)
    if not res.inputs:  # no reflectors: U = I
        return _finish_cotangents(rows, res.X, xp.zeros_like(wy.V), xp.zeros_like(wy.tau), G)
    f = wy.factors
    dX, G_out, P, W = _propagate(xp, f, res, G)
    order = sorted(range(len(res.inputs)), key=lambda i: res.inputs[i][0])
    # The first block's input is X itself, whose batch may be narrower than the output's.
    X_in = xp.stack([xp.broadcast_to(res.inputs[i][1], res.out_shape) for i in order], axis=-3)
    A = xp.stack([res.inputs[i][2] for i in order], axis=-3)
    dV, dtau = _block_cotangents(xp, f, X_in, A, G_out, P, W, res.transpose)
    n, d = wy.V.shape[-2], wy.V.shape[-1]
    dV = xp.reshape(dV, dV.shape[:-3] + (-1, d))[..., :n, :]
    dtau = xp.reshape(dtau, dtau.shape[:-2] + (-1,))[..., :n]
    return _finish_cotangents(rows, res.X, dV, dtau, dX)


def _finish_cotangents(rows: _Rows, X, dV, dtau, dX):
    """Sum broadcast batch axes; with the default tau, chain ``dtau`` into ``dV``; then back
    from the rows used to the given ones (``V_used = V / scale``, ``tau_used = tau scale^2``)."""
    xp, V, tau = rows.xp, rows.V, rows.tau
    dV = sum_to_shape(xp, dV, tuple(V.shape))
    dtau = sum_to_shape(xp, dtau, tuple(V.shape[:-1]))
    dX = sum_to_shape(xp, dX, tuple(X.shape))
    if rows.default_tau:
        # tau = 2 / ||v||^2 gives d tau / d v = -tau^2 v.
        dV = dV - (tau * tau * dtau)[..., None] * V
        return HouseholderProductCotangents(_given_rows_cotangent(rows, dV), dX)
    if rows.scale is not None:
        dtau = dtau * rows.scale * rows.scale
    return HouseholderProductCotangents(_given_rows_cotangent(rows, dV), dX, dtau)


def _sequential_vjp(xp, V, tau, X, G, transpose):
    """Reference VJP: one reflector at a time, inputs stored in the forward."""
    mT = xp.matrix_transpose
    n = V.shape[-2]
    _, inputs = _sequential(xp, V, tau, X, transpose, keep_inputs=True)
    dV, dtau = [None] * n, [None] * n
    for i, X_in in reversed(inputs):
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

    Returns ``HouseholderProductCotangents(V, X, tau)``: the gradients of
    ``L = <G, householder_product(V, X, ...)>`` by primal name, ``tau`` being
    ``None`` when no ``tau`` was given. Cotangents have the shapes of their
    primals (broadcast batch axes are summed).

    With the default ``tau = 2 / ||v||^2`` the dependence of ``tau`` on ``V``
    is included, ``dV_i += -tau_i^2 dtau_i v_i``, so that ``v_i . dV_i = 0``
    (scale invariance). ``"wy"`` and ``"dense"`` run
    :func:`householder_product_fwd` then :func:`householder_product_bwd`;
    ``method="sequential"`` is the per-reflector reference.

    Parameters
    ----------
    V, X, tau, transpose, method, block_size, check_finite
        As :func:`householder_product`.
    G : (..., d, m) array
        Cotangent of the output, of the output's shape.
    """
    rows = _reflectors(V, tau, check_finite, (("X", X), ("G", G)))
    out_shape = _check_rhs("X", V, X)
    require_shape("G", G, out_shape)
    if method != "sequential":
        return _backward(_forward_with_residuals(rows, X, transpose, method, block_size)[1], G)
    if V.shape[-2] == 0:  # no reflectors: U = I
        return _finish_cotangents(rows, X, rows.xp.zeros_like(V), rows.xp.zeros_like(rows.tau), G)
    dV, dtau, dX = _sequential_vjp(rows.xp, rows.V, rows.tau, X, G, transpose)
    return _finish_cotangents(rows, X, dV, dtau, dX)
