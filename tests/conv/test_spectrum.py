"""Kernel spectra and the FFT machinery shared by the convolution members.

``kernel_spectrum`` and ``periodic_kernel_spectrum`` return
:class:`~refimpl.conv.KernelSpectrum` objects, not arrays, so they are not
registered ops: the ops that accept them check them through the refimpl-only
property "cached spectrum". Here: the spectrum objects, the Hermitian
hygiene and multiplicity weights of the real-FFT path, bad input, and
planted bugs in that machinery (caught by "rfft path == complex path",
"cached spectrum" and ground truth).
"""

import dataclasses

import numpy as np
import pytest

from refimpl.conv import METHODS, _fft, circular, periodic, spectrum
from refimpl.conv import (
    circular_conv,
    circular_conv_inverse,
    circular_conv_slogdet,
    kernel_spectrum,
    periodic_conv,
    periodic_kernel_spectrum,
)
from verify.testing import failing_properties


def test_hermitian_hygiene_zeroes_self_conjugate_imaginary_parts():
    """The bins (0 or N/2 on every axis) lose their imaginary part before irfftn; no other bin does."""
    grid, axes = (4, 6), (0, 1)
    y = np.full((4, 4), 1.0 + 1.0j)
    out = _fft._ifft(np, y.copy(), grid, axes, True)
    expected = y.copy()
    for i in (0, 2):
        for j in (0, 3):
            expected[i, j] = 1.0
    np.testing.assert_allclose(out, np.fft.irfftn(expected, s=grid, axes=axes), atol=1e-15)
    assert y[0, 0].imag == 1.0  # only the fresh copy is touched
    index = _fft._self_conjugate((4, 6), axes, 2)
    mask = np.zeros((4, 4), bool)
    mask[index] = True
    assert set(zip(*np.nonzero(mask))) == {(0, 0), (0, 3), (2, 0), (2, 3)}


@pytest.mark.parametrize("n, weights", [(1, [1]), (2, [1, 1]), (5, [1, 2, 2]), (6, [1, 2, 2, 1])])
def test_multiplicity_weights(n, weights):
    values = np.arange(1.0, n // 2 + 2)[None, :] * np.ones((3, 1))
    got = _fft._weighted_sum(np, values, (3, n), (0, 1), True)
    assert got == pytest.approx(3 * np.dot(weights, np.arange(1.0, n // 2 + 2)))


def test_cached_spectrum_accepted_by_every_circular_op():
    gen = np.random.default_rng(0)
    K = np.eye(3, 4) * 2 + 0.1 * gen.standard_normal((3, 4))
    X = gen.standard_normal((2, 3, 4))
    for method in METHODS:
        spec = kernel_spectrum(K, method=method)
        for direct, cached in [
            (circular_conv(X, K, (1, 2), method=method), circular_conv(X, spec, (1, 2))),
            (circular_conv_inverse(X, K, (1, 2), method=method), circular_conv_inverse(X, spec, (1, 2))),
            (circular_conv_slogdet(K, method=method).logabsdet, circular_conv_slogdet(spec).logabsdet),
        ]:
            np.testing.assert_array_equal(direct, cached)


def test_spectrum_fields():
    K = np.random.default_rng(1).standard_normal((2, 3, 4, 5))
    spec = periodic_kernel_spectrum(K)
    assert spec.values.shape == (4, 3, 2, 3) and spec.grid == (4, 5) and spec.channels == (2, 3)
    assert spec.real and spec.dtype == "float64" and spec.smallest is None
    A = np.moveaxis(np.fft.fft2(K), (0, 1), (-2, -1))
    np.testing.assert_allclose(spec.norm, np.linalg.norm(A, axis=(-2, -1)).max(), rtol=1e-14)
    full = kernel_spectrum(K[0, 0], method="complex")
    mags = np.abs(np.fft.fft2(K[0, 0]))
    assert not full.real and full.channels is None and full.values.shape == (4, 5)
    np.testing.assert_allclose([full.norm, full.smallest], [mags.max(), mags.min()], rtol=1e-14)


_X, _K = np.ones((3, 4)), np.eye(3, 4)


@pytest.mark.parametrize("call, error, match", [
    (lambda: circular_conv(_X, kernel_spectrum(_K), method="complex"), ValueError, "conflicts"),
    (lambda: circular_conv(_X, kernel_spectrum(np.ones(4)), axes=0), ValueError, "spectrum for grid"),
    (lambda: circular_conv(_X, kernel_spectrum(_K.astype(np.float32))), TypeError, "share one dtype"),
    (lambda: circular_conv_slogdet(kernel_spectrum(_K), axes=0), ValueError, "no batch axes"),
    (lambda: periodic_conv(np.ones((2, 4, 4)), kernel_spectrum(_K)), ValueError,
     "circular-convolution spectrum"),
    (lambda: kernel_spectrum(_K, method="dft"), ValueError, "method must be one of"),
    (lambda: kernel_spectrum(np.array(1.0)), ValueError, "K must have"),
    (lambda: periodic_kernel_spectrum(np.ones((2, 4, 4))), ValueError, r"K must have shape \(c_out"),
    (lambda: periodic_kernel_spectrum(np.ones((2, 2, 4, 4), dtype=int)), TypeError, "real floating"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- planted bugs in the FFT machinery --------------------------------------------------------


@pytest.mark.parametrize("op_name", ["circular_conv", "circular_conv_inverse",
                                     "periodic_conv", "periodic_conv_inverse"])
def test_wrong_hermitian_bins_are_caught(monkeypatch, op_name):
    """Zeroing the imaginary part of bin 1 instead of N/2 breaks the rfft path only."""
    def wrong_bins(grid, axes, ndim):
        index = [slice(None)] * ndim
        for a in axes:
            index[a] = slice(0, 2)
        return tuple(index)

    monkeypatch.setattr(_fft, "_self_conjugate", wrong_bins)
    expected = {"matches ground truth", "rfft path == complex path"}
    assert failing_properties(op_name, among=expected) == expected


def test_missing_multiplicity_weights_are_caught(monkeypatch):
    def unweighted(xp, values, grid, axes, real):
        return xp.sum(values, axis=axes)

    for member in (circular, periodic):
        monkeypatch.setattr(member, "_weighted_sum", unweighted)
    # Half of the examples use the complex path, and N <= 2 has weights 1 only: 25 examples.
    for name in ("circular_conv_slogdet", "periodic_conv_slogdet"):
        expected = {"matches ground truth", "log-determinant of the Jacobian", "rfft path == complex path"}
        assert failing_properties(name, among=expected, profile="ci") == expected


@pytest.mark.parametrize("op_name, make, stale", [
    ("circular_conv", "kernel_spectrum", lambda values: np.conj(values)),
    ("circular_conv_inverse", "kernel_spectrum", lambda values: np.conj(values)),
    ("periodic_conv", "periodic_kernel_spectrum", lambda values: np.swapaxes(values, -1, -2)),
    ("periodic_conv_inverse", "periodic_kernel_spectrum", lambda values: np.swapaxes(values, -1, -2)),
])
def test_stale_cached_spectrum_is_caught(monkeypatch, op_name, make, stale):
    """A spectrum object whose values do not match its kernel fails "cached spectrum" alone."""
    original = getattr(spectrum, make)

    def wrong(K, method="rfft"):
        s = original(K, method=method)
        return dataclasses.replace(s, values=stale(s.values))

    monkeypatch.setattr(spectrum, make, wrong)
    assert failing_properties(op_name) == {"cached spectrum"}
