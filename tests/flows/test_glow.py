"""Glow's 1x1 convolution: registered properties on every backend, singular s, bad input, planted bugs."""

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg

from refimpl.conv import embed_kernel, periodic_conv
from refimpl.flows import glow as gl
from verify import get_op
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("flows.glow"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_zero_s_is_singular():
    s = np.array([1.0, 0.0, 2.0])
    L = U = np.eye(3)
    with pytest.raises(ValueError, match=r"s\[1\] = 0"):
        gl.glow_conv1x1_inverse(np.ones((3, 2, 2)), L, U, s)
    with pytest.raises(ValueError, match=r"s\[1\] = 0"):
        gl.glow_conv1x1_slogdet(s, (2, 2))


def test_weight_from_scipy_lu_and_perm_sign():
    W0 = np.random.default_rng(2).standard_normal((5, 5))
    P, L, U = scipy.linalg.lu(W0)
    perm = P.argmax(axis=1)
    np.testing.assert_allclose(gl.glow_lu_weight(L, U, np.diag(U), perm=perm), W0, atol=1e-14)
    sign, logabsdet = gl.glow_conv1x1_slogdet(np.diag(U).copy(), (3, 1), perm=perm)
    ref_sign, ref_log = np.linalg.slogdet(W0)
    assert sign == ref_sign and logabsdet == pytest.approx(3 * ref_log, rel=1e-13)


def test_is_the_periodic_conv_of_a_1x1_kernel():
    gen = np.random.default_rng(3)
    X, L, U, s = (gen.standard_normal(shape) for shape in ((2, 3, 4, 5), (3, 3), (3, 3), (3,)))
    W = gl.glow_lu_weight(L, U, s, perm=(2, 0, 1))
    np.testing.assert_allclose(gl.glow_conv1x1(X, L, U, s, perm=(2, 0, 1)),
                               periodic_conv(X, embed_kernel(W[:, :, None, None], (4, 5))), atol=1e-13)


def test_cotangents_are_named_and_masked():
    gen = np.random.default_rng(4)
    L, U, G = gen.standard_normal((3, 3, 3))
    s = gen.standard_normal(3)
    dL, dU, ds = cot = gl.glow_lu_weight_vjp(L, U, s, G)
    assert cot._fields == ("L", "U", "s")
    np.testing.assert_array_equal(np.triu(dL), 0)  # only the strictly lower part is a parameter
    np.testing.assert_array_equal(np.tril(dU), 0)
    X = np.ones((3, 2, 2))
    assert gl.glow_conv1x1_vjp(X, L, U, s, X)._fields == ("X", "L", "U", "s")
    assert gl.glow_conv1x1_slogdet_vjp(s, np.array(1.0), (2, 2))._fields == ("s",)


_L = _U = np.eye(2)


@pytest.mark.parametrize("call, error, match", [
    (lambda: gl.glow_conv1x1(np.ones((3, 2, 2)), _L, _U, np.ones(2)), ValueError, "c = len"),
    (lambda: gl.glow_conv1x1(np.ones((2, 2, 2)), np.eye(3), _U, np.ones(2)), ValueError, "L must have shape"),
    (lambda: gl.glow_conv1x1(np.ones((2, 2, 2)), _L, _U, np.ones(2), perm=(0, 0)),
     ValueError, "perm must be a permutation"),
    (lambda: gl.glow_conv1x1(np.ones((2, 2)), _L, _U, np.ones(2)), ValueError, r"X must have shape"),
    (lambda: gl.glow_conv1x1_vjp(np.ones((2, 2, 2)), _L, _U, np.ones(2), np.ones((2, 2, 3))),
     ValueError, "G must have the output's shape"),
    (lambda: gl.glow_conv1x1_slogdet_vjp(np.ones(2), np.ones(2), (2, 2)), ValueError, "g must be a 0-d"),
    (lambda: gl.glow_conv1x1_slogdet(np.ones(2), 4), TypeError, "shape must be a pair"),
    (lambda: gl.glow_lu_weight(_L, _U, np.ones(2, np.float32)), TypeError, "share one dtype"),
    (lambda: gl.glow_lu_weight(_L, _U, np.ones(2), perm=[0, "a"]), TypeError,
     "perm must be a sequence of ints"),
    (lambda: gl.glow_lu_weight_vjp(_L, _U, np.ones(2), np.ones((2, 3))), ValueError,
     "G must have the output's shape"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- planted bugs: the right properties fail -------------------------------------------------


def _candidate(op_name, forward=None, vjp=None):
    op = get_op(op_name)
    return SimpleNamespace(forward=forward or op.forward, vjp=vjp or op.vjp)


def _assert_fail(expected, op_name, impl):
    assert failing_properties(op_name, impl=impl, among=set(expected)) == set(expected)


_GRADIENTS = {"vjp: dot-product test", "vjp: autograd"}


def test_tf_weight_convention_is_caught():
    def tf_convention(X, L, U, s, perm=None):  # W^T X: the TF kernel read as PyTorch's
        return np.einsum("io,...ihw->...ohw", gl.glow_lu_weight(L, U, s, perm=perm), X)

    _assert_fail({"matches ground truth", "k = 1 case of periodic_conv", "factors of scipy.linalg.lu"},
                 "glow_conv1x1", _candidate("glow_conv1x1", forward=tf_convention))


def test_unmasked_cotangents_are_caught():
    def unmasked(X, L, U, s, G, perm=None):  # dX = W G (missing transpose), dL not masked to tril
        dX, dL, dU, ds = gl.glow_conv1x1_vjp(X, L, U, s, G, perm=perm)
        return gl.glow_conv1x1(G, L, U, s, perm=perm), dL + np.triu(dU), dU, ds

    _assert_fail({"adjoint test in X", *_GRADIENTS}, "glow_conv1x1",
                 _candidate("glow_conv1x1", vjp=unmasked))


def test_inverse_bugs_are_caught():
    def inverse_wrong(Z, L, U, s, G, perm=None):  # dZ = W^-1 G instead of W^-T G
        _, dL, dU, ds = gl.glow_conv1x1_inverse_vjp(Z, L, U, s, G, perm=perm)
        return gl.glow_conv1x1_inverse(G, L, U, s, perm=perm), dL, dU, ds

    _assert_fail({"adjoint test in Z", *_GRADIENTS}, "glow_conv1x1_inverse",
                 _candidate("glow_conv1x1_inverse", vjp=inverse_wrong))
    transposed = _candidate("glow_conv1x1_inverse", forward=lambda Z, L, U, s, perm=None: np.einsum(
        "io,...ihw->...ohw", np.linalg.inv(gl.glow_lu_weight(L, U, s, perm=perm)), Z))
    _assert_fail({"matches ground truth", "round trip with glow_conv1x1 (error / cond)"},
                 "glow_conv1x1_inverse", transposed)


def test_slogdet_bugs_are_caught():
    def missing_hw(s, shape, perm=None):
        sign, logabsdet = gl.glow_conv1x1_slogdet(s, shape, perm=perm)
        return sign, logabsdet / (shape[0] * shape[1])

    _assert_fail({"matches ground truth", "log-determinant of the Jacobian",
                  "k = 1 logdet == periodic logdet"},
                 "glow_conv1x1_slogdet", _candidate("glow_conv1x1_slogdet", forward=missing_hw))
    _assert_fail(_GRADIENTS, "glow_conv1x1_slogdet",
                 _candidate("glow_conv1x1_slogdet", vjp=lambda s, g, shape, perm=None: (g / s,)))


def test_weight_without_permutation_is_caught():
    unpermuted = _candidate("glow_lu_weight", forward=lambda L, U, s, perm=None: gl.glow_lu_weight(L, U, s))
    _assert_fail({"matches ground truth", "factors of scipy.linalg.lu"}, "glow_lu_weight", unpermuted)
