r"""Circular convolution over chosen axes as an invertible layer: forward, inverse, log-determinant, VJPs.

Convention (docs/conventions.rst, section 2.2). Over the grid axes of ``X``
(grid shape ``N``):

.. math::  Z[n] = \sum_m K[m]\, X[(n - m) \bmod N] = \mathcal F^{-1}(\hat K \cdot \hat X).

The operator ``C(K)`` is block-circulant with eigenvalues ``K_hat[f]``, so
``log|det C(K)| = sum_f log|K_hat[f]|`` and ``X = F^{-1}(Z_hat / K_hat)``.
The derivations of every VJP are in ``docs/blocks/conv.rst``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._results import SlogdetResult, cotangent_type
from .._validation import dtype_name, require_arrays, require_finite_arrays, require_ndim
from ..backend import get_namespace
from ._fft import (
    _EPS,
    _check_method,
    _fft,
    _frequency,
    _ifft,
    _normalize_axes,
    _raise_singular,
    _self_conjugate,
    _weighted_sum,
)
from .spectrum import KernelSpectrum, _circular_spectrum, _data_and_kernel

__all__ = [
    "circular_conv",
    "circular_conv_inverse",
    "circular_conv_inverse_vjp",
    "circular_conv_slogdet",
    "circular_conv_slogdet_vjp",
    "circular_conv_vjp",
]

ConvCotangents = cotangent_type("ConvCotangents", "X K")
InverseCotangents = cotangent_type("InverseCotangents", "Z K")
KernelCotangents = cotangent_type("KernelCotangents", "K")


@dataclass
class _Circular:
    xp: Any
    spec: KernelSpectrum
    axes: tuple
    K_hat: Any  # spectrum broadcast against X's spectrum


def _circular_inputs(X, K, axes, method, data_name="X", bounds=False, **cotangents) -> _Circular:
    """Validate the data ``X`` (called ``data_name``; and a cotangent of its shape) and ``K`` or
    its spectrum.

    ``bounds``: a spectrum computed here gets the bounds of the singularity test.
    """
    xp, spectrum = _data_and_kernel(X, K, method, cotangents, data_name)
    require_ndim(data_name, X, 1, "(..., N_1, ..., N_d)")
    axes = _normalize_axes(axes, X.ndim, data_name)
    grid = tuple(X.shape[a] for a in axes)
    if min(grid) < 1:
        raise ValueError(f"{data_name} must have nonzero sizes along axes {axes}, "
                         f"got shape {tuple(X.shape)}")
    for name, arr in cotangents.items():
        if tuple(arr.shape) != tuple(X.shape):
            raise ValueError(f"{name} must have the shape of {data_name} {tuple(X.shape)}, "
                             f"got {tuple(arr.shape)}")
    if spectrum is None:
        if tuple(K.shape) != grid:
            raise ValueError(f"K must have the shape of {data_name} along axes {axes}, {grid}, "
                             f"got {tuple(K.shape)}")
        spectrum = _circular_spectrum(xp, K, _check_method(method), bounds)
    elif spectrum.channels is not None or spectrum.grid != grid:
        raise ValueError(
            f"K is a spectrum for grid {spectrum.grid} (channels {spectrum.channels}); "
            f"{data_name} has grid {grid} along axes {axes}"
        )
    shape = [1] * X.ndim
    for a, n in zip(axes, spectrum.values.shape):
        shape[a] = n
    return _Circular(xp, spectrum, axes, xp.reshape(spectrum.values, tuple(shape)))


def _batch_sum(xp, y, axes):
    """Sum a spectrum over the non-grid (batch) axes: the kernel is shared."""
    batch = tuple(a for a in range(y.ndim) if a not in axes)
    return xp.sum(y, axis=batch) if batch else y


def _kernel_cotangent(c: _Circular, spectrum):
    """Spatial kernel cotangent from its (batch-summed) spectrum."""
    d = len(c.axes)
    return _ifft(c.xp, _batch_sum(c.xp, spectrum, c.axes), c.spec.grid, tuple(range(d)), c.spec.real)


def circular_conv(X, K, axes=None, *, method=None):
    r"""Circular convolution of ``X`` with ``K`` over ``axes``.

    .. math::  Z[n] = \sum_m K[m]\, X[(n - m) \bmod N] = \mathcal F^{-1}(\hat K\,\hat X).

    This is a convolution (the kernel is flipped), not the cross-correlation
    of deep-learning layers: ``scipy.ndimage.convolve(X, K, mode="wrap")``
    equals ``Z`` rolled by ``-(s // 2)`` along each axis of size ``s``. The
    3-D convolution of an ``h x w x c`` tensor is ``axes=(0, 1, 2)``.
    ``O(|N| log |N|)``.

    Parameters
    ----------
    X : array
        Input; the axes not in ``axes`` are batch axes.
    K : array or KernelSpectrum
        Kernel of shape ``tuple(X.shape[a] for a in axes)`` (axes in
        increasing order), or its :func:`kernel_spectrum` (then the forward
        costs two FFTs).
    axes : int or tuple of int, optional
        Periodic axes of ``X``; default all.
    method : {"rfft", "complex"}, optional
        Half spectrum (default) or full complex FFTs; same numbers to
        rounding. Taken from ``K`` when it is a spectrum.

    Returns
    -------
    Z : array
        Shape, namespace, device and dtype of ``X``.

    Examples
    --------
    >>> import numpy as np, scipy.ndimage
    >>> from refimpl.conv import circular_conv, circular_conv_inverse, kernel_spectrum
    >>> rng = np.random.default_rng(0)
    >>> X, K = rng.standard_normal((8, 6, 3)), rng.standard_normal((8, 6, 3))
    >>> Z = circular_conv(X, K)
    >>> np.allclose(np.roll(Z, (-4, -3, -1), axis=(0, 1, 2)),
    ...             scipy.ndimage.convolve(X, K, mode="wrap"))
    True
    >>> spec = kernel_spectrum(K)                # cache the kernel's FFT
    >>> np.allclose(circular_conv_inverse(circular_conv(X, spec), spec), X)
    True
    """
    c = _circular_inputs(X, K, axes, method)
    X_hat = _fft(c.xp, X, c.spec.grid, c.axes, c.spec.real)
    return _ifft(c.xp, X_hat * c.K_hat, c.spec.grid, c.axes, c.spec.real)


def circular_conv_vjp(X, K, G, axes=None, *, method=None):
    r"""Cotangents ``(dX, dK)`` of :func:`circular_conv` for the output cotangent ``G``.

    .. math::  \overline X = C(K)^T G = \mathcal F^{-1}(\overline{\hat K}\,\hat G),\qquad
               \overline K = \sum_{\text{batch}} \mathcal F^{-1}(\hat G\,\overline{\hat X}),

    i.e. ``dX[n] = sum_m K[m] G[n + m]`` (a cross-correlation) and
    ``dK[m] = sum_n G[n] X[n - m]``. Arguments as :func:`circular_conv`;
    ``G`` has the shape of ``X``.
    """
    c = _circular_inputs(X, K, axes, method, G=G)
    xp, grid, real = c.xp, c.spec.grid, c.spec.real
    X_hat, G_hat = _fft(xp, X, grid, c.axes, real), _fft(xp, G, grid, c.axes, real)
    dX = _ifft(xp, G_hat * xp.conj(c.K_hat), grid, c.axes, real)
    return ConvCotangents(dX, _kernel_cotangent(c, G_hat * xp.conj(X_hat)))


def _require_invertible(xp, spec, what="K"):
    """Raise unless ``min |K_hat| > ||C(K)|| * n * eps`` (numpy.linalg.matrix_rank's tolerance).

    The singular values of ``C(K)`` are ``|K_hat[f]|``, so this is exact.
    """
    tol = spec.norm * (math.prod(spec.grid) * _EPS[spec.dtype])
    if bool(spec.smallest > tol):
        return
    mags = xp.abs(spec.values)
    flat = int(xp.argmin(xp.reshape(mags, (-1,))))
    freq = _frequency(flat, tuple(mags.shape))
    _raise_singular(what, freq, f"|K_hat| <= max|K_hat| * |N| * eps = {float(tol):.3g}")


def circular_conv_inverse(Z, K, axes=None, *, method=None):
    r"""Solve ``circular_conv(X, K, axes) = Z`` for ``X``.

    .. math::  X = \mathcal F^{-1}(\hat Z / \hat K).

    Raises ``ValueError`` naming the frequency when ``C(K)`` is singular to
    working precision: ``min |K_hat| <= max |K_hat| |N| eps`` (the
    tolerance of ``numpy.linalg.matrix_rank``). The relative error of ``X``
    is about ``cond(C(K)) eps`` with ``cond = max |K_hat| / min |K_hat|``.
    Arguments as :func:`circular_conv`, with ``Z`` in place of ``X``.
    """
    c = _circular_inputs(Z, K, axes, method, "Z", bounds=True)
    _require_invertible(c.xp, c.spec)
    Z_hat = _fft(c.xp, Z, c.spec.grid, c.axes, c.spec.real)
    return _ifft(c.xp, Z_hat / c.K_hat, c.spec.grid, c.axes, c.spec.real)


def circular_conv_inverse_vjp(Z, K, G, axes=None, *, method=None):
    r"""Cotangents ``(dZ, dK)`` of :func:`circular_conv_inverse` for ``G = dL/dX``.

    With ``X`` the inverse's output,

    .. math::  \overline Z = C(K)^{-T} G = \mathcal F^{-1}(\hat G / \overline{\hat K}),\qquad
               \overline K = -\sum_{\text{batch}} \mathcal F^{-1}(\hat{\overline Z}\,\overline{\hat X}).
    """
    c = _circular_inputs(Z, K, axes, method, "Z", bounds=True, G=G)
    xp, grid, real = c.xp, c.spec.grid, c.spec.real
    _require_invertible(xp, c.spec)
    X_hat = _fft(xp, Z, grid, c.axes, real) / c.K_hat
    dZ_hat = _fft(xp, G, grid, c.axes, real) / xp.conj(c.K_hat)
    dZ = _ifft(xp, xp.asarray(dZ_hat, copy=True), grid, c.axes, real)
    return InverseCotangents(dZ, -_kernel_cotangent(c, dZ_hat * xp.conj(X_hat)))


def circular_conv_slogdet(K, axes=None, *, method=None):
    r"""Sign and log-absolute-determinant of the circular convolution by ``K``.

    .. math::  \log|\det C(K)| = \sum_f \omega_f \log|\hat K[f]|,\qquad
               \operatorname{sign} = \prod_{f = -f} \operatorname{sign}\hat K[f],

    with ``omega_f = 1`` on the full spectrum and the multiplicity weights on
    the half spectrum (1 for last-axis bins ``0`` and ``N/2``, else 2). The
    product runs over the self-conjugate bins, where ``K_hat`` is real; the
    other eigenvalues come in conjugate pairs. ``O(|N| log |N|)``, then
    ``O(|N|)``.

    Parameters
    ----------
    K : array or KernelSpectrum
        Kernel(s); axes not in ``axes`` are batch axes.
    axes : int or tuple of int, optional
        Grid axes of ``K`` (default all). Must be ``None`` for a spectrum.
    method : {"rfft", "complex"}, optional
        As :func:`circular_conv`.

    Returns
    -------
    sign, logabsdet : arrays
        Of ``K``'s batch shape and real dtype.

    Raises ``ValueError`` naming the frequency where ``K_hat`` is exactly
    zero (``C(K)`` singular); a tiny but nonzero ``|K_hat|`` gives the
    (large negative, finite) log-determinant of the rounded operator.
    """
    xp, spec, axes, K_hat = _slogdet_spectrum(K, axes, method)
    mags = _nonzero_magnitudes(xp, K_hat)
    logabsdet = _weighted_sum(xp, xp.log(mags), spec.grid, axes, spec.real)
    diag = xp.real(K_hat[_self_conjugate(spec.grid, axes, K_hat.ndim)])
    sign = xp.prod(xp.sign(diag), axis=axes)
    return SlogdetResult(sign, logabsdet)


def _nonzero_magnitudes(xp, K_hat):
    """``|K_hat|``, raising ``ValueError`` naming the first frequency where it is 0."""
    mags = xp.abs(K_hat)
    if not bool(xp.all(mags > 0)):
        flat = int(xp.argmin(xp.reshape(mags, (-1,))))
        _raise_singular("K", _frequency(flat, tuple(mags.shape)), "K_hat = 0")
    return mags


def _slogdet_spectrum(K, axes, method):
    if isinstance(K, KernelSpectrum):
        if axes is not None or K.channels is not None:
            raise ValueError("a circular KernelSpectrum has no batch axes: pass axes=None")
        _check_method(method, K)
        return get_namespace(K=K.values)[0], K, tuple(range(len(K.grid))), K.values
    xp, _ = require_arrays(K=K)
    require_ndim("K", K, 1, "(..., N_1, ..., N_d)")
    require_finite_arrays(K=K)
    axes = _normalize_axes(axes, K.ndim, "K")
    grid = tuple(K.shape[a] for a in axes)
    if min(grid) < 1:
        raise ValueError(f"K must have nonzero sizes along axes {axes}, got shape {tuple(K.shape)}")
    real = _check_method(method)
    K_hat = _fft(xp, K, grid, axes, real)
    return xp, KernelSpectrum(K_hat, grid, real, None, None, None, dtype_name(K)), axes, K_hat


def circular_conv_slogdet_vjp(K, g, axes=None, *, method=None):
    r"""Cotangent ``(dK,)`` of :func:`circular_conv_slogdet` for ``g = dL/dlogabsdet``.

    .. math::  \overline K = g\,|N|\;\mathcal F^{-1}\!\big(1 / \overline{\hat K}\big)
               \quad(= g\, C(K)^{-T}\ \text{restricted to the circulant pattern}),

    real because ``1 / conj(K_hat)`` is Hermitian; no multiplicity weights
    are needed on the half spectrum (``irfftn`` mirrors the missing half).
    ``g`` has ``K``'s batch shape.
    """
    if isinstance(K, KernelSpectrum):
        raise TypeError("circular_conv_slogdet_vjp needs the kernel K, not its spectrum")
    xp, spec, axes, K_hat = _slogdet_spectrum(K, axes, method)
    batch = tuple(n for a, n in enumerate(K.shape) if a not in axes)
    require_arrays(K=K, g=g)
    if tuple(g.shape) != batch:
        raise ValueError(f"g must have K's batch shape {batch}, got {tuple(g.shape)}")
    require_finite_arrays(g=g)
    _nonzero_magnitudes(xp, K_hat)
    inv = 1.0 / xp.conj(K_hat)
    grad = _ifft(xp, inv, spec.grid, axes, spec.real) * float(math.prod(spec.grid))
    shape = [1] * K.ndim
    for a, n in zip([a for a in range(K.ndim) if a not in axes], batch):
        shape[a] = n
    return KernelCotangents(grad * xp.reshape(g, tuple(shape)))
