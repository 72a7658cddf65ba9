r"""FFT helpers shared by the convolution members: real and complex paths, Hermitian hygiene.

Convention (docs/conventions.rst, section 2). DFTs are unnormalised forward
and ``1/N`` inverse (``norm="backward"``); every n-d FFT gets both ``s`` and
``axes``. The transforms come from :func:`refimpl.backend.fft_namespace`:
``scipy.fft`` for NumPy arrays (faster than ``numpy.fft``, one thread unless
``scipy.fft.set_workers`` says otherwise), ``xp.fft`` elsewhere.

**Real FFTs.** ``method="rfft"`` (default) keeps the half spectrum along the
last grid axis. Sums over frequencies then carry the multiplicity weights
``omega = 1`` for last-axis bins ``0`` and ``N/2`` (``N`` even), else ``2``;
before every ``irfftn`` the imaginary parts of the self-conjugate bins (every
index ``0`` or ``N_j / 2``) are set to zero, since backends other than
pocketfft need not ignore them. ``method="complex"`` uses ``fftn``/``ifftn``
and gives the same numbers to rounding.
"""

from __future__ import annotations

from .._validation import dtype_name
from ..backend import fft_namespace

METHODS = ("rfft", "complex")
_EPS = {"float32": 2.0**-23, "float64": 2.0**-52}


def _complex_dtype(xp, x):
    return xp.complex64 if dtype_name(x) == "float32" else xp.complex128


def _fft(xp, x, grid, axes, real):
    """Unnormalised DFT over ``axes`` (half spectrum along the last one if ``real``)."""
    fft = fft_namespace(xp)
    if real:
        return fft.rfftn(x, s=grid, axes=axes)
    return fft.fftn(xp.astype(x, _complex_dtype(xp, x)), s=grid, axes=axes)


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
    fft = fft_namespace(xp)
    if not real:
        return xp.real(fft.ifftn(y, s=grid, axes=axes))
    index = _self_conjugate(grid, axes, y.ndim)
    y[index] = xp.astype(xp.real(y[index]), y.dtype)
    return fft.irfftn(y, s=grid, axes=axes)


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


def _raise_singular(where, freq, detail):
    raise ValueError(
        f"{where} is singular at frequency {freq} ({detail}): "
        "the inverse and the log-determinant are undefined"
    )

