"""The convolutions and the SVD layer as flow layers: the wrapped ops, the flow records on each, bad input.

The layers of :mod:`refimpl.flows.bijectors` have no ops of their own: the
records of ``flow_forward`` and ``flow_inverse`` check them (ground truth
from their dense matrices, gradients of the input and of every parameter,
round trip, log-determinant against the Jacobian), here on flows of one
layer of each kind.
"""

import numpy as np
import pytest

from refimpl.conv import circular_conv, circular_conv_slogdet, periodic_conv, periodic_conv_slogdet
from refimpl.flows import CircularConv, Glow1x1, PeriodicConv, SVDLinear, glow_conv1x1
from refimpl.linalg import svd_linear_matrix, svd_linear_slogdet
from verify import Case, get_op
from verify.engine import properties_of, run_property
from verify.strategies import flows

_GEN = np.random.default_rng(0)
_KINDS = {"glow1x1": "image", "periodic": "image", "circular": "vector", "svd": "vector"}


def _single_layer_cases(kind, data):
    return lambda: flows(data=_KINDS[kind], kinds=(kind,), max_layers=1, sequential=False).map(
        lambda fx: Case({"flow": fx[0], data: fx[1]}))


@pytest.mark.parametrize("kind", sorted(_KINDS))
@pytest.mark.parametrize("op_name, data", [("flow_forward", "x"), ("flow_inverse", "z")])
def test_flow_records_on_one_layer(kind, op_name, data):
    op = get_op(op_name)
    for prop in properties_of(op):
        if prop.cases is not None:  # invariants with their own inputs (several layers)
            continue
        r = run_property(op, prop, "numpy", "float64", profile="quick",
                         cases=_single_layer_cases(kind, data))
        assert r.passed, f"{kind}: {prop.name}: {r.message} at {r.counterexample}"


def test_glow1x1_is_the_op_with_its_logdet():
    L, U = 0.3 * _GEN.standard_normal((2, 3, 3))
    s, x = np.array([1.5, -0.7, 2.0]), _GEN.standard_normal((2, 3, 4, 5))
    layer = Glow1x1(L, U, s, perm=(1, 2, 0))
    z, logdet = layer.forward(x)
    np.testing.assert_array_equal(z, glow_conv1x1(x, L, U, s, perm=(1, 2, 0)))
    np.testing.assert_allclose(logdet, 20 * np.log(np.abs(s)).sum() * np.ones(2), rtol=1e-14)
    np.testing.assert_allclose(layer.inverse(z).x, x, atol=1e-13)


def test_circular_and_periodic_convolve_each_sample():
    K = _GEN.standard_normal((3, 4))
    K[0, 0] += 6.0
    x = _GEN.standard_normal((2, 3, 4))
    z, logdet = CircularConv(K).forward(x)
    np.testing.assert_allclose(z[1], circular_conv(x[1], K), rtol=1e-13)
    np.testing.assert_allclose(logdet, circular_conv_slogdet(K).logabsdet * np.ones(2), rtol=1e-14)
    Kp = 0.1 * _GEN.standard_normal((2, 2, 3, 4))
    Kp[:, :, 0, 0] += np.eye(2)
    xp = _GEN.standard_normal((2, 2, 3, 4))
    zp, logdet_p = PeriodicConv(Kp).forward(xp)
    np.testing.assert_allclose(zp, periodic_conv(xp, Kp), rtol=1e-13)
    np.testing.assert_allclose(logdet_p, periodic_conv_slogdet(Kp).logabsdet * np.ones(2))


def test_svd_layer_in_linear_rows():
    Vu, Vv = _GEN.standard_normal((2, 3, 4))
    s, x = np.array([1.0, -2.0, 0.5, 1.5]), _GEN.standard_normal((5, 4))
    z, logdet = SVDLinear(Vu, s, Vv).forward(x)
    np.testing.assert_allclose(z, x @ svd_linear_matrix(Vu, s, Vv).T, rtol=1e-13)
    np.testing.assert_allclose(logdet, svd_linear_slogdet(Vu, s, Vv).logabsdet * np.ones(5))


def test_parameter_cotangents_include_the_logdet():
    # forward_vjp with gz = 0: only the log-determinant's cotangent reaches s (d/ds sum log|s| = 1/s).
    Vu, Vv = _GEN.standard_normal((2, 2, 3))
    s, x = np.array([1.0, -2.0, 0.5]), _GEN.standard_normal((4, 3))
    _, dlayer = SVDLinear(Vu, s, Vv).forward_vjp(x, np.zeros((4, 3)), np.ones(4))
    np.testing.assert_allclose(dlayer.s, 4 / s, rtol=1e-14)
    np.testing.assert_array_equal(dlayer.Vu, 0)


@pytest.mark.parametrize("call, error, match", [
    (lambda: Glow1x1(np.eye(2), np.eye(2), np.ones(2)).forward(np.ones((3, 2))), ValueError,
     r"x must have shape \(n, c, H, W\)"),
    (lambda: Glow1x1(np.eye(2), np.eye(2), np.ones(2), perm=(0, 0)), ValueError, "perm must be"),
    (lambda: CircularConv(np.ones(3)).forward(np.ones((2, 4))), ValueError,
     r"x must have shape \(n,\) \+ K.shape"),
    (lambda: PeriodicConv(np.ones((2, 3, 2, 2))), ValueError, r"K must have shape \(c, c, H, W\)"),
    (lambda: PeriodicConv(np.ones((2, 2, 2, 2))).inverse(np.ones((1, 2, 3, 3))), ValueError,
     r"z must have shape \(n, c, H, W\) = \(n, 2, 2, 2\)"),
    (lambda: SVDLinear(np.ones((1, 2)), np.ones((2, 1)), np.ones((1, 2))), ValueError,
     "Vu, s, Vv must have shapes"),
    (lambda: SVDLinear(np.ones((1, 2)), np.ones(2), np.ones((1, 2))).forward_vjp(
        np.ones((3, 2)), np.ones((3, 2)), np.ones(2)), ValueError, r"glogdet must have shape \(n,\)"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
