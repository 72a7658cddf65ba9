"""FFT convolutions: registered properties on every backend, singular kernels, bad input, teeth."""

import dataclasses
import re
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.signal as signal

import array_api_strict as xps
from refimpl import fftconv as fc
from refimpl.backend import available_backends, backend_namespace, from_numpy, to_numpy
from verify import get_op
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases(module="fftconv"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


# -- singular kernels: ValueError naming the frequency, never inf or NaN --------------------


def _singular_periodic():
    """``K_hat(f) = I`` except ``K_hat((2, 0)) = I - e_1 e_1^T`` (exact: all DFT factors are +-1, 1/16)."""
    K = np.zeros((2, 2, 4, 4))
    K[:, :, 0, 0] = np.eye(2)
    K[0, 0] -= ((-1.0) ** np.arange(4))[:, None] / 16
    return K


@pytest.fixture(params=available_backends(devices=True))
def put(request):
    be = backend_namespace(request.param)
    return lambda x: from_numpy(x, be)


def test_numerically_singular_circular_kernel():
    """``|K_hat[0]| = 2^-52``: the inverse refuses (matrix_rank's tolerance), the logdet is finite."""
    K = np.array([1.0, -(1.0 - 2.0**-52)])
    sign, logabsdet = fc.circular_conv_slogdet(K)
    np.testing.assert_allclose(logabsdet, np.log(2.0**-52 * (2.0 - 2.0**-52)), rtol=1e-12)
    with pytest.raises(ValueError, match=r"singular at frequency \(0,\).*max\|K_hat\| \* \|N\| \* eps"):
        fc.circular_conv_inverse(np.ones(2), K)


# (kernel, data shape, ops, frequency): K_hat[0, 0] = 0 exactly; K_hat((2, 0)) singular exactly.
_SINGULAR = [
    (np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]), (2, 3), "circular_conv", "(0, 0)"),
    (_singular_periodic(), (2, 4, 4), "periodic_conv", "(2, 0)"),
]


@pytest.mark.parametrize("method", fc.METHODS)
@pytest.mark.parametrize("K, shape, prefix, freq", _SINGULAR, ids=["circular", "periodic"])
def test_singular_kernel_names_the_frequency(put, method, K, shape, prefix, freq):
    K, Z, g = put(K), put(np.ones(shape)), put(np.array(1.0))
    op = {name: getattr(fc, f"{prefix}_{name}") for name in ("slogdet", "slogdet_vjp", "inverse", "inverse_vjp")}
    for call in (lambda: op["slogdet"](K, method=method),
                 lambda: op["slogdet_vjp"](K, g, method=method),
                 lambda: op["inverse"](Z, K, method=method),
                 lambda: op["inverse_vjp"](Z, K, Z, method=method)):
        with pytest.raises(ValueError, match=rf"singular at frequency {re.escape(freq)}"):
            call()


def test_numerically_singular_periodic_kernel():
    K = _singular_periodic()
    K[0, 0, 0, 0] += 1e-15
    assert np.isfinite(fc.periodic_conv_slogdet(K)[1])
    Z = np.random.default_rng(0).standard_normal((2, 4, 4))
    with pytest.raises(ValueError, match=r"singular at frequency \(2, 0\) \(sigma_min"):
        fc.periodic_conv_inverse(Z, K)


def test_glow_zero_s_is_singular():
    s = np.array([1.0, 0.0, 2.0])
    L = U = np.eye(3)
    with pytest.raises(ValueError, match=r"s\[1\] = 0"):
        fc.glow_conv1x1_inverse(np.ones((3, 2, 2)), L, U, s)
    with pytest.raises(ValueError, match=r"s\[1\] = 0"):
        fc.glow_conv1x1_slogdet(s, (2, 2))


# -- behaviour worth pinning down directly --------------------------------------------------


def test_hermitian_hygiene_zeroes_self_conjugate_imaginary_parts():
    """The bins (0 or N/2 on every axis) lose their imaginary part before irfftn; no other bin does."""
    grid, axes = (4, 6), (0, 1)
    y = np.full((4, 4), 1.0 + 1.0j)
    out = fc._ifft(np, y.copy(), grid, axes, True)
    expected = y.copy()
    for i in (0, 2):
        for j in (0, 3):
            expected[i, j] = 1.0
    np.testing.assert_allclose(out, np.fft.irfftn(expected, s=grid, axes=axes), atol=1e-15)
    assert y[0, 0].imag == 1.0  # only the fresh copy is touched
    index = fc._self_conjugate((4, 6), axes, 2)
    mask = np.zeros((4, 4), bool)
    mask[index] = True
    assert set(zip(*np.nonzero(mask))) == {(0, 0), (0, 3), (2, 0), (2, 3)}


@pytest.mark.parametrize("n, weights", [(1, [1]), (2, [1, 1]), (5, [1, 2, 2]), (6, [1, 2, 2, 1])])
def test_multiplicity_weights(n, weights):
    values = np.arange(1.0, n // 2 + 2)[None, :] * np.ones((3, 1))
    got = fc._weighted_sum(np, values, (3, n), (0, 1), True)
    assert got == pytest.approx(3 * np.dot(weights, np.arange(1.0, n // 2 + 2)))


def test_cached_spectrum_accepted_by_every_circular_op():
    gen = np.random.default_rng(0)
    K = np.eye(3, 4) * 2 + 0.1 * gen.standard_normal((3, 4))
    X = gen.standard_normal((2, 3, 4))
    for method in fc.METHODS:
        spec = fc.kernel_spectrum(K, method=method)
        for direct, cached in [
            (fc.circular_conv(X, K, (1, 2), method=method), fc.circular_conv(X, spec, (1, 2))),
            (fc.circular_conv_inverse(X, K, (1, 2), method=method), fc.circular_conv_inverse(X, spec, (1, 2))),
            (fc.circular_conv_slogdet(K, method=method)[1], fc.circular_conv_slogdet(spec)[1]),
        ]:
            np.testing.assert_array_equal(direct, cached)


def test_slogdet_batch_axes():
    gen = np.random.default_rng(1)
    K = gen.standard_normal((3, 2, 5))  # grid axes 0 and 2, batch axis 1
    sign, logabsdet = fc.circular_conv_slogdet(K, axes=(0, 2))
    assert sign.shape == logabsdet.shape == (2,)
    for b in range(2):
        s1, l1 = fc.circular_conv_slogdet(K[:, b])
        assert (sign[b], logabsdet[b]) == pytest.approx((s1, l1), rel=1e-13)


def test_periodic_slogdet_batch_axes():
    K = np.random.default_rng(4).standard_normal((2, 3, 3, 2, 5))
    sign, logabsdet = fc.periodic_conv_slogdet(K)
    (dK,) = fc.periodic_conv_slogdet_vjp(K, np.array([1.0, -2.0]))
    assert sign.shape == logabsdet.shape == (2,) and dK.shape == K.shape
    for b, g in enumerate((1.0, -2.0)):
        assert (sign[b], logabsdet[b]) == pytest.approx(fc.periodic_conv_slogdet(K[b]), rel=1e-13)
        np.testing.assert_allclose(dK[b], g * fc.periodic_conv_slogdet_vjp(K[b], np.array(1.0))[0], rtol=1e-13)


def test_glow_weight_from_scipy_lu_and_perm_sign():
    import scipy.linalg

    W0 = np.random.default_rng(2).standard_normal((5, 5))
    P, L, U = scipy.linalg.lu(W0)
    perm = P.argmax(axis=1)
    np.testing.assert_allclose(fc.glow_lu_weight(L, U, np.diag(U), perm=perm), W0, atol=1e-14)
    sign, logabsdet = fc.glow_conv1x1_slogdet(np.diag(U).copy(), (3, 1), perm=perm)
    ref_sign, ref_log = np.linalg.slogdet(W0)
    assert sign == ref_sign and logabsdet == pytest.approx(3 * ref_log, rel=1e-13)


# -- bad input ------------------------------------------------------------------------------

_X, _K = np.ones((3, 4)), np.eye(3, 4)
_Xp, _Kp = np.ones((2, 4, 4)), np.ones((2, 2, 4, 4))


@pytest.mark.parametrize("call, error, match", [
    (lambda: fc.embed_kernel(np.ones((1, 1, 2, 3)), (4, 4)), ValueError, "kernel sizes must be odd"),
    (lambda: fc.embed_kernel(np.ones((1, 1, 5, 3)), (4, 4)), ValueError, "does not fit the grid"),
    (lambda: fc.embed_kernel(np.ones((3, 3, 1)), (4, 4)), ValueError, "w must have 4 axes"),
    (lambda: fc.embed_kernel(np.ones((1, 1, 3, 3)), (4, 4), layout="nchw"), ValueError, "layout must be one of"),
    (lambda: fc.embed_kernel(np.ones((1, 1, 3, 3)), 4), TypeError, "shape must be a pair"),
    (lambda: fc.embed_kernel_vjp(np.ones((1, 1, 3, 3)), np.ones((1, 1, 4, 5)), (4, 4)),
     ValueError, "G must have the output's shape"),
    (lambda: fc.periodic_conv_inverse(np.ones((2, 4, 4)), np.ones((3, 2, 4, 4))), ValueError, "c_out == c_in"),
    (lambda: fc.periodic_conv_slogdet(np.ones((3, 2, 4, 4))), ValueError, "c_out == c_in"),
    (lambda: fc.periodic_conv(np.ones((3, 4, 4)), _Kp), ValueError, r"X must have shape \(\.\.\., c_in, H, W\)"),
    (lambda: fc.periodic_conv(np.ones((2, 4, 5)), _Kp), ValueError, "to match K"),
    (lambda: fc.periodic_conv(_Xp, np.ones((2, 4, 4))), ValueError, r"K must have shape \(c_out, c_in, H, W\)"),
    (lambda: fc.periodic_conv_vjp(_Xp, _Kp, np.ones((3, 4, 4))), ValueError, "G must have the output's shape"),
    (lambda: fc.periodic_conv(_Xp, fc.kernel_spectrum(_K)), ValueError, "circular-convolution spectrum"),
    (lambda: fc.circular_conv(_X, np.ones((4, 3))), ValueError, "K must have the shape of X along axes"),
    (lambda: fc.circular_conv(_X, np.ones(4), axes=1), None, None),
    (lambda: fc.circular_conv(_X, _K, axes=(0, 2)), ValueError, "axes must be distinct axes of X"),
    (lambda: fc.circular_conv(_X, _K, axes=(0, -2)), ValueError, "axes must be distinct"),
    (lambda: fc.circular_conv(_X, _K, method="fft"), ValueError, "method must be one of"),
    (lambda: fc.circular_conv(_X, fc.kernel_spectrum(_K), method="complex"), ValueError, "conflicts"),
    (lambda: fc.circular_conv(_X, fc.kernel_spectrum(np.ones(4)), axes=0), ValueError, "spectrum for grid"),
    (lambda: fc.circular_conv(_X, fc.kernel_spectrum(_K.astype(np.float32))), TypeError, "share one dtype"),
    (lambda: fc.circular_conv(_X, _K.astype(np.float32)), TypeError, "share one dtype"),
    (lambda: fc.circular_conv(_X.astype(int), _K), TypeError, "X must have a real floating dtype"),
    (lambda: fc.circular_conv([[1.0]], _K), TypeError, "X must be an array"),
    (lambda: fc.circular_conv(_X, xps.asarray(_K)), TypeError, "different array libraries"),
    (lambda: fc.circular_conv(np.ones((0, 4)), np.ones((0, 4))), ValueError, "nonzero sizes"),
    (lambda: fc.circular_conv_vjp(_X, _K, np.ones((4, 3))), ValueError, "G must have the shape of X"),
    (lambda: fc.circular_conv_slogdet_vjp(_K, np.ones(2)), ValueError, "g must have K's batch shape"),
    (lambda: fc.circular_conv_slogdet(fc.kernel_spectrum(_K), axes=0), ValueError, "no batch axes"),
    (lambda: fc.glow_conv1x1(np.ones((3, 2, 2)), np.eye(2), np.eye(2), np.ones(2)), ValueError, "c = len"),
    (lambda: fc.glow_conv1x1(np.ones((2, 2, 2)), np.eye(3), np.eye(2), np.ones(2)), ValueError, "L must have shape"),
    (lambda: fc.glow_conv1x1(np.ones((2, 2, 2)), np.eye(2), np.eye(2), np.ones(2), perm=(0, 0)),
     ValueError, "perm must be a permutation"),
    (lambda: fc.glow_conv1x1_slogdet_vjp(np.ones(2), np.ones(2), (2, 2)), ValueError, "g must be a 0-d"),
])
def test_bad_input(call, error, match):
    if error is None:  # a valid call next to the invalid ones: the checks are not too strict
        assert call().shape == _X.shape
        return
    with pytest.raises(error, match=match):
        call()


# -- the checks have teeth: planted bugs make the right properties fail ---------------------


def _failing(op_name, impl=None, monkeypatch=None, patches=(), profile="quick", among=None):
    """Names of the properties (all, or those in ``among``) that fail on the planted bug."""
    for target, replacement in patches:
        monkeypatch.setattr(fc, target, replacement)
    return failing_properties(op_name, impl=impl, among=among, profile=profile)


def _assert_fail(expected, op_name, impl=None, **kwargs):
    assert _failing(op_name, impl, among=set(expected), **kwargs) == set(expected)


def _candidate(op_name, forward=None, vjp=None):
    op = get_op(op_name)
    return SimpleNamespace(forward=forward or op.forward, vjp=vjp or op.vjp)


def _roll_grid(Z, axes, shift=1):
    return np.roll(Z, shift, axis=axes)


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
    return fc.circular_conv(X, np.roll(np.flip(K, axis=-1), 1, axis=-1), axes, **params)


def test_teeth_circular_conv(monkeypatch):
    wrong_shift = _candidate("circular_conv", forward=lambda X, K, axes=None, **p: _roll_grid(
        fc.circular_conv(X, K, axes, **p), axes))
    _assert_fail({"matches ground truth", "matches scipy.ndimage.convolve (wrap)",
            "matches folded scipy.signal.convolve (full)",
            "impulse response is the kernel"}, "circular_conv", wrong_shift)
    linear = _candidate("circular_conv", forward=_linear_truncated)
    _assert_fail({"shift equivariance", "matches ground truth"}, "circular_conv", linear)
    # Missing conjugate: dX = C(K) G instead of C(K)^T G.
    no_conj = _candidate("circular_conv", vjp=lambda X, K, G, axes=None, **p: (
        fc.circular_conv(G, K, axes, **p), fc.circular_conv_vjp(X, K, G, axes, **p)[1]))
    _assert_fail({"adjoint matches scipy.ndimage.correlate (wrap)", "adjoint test",
            "vjp: dot-product test", "vjp: autograd"}, "circular_conv", no_conj)
    flipped = _candidate("circular_conv", forward=_flip_channels)
    _assert_fail({"3-D conv == periodic conv with channel-circulant kernel"}, "circular_conv", flipped)


@pytest.mark.parametrize("op_name", ["circular_conv", "circular_conv_inverse",
                                     "periodic_conv", "periodic_conv_inverse"])
def test_teeth_wrong_hermitian_bins(monkeypatch, op_name):
    """Zeroing the imaginary part of bin 1 instead of N/2 breaks the rfft path only."""
    def wrong_bins(grid, axes, ndim):
        index = [slice(None)] * ndim
        for a in axes:
            index[a] = slice(0, 2)
        return tuple(index)

    _assert_fail({"matches ground truth", "rfft path == complex path"}, op_name,
                 monkeypatch=monkeypatch, patches=[("_self_conjugate", wrong_bins)])


def test_teeth_stale_cached_spectrum(monkeypatch):
    original = fc.kernel_spectrum

    def conjugated(K, method="rfft"):
        s = original(K, method=method)
        return dataclasses.replace(s, values=np.conj(s.values))

    failed = _failing("circular_conv", monkeypatch=monkeypatch, patches=[("kernel_spectrum", conjugated)])
    assert failed == {"cached spectrum"}


def test_teeth_circular_inverse():
    conj_inverse = _candidate("circular_conv_inverse", forward=lambda Z, K, axes=None, **p: fc.circular_conv_inverse(
        Z, np.roll(np.flip(K, axis=tuple(range(K.ndim))), 1, axis=tuple(range(K.ndim))), axes, **p))
    _assert_fail({"matches ground truth", "round trip (error / cond)"}, "circular_conv_inverse", conj_inverse)
    no_conj = _candidate("circular_conv_inverse", vjp=lambda Z, K, G, axes=None, **p: (
        fc.circular_conv_inverse(G, K, axes, **p), fc.circular_conv_inverse_vjp(Z, K, G, axes, **p)[1]))
    _assert_fail({"adjoint test", "vjp: dot-product test", "vjp: autograd"}, "circular_conv_inverse", no_conj)


def test_teeth_multiplicity_weights(monkeypatch):
    def unweighted(xp, values, grid, axes, real):
        return xp.sum(values, axis=axes)

    patches = [("_weighted_sum", unweighted)]
    for name in ("circular_conv_slogdet", "periodic_conv_slogdet"):
        # Half of the examples use the complex path, and N <= 2 has weights 1 only: 25 examples.
        _assert_fail({"matches ground truth", "rfft path == complex path"}, name,
                     monkeypatch=monkeypatch, patches=patches, profile="ci")


def test_teeth_slogdet_sign_and_gradient():
    def always_positive(K, **p):
        pair = get_op("circular_conv_slogdet").forward(K, **p)
        return np.stack([np.ones_like(pair[..., 0]), pair[..., 1]], axis=-1)

    _assert_fail({"matches ground truth", "3-D logdet == periodic logdet with channel-circulant kernel"},
                 "circular_conv_slogdet", _candidate("circular_conv_slogdet", forward=always_positive))

    def no_conj(K, c, axes=None, method=None):  # g |N| ifft(1 / K_hat): the conjugate is missing
        axes = tuple(range(K.ndim)) if axes is None else axes
        grid = tuple(K.shape[a] for a in axes)
        g = np.expand_dims(c[..., 1], tuple(axes)) if c.ndim > 1 else c[..., 1]
        return (np.real(np.fft.ifftn(1 / np.fft.fftn(K, axes=axes), axes=axes)) * np.prod(grid) * g,)

    _assert_fail({"vjp: dot-product test", "vjp: autograd"}, "circular_conv_slogdet",
                 _candidate("circular_conv_slogdet", vjp=no_conj))


def test_teeth_periodic_missing_conjugate(monkeypatch):
    patches = [("_adjoint", lambda xp, A: xp.matrix_transpose(A))]
    _assert_fail({"vjp: dot-product test", "vjp: autograd", "adjoint test"}, 
        "periodic_conv", monkeypatch=monkeypatch, patches=patches)
    _assert_fail({"vjp: dot-product test", "vjp: autograd", "adjoint test"}, 
        "periodic_conv_inverse", monkeypatch=monkeypatch, patches=patches)
    _assert_fail({"vjp: dot-product test", "vjp: autograd"}, 
        "periodic_conv_slogdet", monkeypatch=monkeypatch, patches=patches)


def test_teeth_periodic_forward():
    transposed = _candidate("periodic_conv", forward=lambda X, K, **p: fc.periodic_conv(X, np.flip(K, axis=(0, 1)), **p))
    _assert_fail({"matches ground truth", "impulse response is the kernel",
            "k = 1 is the 1x1 convolution"}, "periodic_conv", transposed)

    def linear(X, K, **_):
        H, W = X.shape[-2:]
        out = [sum(signal.convolve(X[..., i, :, :], K[o, i][(None,) * (X.ndim - 3)], mode="full")[..., :H, :W]
                   for i in range(K.shape[1])) for o in range(K.shape[0])]
        return np.stack(out, axis=-3)

    _assert_fail({"shift equivariance", "matches ground truth"}, "periodic_conv", _candidate("periodic_conv", linear))


def test_teeth_periodic_inverse_and_cached_spectrum(monkeypatch):
    wrong = _candidate("periodic_conv_inverse", forward=lambda Z, K, **p: fc.periodic_conv_inverse(
        Z, np.swapaxes(K, 0, 1), **p))
    _assert_fail({"matches ground truth", "round trip (error / cond)"}, "periodic_conv_inverse", wrong)
    original = fc.periodic_kernel_spectrum

    def stale(K, method="rfft"):
        s = original(K, method=method)
        return dataclasses.replace(s, values=np.swapaxes(s.values, -1, -2))

    _assert_fail({"cached spectrum"}, "periodic_conv", monkeypatch=monkeypatch,
                 patches=[("periodic_kernel_spectrum", stale)])


def test_teeth_embed_kernel_wrong_shift():
    shifted = _candidate("embed_kernel", forward=lambda w, shape, layout="oihw": np.roll(
        fc.embed_kernel(w, shape, layout), -1, axis=(2, 3)))
    _assert_fail({"matches ground truth", "layer matches scipy.ndimage.correlate (wrap)",
            "layer matches circular padding + cross-correlation"}, "embed_kernel", shifted)
    bad_vjp = _candidate("embed_kernel", vjp=lambda w, G, shape, layout="oihw": fc.embed_kernel_vjp(
        w, np.roll(G, 1, axis=(2, 3)), shape, layout))
    _assert_fail({"adjoint test", "vjp: dot-product test", "vjp: autograd"}, "embed_kernel", bad_vjp)


def test_teeth_glow():
    def tf_convention(X, L, U, s, perm=None):  # W^T X: the TF kernel read as PyTorch's
        W = fc.glow_lu_weight(L, U, s, perm=perm)
        return np.einsum("io,...ihw->...ohw", W, X)

    _assert_fail({"matches ground truth", "k = 1 case of periodic_conv", "factors of scipy.linalg.lu"}, 
        "glow_conv1x1", _candidate("glow_conv1x1", forward=tf_convention))

    def unmasked(X, L, U, s, G, perm=None):  # dX = W G (missing transpose), dL not masked to tril
        dX, dL, dU, ds = fc.glow_conv1x1_vjp(X, L, U, s, G, perm=perm)
        return fc.glow_conv1x1(G, L, U, s, perm=perm), dL + np.triu(dU), dU, ds

    _assert_fail({"adjoint test", "vjp: dot-product test", "vjp: autograd"}, 
        "glow_conv1x1", _candidate("glow_conv1x1", vjp=unmasked))

    def inverse_wrong(Z, L, U, s, G, perm=None):
        _, dL, dU, ds = fc.glow_conv1x1_inverse_vjp(Z, L, U, s, G, perm=perm)
        return fc.glow_conv1x1_inverse(G, L, U, s, perm=perm), dL, dU, ds

    _assert_fail({"adjoint test", "vjp: dot-product test", "vjp: autograd"}, 
        "glow_conv1x1_inverse", _candidate("glow_conv1x1_inverse", vjp=inverse_wrong))
    transposed = _candidate("glow_conv1x1_inverse", forward=lambda Z, L, U, s, perm=None: np.einsum(
        "io,...ihw->...ohw", np.linalg.inv(fc.glow_lu_weight(L, U, s, perm=perm)), Z))
    _assert_fail({"matches ground truth"}, "glow_conv1x1_inverse", transposed)

    def missing_hw(s, shape, perm=None):
        sign, logabsdet = fc.glow_conv1x1_slogdet(s, shape, perm=perm)
        return np.stack([sign, logabsdet / (shape[0] * shape[1])])

    _assert_fail({"matches ground truth", "k = 1 logdet == periodic logdet"}, 
        "glow_conv1x1_slogdet", _candidate("glow_conv1x1_slogdet", forward=missing_hw))
    _assert_fail({"vjp: dot-product test", "vjp: autograd"}, 
        "glow_conv1x1_slogdet", _candidate("glow_conv1x1_slogdet", vjp=lambda s, c, shape, perm=None: (c[1] / s,)))


def test_runs_on_a_second_device():
    """No hidden host conversion: every public op runs on array_api_strict's device1."""
    if "array_api_strict:device1" not in available_backends(devices=True):
        pytest.skip("array_api_strict is not installed")
    be = backend_namespace("array_api_strict:device1")
    gen = np.random.default_rng(3)
    K = from_numpy(np.eye(3, 4) * 2 + 0.1 * gen.standard_normal((3, 4)), be)
    X = from_numpy(gen.standard_normal((3, 4)), be)
    Z = fc.circular_conv_inverse(fc.circular_conv(X, fc.kernel_spectrum(K)), K)
    np.testing.assert_allclose(to_numpy(Z), to_numpy(X), atol=1e-13)
