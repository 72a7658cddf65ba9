r"""FFT circular convolutions as invertible layers: forward, inverse, log-determinant, VJPs.

Convention (CONVENTIONS.md section 3). DFTs are unnormalised forward and
``1/N`` inverse (``norm="backward"``); every n-d FFT gets both ``s`` and
``axes``.

**Circular convolution** over the grid axes of ``X`` (grid shape ``N``):

.. math::  Z[n] = \sum_m K[m]\, X[(n - m) \bmod N] = \mathcal F^{-1}(\hat K \cdot \hat X).

The operator ``C(K)`` is block-circulant with eigenvalues ``K_hat[f]``, so
``log|det C(K)| = sum_f log|K_hat[f]|`` and ``X = F^{-1}(Z_hat / K_hat)``.

**Multi-channel periodic convolution** (Hoogeboom et al. 2019): ``X`` is
``(..., c_in, H, W)``, the full-size kernel ``K`` is ``(c_out, c_in, H, W)``,
``z_o = sum_i K_oi (*) x_i``; per 2-D frequency ``z_hat(f) = K_hat(f) x_hat(f)``
with ``K_hat(f)`` a ``c_out x c_in`` matrix, ``log|det| = sum_f log|det K_hat(f)|``
and the inverse is a per-frequency ``solve``.

**Real FFTs.** ``method="rfft"`` (default) keeps the half spectrum along the
last grid axis. Sums over frequencies then carry the multiplicity weights
``omega = 1`` for last-axis bins ``0`` and ``N/2`` (``N`` even), else ``2``;
before every ``irfftn`` the imaginary parts of the self-conjugate bins (every
index ``0`` or ``N_j / 2``) are set to zero, since backends other than
pocketfft need not ignore them. ``method="complex"`` uses ``fftn``/``ifftn``
and gives the same numbers to rounding.

**Deep-learning kernels.** :func:`embed_kernel` turns a small odd kernel of a
cross-correlation layer with circular padding (PyTorch ``"oihw"``, TF
``"hwio"``) into the full-size convolution kernel.

**Glow's invertible 1x1 convolution** is the ``k = 1`` case with the LU
parametrisation ``W = P L (U + diag(s))``: :func:`glow_conv1x1`.

**Cached spectra.** :func:`kernel_spectrum` and :func:`periodic_kernel_spectrum`
return a :class:`KernelSpectrum` that every op accepts in place of ``K``; the
forward is then two FFTs and a product.

The derivations of every VJP are in ``docs/blocks/fftconv.rst``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ._validation import dtype_name, require_ndim, require_real_floating, require_same_dtype
from .backend import get_namespace

__all__ = [
    "KernelSpectrum",
    "LAYOUTS",
    "circular_conv",
    "circular_conv_inverse",
    "circular_conv_inverse_vjp",
    "circular_conv_slogdet",
    "circular_conv_slogdet_vjp",
    "circular_conv_vjp",
    "embed_kernel",
    "embed_kernel_vjp",
    "glow_conv1x1",
    "glow_conv1x1_inverse",
    "glow_conv1x1_inverse_vjp",
    "glow_conv1x1_slogdet",
    "glow_conv1x1_slogdet_vjp",
    "glow_conv1x1_vjp",
    "glow_lu_weight",
    "kernel_spectrum",
    "periodic_conv",
    "periodic_conv_inverse",
    "periodic_conv_inverse_vjp",
    "periodic_conv_slogdet",
    "periodic_conv_slogdet_vjp",
    "periodic_conv_vjp",
    "periodic_kernel_spectrum",
]

METHODS = ("rfft", "complex")
LAYOUTS = ("oihw", "hwio")
_EPS = {"float32": 2.0**-23, "float64": 2.0**-52}


# ---------------------------------------------------------------------------
# FFT helpers: real/complex paths, Hermitian hygiene, multiplicity weights
# ---------------------------------------------------------------------------


def _complex_dtype(xp, x):
    return xp.complex64 if dtype_name(x) == "float32" else xp.complex128


def _fft(xp, x, grid, axes, real):
    """Unnormalised DFT over ``axes`` (half spectrum along the last one if ``real``)."""
    if real:
        return xp.fft.rfftn(x, s=grid, axes=axes)
    return xp.fft.fftn(xp.astype(x, _complex_dtype(xp, x)), s=grid, axes=axes)


def _self_conjugate(grid, axes, ndim):
    """Basic index of the self-conjugate bins: index ``0`` or ``N/2`` on every grid axis.

    ``{0, N/2}`` is the slice ``0 : N/2 + 1 : N/2`` for even ``N`` (``{0}`` for
    odd ``N``), in the full and in the half spectrum alike.
    """
    index = [slice(None)] * ndim
    for a, n in zip(axes, grid):
        index[a] = slice(0, n // 2 + 1, n // 2) if n % 2 == 0 else slice(0, 1)
    return tuple(index)


def _ifft(xp, y, grid, axes, real):
    """Real inverse DFT of the Hermitian spectrum ``y``; ``y`` must be a fresh array.

    On the real path the imaginary parts of the self-conjugate bins are
    zeroed in place (a no-op mathematically, and for pocketfft, but not for
    every backend's ``irfftn``).
    """
    if not real:
        return xp.real(xp.fft.ifftn(y, s=grid, axes=axes))
    index = _self_conjugate(grid, axes, y.ndim)
    y[index] = xp.astype(xp.real(y[index]), y.dtype)
    return xp.fft.irfftn(y, s=grid, axes=axes)


def _weighted_sum(xp, values, grid, axes, real):
    """``sum_f omega_f values[f]`` over the grid axes, with the half-spectrum weights."""
    total = xp.sum(values, axis=axes)
    if not real:
        return total
    last, n = axes[-1], grid[-1]
    # Weight 2 everywhere except last-axis bin 0 and, for even N, bin N/2.
    edges = [0, n // 2] if n % 2 == 0 and n > 1 else [0]
    index = [slice(None)] * values.ndim
    for e in edges:
        index[last] = e
        total = total + xp.sum(values[tuple(index)], axis=axes[:-1]) * -0.5
    return 2.0 * total


def _check_method(method, spectrum=None):
    if spectrum is not None:
        own = "rfft" if spectrum.real else "complex"
        if method not in (None, own):
            raise ValueError(f"method={method!r} conflicts with a spectrum computed by {own!r}")
        return spectrum.real
    if method is None:
        return True
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method == "rfft"


def _normalize_axes(axes, ndim, name="X"):
    if axes is None:
        axes = tuple(range(ndim))
    elif isinstance(axes, int):
        axes = (axes,)
    try:
        normalized = tuple(sorted(int(a) % ndim if -ndim <= int(a) < ndim else ndim for a in axes))
    except TypeError:
        raise TypeError(f"axes must be a tuple of ints, got {axes!r}") from None
    if not normalized or normalized[-1] >= ndim or len(set(normalized)) != len(normalized):
        raise ValueError(f"axes must be distinct axes of {name} (ndim {ndim}), got {axes!r}")
    return normalized


def _frequency(flat_index, shape):
    """Multi-index of ``flat_index`` in a C-ordered array of ``shape``."""
    index = []
    for n in reversed(shape):
        index.append(flat_index % n)
        flat_index //= n
    return tuple(reversed(index))


# ---------------------------------------------------------------------------
# Kernel spectra (cacheable)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelSpectrum:
    """The DFT of a convolution kernel, accepted by every op in place of ``K``.

    Attributes
    ----------
    values : array
        Circular case: ``K_hat`` of the grid's shape (last axis halved when
        ``real``). Periodic case: ``(H, W', c_out, c_in)``, one matrix per
        frequency (``W' = W // 2 + 1`` when ``real``).
    grid : tuple of int
        Spatial shape ``N`` of the kernel.
    real : bool
        Half spectrum (``rfftn``) or full spectrum (``fftn``).
    channels : tuple of int or None
        ``(c_out, c_in)`` for a periodic-convolution kernel, else ``None``.
    norm : array
        0-d upper bound of the operator's 2-norm: ``max |K_hat|``, or
        ``max_f ||K_hat(f)||_F``; the scale of the singularity test.
    smallest : array or None
        0-d ``min |K_hat|`` (circular case: the smallest singular value, so
        the inverse's singularity test costs nothing per call), else ``None``.
    dtype : str
        Real dtype of the kernel.
    """

    values: Any
    grid: tuple
    real: bool
    channels: tuple | None
    norm: Any
    smallest: Any
    dtype: str


def kernel_spectrum(K, *, method="rfft"):
    r"""The spectrum of a circular-convolution kernel, to pass as ``K`` to the ``circular_conv*`` ops.

    .. math::  \hat K = \mathcal F(K)\quad(\texttt{rfftn}\ \text{or}\ \texttt{fftn}\ \text{over all axes of}\ K).

    Parameters
    ----------
    K : array
        The kernel; every axis is a grid axis.
    method : {"rfft", "complex"}
        Half or full spectrum.
    """
    require_real_floating("K", K)
    xp, _ = get_namespace(K)
    require_ndim("K", K, 1, "(N_1, ..., N_d)")
    return _circular_spectrum(xp, K, _check_method(method))


def _circular_spectrum(xp, K, real):
    grid, axes = tuple(K.shape), tuple(range(K.ndim))
    values = _fft(xp, K, grid, axes, real)
    mags = xp.abs(values)
    return KernelSpectrum(values, grid, real, None, xp.max(mags), xp.min(mags), dtype_name(K))


def periodic_kernel_spectrum(K, *, method="rfft"):
    r"""Per-frequency ``c_out x c_in`` matrices of a periodic-convolution kernel.

    .. math::  \hat K(f)_{oi} = \mathcal F(K_{oi})[f],\qquad
               \texttt{values}[u, v] = \hat K((u, v)).

    Parameters
    ----------
    K : (c_out, c_in, H, W) array
        Full-size convolution kernel.
    method : {"rfft", "complex"}
        Half or full spectrum along ``W``.
    """
    require_real_floating("K", K)
    xp, _ = get_namespace(K)
    _require_periodic_kernel(K)
    real = _check_method(method)
    return _periodic_spectrum(xp, K, real)


def _require_periodic_kernel(K):
    if K.ndim != 4:
        raise ValueError(f"K must have shape (c_out, c_in, H, W), got shape {tuple(K.shape)}")
    if min(K.shape) < 1:
        raise ValueError(f"K must have nonzero sizes, got shape {tuple(K.shape)}")


def _periodic_spectrum(xp, K, real):
    grid = tuple(K.shape[-2:])
    values = xp.permute_dims(_fft(xp, K, grid, (-2, -1), real), (2, 3, 0, 1))
    frob = xp.sqrt(xp.sum(xp.real(values * xp.conj(values)), axis=(-2, -1)))
    return KernelSpectrum(values, grid, real, tuple(K.shape[:2]), xp.max(frob), None, dtype_name(K))


def _raise_singular(where, freq, detail):
    raise ValueError(
        f"{where} is singular at frequency {freq} ({detail}): "
        "the inverse and the log-determinant are undefined"
    )


# ---------------------------------------------------------------------------
# Circular convolution over chosen axes
# ---------------------------------------------------------------------------


@dataclass
class _Circular:
    xp: Any
    spec: KernelSpectrum
    axes: tuple
    K_hat: Any  # spectrum broadcast against X's spectrum


def _data_and_kernel(X, K, method, cotangents):
    """Shared checks of ``X``, its cotangents and ``K`` (array or spectrum); ``(xp, spectrum)``.

    ``spectrum`` is ``None`` when ``K`` is an array; a given spectrum is
    checked against ``method`` and ``X``'s dtype.
    """
    if X is None or not hasattr(X, "shape"):
        raise TypeError(f"X must be an array, got {type(X).__name__}")
    spectrum = K if isinstance(K, KernelSpectrum) else None
    named = {"X": X, **cotangents}
    if spectrum is None:
        named["K"] = K
    for name, arr in named.items():
        require_real_floating(name, arr)
    xp, _ = get_namespace(*named.values(), None if spectrum is None else spectrum.values)
    require_same_dtype(**named)
    if spectrum is not None:
        _check_method(method, spectrum)
        if spectrum.dtype != dtype_name(X):
            raise TypeError(f"arguments must share one dtype, got X: {dtype_name(X)}, K: {spectrum.dtype}")
    return xp, spectrum


def _circular_inputs(X, K, axes, method, **cotangents) -> _Circular:
    """Validate ``X`` (and a cotangent of its shape) and ``K`` or its spectrum."""
    xp, spectrum = _data_and_kernel(X, K, method, cotangents)
    require_ndim("X", X, 1, "(..., N_1, ..., N_d)")
    axes = _normalize_axes(axes, X.ndim)
    grid = tuple(X.shape[a] for a in axes)
    if min(grid) < 1:
        raise ValueError(f"X must have nonzero sizes along axes {axes}, got shape {tuple(X.shape)}")
    for name, arr in cotangents.items():
        if tuple(arr.shape) != tuple(X.shape):
            raise ValueError(f"{name} must have the shape of X {tuple(X.shape)}, got {tuple(arr.shape)}")
    if spectrum is None:
        if tuple(K.shape) != grid:
            raise ValueError(
                f"K must have the shape of X along axes {axes}, {grid}, got {tuple(K.shape)}"
            )
        spectrum = _circular_spectrum(xp, K, _check_method(method))
    elif spectrum.channels is not None or spectrum.grid != grid:
        raise ValueError(
            f"K is a spectrum for grid {spectrum.grid} (channels {spectrum.channels}); "
            f"X has grid {grid} along axes {axes}"
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
    >>> from refimpl.fftconv import circular_conv, circular_conv_inverse, kernel_spectrum
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
    return dX, _kernel_cotangent(c, G_hat * xp.conj(X_hat))


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
    c = _circular_inputs(Z, K, axes, method)
    _require_invertible(c.xp, c.spec)
    Z_hat = _fft(c.xp, Z, c.spec.grid, c.axes, c.spec.real)
    return _ifft(c.xp, Z_hat / c.K_hat, c.spec.grid, c.axes, c.spec.real)


def circular_conv_inverse_vjp(Z, K, G, axes=None, *, method=None):
    r"""Cotangents ``(dZ, dK)`` of :func:`circular_conv_inverse` for ``G = dL/dX``.

    With ``X`` the inverse's output,

    .. math::  \overline Z = C(K)^{-T} G = \mathcal F^{-1}(\hat G / \overline{\hat K}),\qquad
               \overline K = -\sum_{\text{batch}} \mathcal F^{-1}(\hat{\overline Z}\,\overline{\hat X}).
    """
    c = _circular_inputs(Z, K, axes, method, G=G)
    xp, grid, real = c.xp, c.spec.grid, c.spec.real
    _require_invertible(xp, c.spec)
    X_hat = _fft(xp, Z, grid, c.axes, real) / c.K_hat
    dZ_hat = _fft(xp, G, grid, c.axes, real) / xp.conj(c.K_hat)
    dZ = _ifft(xp, xp.asarray(dZ_hat, copy=True), grid, c.axes, real)
    return dZ, -_kernel_cotangent(c, dZ_hat * xp.conj(X_hat))


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
    return sign, logabsdet


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
        return get_namespace(K.values)[0], K, tuple(range(len(K.grid))), K.values
    require_real_floating("K", K)
    xp, _ = get_namespace(K)
    require_ndim("K", K, 1, "(..., N_1, ..., N_d)")
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
    require_real_floating("g", g)
    require_same_dtype(K=K, g=g)
    get_namespace(K, g)
    if tuple(g.shape) != batch:
        raise ValueError(f"g must have K's batch shape {batch}, got {tuple(g.shape)}")
    _nonzero_magnitudes(xp, K_hat)
    inv = 1.0 / xp.conj(K_hat)
    grad = _ifft(xp, inv, spec.grid, axes, spec.real) * float(math.prod(spec.grid))
    shape = [1] * K.ndim
    for a, n in zip([a for a in range(K.ndim) if a not in axes], batch):
        shape[a] = n
    return (grad * xp.reshape(g, tuple(shape)),)


# ---------------------------------------------------------------------------
# Multi-channel periodic convolution
# ---------------------------------------------------------------------------


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
    >>> from refimpl.fftconv import embed_kernel, periodic_conv
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
    return dX, _kernel_from_frequencies(p, G_f @ _adjoint(xp, X_f))


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
    return _from_frequencies(p, dZ_f), dK


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
    return xp.prod(xp.sign(signs), axis=axes), logabsdet


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
    eye = xp.eye(c, dtype=A.dtype, device=A.device)
    inv_h = xp.linalg.solve(_adjoint(xp, A), xp.broadcast_to(eye, A.shape))
    nb = K.ndim - 4
    inv_h = xp.permute_dims(inv_h, tuple(range(nb)) + (nb + 2, nb + 3, nb, nb + 1))
    grad = _ifft(xp, inv_h, grid, (-2, -1), real) * float(math.prod(grid))
    return (grad * xp.reshape(g, tuple(g.shape) + (1, 1, 1, 1)),)


# ---------------------------------------------------------------------------
# Deep-learning kernels
# ---------------------------------------------------------------------------


def _embed_inputs(w, shape, layout, G=None):
    require_real_floating("w", w)
    xp, _ = get_namespace(w, G)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if w.ndim != 4:
        raise ValueError(f"w must have 4 axes (layout {layout!r}), got shape {tuple(w.shape)}")
    try:
        H, W = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise TypeError(f"shape must be a pair of ints (H, W), got {shape!r}") from None
    kh, kw = (w.shape[2], w.shape[3]) if layout == "oihw" else (w.shape[0], w.shape[1])
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(
            f"kernel sizes must be odd (centre k // 2), got {kh} x {kw}; an even kernel "
            "needs asymmetric padding and has no centred circular embedding"
        )
    if kh > H or kw > W:
        raise ValueError(f"kernel {kh} x {kw} does not fit the grid (H, W) = ({H}, {W})")
    return xp, (H, W), (kh, kw)


def embed_kernel(w, shape, layout="oihw"):
    r"""Full-size convolution kernel of a cross-correlation layer with circular padding.

    .. math::  K[o, i, (p_h - a) \bmod H, (p_w - b) \bmod W] = w[o, i, a, b],\qquad p = k // 2,

    so that ``periodic_conv(x, embed_kernel(w, (H, W)))`` equals PyTorch's
    ``conv2d`` of the circularly padded ``x`` and
    ``sum_i scipy.ndimage.correlate(x[i], w[o, i], mode="wrap")``.
    Computed as zero-padding, a flip and a roll by ``p + 1`` (no scatter).

    Parameters
    ----------
    w : array
        ``(c_out, c_in, kh, kw)`` for ``layout="oihw"`` (PyTorch) or
        ``(kh, kw, c_in, c_out)`` for ``"hwio"`` (TensorFlow); ``kh``, ``kw``
        odd and at most ``H``, ``W``.
    shape : (int, int)
        The grid ``(H, W)``.
    layout : {"oihw", "hwio"}

    Returns
    -------
    K : (c_out, c_in, H, W) array
    """
    xp, (H, W), (kh, kw) = _embed_inputs(w, shape, layout)
    if layout == "hwio":
        w = xp.permute_dims(w, (3, 2, 0, 1))
    c_out, c_in = w.shape[:2]
    dev = w.device
    if H > kh:
        w = xp.concat([w, xp.zeros((c_out, c_in, H - kh, kw), dtype=w.dtype, device=dev)], axis=2)
    if W > kw:
        w = xp.concat([w, xp.zeros((c_out, c_in, H, W - kw), dtype=w.dtype, device=dev)], axis=3)
    # flip then roll by 1 maps index a to -a; a further roll by p centres the kernel.
    return xp.roll(xp.flip(w, axis=(2, 3)), (kh // 2 + 1, kw // 2 + 1), axis=(2, 3))


def embed_kernel_vjp(w, G, shape, layout="oihw"):
    r"""Cotangent ``(dw,)`` of :func:`embed_kernel`: the gather at the embedding positions.

    .. math::  \overline w[o, i, a, b] = G[o, i, (p_h - a) \bmod H, (p_w - b) \bmod W].
    """
    xp, (H, W), (kh, kw) = _embed_inputs(w, shape, layout, G)
    c_out, c_in = (w.shape[0], w.shape[1]) if layout == "oihw" else (w.shape[3], w.shape[2])
    if tuple(G.shape) != (c_out, c_in, H, W):
        raise ValueError(f"G must have the output's shape {(c_out, c_in, H, W)}, got {tuple(G.shape)}")
    require_real_floating("G", G)
    require_same_dtype(w=w, G=G)
    back = xp.flip(xp.roll(G, (-(kh // 2 + 1), -(kw // 2 + 1)), axis=(2, 3)), axis=(2, 3))
    dw = back[:, :, :kh, :kw]
    return (xp.permute_dims(dw, (2, 3, 1, 0)) if layout == "hwio" else dw,)


# ---------------------------------------------------------------------------
# Glow's invertible 1x1 convolution (LU parametrisation), the k = 1 case
# ---------------------------------------------------------------------------


def _check_perm(perm, c):
    """Validate a permutation of ``range(c)``; return it as a tuple (or None)."""
    if perm is None:
        return None
    try:
        perm = tuple(int(i) for i in perm)
    except TypeError:
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
    return xp.take(A, xp.asarray(perm, dtype=xp.int64, device=A.device), axis=0)


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
    eye = xp.eye(c, dtype=s.dtype, device=s.device)
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
    return (dX,) + _lu_weight_vjp(xp, L, U, s, perm, dW)


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
    return (xp.reshape(dZ, tuple(Z.shape)),) + _lu_weight_vjp(xp, L, U, s, perm, dW)


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
    return (sign * sign if hw % 2 == 0 else sign), float(hw) * xp.sum(xp.log(xp.abs(s)))


def glow_conv1x1_slogdet_vjp(s, g, shape, *, perm=None):
    r"""Cotangent ``(ds,)`` of :func:`glow_conv1x1_slogdet`: ``ds = g H W / s``."""
    xp, hw, _ = _glow_slogdet_inputs(s, shape, perm, g)
    if g.ndim != 0:
        raise ValueError(f"g must be a 0-d array, got shape {tuple(g.shape)}")
    return (g * float(hw) / s,)
