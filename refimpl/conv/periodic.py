r"""Multi-channel periodic convolution (Hoogeboom et al. 2019) as an invertible layer.

Convention (docs/conventions.rst, section 2.3). ``X`` is ``(..., c_in, H, W)``,
the full-size kernel ``K`` is ``(c_out, c_in, H, W)``, ``z_o = sum_i K_oi (*) x_i``;
per 2-D frequency ``z_hat(f) = K_hat(f) x_hat(f)`` with ``K_hat(f)`` a
``c_out x c_in`` matrix, ``log|det| = sum_f log|det K_hat(f)|`` and the
inverse is a per-frequency ``solve``. The derivations of every VJP are in
``docs/blocks/conv.rst``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._results import SlogdetResult, cotangent_type
from .._validation import require_ndim, require_real_floating, require_same_dtype
from ..backend import device, get_namespace
from ._fft import (
    _EPS,
    _check_method,
    _fft,
    _frequency,
    _ifft,
    _raise_singular,
    _self_conjugate,
    _weighted_sum,
)
from .spectrum import KernelSpectrum, _data_and_kernel, _periodic_spectrum, _require_periodic_kernel

__all__ = [
    "periodic_conv",
    "periodic_conv_inverse",
    "periodic_conv_inverse_vjp",
    "periodic_conv_slogdet",
    "periodic_conv_slogdet_vjp",
    "periodic_conv_vjp",
]

ConvCotangents = cotangent_type("ConvCotangents", "X K")
InverseCotangents = cotangent_type("InverseCotangents", "Z K")
KernelCotangents = cotangent_type("KernelCotangents", "K")


@dataclass
class _Periodic:
    xp: Any
    spec: KernelSpectrum
    batch: tuple  # batch shape of X


def _periodic_inputs(X, K, method, square=False, **cotangents) -> _Periodic:
    """Validate images ``X`` (and an output cotangent) and ``K`` or its spectrum."""
    xp, spectrum = _data_and_kernel(X, K, method, cotangents)
    require_ndim("X", X, 3, "(..., c_in, H, W)")
    if spectrum is None:
        _require_periodic_kernel(K)
        spectrum = _periodic_spectrum(xp, K, _check_method(method))
    elif spectrum.channels is None:
        raise ValueError("K is a circular-convolution spectrum; use periodic_kernel_spectrum")
    c_out, c_in = spectrum.channels
    if square and c_out != c_in:
        raise ValueError(f"K must have c_out == c_in to be invertible, got channels ({c_out}, {c_in})")
    expected = (c_in,) + spectrum.grid
    if tuple(X.shape[-3:]) != expected:
        raise ValueError(
            f"X must have shape (..., c_in, H, W) = (..., {c_in}, {spectrum.grid[0]}, "
            f"{spectrum.grid[1]}) to match K, got {tuple(X.shape)}"
        )
    for name, arr in cotangents.items():
        want = tuple(X.shape[:-3]) + (c_out,) + spectrum.grid
        if tuple(arr.shape) != want:
            raise ValueError(f"{name} must have the output's shape {want}, got {tuple(arr.shape)}")
    return _Periodic(xp, spectrum, tuple(X.shape[:-3]))


def _to_frequencies(p: _Periodic, X):
    """``(..., c, H, W)`` -> per-frequency columns ``(H, W', c, B)``."""
    xp = p.xp
    c = X.shape[-3]
    X = xp.reshape(X, (-1, c) + p.spec.grid)
    return xp.permute_dims(_fft(xp, X, p.spec.grid, (-2, -1), p.spec.real), (2, 3, 1, 0))


def _from_frequencies(p: _Periodic, Y):
    """Per-frequency columns ``(H, W', c, B)`` -> spatial ``(..., c, H, W)``."""
    xp = p.xp
    Y = xp.permute_dims(Y, (3, 2, 0, 1))
    Y = _ifft(xp, Y, p.spec.grid, (-2, -1), p.spec.real)
    return xp.reshape(Y, p.batch + (Y.shape[1],) + p.spec.grid)


def _kernel_from_frequencies(p: _Periodic, Y):
    """Per-frequency ``c_out x c_in`` matrices -> spatial kernel ``(c_out, c_in, H, W)``."""
    return _ifft(p.xp, p.xp.permute_dims(Y, (2, 3, 0, 1)), p.spec.grid, (-2, -1), p.spec.real)


def _adjoint(xp, A):
    return xp.conj(xp.matrix_transpose(A))


def periodic_conv(X, K, *, method=None):
    r"""Multi-channel periodic convolution (Hoogeboom et al. 2019).

    .. math::  Z_o = \sum_i K_{oi} \circledast X_i,\qquad \hat z(f) = \hat K(f)\,\hat x(f),

    with ``(*)`` the 2-D circular convolution of :func:`circular_conv`. With
    ``K = embed_kernel(w, (H, W))`` this is the deep-learning layer
    ``conv2d`` with circular padding (a cross-correlation with ``w``).
    ``O(c HW log HW + c_out c_in HW)`` per image.

    Parameters
    ----------
    X : (..., c_in, H, W) array
        Images, channels first; leading axes are batch axes.
    K : (c_out, c_in, H, W) array or KernelSpectrum
        Full-size kernel, or its :func:`periodic_kernel_spectrum`.
    method : {"rfft", "complex"}, optional
        As :func:`circular_conv`.

    Returns
    -------
    Z : (..., c_out, H, W) array

    Examples
    --------
    A PyTorch-style 3x3 layer with circular padding, as a periodic convolution:

    >>> import numpy as np, scipy.ndimage
    >>> from refimpl.conv import embed_kernel, periodic_conv
    >>> rng = np.random.default_rng(0)
    >>> w, x = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal((2, 8, 8))
    >>> z = periodic_conv(x, embed_kernel(w, (8, 8)))
    >>> z_ref = [sum(scipy.ndimage.correlate(x[i], w[o, i], mode="wrap") for i in range(2))
    ...          for o in range(4)]
    >>> np.allclose(z, z_ref)
    True
    """
    p = _periodic_inputs(X, K, method)
    return _from_frequencies(p, p.spec.values @ _to_frequencies(p, X))


def periodic_conv_vjp(X, K, G, *, method=None):
    r"""Cotangents ``(dX, dK)`` of :func:`periodic_conv` for ``G = dL/dZ``.

    .. math::  \hat{\overline x}(f) = \hat K(f)^H \hat g(f),\qquad
               \hat{\overline K}(f) = \sum_{\text{batch}} \hat g(f)\,\hat x(f)^H.
    """
    p = _periodic_inputs(X, K, method, G=G)
    xp = p.xp
    X_f, G_f = _to_frequencies(p, X), _to_frequencies(p, G)
    dX = _from_frequencies(p, _adjoint(xp, p.spec.values) @ G_f)
    return ConvCotangents(dX, _kernel_from_frequencies(p, G_f @ _adjoint(xp, X_f)))


def _solve(p: _Periodic, A, B, what="K"):
    """Per-frequency ``solve(A, B)``, raising ``ValueError`` on a singular frequency.

    ``||B_f|| / ||X_f|| >= sigma_min(A_f)`` for the solution ``X_f``, so the
    test ``||B_f|| <= ||C(K)|| n eps ||X_f||`` (``n = c HW``, matrix_rank's
    tolerance, with ``||C(K)|| <= max_f ||K_hat(f)||_F``) flags every
    frequency that the data show to be singular to working precision.
    """
    xp = p.xp
    try:
        X = xp.linalg.solve(A, B)
    except ValueError as exc:  # numpy's LinAlgError: an exact zero pivot
        _raise_singular_matrices(xp, A, what, exc)
    tol = p.spec.norm * (A.shape[-1] * math.prod(p.spec.grid) * _EPS[p.spec.dtype])
    b = xp.sqrt(xp.sum(xp.real(B * xp.conj(B)), axis=(-2, -1)))
    x = xp.sqrt(xp.sum(xp.real(X * xp.conj(X)), axis=(-2, -1)))
    bad = xp.logical_not(xp.isfinite(x)) | (b < tol * x)
    if bool(xp.any(bad)):
        if not bool(xp.all(xp.isfinite(b))):
            raise ValueError("the right-hand side must not contain infs or NaNs")
        flat = int(xp.argmax(xp.astype(xp.reshape(bad, (-1,)), xp.int32)))
        _raise_singular(what, _frequency(flat, tuple(bad.shape)),
                        f"sigma_min(K_hat(f)) <= ||C(K)|| * n * eps = {float(tol):.3g}")
    return X


def _raise_singular_matrices(xp, A, what, exc):
    logabs = xp.linalg.slogdet(A).logabsdet
    flat = int(xp.argmin(xp.reshape(logabs, (-1,))))
    raise ValueError(
        f"{what} is singular at frequency {_frequency(flat, tuple(logabs.shape))} "
        "(det K_hat(f) = 0): the inverse and the log-determinant are undefined"
    ) from exc


def periodic_conv_inverse(Z, K, *, method=None):
    r"""Solve ``periodic_conv(X, K) = Z`` for ``X`` (``c_out = c_in``).

    .. math::  \hat x(f) = \hat K(f)^{-1} \hat z(f)\quad\text{(one batched } \texttt{solve}\text{, never inv)}.

    Raises ``ValueError`` naming the frequency when a ``K_hat(f)`` is
    singular to working precision (see the solver's test in the docs).
    ``O(c^3 HW)`` for the LU factors plus ``O(c HW log HW + c^2 HW)`` per image.
    """
    p = _periodic_inputs(Z, K, method, square=True)
    return _from_frequencies(p, _solve(p, p.spec.values, _to_frequencies(p, Z)))


def periodic_conv_inverse_vjp(Z, K, G, *, method=None):
    r"""Cotangents ``(dZ, dK)`` of :func:`periodic_conv_inverse` for ``G = dL/dX``.

    .. math::  \hat{\overline z}(f) = \hat K(f)^{-H} \hat g(f),\qquad
               \hat{\overline K}(f) = -\sum_{\text{batch}} \hat{\overline z}(f)\,\hat x(f)^H,

    with ``x`` the inverse's output.
    """
    p = _periodic_inputs(Z, K, method, square=True, G=G)
    xp = p.xp
    A = p.spec.values
    X_f = _solve(p, A, _to_frequencies(p, Z))
    dZ_f = _solve(p, _adjoint(xp, A), _to_frequencies(p, G))
    dK = -_kernel_from_frequencies(p, dZ_f @ _adjoint(xp, X_f))
    return InverseCotangents(_from_frequencies(p, dZ_f), dK)


def _periodic_slogdet_inputs(K, method, g=None):
    """Validate a (batch of) square kernel(s); per-frequency matrices ``(..., H, W', c, c)``."""
    require_real_floating("K", K)
    xp, _ = get_namespace(K, g)
    if K.ndim < 4 or min(K.shape[-4:]) < 1:
        raise ValueError(f"K must have shape (..., c, c, H, W), got shape {tuple(K.shape)}")
    if K.shape[-4] != K.shape[-3]:
        raise ValueError(
            f"K must have c_out == c_in for a log-determinant, got channels {tuple(K.shape[-4:-2])}"
        )
    real = _check_method(method)
    grid = tuple(K.shape[-2:])
    nb = K.ndim - 4
    A = _fft(xp, K, grid, (-2, -1), real)
    A = xp.permute_dims(A, tuple(range(nb)) + (nb + 2, nb + 3, nb, nb + 1))
    return xp, grid, real, A


def periodic_conv_slogdet(K, *, method=None):
    r"""Sign and log-absolute-determinant of the periodic convolution by ``K``.

    .. math::  \log|\det| = \sum_f \omega_f \log|\det \hat K(f)|,\qquad
               \operatorname{sign} = \prod_{f = -f} \operatorname{sign}\det\hat K(f),

    multiplicity weights ``omega`` as in :func:`circular_conv_slogdet`; the
    self-conjugate ``K_hat(f)`` are real. One batched complex ``slogdet``
    (LU), ``O(c^3 HW)``.

    Parameters
    ----------
    K : (..., c, c, H, W) array
        Square kernel(s); leading axes are batch axes.
    method : {"rfft", "complex"}, optional

    Returns
    -------
    sign, logabsdet : arrays of ``K``'s batch shape

    Raises ``ValueError`` naming the frequency where ``det K_hat(f) = 0``
    (an exact zero pivot).
    """
    xp, grid, real, A = _periodic_slogdet_inputs(K, method)
    return _periodic_slogdet(xp, grid, real, A)


def _periodic_slogdet(xp, grid, real, A):
    res = xp.linalg.slogdet(A)
    if not bool(xp.all(xp.isfinite(res.logabsdet))):
        bad = xp.logical_not(xp.isfinite(res.logabsdet))
        flat = int(xp.argmax(xp.astype(xp.reshape(bad, (-1,)), xp.int32)))
        _raise_singular("K", _frequency(flat, tuple(bad.shape)), "det K_hat(f) = 0")
    axes = (A.ndim - 4, A.ndim - 3)
    logabsdet = _weighted_sum(xp, res.logabsdet, grid, axes, real)
    signs = xp.real(res.sign[_self_conjugate(grid, axes, A.ndim - 2)])
    return SlogdetResult(xp.prod(xp.sign(signs), axis=axes), logabsdet)


def periodic_conv_slogdet_vjp(K, g, *, method=None):
    r"""Cotangent ``(dK,)`` of :func:`periodic_conv_slogdet` for ``g = dL/dlogabsdet``.

    .. math::  \overline K_{oi} = g\,HW\;\mathcal F^{-1}\!\big([\hat K(f)^{-H}]_{oi}\big),

    from ``d log|det A| = Re tr(A^{-1} dA)``; ``K_hat(f)^{-H}`` comes from
    ``solve(K_hat(f)^H, I)``. ``g`` has ``K``'s batch shape.
    """
    require_real_floating("g", g)
    require_same_dtype(K=K, g=g)
    xp, grid, real, A = _periodic_slogdet_inputs(K, method, g)
    if tuple(g.shape) != tuple(K.shape[:-4]):
        raise ValueError(f"g must have K's batch shape {tuple(K.shape[:-4])}, got {tuple(g.shape)}")
    _periodic_slogdet(xp, grid, real, A)  # raises on a singular frequency
    c = A.shape[-1]
    eye = xp.eye(c, dtype=A.dtype, device=device(A))
    inv_h = xp.linalg.solve(_adjoint(xp, A), xp.broadcast_to(eye, A.shape))
    nb = K.ndim - 4
    inv_h = xp.permute_dims(inv_h, tuple(range(nb)) + (nb + 2, nb + 3, nb, nb + 1))
    grad = _ifft(xp, inv_h, grid, (-2, -1), real) * float(math.prod(grid))
    return KernelCotangents(grad * xp.reshape(g, tuple(g.shape) + (1, 1, 1, 1)))
