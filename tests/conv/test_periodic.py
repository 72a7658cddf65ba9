"""Periodic convolution: registered properties on every backend, singular kernels, bad input, planted bugs."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.signal as signal

from refimpl.backend import available_backends, backend_namespace, from_numpy
from refimpl.conv import periodic as pc
from verify import get_op
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("conv.periodic"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


# -- singular kernels: ValueError naming the frequency, never inf or NaN --------------------


def _singular():
    """``K_hat(f) = I`` except ``K_hat((2, 0)) = I - e_1 e_1^T`` (exact: all DFT factors are +-1, 1/16)."""
    K = np.zeros((2, 2, 4, 4))
    K[:, :, 0, 0] = np.eye(2)
    K[0, 0] -= ((-1.0) ** np.arange(4))[:, None] / 16
    return K


@pytest.fixture(params=available_backends(devices=True))
def put(request):
    be = backend_namespace(request.param)
    return lambda x: from_numpy(x, be)


@pytest.mark.parametrize("method", ["rfft", "complex"])
def test_singular_kernel_names_the_frequency(put, method):
    K, Z, g = put(_singular()), put(np.ones((2, 4, 4))), put(np.array(1.0))
    for call in (lambda: pc.periodic_conv_slogdet(K, method=method),
                 lambda: pc.periodic_conv_slogdet_vjp(K, g, method=method),
                 lambda: pc.periodic_conv_inverse(Z, K, method=method),
                 lambda: pc.periodic_conv_inverse_vjp(Z, K, Z, method=method)):
        with pytest.raises(ValueError, match=re.escape("singular at frequency (2, 0)")):
            call()


def test_numerically_singular_kernel():
    K = _singular()
    K[0, 0, 0, 0] += 1e-15
    assert np.isfinite(pc.periodic_conv_slogdet(K).logabsdet)
    Z = np.random.default_rng(0).standard_normal((2, 4, 4))
    with pytest.raises(ValueError, match=r"singular at frequency \(2, 0\) \(sigma_min"):
        pc.periodic_conv_inverse(Z, K)


# -- behaviour worth pinning down directly --------------------------------------------------


def test_slogdet_batch_axes():
    K = np.random.default_rng(4).standard_normal((2, 3, 3, 2, 5))
    sign, logabsdet = pc.periodic_conv_slogdet(K)
    (dK,) = pc.periodic_conv_slogdet_vjp(K, np.array([1.0, -2.0]))
    assert sign.shape == logabsdet.shape == (2,) and dK.shape == K.shape
    for b, g in enumerate((1.0, -2.0)):
        assert (sign[b], logabsdet[b]) == pytest.approx(pc.periodic_conv_slogdet(K[b]), rel=1e-13)
        np.testing.assert_allclose(dK[b], g * pc.periodic_conv_slogdet_vjp(K[b], np.array(1.0)).K,
                                   rtol=1e-13)


def test_kernel_cotangent_sums_over_the_batch():
    gen = np.random.default_rng(5)
    X, K = gen.standard_normal((3, 2, 4, 5)), gen.standard_normal((3, 2, 4, 5))
    G = gen.standard_normal((3, 3, 4, 5))
    dX, dK = pc.periodic_conv_vjp(X, K, G)
    assert dX.shape == X.shape and dK.shape == K.shape
    np.testing.assert_allclose(dK, sum(pc.periodic_conv_vjp(X[b], K, G[b]).K for b in range(3)),
                               rtol=1e-12, atol=1e-13)


# -- bad input ------------------------------------------------------------------------------

_X, _K = np.ones((2, 4, 4)), np.ones((2, 2, 4, 4))


@pytest.mark.parametrize("call, error, match", [
    (lambda: pc.periodic_conv_inverse(_X, np.ones((3, 2, 4, 4))), ValueError, "c_out == c_in"),
    (lambda: pc.periodic_conv_slogdet(np.ones((3, 2, 4, 4))), ValueError, "c_out == c_in"),
    (lambda: pc.periodic_conv_slogdet(np.ones((2, 4, 4))), ValueError, r"K must have shape \(\.\.\., c, c"),
    (lambda: pc.periodic_conv(np.ones((3, 4, 4)), _K), ValueError,
     r"X must have shape \(\.\.\., c_in, H, W\)"),
    (lambda: pc.periodic_conv(np.ones((2, 4, 5)), _K), ValueError, "to match K"),
    (lambda: pc.periodic_conv(np.ones((4, 4)), _K), ValueError, r"X must have shape .*got shape \(4, 4\)"),
    (lambda: pc.periodic_conv(_X, np.ones((2, 4, 4))), ValueError,
     r"K must have shape \(c_out, c_in, H, W\)"),
    (lambda: pc.periodic_conv_vjp(_X, _K, np.ones((3, 4, 4))), ValueError, "G must have the output's shape"),
    (lambda: pc.periodic_conv_slogdet_vjp(_K, np.ones(2)), ValueError, "g must have K's batch shape"),
    (lambda: pc.periodic_conv(_X, _K.astype(np.float32)), TypeError, "share one dtype"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- planted bugs: the right properties fail -------------------------------------------------


def _candidate(op_name, forward=None, vjp=None):
    op = get_op(op_name)
    return SimpleNamespace(forward=forward or op.forward, vjp=vjp or op.vjp)


def _assert_fail(expected, op_name, impl=None):
    assert failing_properties(op_name, impl=impl, among=set(expected)) == set(expected)


def test_missing_conjugate_is_caught(monkeypatch):
    """The adjoint of a per-frequency matrix taken as its plain transpose."""
    monkeypatch.setattr(pc, "_adjoint", lambda xp, A: xp.matrix_transpose(A))
    gradients = {"vjp: dot-product test", "vjp: autograd"}
    _assert_fail(gradients | {"adjoint test in X", "adjoint test in K"}, "periodic_conv")
    _assert_fail(gradients | {"adjoint test in Z"}, "periodic_conv_inverse")
    _assert_fail(gradients, "periodic_conv_slogdet")


def test_transposed_kernel_is_caught():
    transposed = _candidate("periodic_conv", forward=lambda X, K, **p: pc.periodic_conv(
        X, np.flip(K, axis=(0, 1)), **p))
    _assert_fail({"matches ground truth", "impulse response is the kernel",
                  "k = 1 is the 1x1 convolution"}, "periodic_conv", transposed)


def test_zero_padding_is_caught():
    def linear(X, K, **_):
        H, W = X.shape[-2:]
        out = [sum(signal.convolve(X[..., i, :, :], K[o, i][(None,) * (X.ndim - 3)], mode="full")[..., :H, :W]
                   for i in range(K.shape[1])) for o in range(K.shape[0])]
        return np.stack(out, axis=-3)

    _assert_fail({"shift equivariance", "matches ground truth"}, "periodic_conv",
                 _candidate("periodic_conv", linear))


def test_inverse_with_transposed_kernel_is_caught():
    wrong = _candidate("periodic_conv_inverse", forward=lambda Z, K, **p: pc.periodic_conv_inverse(
        Z, np.swapaxes(K, 0, 1), **p))
    _assert_fail({"matches ground truth", "round trip with periodic_conv (error / cond)"},
                 "periodic_conv_inverse", wrong)


@pytest.mark.parametrize("c", [1e300, 1e-300])
def test_inverse_of_data_at_extreme_scales(c):
    # A finite right-hand side of any scale is solved (the residual test uses scaled norms),
    # not called non-finite or singular; the inverse's data is named Z in its errors.
    rng = np.random.default_rng(0)
    K = rng.standard_normal((2, 2, 4, 4))
    K[:, :, 0, 0] += 4.0 * np.eye(2)
    Z = rng.standard_normal((3, 2, 4, 4))
    np.testing.assert_allclose(pc.periodic_conv_inverse(c * Z, K) / c,
                               pc.periodic_conv_inverse(Z, K), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="Z must not contain infs or NaNs"):
        pc.periodic_conv_inverse(np.full_like(Z, np.nan), K)
