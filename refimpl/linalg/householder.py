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
from ..backend import device, inv_triangular, matmul_update

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
    """Block size used when ``block_size=None``: 32; for ``m > 64`` columns 64, or 128 from ``n = 512``.

    A block of ``k`` reflectors costs ``d k^2`` flops to build (``V_b V_b^T``)
    and ``4 d k m + 2 k^2 m`` to apply (``T A`` adds ``k / (2 d)``), GEMMs
    with a dimension ``k`` run faster for larger ``k``, and the VJP keeps
    ``n / k`` copies of ``X``; FastH takes ``k = m``. Measured (float64, one
    BLAS thread, ``d = n``; ``docs/performance.rst``): 32 is best or within
    a few percent for ``m <= 64``; at ``m = 256``, 64 for ``d = 256`` (128
    pays 25% more flops in ``T A``) and 128 from ``d = 512`` (the VJP 10-30%
    faster than with 64, the forward as fast).
    """
    if m is None or m <= 64:
        k = 32
    else:
        k = 128 if n >= 512 else 64
    return max(1, min(n, k))


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
    default), so ``I - tau v v^T`` is the given reflector exactly. ``grams``
    are the Gram matrices of these rows' WY blocks when the norms were read off
    their diagonals (:func:`_stacked_grams`), for the build to reuse, else ``None``.
    """

    xp: object
    V: object
    tau: object
    default_tau: bool
    scale: object = None
    grams: object = None


def _safe_squared_norms(xp, sq, dtype) -> bool:
    """Every ``||v||^2`` finite and at least ``tiny / eps`` (below it, squares of entries
    underflow and the norm loses digits)."""
    info = xp.finfo(dtype)
    return bool(xp.all((sq >= info.smallest_normal / info.eps) & (sq <= info.max)))


def _check_reflectors(V, tau, check_finite, others=(), name="V"):
    """Validate ``V`` (called ``name``), ``tau`` and the ``(name, array)`` pairs ``others``;
    return ``xp``. ``V``'s finiteness is checked by :func:`_rows`, through its norms."""
    named = {name: V, "tau": tau, **dict(others)}
    xp, _ = require_arrays(**named)
    require_ndim(name, V, 2, "(..., n, d)")
    if tau is not None and tuple(tau.shape) != tuple(V.shape[:-1]):
        raise ValueError(f"tau must have shape {name}.shape[:-1] = {tuple(V.shape[:-1])}, "
                         f"got {tuple(tau.shape)}")
    require_finite_arrays(check_finite, **{k: v for k, v in named.items() if k != name})
    return xp


def _rows(xp, V, tau, check_finite, name="V", k=None) -> _Rows:
    """The rows the products use, with ``tau = 2 / ||v||^2`` filled in.

    ``||v||^2`` is computed once: with a block size ``k``, from the diagonals
    of the WY blocks' Gram matrices, which the build then reuses (no pass over
    ``V`` of its own); without, one ``vecdot``. It doubles as ``V``'s
    finiteness check when it lies in the safe range; rows of extreme scale are
    divided by a power of two first (``H(c v) = H(v)``), so a zero row is
    reported only when it is zero.
    """
    n = V.shape[-2]
    grams = _stacked_grams(xp, V, k) if k is not None and n else None
    sq = xp.vecdot(V, V) if grams is None else _gram_diagonals(xp, grams, n)
    scale = None
    if not _safe_squared_norms(xp, sq, V.dtype):
        require_finite_arrays(check_finite, **{name: V})
        scale = power_of_two_scales(xp, V)
        V = V / scale[..., None]
        sq, grams = xp.vecdot(V, V), None  # the build makes the rescaled rows' Gram matrices
    if tau is None:
        if not bool(xp.all(sq > 0)):
            raise ValueError(
                f"{name} has a zero row: a zero reflector is undefined with the default "
                "tau = 2 / ||v||^2 (pass an explicit tau, with tau = 0 for the identity)"
            )
        return _Rows(xp, V, 2.0 / sq, True, scale, grams)
    if scale is not None:
        tau = tau * scale * scale
        if check_finite and not all_finite(xp, tau):
            raise ValueError(f"tau * ||v||^2 overflows for some row of {name}: the reflector "
                             "I - tau v v^T has entries beyond the floating-point range")
    return _Rows(xp, V, tau, False, scale, grams)


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


@dataclass(frozen=True)
class _Block:
    """Reflectors ``rows`` in compact WY form, ``B = I - V^T T V``.

    ``V`` (``(..., k, d)``) is a view of the reflectors, ``gram = V V^T``,
    ``Minv = (I + D S)^{-1}`` with ``S = striu(gram)``, ``D = diag(tau)``,
    and ``T = Minv D``.
    """

    rows: slice
    V: object
    tau: object
    gram: object
    Minv: object
    T: object


def _stacked_grams(xp, V, k):
    """``V_b V_b^T`` of each block of ``k`` rows, stacked as ``(..., n_b, k, k)``.

    Each is one symmetric rank-``k`` update (``syrk`` where the library
    detects it), ``d k^2`` flops; the diagonals hold the squared norms
    (read by :func:`_rows`). The last block may be shorter: its Gram
    matrix is padded with zeros, and the padded rows get ``tau = 0``
    (identities), which keeps the stack's ``T`` block diagonal with the real
    block's ``T`` in the leading corner.
    """
    n = V.shape[-2]
    grams = []
    for start in range(0, n, k):
        Vb = V[..., start : min(start + k, n), :]
        grams.append(Vb @ xp.matrix_transpose(Vb))
    pad = k - grams[-1].shape[-1]
    if pad:
        last = grams[-1]
        last = xp.concat([last, xp.zeros(last.shape[:-1] + (pad,), dtype=V.dtype, device=device(V))],
                         axis=-1)
        grams[-1] = xp.concat([last, xp.zeros(last.shape[:-2] + (pad, k), dtype=V.dtype,
                                              device=device(V))], axis=-2)
    return xp.stack(grams, axis=-3)


def _gram_diagonals(xp, grams, n):
    """The squared norms ``||v_i||^2``, ``(..., n)``, from the stacked Gram matrices."""
    nb, k = grams.shape[-3], grams.shape[-1]
    return xp.reshape(xp.linalg.diagonal(grams), grams.shape[:-3] + (nb * k,))[..., :n]


def _wy_blocks(xp, V, tau, k, grams=None) -> tuple:
    """The WY blocks of the rows ``V`` with their ``tau``, in row order (none for ``n = 0``);
    ``grams``: their :func:`_stacked_grams` for ``k``, when already made.

    The ``k x k`` work is batched over the blocks: one scaling, the unit
    triangular inverses (:func:`refimpl.backend.inv_triangular`, which reads
    ``D S``'s strict upper triangle only, so ``S`` is never formed here) and
    one scaling for ``T = Minv D``.
    """
    n = V.shape[-2]
    if n == 0:
        return ()
    if grams is None or grams.shape[-1] != k:
        grams = _stacked_grams(xp, V, k)
    nb = grams.shape[-3]
    padded = tau
    if nb * k > n:
        padded = xp.concat([tau, xp.zeros(tau.shape[:-1] + (nb * k - n,), dtype=tau.dtype,
                                          device=device(tau))], axis=-1)
    taub = xp.reshape(padded, padded.shape[:-1] + (nb, k))
    Minv = inv_triangular(taub[..., :, None] * grams, unit_diagonal=True)
    T = Minv * taub[..., None, :]
    blocks = []
    for j, start in enumerate(range(0, n, k)):
        rows = slice(start, min(start + k, n))
        kb = rows.stop - start
        blocks.append(_Block(rows, V[..., rows, :], tau[..., rows], grams[..., j, :kb, :kb],
                             Minv[..., j, :kb, :kb], T[..., j, :kb, :kb]))
    return tuple(blocks)


@dataclass
class HouseholderWY:
    """Compact WY representation of ``U = H(v_1) ... H(v_n)``, built once, applied often.

    Made by :func:`householder_wy`; applied by :func:`householder_wy_apply`.
    Building costs about ``d n k`` flops (the ``V_b V_b^T`` of each block),
    applying ``4 d n m + 2 n k m`` (two GEMMs with the data per block, and
    ``T A``).
    """

    xp: object
    V: object  # the reflectors, (..., n, d): the given ones divided by ``scale`` when it is set
    tau: object  # (..., n), for these rows; the default 2 / ||v||^2 filled in
    default_tau: bool
    blocks: tuple  # of _Block, in row order
    block_size: int
    scale: object = None  # (..., n) powers of two, or None: see householder_wy

    @property
    def rows(self) -> _Rows:
        return _Rows(self.xp, self.V, self.tau, self.default_tau, self.scale)


def _build(rows: _Rows, k) -> HouseholderWY:
    return HouseholderWY(rows.xp, rows.V, rows.tau, rows.default_tau,
                         _wy_blocks(rows.xp, rows.V, rows.tau, k, rows.grams), k, rows.scale)


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
    xp = _check_reflectors(V, tau, check_finite)
    k = _check_method("wy", block_size, V.shape[-2])
    return _build(_rows(xp, V, tau, check_finite, k=k), k)


def _block_order(blocks, transpose):
    # U X applies the last block first; U^T X = B_nb^T ... B_1^T X applies the first first.
    return blocks if transpose else blocks[::-1]


def _empty(xp, like, shape):
    return xp.empty(shape, dtype=like.dtype, device=device(like))


def _into(buffer, A, B):
    """``A @ B`` written into ``buffer`` (NumPy, CuPy); returns the product."""
    return matmul_update(buffer, A, B, alpha=1.0, beta=0.0)


def _apply_blocks(wy: HouseholderWY, X, transpose, out_shape, keep_inputs=False, copy=True):
    """``U X`` (or ``U^T X``) of shape ``out_shape``; optionally each block's input.

    ``X`` is copied once (with ``copy=False`` the caller lets ``X`` be
    overwritten, which it is when it has the output's shape); every block
    then updates the copy in place,
    ``Y <- Y - V_b^T (T A)`` with ``A = V_b Y`` in a preallocated buffer (the
    update is one GEMM with ``beta = 1``: :func:`refimpl.backend.matmul_update`).
    With ``keep_inputs`` the list of ``(block, X_in, A)`` in application order
    is returned too; each ``X_in`` after the first is a copy.
    """
    xp, mT = wy.xp, wy.xp.matrix_transpose
    batch, (n, m) = out_shape[:-2], (wy.V.shape[-2], out_shape[-1])
    k = wy.block_size
    copy = copy or tuple(X.shape) != tuple(out_shape)
    Y = xp.asarray(xp.broadcast_to(X, out_shape), copy=True) if copy else X
    A_all = _empty(xp, Y, batch + ((n if keep_inputs else k), m))
    TA = _empty(xp, Y, batch + (k, m))
    inputs = []
    for blk in _block_order(wy.blocks, transpose):
        kb = blk.V.shape[-2]
        A = _into(A_all[..., blk.rows if keep_inputs else slice(0, kb), :], blk.V, Y)
        C = _into(TA[..., :kb, :], mT(blk.T) if transpose else blk.T, A)
        if keep_inputs and (inputs or not copy):  # keep this block's input, update a copy
            inputs.append((blk, Y, A))
            Y = xp.asarray(Y, copy=True)
        elif keep_inputs:  # the first block's input is X, left intact
            inputs.append((blk, X, A))
        Y = matmul_update(Y, mT(blk.V), C)
    return Y, inputs


def householder_wy_apply(wy: HouseholderWY, X, *, transpose=False, check_finite=True):
    """``U @ X`` (or ``U^T @ X``) from prebuilt WY blocks; see :func:`householder_product`."""
    if not isinstance(wy, HouseholderWY):
        raise TypeError(f"wy must come from householder_wy, got {type(wy).__name__}")
    _check_operand("X", wy.V, X, check_finite)
    return _apply_blocks(wy, X, transpose, _check_rhs("X", wy.V, X))[0]


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


def _dense_matrix(wy: HouseholderWY):
    """``U = I - V^T T V`` from a single WY block (``I`` for no reflectors)."""
    xp = wy.xp
    eye = xp.eye(wy.V.shape[-1], dtype=wy.V.dtype, device=device(wy.V))
    if not wy.blocks:
        return xp.broadcast_to(eye, wy.V.shape[:-2] + tuple(eye.shape))
    (blk,) = wy.blocks
    return eye - xp.matrix_transpose(blk.V) @ (blk.T @ blk.V)


def _block_size_for(method, block_size, n, m) -> int:
    """The validated block size of ``method``: all reflectors in one block for ``"dense"``."""
    k = _check_method(method, block_size, n, m)
    return max(n, 1) if method == "dense" else k


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
    xp = _check_reflectors(V, tau, check_finite)
    k = max(V.shape[-2], 1)
    return _dense_matrix(_build(_rows(xp, V, tau, check_finite, k=k), k))


def householder_matrix_vjp(V, G, tau=None, *, check_finite=True):
    r"""Cotangents ``(V, tau)`` of :func:`householder_matrix` for ``G = dL/dU``.

    :func:`householder_product_vjp` with ``X = I`` (``U = U I``), the
    cotangent of ``X`` dropped; ``tau`` is ``None`` when no ``tau`` was given.
    """
    xp = _check_reflectors(V, tau, False, (("G", G),))  # for I; the VJP checks the values
    d = V.shape[-1]
    eye = xp.eye(d, dtype=V.dtype, device=device(V))
    dV, _, dtau = householder_product_vjp(V, eye, G, tau=tau, check_finite=check_finite)
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
    xp = _check_reflectors(V, tau, check_finite, (("X", X),))
    out_shape = _check_rhs("X", V, X)
    k = _block_size_for(method, block_size, V.shape[-2], X.shape[-1])
    if method == "sequential":
        rows = _rows(xp, V, tau, check_finite)
        return _sequential(xp, rows.V, rows.tau, X, transpose)[0]
    wy = _build(_rows(xp, V, tau, check_finite, k=k), k)
    if method == "dense":
        U = _dense_matrix(wy)
        return (xp.matrix_transpose(U) if transpose else U) @ X
    return _apply_blocks(wy, X, transpose, out_shape)[0]


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
    inputs: list  # (block, X_j, V_b X_j) in application order
    out_shape: tuple


def _forward_with_residuals(wy: HouseholderWY, X, transpose, out_shape):
    Y, inputs = _apply_blocks(wy, X, transpose, out_shape, keep_inputs=True)
    return Y, HouseholderResiduals(wy, X, transpose, inputs, out_shape)


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
    xp = _check_reflectors(V, tau, check_finite, (("X", X),))
    out_shape = _check_rhs("X", V, X)
    k = _block_size_for(method, block_size, V.shape[-2], X.shape[-1])
    return _forward_with_residuals(_build(_rows(xp, V, tau, check_finite, k=k), k), X, transpose,
                                   out_shape)


def _default_tau_chain(tau, dtau):
    """``c`` with ``dV_i += c_i v_i``: ``tau = 2 / ||v||^2`` gives ``d tau / d v = -tau^2 v``."""
    return -(tau * tau * dtau)


def _block_backward(xp, blk, X_in, A, G, transpose, default_tau):
    r"""``(F, first, second, dtau)`` of one block from ``X_in``, ``A = V X_in`` and ``G``.

    ``X_in`` is the block's input and ``G`` the cotangent of its output.

    For ``Y = B X`` (or ``B^T X``), ``B = I - V^T T V``, with ``G_v = V G``:
    ``(P, Q) = (G_v, A)`` for ``B`` and ``(A, G_v)`` for ``B^T``; ``W = M^{-T} P``,
    ``P~ = D W = T^T P``, ``Q~ = T Q``, ``E = striu(P~ Q~^T)``. Then
    (docs/blocks/linalg.rst)

    * ``dV = F V - first G^T - second X_in^T`` with ``F = E + E^T`` and
      ``(first, second) = (Q~, P~)`` for ``B``, ``(P~, Q~)`` for ``B^T``;
    * ``dtau_i = W_i . (S Q~ - Q)_i`` (row-wise dot products); with the
      default tau its chain term is folded into ``F``'s diagonal and ``dtau``
      is ``None``;
    * ``dX = G - V^T second``.
    """
    mT = xp.matrix_transpose
    Gv = blk.V @ G
    P, Q = (A, Gv) if transpose else (Gv, A)
    W = mT(blk.Minv) @ P
    Pt = blk.tau[..., :, None] * W
    Qt = blk.T @ Q
    E = xp.triu(Pt @ mT(Qt), k=1)
    F = E + mT(E)
    dtau = xp.sum(W * (xp.triu(blk.gram, k=1) @ Qt - Q), axis=-1)
    if default_tau:
        eye = xp.eye(F.shape[-1], dtype=F.dtype, device=device(F))
        F = F + _default_tau_chain(blk.tau, dtau)[..., :, None] * eye
        dtau = None
    first, second = (Pt, Qt) if transpose else (Qt, Pt)
    return F, first, second, dtau


def _backward(res: HouseholderResiduals, G):
    """``(dV, dX, dtau)`` with the output's batch shape; ``dtau`` is ``None`` for the default tau.

    Walks the blocks in reverse. ``G`` is copied once and becomes ``dX`` in
    place; each block's ``dV`` rows are accumulated in place in one
    preallocated array (three GEMMs, the first with ``beta = 0``).
    """
    wy, xp = res.wy, res.wy.xp
    mT = xp.matrix_transpose
    n, d = wy.V.shape[-2], wy.V.shape[-1]
    G = xp.asarray(G, copy=True)
    dV = _empty(xp, G, res.out_shape[:-2] + (n, d))
    dtau = None if wy.default_tau else _empty(xp, G, res.out_shape[:-2] + (n,))
    for blk, X_in, A in reversed(res.inputs):
        F, first, second, dtau_b = _block_backward(xp, blk, X_in, A, G, res.transpose,
                                                    wy.default_tau)
        rows = dV[..., blk.rows, :]
        dV_b = _into(rows, F, blk.V)
        dV_b = matmul_update(dV_b, first, mT(G))
        dV_b = matmul_update(dV_b, second, mT(X_in))
        if dV_b is not rows:  # a namespace that returned a new array
            dV[..., blk.rows, :] = dV_b
        G = matmul_update(G, mT(blk.V), second)
        if dtau is not None:
            dtau[..., blk.rows] = dtau_b
    return dV, G, dtau


def householder_product_bwd(res: HouseholderResiduals, G, *, check_finite=True):
    """Cotangents ``(V, X, tau)`` from residuals (``tau`` is ``None`` for the default tau).

    Walks the blocks in reverse: per block four GEMMs of ``2 d k m`` flops
    (``V_b G``, two for ``dV_b``, one for ``dX``) and ``F V_b`` (``2 k^2 d``),
    ``8 d n m + 2 d n k`` flops in all. See :func:`householder_product_vjp`
    for the conventions.
    """
    if not isinstance(res, HouseholderResiduals):
        raise TypeError(f"res must come from householder_product_fwd, got {type(res).__name__}")
    _check_operand("G", res.wy.V, G, check_finite)
    require_shape("G", G, res.out_shape)
    return _finish_cotangents(res.wy.rows, res.X, *_backward(res, G))


def _finish_cotangents(rows: _Rows, X, dV, dX, dtau):
    """Sum the batch axes that broadcasting added; then back from the rows used to the given
    ones (``V_used = V / scale``, ``tau_used = tau scale^2``). ``dtau = None`` stays ``None``."""
    xp, V = rows.xp, rows.V
    dV = sum_to_shape(xp, dV, tuple(V.shape))
    dX = sum_to_shape(xp, dX, tuple(X.shape))
    if rows.scale is not None:
        dV = dV / rows.scale[..., None]
    if dtau is None:
        return HouseholderProductCotangents(dV, dX)
    dtau = sum_to_shape(xp, dtau, tuple(V.shape[:-1]))
    if rows.scale is not None:
        dtau = dtau * rows.scale * rows.scale
    return HouseholderProductCotangents(dV, dX, dtau)


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
    xp = _check_reflectors(V, tau, check_finite, (("X", X), ("G", G)))
    out_shape = _check_rhs("X", V, X)
    require_shape("G", G, out_shape)
    k = _block_size_for(method, block_size, V.shape[-2], X.shape[-1])
    rows = _rows(xp, V, tau, check_finite, k=None if method == "sequential" else k)
    if method != "sequential" or V.shape[-2] == 0:  # no reflectors: U = I, no blocks to walk
        _, res = _forward_with_residuals(_build(rows, k), X, transpose, out_shape)
        return _finish_cotangents(rows, X, *_backward(res, G))
    dV, dtau, dX = _sequential_vjp(rows.xp, rows.V, rows.tau, X, G, transpose)
    if rows.default_tau:
        dV, dtau = dV + _default_tau_chain(rows.tau, dtau)[..., None] * rows.V, None
    return _finish_cotangents(rows, X, dV, dX, dtau)
