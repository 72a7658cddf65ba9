"""Circular convolution: registered properties on every backend, singular kernels, bad input, planted bugs."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.signal as signal

import array_api_strict as xps
from refimpl.backend import available_backends, backend_namespace, from_numpy, to_numpy
from refimpl.conv import circular as cc
from refimpl.conv import kernel_spectrum
from verify import get_op
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("conv.circular"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


@pytest.fixture(params=available_backends(devices=True))
def put(request):
    be = backend_namespace(request.param)
    return lambda x: from_numpy(x, be)


# -- singular kernels: ValueError naming the frequency, never inf or NaN --------------------


def test_numerically_singular_kernel():
    """``|K_hat[0]| = 2^-52``: the inverse refuses (matrix_rank's tolerance), the logdet is finite."""
    K = np.array([1.0, -(1.0 - 2.0**-52)])
    sign, logabsdet = cc.circular_conv_slogdet(K)
    np.testing.assert_allclose(logabsdet, np.log(2.0**-52 * (2.0 - 2.0**-52)), rtol=1e-12)
    with pytest.raises(ValueError, match=r"singular at frequency \(0,\).*max\|K_hat\| \* \|N\| \* eps"):
        cc.circular_conv_inverse(np.ones(2), K)


@pytest.mark.parametrize("method", ["rfft", "complex"])
def test_singular_kernel_names_the_frequency(put, method):
    """``K_hat[0, 0] = 0`` exactly: slogdet, inverse and both VJPs name the frequency."""
    K, Z, g = put(np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]])), put(np.ones((2, 3))), put(np.array(1.0))
    for call in (lambda: cc.circular_conv_slogdet(K, method=method),
                 lambda: cc.circular_conv_slogdet_vjp(K, g, method=method),
                 lambda: cc.circular_conv_inverse(Z, K, method=method),
                 lambda: cc.circular_conv_inverse_vjp(Z, K, Z, method=method)):
        with pytest.raises(ValueError, match=re.escape("singular at frequency (0, 0)")):
            call()


# -- behaviour worth pinning down directly --------------------------------------------------


def test_slogdet_batch_axes():
    K = np.random.default_rng(1).standard_normal((3, 2, 5))  # grid axes 0 and 2, batch axis 1
    sign, logabsdet = cc.circular_conv_slogdet(K, axes=(0, 2))
    (dK,) = cc.circular_conv_slogdet_vjp(K, np.array([1.0, -2.0]), axes=(0, 2))
    assert sign.shape == logabsdet.shape == (2,) and dK.shape == K.shape
    for b, g in enumerate((1.0, -2.0)):
        assert (sign[b], logabsdet[b]) == pytest.approx(cc.circular_conv_slogdet(K[:, b]), rel=1e-13)
        np.testing.assert_allclose(dK[:, b], g * cc.circular_conv_slogdet_vjp(K[:, b], np.array(1.0)).K,
                                   rtol=1e-13)


def test_results_are_named():
    K = np.random.default_rng(2).standard_normal((3, 4))
    X = np.random.default_rng(3).standard_normal((3, 4))
    result = cc.circular_conv_slogdet(K)
    assert result._fields == ("sign", "logabsdet")
    assert cc.circular_conv_vjp(X, K, X)._fields == ("X", "K")
    assert cc.circular_conv_inverse_vjp(X, K, X)._fields == ("Z", "K")
    assert cc.circular_conv_slogdet_vjp(K, np.array(1.0))._fields == ("K",)


def test_runs_on_a_second_device():
    """No hidden host conversion: the circular ops run on array_api_strict's device1."""
    if "array_api_strict:device1" not in available_backends(devices=True):
        pytest.skip("array_api_strict is not installed")
    be = backend_namespace("array_api_strict:device1")
    gen = np.random.default_rng(3)
    K = from_numpy(np.eye(3, 4) * 2 + 0.1 * gen.standard_normal((3, 4)), be)
    X = from_numpy(gen.standard_normal((3, 4)), be)
    Z = cc.circular_conv_inverse(cc.circular_conv(X, kernel_spectrum(K)), K)
    np.testing.assert_allclose(to_numpy(Z), to_numpy(X), atol=1e-13)


# -- bad input ------------------------------------------------------------------------------

_X, _K = np.ones((3, 4)), np.eye(3, 4)


@pytest.mark.parametrize("call, error, match", [
    (lambda: cc.circular_conv(_X, np.ones((4, 3))), ValueError, "K must have the shape of X along axes"),
    (lambda: cc.circular_conv(_X, np.ones(4), axes=1), None, None),
    (lambda: cc.circular_conv(_X, _K, axes=(0, 2)), ValueError, "axes must be distinct axes of X"),
    (lambda: cc.circular_conv(_X, _K, axes=(0, -2)), ValueError, "axes must be distinct"),
    (lambda: cc.circular_conv(_X, _K, method="fft"), ValueError, "method must be one of"),
    (lambda: cc.circular_conv(_X, _K.astype(np.float32)), TypeError, "share one dtype"),
    (lambda: cc.circular_conv(_X.astype(int), _K), TypeError, "X must have a real floating dtype"),
    (lambda: cc.circular_conv([[1.0]], _K), TypeError, "X must be an array"),
    (lambda: cc.circular_conv(_X, xps.asarray(_K)), TypeError, "different array libraries"),
    (lambda: cc.circular_conv(np.ones((0, 4)), np.ones((0, 4))), ValueError, "nonzero sizes"),
    (lambda: cc.circular_conv_vjp(_X, _K, np.ones((4, 3))), ValueError, "G must have the shape of X"),
    (lambda: cc.circular_conv_slogdet_vjp(_K, np.ones(2)), ValueError, "g must have K's batch shape"),
    (lambda: cc.circular_conv_slogdet_vjp(kernel_spectrum(_K), np.array(1.0)), TypeError,
     "needs the kernel K"),
])
def test_bad_input(call, error, match):
    if error is None:  # a valid call next to the invalid ones: the checks are not too strict
        assert call().shape == _X.shape
        return
    with pytest.raises(error, match=match):
        call()


# -- planted bugs: the right properties fail -------------------------------------------------


def _candidate(op_name, forward=None, vjp=None):
    op = get_op(op_name)
    return SimpleNamespace(forward=forward or op.forward, vjp=vjp or op.vjp)


def _assert_fail(expected, op_name, impl, profile="quick"):
    assert failing_properties(op_name, impl=impl, among=set(expected), profile=profile) == set(expected)


def _linear_truncated(X, K, axes=None, **_):
    """Zero padding instead of periodic wrap-around: a linear convolution cut to the grid."""
    def one(x):
        return signal.convolve(x, K, mode="full")[tuple(slice(0, n) for n in K.shape)]
    batch = [a for a in range(X.ndim) if a not in axes]
    moved = np.moveaxis(X, batch, list(range(len(batch))))
    flat = moved.reshape((-1,) + K.shape)
    out = np.stack([one(x) for x in flat]).reshape(moved.shape)
    return np.moveaxis(out, list(range(len(batch))), batch)


def _flip_channels(X, K, axes=None, **params):
    """A correlation along the channel (last) axis: the kernel flipped there."""
    return cc.circular_conv(X, np.roll(np.flip(K, axis=-1), 1, axis=-1), axes, **params)


def test_wrong_shift_is_caught():
    wrong_shift = _candidate("circular_conv", forward=lambda X, K, axes=None, **p: np.roll(
        cc.circular_conv(X, K, axes, **p), 1, axis=axes))
    _assert_fail({"matches ground truth", "matches scipy.ndimage.convolve (wrap)",
                  "matches folded scipy.signal.convolve (full)", "impulse response is the kernel"},
                 "circular_conv", wrong_shift)


def test_zero_padding_is_caught():
    _assert_fail({"shift equivariance", "matches ground truth"}, "circular_conv",
                 _candidate("circular_conv", forward=_linear_truncated))


def test_missing_conjugate_in_dX_is_caught():
    """``dX = C(K) G`` instead of ``C(K)^T G``."""
    no_conj = _candidate("circular_conv", vjp=lambda X, K, G, axes=None, **p: (
        cc.circular_conv(G, K, axes, **p), cc.circular_conv_vjp(X, K, G, axes, **p).K))
    _assert_fail({"adjoint matches scipy.ndimage.correlate (wrap)", "adjoint test in X",
                  "vjp: dot-product test", "vjp: autograd"}, "circular_conv", no_conj)


def test_correlation_along_channels_is_caught():
    _assert_fail({"3-D conv == periodic conv with channel-circulant kernel"}, "circular_conv",
                 _candidate("circular_conv", forward=_flip_channels))


def _flipped(K):
    every = tuple(range(K.ndim))
    return np.roll(np.flip(K, axis=every), 1, axis=every)


def test_inverse_bugs_are_caught():
    correlation = _candidate("circular_conv_inverse", forward=lambda Z, K, axes=None, **p: (
        cc.circular_conv_inverse(Z, _flipped(K), axes, **p)))
    _assert_fail({"matches ground truth", "round trip with circular_conv (error / cond)"},
                 "circular_conv_inverse", correlation)
    no_conj = _candidate("circular_conv_inverse", vjp=lambda Z, K, G, axes=None, **p: (
        cc.circular_conv_inverse(G, K, axes, **p), cc.circular_conv_inverse_vjp(Z, K, G, axes, **p).K))
    _assert_fail({"adjoint test in Z", "vjp: dot-product test", "vjp: autograd"},
                 "circular_conv_inverse", no_conj)


def test_slogdet_sign_and_gradient_bugs_are_caught():
    def always_positive(K, **p):
        sign, logabsdet = cc.circular_conv_slogdet(K, **p)
        return np.ones_like(sign), logabsdet

    _assert_fail({"matches ground truth", "log-determinant of the Jacobian",
                  "3-D logdet == periodic logdet with channel-circulant kernel"},
                 "circular_conv_slogdet", _candidate("circular_conv_slogdet", forward=always_positive))

    def no_conj(K, g, axes=None, method=None):  # g |N| ifft(1 / K_hat): the conjugate is missing
        axes = tuple(range(K.ndim)) if axes is None else axes
        grid = tuple(K.shape[a] for a in axes)
        grad = np.real(np.fft.ifftn(1 / np.fft.fftn(K, axes=axes), axes=axes)) * np.prod(grid)
        return (grad * np.expand_dims(g, axes),)

    _assert_fail({"vjp: dot-product test", "vjp: autograd"}, "circular_conv_slogdet",
                 _candidate("circular_conv_slogdet", vjp=no_conj))
