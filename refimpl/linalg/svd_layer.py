r"""The SVD-parametrised linear layer ``W = U diag(s) V^T`` (FastH), and what its SVD makes cheap.

Convention (docs/conventions.rst, section 1.2). ``U`` and ``V`` are products of
Householder reflections with the default ``tau = 2 / ||v||^2``
(:mod:`refimpl.linalg.householder`, section 1.1): the rows of ``Vu`` (shape
``(..., n_u, d)``) and of ``Vv`` (``(..., n_v, d)``),

.. math::  U = H(u_1) \cdots H(u_{n_u}),\qquad V = H(v_1) \cdots H(v_{n_v}),\qquad
           W = U \operatorname{diag}(s)\, V^T,

and ``s`` (shape ``(..., d)``) holds the signed singular values. No SVD is
ever computed and ``U``, ``V`` are never formed: every operation is a
*sandwich* ``L (c * (R^T X))`` of two Householder products in compact WY
form around a row scaling ``c = f(s)``, ``O(d (n_u + n_v) m)`` flops for a
batch ``X`` of ``m`` columns:

==================================  ======  ======  ========================
operation                           ``L``   ``R``   ``c``
==================================  ======  ======  ========================
``W X``                             ``U``   ``V``   ``s``
``W^{-1} Y``                        ``V``   ``U``   ``1 / s``
``W X / ||W||_2``                   ``U``   ``V``   ``s / max|s|``
``expm(W) X`` (``W = U S U^T``)     ``U``   ``U``   ``exp(s)``
``(I - W)(I + W)^{-1} X`` (same)    ``U``   ``U``   ``(1 - s) / (1 + s)``
==================================  ======  ======  ========================

The determinant and the spectral quantities read ``s`` only (``O(d)``):
``log|det W| = sum log|s_i|``, ``sign det W = (-1)^(n_u + n_v) prod sign(s_i)``
(each row is a proper reflector, ``det H = -1``), ``||W||_2 = max|s|`` and
``kappa(W) = max|s| / min|s|``.

Every differentiable op ``f`` has ``f_vjp`` (one cotangent per primal, in
primal order). The derivations, including the transposed-product backward
that ``V^T`` needs, are in ``docs/blocks/linalg.rst``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._results import SlogdetResult, cotangent_type
from .._validation import (
    broadcast_batch,
    require_arrays,
    require_finite_arrays,
    require_ndim,
    require_real_floating,
    require_same_dtype,
    sum_to_shape,
)
from ..backend import device, get_namespace
from .householder import (
    HouseholderWY,
    _apply_blocks,
    _backward,
    _build,
    _check_method,
    _check_reflectors,
    _finish_cotangents,
    _forward_with_residuals,
    _rows,
)

__all__ = [
    "PreparedSVDLinear",
    "SlogdetResult",
    "condition_number",
    "condition_number_vjp",
    "spectral_norm",
    "spectral_norm_vjp",
    "spectral_normalize",
    "spectral_normalize_vjp",
    "svd_linear",
    "svd_linear_inverse",
    "svd_linear_inverse_vjp",
    "svd_linear_matrix",
    "svd_linear_matrix_vjp",
    "svd_linear_prepare",
    "svd_linear_slogdet",
    "svd_linear_slogdet_vjp",
    "svd_linear_vjp",
    "sym_cayley_apply",
    "sym_cayley_apply_vjp",
    "sym_expm_apply",
    "sym_expm_apply_vjp",
]


LayerCotangents = cotangent_type("LayerCotangents", "Vu s Vv X")
InverseCotangents = cotangent_type("InverseCotangents", "Vu s Vv Y")
FactorCotangents = cotangent_type("FactorCotangents", "Vu s Vv")
SymmetricCotangents = cotangent_type("SymmetricCotangents", "Vu s X")

# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    xp: object
    U: HouseholderWY | None  # None for the ops that read s only
    V: HouseholderWY | None  # U itself for the symmetric construction W = U diag(s) U^T
    s: object
    batch: tuple  # broadcast batch shape of all arguments


def _factor(name, V, block_size, m, check_finite) -> HouseholderWY:
    """Householder's own checks of the reflectors ``V`` (named ``name`` in its errors), and
    their WY blocks."""
    xp = _check_reflectors(V, None, check_finite, name=name)
    k = _check_method("wy", block_size, V.shape[-2], m)
    return _build(_rows(xp, V, None, check_finite, name, k), k)


def _prepare(Vu, s, Vv=None, data=None, *, data_name="X", G=None, block_size=None,
             check_finite=True, factors=True) -> _Layer:
    """Check every argument of a layer op; ``Vv=None`` is the symmetric layer.

    ``data`` is the ``(..., d, m)`` right-hand side (``None`` for the ops that
    read ``s`` only, which pass ``factors=False``: the reflectors are then
    checked by shape, never read) and ``G`` the cotangent of the output.
    """
    named = {"Vu": Vu, "s": s, "Vv": Vv, data_name: data, "G": G}
    named = {name: arr for name, arr in named.items() if arr is not None}
    _require_one_real_dtype(named)
    xp, _ = get_namespace(**named)
    batch = _batch_shape(Vu, s, Vv, data, data_name)
    if G is not None:
        _require_shape("G", G, batch + (Vu.shape[-1], data.shape[-1]))
    require_finite_arrays(check_finite, **{name: named.get(name) for name in ("s", data_name, "G")})
    if not factors:
        # The reflectors are not read, but a NaN or infinite one makes W so.
        require_finite_arrays(check_finite, Vu=Vu, Vv=Vv)
        return _Layer(xp, None, None, s, batch)
    m = Vu.shape[-1] if data is None else data.shape[-1]  # the dense matrix applies W to I
    U = _factor("Vu", Vu, block_size, m, check_finite)
    V = U if Vv is None else _factor("Vv", Vv, block_size, m, check_finite)
    return _Layer(xp, U, V, s, batch)


def _require_one_real_dtype(named):
    """The shared dtype checks; a set lookup first, as slogdet has a budget of microseconds."""
    arrays = named.values()
    if len({type(a) for a in arrays}) == 1 and len({getattr(a, "dtype", None) for a in arrays}) == 1:
        require_real_floating("s", named["s"])  # every argument has s's dtype
        return
    for name, arr in named.items():
        require_real_floating(name, arr)
    require_same_dtype(**named)


def _batch_shape(Vu, s, Vv, data, data_name) -> tuple:
    """Check the core shapes against ``d = Vu.shape[-1]``; broadcast the batch shapes."""
    require_ndim("Vu", Vu, 2, "(..., n_u, d)")
    d = Vu.shape[-1]
    cores = [("s", s, 1, "(..., d)", -1), ("Vv", Vv, 2, "(..., n_v, d)", -1),
             (data_name, data, 2, "(..., d, m)", -2)]
    shapes = {"Vu": Vu.shape[:-2]}
    for name, x, ndim, meaning, axis in cores:
        if x is None:
            continue
        require_ndim(name, x, ndim, meaning)
        if x.shape[axis] != d:
            raise ValueError(f"{name} must have shape {meaning} with d = Vu.shape[-1] = {d}, "
                             f"got shape {tuple(x.shape)}")
        shapes[name] = x.shape[:-ndim]
    return broadcast_batch(**shapes)


def _require_shape(name, x, expected):
    got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
    if got != tuple(expected):
        raise ValueError(f"{name} must have the output's shape {tuple(expected)}, got {got}")


def _reject(xp, bad, s, rule):
    """ValueError naming the first index of ``s`` where ``bad`` holds."""
    if bool(xp.any(bad)):
        index = tuple(int(i[0]) for i in xp.nonzero(bad))
        where = ", ".join(map(str, index))
        raise ValueError(f"s[{where}] = {float(s[index])!r}: {rule}")


def _require_invertible(xp, s, finite=True):
    bad = (s == 0) | ~xp.isfinite(s) if finite else s == 0
    _reject(xp, bad, s, "singular values must be finite and nonzero (W is singular)")


# ---------------------------------------------------------------------------
# The sandwich L (c * (R^T X)) and its VJP
# ---------------------------------------------------------------------------


def _out_shape(wy: HouseholderWY, X) -> tuple:
    """Shape of the product of ``wy``'s orthogonal matrix with ``X`` (batch axes broadcast)."""
    return broadcast_batch(V=wy.V.shape[:-2], X=X.shape[:-2]) + tuple(X.shape[-2:])


def _scale_rows(c, A):
    return c[..., :, None] * A


def _sandwich(left: HouseholderWY, c, right: HouseholderWY, X):
    r"""``L (c * (R^T X))``; the middle array is the left product's, updated in place."""
    A = _apply_blocks(right, X, True, _out_shape(right, X))[0]
    B = _scale_rows(c, A)
    return _apply_blocks(left, B, False, _out_shape(left, B), copy=False)[0]


def _sandwich_vjp(xp, left: HouseholderWY, c, right: HouseholderWY, X, G):
    r"""Cotangents ``(dL, dc, dR, dX)`` of ``Y = L B``, ``B = c * A``, ``A = R^T X``.

    The right product runs once, keeping its residuals (``A`` is its output).
    ``G_B = L^T G`` and ``dL`` come from the product backward with input
    ``B``; ``dc = sum_m G_B * A``; ``G_A = c * G_B``; ``dR`` and ``dX = R G_A``
    come from the *transposed*-product backward with input ``X``.
    """
    A, right_res = _forward_with_residuals(right, X, True, _out_shape(right, X))
    B = _scale_rows(c, A)
    _, left_res = _forward_with_residuals(left, B, False, _out_shape(left, B))
    dL, G_B, _ = _finish_cotangents(left.rows, B, *_backward(left_res, G))
    dc = sum_to_shape(xp, xp.sum(G_B * A, axis=-1), tuple(c.shape))
    G_A = sum_to_shape(xp, _scale_rows(c, G_B), tuple(A.shape))
    dR, dX, _ = _finish_cotangents(right.rows, X, *_backward(right_res, G_A))
    return dL, dc, dR, dX


# ---------------------------------------------------------------------------
# Forward and inverse
# ---------------------------------------------------------------------------


def svd_linear(Vu, s, Vv, X, *, block_size=None, check_finite=True):
    r"""Apply ``W = U diag(s) V^T`` to a batch: ``Y = U (s * (V^T X))``, ``O(d (n_u + n_v) m)``.

    .. math::  Y = W X = U \operatorname{diag}(s)\, V^T X,\qquad
               U = \prod_i H(u_i),\ V = \prod_i H(v_i),\ H(v) = I - 2 v v^T / \lVert v\rVert^2.

    Parameters
    ----------
    Vu : (..., n_u, d) array
        Reflectors of ``U`` as rows (``U = H(u_1) ... H(u_{n_u})``).
    s : (..., d) array
        Singular values (any sign); ``W`` has singular values ``|s|``.
    Vv : (..., n_v, d) array
        Reflectors of ``V`` as rows.
    X : (..., d, m) array
        Right-hand side. All leading axes are batch axes and broadcast.
    block_size : int, optional
        Reflectors per compact WY block. Default:
        :func:`refimpl.linalg.default_block_size` of ``n`` and ``m``. Results
        do not depend on it beyond rounding.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity in the inputs.

    Returns
    -------
    Y : (..., d, m) array
        ``W @ X``, in the inputs' namespace, device and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.linalg import svd_linear, svd_linear_matrix
    >>> rng = np.random.default_rng(0)
    >>> Vu, Vv = rng.standard_normal((2, 4, 4))
    >>> s, X = rng.uniform(0.5, 2.0, 4), rng.standard_normal((4, 3))
    >>> np.allclose(svd_linear(Vu, s, Vv, X), svd_linear_matrix(Vu, s, Vv) @ X)
    True
    """
    lay = _prepare(Vu, s, Vv, X, block_size=block_size, check_finite=check_finite)
    return _sandwich(lay.U, s, lay.V, X)


def svd_linear_vjp(Vu, s, Vv, X, G, *, block_size=None, check_finite=True):
    r"""Cotangents ``(Vu, s, Vv, X)`` of :func:`svd_linear` for the output cotangent ``G``.

    With ``A = V^T X``, ``B = s * A`` and ``G_B = U^T G``:

    .. math::  \bar s = \textstyle\sum_{\text{columns}} G_B \odot A,\qquad
               \bar X = V (s \odot G_B),

    ``dVu`` from the product backward of ``U B`` and ``dVv`` from the
    transposed-product backward of ``V^T X`` with upstream ``s * G_B``
    (:func:`refimpl.linalg.householder_product_vjp`). Cotangents have
    their primals' shapes (broadcast batch axes are summed).
    """
    lay = _prepare(Vu, s, Vv, X, G=G, block_size=block_size, check_finite=check_finite)
    return LayerCotangents(*_sandwich_vjp(lay.xp, lay.U, s, lay.V, X, G))


def svd_linear_inverse(Vu, s, Vv, Y, *, block_size=None, check_finite=True):
    r"""Solve ``W X = Y`` without forming ``W``: ``X = V ((U^T Y) / s)``, ``O(d (n_u + n_v) m)``.

    .. math::  X = W^{-1} Y = V \operatorname{diag}(1/s)\, U^T Y.

    Exact up to rounding (no factorisation): the error is that of two
    orthogonal products and a division, ``O(kappa(W) eps)`` relative.

    Parameters
    ----------
    Vu, s, Vv, block_size, check_finite
        As :func:`svd_linear`.
    Y : (..., d, m) array
        Right-hand side.

    Returns
    -------
    X : (..., d, m) array

    Raises
    ------
    ValueError
        When a singular value is zero or not finite, naming ``s`` and its index.
    """
    lay = _prepare(Vu, s, Vv, Y, data_name="Y", block_size=block_size, check_finite=check_finite)
    _require_invertible(lay.xp, s, finite=check_finite)
    return _sandwich(lay.V, 1.0 / s, lay.U, Y)


def svd_linear_inverse_vjp(Vu, s, Vv, Y, G, *, block_size=None, check_finite=True):
    r"""Cotangents ``(Vu, s, Vv, Y)`` of :func:`svd_linear_inverse`.

    The inverse is the sandwich ``V (c * (U^T Y))`` with ``c = 1 / s``: the
    roles of ``U`` and ``V`` swap (``dVu`` now comes from the transposed
    backward) and ``ds = -dc / s^2``.
    """
    lay = _prepare(Vu, s, Vv, Y, data_name="Y", G=G, block_size=block_size,
                   check_finite=check_finite)
    _require_invertible(lay.xp, s, finite=check_finite)
    return _inverse_cotangents(lay, lay.U, lay.V, Y, G)


def _inverse_cotangents(lay, U: HouseholderWY, V: HouseholderWY, Y, G):
    """The sandwich cotangents of ``V ((1 / s) * (U^T Y))``, with ``ds = -dc / s^2``."""
    s = lay.s
    dVv, dc, dVu, dY = _sandwich_vjp(lay.xp, V, 1.0 / s, U, Y, G)
    return InverseCotangents(dVu, -dc / (s * s), dVv, dY)


# ---------------------------------------------------------------------------
# The prepared layer: WY blocks built once
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedSVDLinear:
    r"""The layer ``W = U diag(s) V^T`` with the WY blocks of ``U`` and ``V`` built once.

    Made by :func:`svd_linear_prepare`, for a model whose weights stay fixed
    over many batches: the build (``d (n_u + n_v) k`` flops) is paid once
    and every call costs the two products alone, ``4 d (n_u + n_v) m``. The
    methods compute what the plain ops compute, with the same conventions
    and checks of their data:

    * ``forward(X)``: :func:`svd_linear`;
    * ``inverse(Y)``: :func:`svd_linear_inverse`;
    * ``vjp(X, G)``: :func:`svd_linear_vjp`, ``LayerCotangents(Vu, s, Vv, X)``;
    * ``inverse_vjp(Y, G)``: :func:`svd_linear_inverse_vjp`.
    """

    Vu: object
    s: object
    Vv: object
    U: HouseholderWY
    V: HouseholderWY
    check_finite: bool

    def _data(self, data, name, G=None) -> _Layer:
        # Shapes and dtypes against the layer's; finiteness of the new arrays only: the
        # layer's own were checked by svd_linear_prepare, and a pass over Vu and Vv per
        # call would add O(d (n_u + n_v)) to every product.
        lay = _prepare(self.Vu, self.s, self.Vv, data, data_name=name, G=G, check_finite=False,
                       factors=False)
        require_finite_arrays(self.check_finite, **{name: data, "G": G})
        return lay

    def _inverse_data(self, data, G=None) -> _Layer:
        lay = self._data(data, "Y", G)
        _require_invertible(lay.xp, self.s, finite=self.check_finite)
        return lay

    def forward(self, X):
        """``W X = U (s * (V^T X))``."""
        self._data(X, "X")
        return _sandwich(self.U, self.s, self.V, X)

    def inverse(self, Y):
        """``W^{-1} Y = V ((U^T Y) / s)``."""
        self._inverse_data(Y)
        return _sandwich(self.V, 1.0 / self.s, self.U, Y)

    def vjp(self, X, G):
        """Cotangents ``(Vu, s, Vv, X)`` of :meth:`forward` for ``G``."""
        lay = self._data(X, "X", G)
        return LayerCotangents(*_sandwich_vjp(lay.xp, self.U, self.s, self.V, X, G))

    def inverse_vjp(self, Y, G):
        """Cotangents ``(Vu, s, Vv, Y)`` of :meth:`inverse` for ``G``."""
        lay = self._inverse_data(Y, G)
        return _inverse_cotangents(lay, self.U, self.V, Y, G)


def svd_linear_prepare(Vu, s, Vv, *, block_size=None, check_finite=True) -> PreparedSVDLinear:
    r"""Build the WY blocks of both factors of ``W = U diag(s) V^T`` once, for many calls.

    Parameters
    ----------
    Vu, s, Vv, check_finite
        As :func:`svd_linear`.
    block_size : int, optional
        Reflectors per compact WY block. Default:
        :func:`refimpl.linalg.default_block_size` for narrow batches (32),
        which applies about as fast as any for wider ones (figures in
        ``docs/performance.rst``).

    Returns
    -------
    PreparedSVDLinear
        With ``forward``, ``inverse``, ``vjp`` and ``inverse_vjp``.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.linalg import svd_linear, svd_linear_prepare
    >>> rng = np.random.default_rng(0)
    >>> Vu, Vv = rng.standard_normal((2, 6, 6))
    >>> s, X = rng.uniform(0.5, 2.0, 6), rng.standard_normal((6, 3))
    >>> layer = svd_linear_prepare(Vu, s, Vv)
    >>> bool(np.allclose(layer.forward(X), svd_linear(Vu, s, Vv, X)))
    True
    >>> bool(np.allclose(layer.inverse(layer.forward(X)), X))
    True
    """
    _prepare(Vu, s, Vv, check_finite=check_finite, factors=False)  # the checks across arguments
    U = _factor("Vu", Vu, block_size, None, check_finite)
    V = _factor("Vv", Vv, block_size, None, check_finite)
    return PreparedSVDLinear(Vu, s, Vv, U, V, check_finite)


def _eye_like(lay):
    xp, s = lay.xp, lay.s
    d = s.shape[-1]
    return xp.eye(d, dtype=s.dtype, device=device(s))


def svd_linear_matrix(Vu, s, Vv, *, block_size=None, check_finite=True):
    r"""The dense ``W = U diag(s) V^T``, shape ``(..., d, d)``, for checks and small ``d``.

    Computed as :func:`svd_linear` applied to the identity, ``O(d^2 (n_u + n_v))``.
    """
    lay = _prepare(Vu, s, Vv, block_size=block_size, check_finite=check_finite)
    return _sandwich(lay.U, s, lay.V, _eye_like(lay))


def svd_linear_matrix_vjp(Vu, s, Vv, G, *, block_size=None, check_finite=True):
    r"""Cotangents ``(Vu, s, Vv)`` of :func:`svd_linear_matrix` (``X = I`` in :func:`svd_linear_vjp`)."""
    lay = _prepare(Vu, s, Vv, block_size=block_size, check_finite=check_finite)
    eye = _eye_like(lay)
    require_arrays(s=s, G=G)
    _require_shape("G", G, lay.batch + tuple(eye.shape))
    require_finite_arrays(check_finite, G=G)
    return FactorCotangents(*_sandwich_vjp(lay.xp, lay.U, s, lay.V, eye, G)[:3])


# ---------------------------------------------------------------------------
# Determinant
# ---------------------------------------------------------------------------


def _spectral(Vu, s, Vv, check_finite):
    """Validate the arguments of the ops that read only ``s`` (``Vu``, ``Vv`` by shape, and
    their finiteness with ``check_finite``)."""
    return _prepare(Vu, s, Vv, check_finite=check_finite, factors=False)


def svd_linear_slogdet(Vu, s, Vv, *, check_finite=True):
    r"""Sign and log of ``|det W|`` in ``O(d)``, as ``numpy.linalg.slogdet``.

    .. math::  \log\lvert\det W\rvert = \sum_i \log\lvert s_i\rvert,\qquad
               \operatorname{sign}\det W = (-1)^{n_u + n_v} \prod_i \operatorname{sign}(s_i),

    since ``det U = (-1)^{n_u}`` (each row is a proper reflector,
    ``det H = -1``) and ``det V^T = det V = (-1)^{n_v}``. Only the shapes of
    ``Vu`` and ``Vv`` are read for the result: their values cannot change it.
    ``check_finite`` (default True) still refuses NaN or infinite reflectors
    (``W`` is then not finite), at the cost of one ``O(d (n_u + n_v))`` pass;
    ``check_finite=False`` skips it.

    Returns
    -------
    SlogdetResult(sign, logabsdet) : (...) arrays
        Batch shape: the broadcast of ``Vu``'s, ``s``'s and ``Vv``'s.

    Raises
    ------
    ValueError
        When a singular value is zero (``log|det W|`` would be ``-inf``),
        naming ``s`` and its index; with ``check_finite`` when ``Vu``, ``s``
        or ``Vv`` holds NaN or infinity (without it, a non-finite ``s`` is
        reported by its index).
    """
    lay = _spectral(Vu, s, Vv, check_finite)
    xp = lay.xp
    logabsdet = xp.sum(xp.log(xp.abs(s)), axis=-1)
    # One scalar test covers every zero, infinite or NaN singular value: a sum of log|s_i|
    # (and of the batch's entries) is finite iff every term is.
    total = logabsdet if logabsdet.ndim == 0 else xp.sum(logabsdet)
    if not math.isfinite(float(total)):
        _require_invertible(xp, s)
    sign = _determinant_sign(xp, s, _reflector_count(Vu, Vv))
    return SlogdetResult(_broadcast(xp, sign, lay.batch), _broadcast(xp, logabsdet, lay.batch))


def _determinant_sign(xp, s, reflectors):
    """``(-1)^(reflectors + number of negative s_i)``, per batch entry.

    One ``s`` counts its negative entries (a whole-array count, a
    microsecond where counting along an axis costs ten); a batch multiplies
    ``sign(s_i)``, exact since every factor is +-1.
    """
    if s.ndim == 1:
        odd = (int(xp.count_nonzero(s < 0)) + reflectors) % 2
        return xp.asarray(-1.0 if odd else 1.0, dtype=s.dtype, device=device(s))
    sign = xp.prod(xp.sign(s), axis=-1)
    return -sign if reflectors % 2 else sign


def _reflector_count(Vu, Vv) -> int:
    """``n_u + n_v``: under the default tau every row is a proper reflector, ``det H = -1``."""
    return Vu.shape[-2] + Vv.shape[-2]


def _broadcast(xp, x, batch):
    return x if tuple(x.shape) == batch else xp.broadcast_to(x, batch)


def svd_linear_slogdet_vjp(Vu, s, Vv, g, *, check_finite=True):
    r"""Cotangents ``(Vu, s, Vv)`` of ``logabsdet`` for its cotangent ``g`` (shape ``(...)``).

    The sign is piecewise constant and takes no cotangent.

    .. math::  \bar s_i = g / s_i,\qquad \bar V_u = \bar V_v = 0,

    the sign being piecewise constant. ``dVu`` and ``dVv`` are zero because
    ``|det U| = |det V| = 1`` whatever the reflectors.
    """
    lay = _spectral(Vu, s, Vv, check_finite)
    _require_invertible(lay.xp, s)
    return _zero_factors(Vu, _unbroadcast_scalar(lay, g, check_finite)[..., None] / s, Vv)


def _unbroadcast_scalar(lay, g, check_finite):
    """Check a per-batch cotangent ``g`` and sum it to ``s``'s batch shape."""
    require_arrays(s=lay.s, g=g)
    _require_shape("g", g, lay.batch)
    require_finite_arrays(check_finite, g=g)
    return sum_to_shape(lay.xp, g, tuple(lay.s.shape[:-1]))


def _zero_factors(Vu, ds, Vv):
    """``(0, ds, 0)``: the ops that read ``s`` only do not depend on the reflectors."""
    xp = get_namespace(ds=ds)[0]
    return FactorCotangents(xp.zeros_like(Vu), ds, xp.zeros_like(Vv))


# ---------------------------------------------------------------------------
# Spectral norm, condition number, spectral normalisation
# ---------------------------------------------------------------------------


def _max_abs(xp, s):
    return xp.max(xp.abs(s), axis=-1)


def _extreme_abs_vjp(xp, s, extreme, g):
    """Cotangent of ``extreme = max|s|`` (or ``min|s|``): ``g sign(s_i)`` shared among ties."""
    hits = xp.astype(xp.abs(s) == extreme[..., None], s.dtype)
    share = hits / xp.sum(hits, axis=-1, keepdims=True)
    return g[..., None] * xp.sign(s) * share


def spectral_norm(Vu, s, Vv, *, check_finite=True):
    r"""``||W||_2 = max_i |s_i|``, shape ``(...)``, in ``O(d)`` (only ``s`` is read; with
    ``check_finite``, the default, the reflectors are checked for NaN and infinity)."""
    lay = _spectral(Vu, s, Vv, check_finite)
    return _broadcast(lay.xp, _max_abs(lay.xp, s), lay.batch)


def spectral_norm_vjp(Vu, s, Vv, g, *, check_finite=True):
    r"""Cotangents ``(Vu, s, Vv)`` of :func:`spectral_norm`.

    ``ds_i = g sign(s_i)`` at the largest ``|s_i|``, zero elsewhere; a tie
    shares ``g`` equally (the convention of autograd and JAX for ``max``).
    """
    lay = _spectral(Vu, s, Vv, check_finite)
    xp = lay.xp
    ds = _extreme_abs_vjp(xp, s, _max_abs(xp, s), _unbroadcast_scalar(lay, g, check_finite))
    return _zero_factors(Vu, ds, Vv)


def condition_number(Vu, s, Vv, *, check_finite=True):
    r"""``kappa_2(W) = max_i |s_i| / min_i |s_i|``, shape ``(...)``, in ``O(d)``.

    Raises ``ValueError`` naming ``s`` and the index of a zero singular value
    (``W`` singular, ``kappa`` infinite); ``check_finite`` as :func:`spectral_norm`.
    """
    lay = _spectral(Vu, s, Vv, check_finite)
    xp = lay.xp
    _require_invertible(xp, s)
    return _broadcast(xp, _max_abs(xp, s) / xp.min(xp.abs(s), axis=-1), lay.batch)


def condition_number_vjp(Vu, s, Vv, g, *, check_finite=True):
    r"""Cotangents ``(Vu, s, Vv)`` of :func:`condition_number`.

    With ``M = max|s|`` and ``m = min|s|``, ``kappa = M / m`` gives
    ``ds = (g / m) dM/ds - (g M / m^2) dm/ds``, each extreme's derivative
    being ``sign(s_i)`` at its index (shared among ties).
    """
    lay = _spectral(Vu, s, Vv, check_finite)
    xp = lay.xp
    _require_invertible(xp, s)
    g = _unbroadcast_scalar(lay, g, check_finite)
    big, small = _max_abs(xp, s), xp.min(xp.abs(s), axis=-1)
    # g kappa / m, not g M / m^2: the two terms then cancel exactly when kappa = 1.
    ds = (_extreme_abs_vjp(xp, s, big, g / small)
          - _extreme_abs_vjp(xp, s, small, g * (big / small) / small))
    return _zero_factors(Vu, ds, Vv)


def _normalized(xp, s):
    big = _max_abs(xp, s)
    if not bool(xp.all(big > 0)):
        raise ValueError("s is zero (in at least one batch entry): W = 0 has no spectral "
                         "normalisation W / ||W||_2")
    return s / big[..., None], big


def spectral_normalize(Vu, s, Vv, X, *, block_size=None, check_finite=True):
    r"""Apply the spectrally normalised layer: ``(W / ||W||_2) X = U ((s / max|s|) * (V^T X))``.

    The normalised layer's parameters are ``(Vu, s / max|s|, Vv)``; its
    largest singular value is exactly 1. Arguments as :func:`svd_linear`;
    ``s = 0`` everywhere is a ``ValueError`` (``W = 0`` has no direction).
    """
    lay = _prepare(Vu, s, Vv, X, block_size=block_size, check_finite=check_finite)
    c, _ = _normalized(lay.xp, s)
    return _sandwich(lay.U, c, lay.V, X)


def spectral_normalize_vjp(Vu, s, Vv, X, G, *, block_size=None, check_finite=True):
    r"""Cotangents ``(Vu, s, Vv, X)`` of :func:`spectral_normalize`.

    With ``c = s / M``, ``M = max|s|`` and ``dc`` the sandwich cotangent,

    .. math::  \bar s = \bar c / M - \frac{\langle \bar c, s\rangle}{M^2}\,\frac{\partial M}{\partial s},

    ``dM/ds_i = sign(s_i)`` at the largest ``|s_i|`` (shared among ties).
    """
    lay = _prepare(Vu, s, Vv, X, G=G, block_size=block_size, check_finite=check_finite)
    xp = lay.xp
    c, big = _normalized(xp, s)
    dVu, dc, dVv, dX = _sandwich_vjp(xp, lay.U, c, lay.V, X, G)
    g_big = -xp.sum(dc * s, axis=-1) / (big * big)
    return LayerCotangents(dVu, dc / big[..., None] + _extreme_abs_vjp(xp, s, big, g_big), dVv, dX)


# ---------------------------------------------------------------------------
# Symmetric construction W = U diag(s) U^T: matrix functions
# ---------------------------------------------------------------------------


def _sym_apply(Vu, s, X, scale, block_size, check_finite, G=None, require=None):
    """Validate a symmetric-layer call (and ``require(xp, s)``); return it and ``c = scale(s)``."""
    lay = _prepare(Vu, s, None, X, G=G, block_size=block_size, check_finite=check_finite)
    if require is not None:
        require(lay.xp, s)
    return lay, scale(lay.xp, s)


def _sym_vjp(lay, c, dc_ds, X, G):
    """Cotangents ``(Vu, s, X)``: ``U`` is both factors, so its two cotangents add."""
    dL, dc, dR, dX = _sandwich_vjp(lay.xp, lay.U, c, lay.U, X, G)
    return SymmetricCotangents(dL + dR, dc * dc_ds, dX)


def _exp(xp, s):
    return xp.exp(s)


def sym_expm_apply(Vu, s, X, *, block_size=None, check_finite=True):
    r"""``expm(W) X`` for the symmetric ``W = U diag(s) U^T``: ``U (exp(s) * (U^T X))``.

    .. math::  e^{W} = U e^{\operatorname{diag}(s)} U^T,

    ``O(d n_u m)``, against ``O(d^3)`` for a dense ``expm``. Arguments as
    :func:`svd_linear`, with ``U`` used on both sides (``s`` are then the
    eigenvalues of ``W``).
    """
    lay, c = _sym_apply(Vu, s, X, _exp, block_size, check_finite)
    return _sandwich(lay.U, c, lay.U, X)


def sym_expm_apply_vjp(Vu, s, X, G, *, block_size=None, check_finite=True):
    r"""Cotangents ``(Vu, s, X)`` of :func:`sym_expm_apply`.

    The sandwich cotangents with ``c = exp(s)``: ``ds = exp(s) * dc`` and
    ``dVu`` the sum of the product backward (left ``U``) and of the
    transposed-product backward (right ``U^T``).
    """
    lay, c = _sym_apply(Vu, s, X, _exp, block_size, check_finite, G=G)
    return _sym_vjp(lay, c, c, X, G)


def _cayley(xp, s):
    return (1.0 - s) / (1.0 + s)


def _require_cayley_defined(xp, s):
    _reject(xp, s == -1.0, s, "the Cayley map needs 1 + s_i != 0 (I + W is singular)")


def sym_cayley_apply(Vu, s, X, *, block_size=None, check_finite=True):
    r"""Cayley map ``(I - W)(I + W)^{-1} X`` of the symmetric ``W = U diag(s) U^T``.

    .. math::  (I - W)(I + W)^{-1} = U \operatorname{diag}\Big(\frac{1 - s}{1 + s}\Big) U^T,

    ``O(d n_u m)``; no linear system is solved. A singular value with
    ``1 + s_i = 0`` (``I + W`` singular) is a ``ValueError`` naming its index.
    """
    lay, c = _sym_apply(Vu, s, X, _cayley, block_size, check_finite,
                        require=_require_cayley_defined)
    return _sandwich(lay.U, c, lay.U, X)


def sym_cayley_apply_vjp(Vu, s, X, G, *, block_size=None, check_finite=True):
    r"""Cotangents ``(Vu, s, X)`` of :func:`sym_cayley_apply`.

    As :func:`sym_expm_apply_vjp` with ``c = (1 - s) / (1 + s)`` and
    ``dc/ds = -2 / (1 + s)^2``.
    """
    lay, c = _sym_apply(Vu, s, X, _cayley, block_size, check_finite, G=G,
                        require=_require_cayley_defined)
    one_plus = 1.0 + s
    return _sym_vjp(lay, c, -2.0 / (one_plus * one_plus), X, G)
