r"""Kernel spectra: the cached DFT of a convolution kernel, accepted by every convolution op.

Convention (docs/conventions.rst, section 2.1). :func:`kernel_spectrum` and
:func:`periodic_kernel_spectrum` return a :class:`KernelSpectrum` that the
``circular_conv*`` and ``periodic_conv*`` ops accept in place of ``K``; the
forward is then two FFTs and a product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._validation import (
    dtype_name,
    require_arrays,
    require_finite_arrays,
    require_ndim,
    scaled_norm,
)
from ..backend import get_namespace
from ._fft import METHODS, _check_method, _fft

__all__ = ["METHODS", "KernelSpectrum", "kernel_spectrum", "periodic_kernel_spectrum"]


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
    norm : array or None
        0-d upper bound of the operator's 2-norm: ``max |K_hat|``, or
        ``max_f ||K_hat(f)||_F``; the scale of the singularity test
        (``None`` in the spectra that the forward ops compute for themselves).
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
    xp, _ = require_arrays(K=K)
    require_ndim("K", K, 1, "(N_1, ..., N_d)")
    require_finite_arrays(K=K)
    return _circular_spectrum(xp, K, _check_method(method))


def _circular_spectrum(xp, K, real, bounds=True):
    """The spectrum of ``K``; ``bounds=False`` skips ``norm`` and ``smallest`` (two passes
    over the spectrum that only the inverse's singularity test reads)."""
    grid, axes = tuple(K.shape), tuple(range(K.ndim))
    values = _fft(xp, K, grid, axes, real)
    if not bounds:
        return KernelSpectrum(values, grid, real, None, None, None, dtype_name(K))
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
    xp, _ = require_arrays(K=K)
    _require_periodic_kernel(K)
    require_finite_arrays(K=K)
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
    frob = scaled_norm(xp, xp.abs(values), axis=(-2, -1))  # representable for K * 1e300
    return KernelSpectrum(values, grid, real, tuple(K.shape[:2]), xp.max(frob), None, dtype_name(K))


def _data_and_kernel(X, K, method, cotangents, data_name="X"):
    """Shared checks of the data ``X`` (called ``data_name``), its cotangents and ``K`` (array or
    spectrum): dtypes, one namespace and device, finiteness; ``(xp, spectrum)``.

    ``spectrum`` is ``None`` when ``K`` is an array; a given spectrum is
    checked against ``method`` and ``X``'s dtype (its kernel was checked
    finite when it was computed). The finiteness pass is one sum per array,
    small next to the FFTs.
    """
    spectrum = K if isinstance(K, KernelSpectrum) else None
    named = {data_name: X, **cotangents}
    if spectrum is None:
        named["K"] = K
    xp, _ = require_arrays(**named)
    if spectrum is not None:
        get_namespace(**named, K=spectrum.values)
        _check_method(method, spectrum)
        if spectrum.dtype != dtype_name(X):
            raise TypeError(f"arguments must share one dtype, got {data_name}: {dtype_name(X)}, "
                            f"K: {spectrum.dtype}")
    require_finite_arrays(**named)
    return xp, spectrum


