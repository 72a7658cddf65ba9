"""nflows' LULinear: registered properties on every backend, nflows' layout, layers, bad input, a bug."""

from types import SimpleNamespace

import numpy as np
import pytest

from refimpl.flows import glow_lu_weight, lulinear as lu
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("flows.lulinear"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_nflows_identity_initialisation():
    # nflows' identity_init: zero triangles, unconstrained_upper_diag = log(exp(1 - eps) - 1).
    d = 4
    u = np.full(d, np.log(np.expm1(1 - 1e-3)))
    x = np.random.default_rng(0).standard_normal((3, d))
    z, logdet = lu.lu_linear(x, np.zeros((d, d)), np.zeros((d, d)), u, np.zeros(d))
    np.testing.assert_allclose(z, x, rtol=1e-14)
    np.testing.assert_allclose(logdet, 0, atol=1e-14)


def test_is_glow_weight_in_linear_rows():
    gen = np.random.default_rng(1)
    L, U, u, x, b = (gen.standard_normal(s) for s in ((3, 3), (3, 3), (3,), (2, 3), (3,)))
    W = glow_lu_weight(L, U, np.logaddexp(0, u) + 1e-3)
    np.testing.assert_allclose(lu.lu_linear(x, L, U, u, b).z, x @ W.T + b, rtol=1e-14)


def test_layer():
    gen = np.random.default_rng(2)
    layer = lu.LULinear(gen.standard_normal((3, 3)), gen.standard_normal((3, 3)), gen.standard_normal(3))
    x = gen.standard_normal((4, 3))
    z, logdet = layer.forward(x)
    np.testing.assert_allclose(layer.inverse(z).x, x, rtol=1e-12)
    dx, dlayer = layer.forward_vjp(x, z, np.ones(4))
    assert isinstance(dlayer, lu.LULinear) and dlayer.bias is None


@pytest.mark.parametrize("call, error, match", [
    (lambda: lu.lu_linear(np.ones((2, 3)), np.ones((2, 2)), np.ones((3, 3)), np.ones(3)), ValueError,
     r"lower must have shape \(3, 3\)"),
    (lambda: lu.lu_linear(np.ones((2, 3)), np.ones((3, 3)), np.ones((3, 3)), np.ones(3), np.ones(2)),
     ValueError, r"bias must have shape \(3,\)"),
    (lambda: lu.lu_linear(np.ones((2, 3)), np.ones((3, 3)), np.ones((3, 3)), np.ones(3), eps=0),
     ValueError, "eps must be a positive number"),
    (lambda: lu.lu_linear(np.ones((2, 3, 1)), np.ones((3, 3)), np.ones((3, 3)), np.ones(3)),
     ValueError, r"x must have shape \(n, d\)"),
    (lambda: lu.LULinear(np.ones((3, 3)), np.ones((3, 3)), np.ones((3, 1))), ValueError,
     r"unconstrained_diag must have shape \(d,\)"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_missing_eps_is_caught():
    def without_eps(x, lower, upper, unconstrained_diag, bias=None):
        return lu.lu_linear(x, lower, upper, unconstrained_diag, bias, eps=1e-300)

    impl = SimpleNamespace(forward=without_eps, vjp=lu.lu_linear_vjp)
    assert {"matches ground truth", "Glow's LU weight in nn.Linear rows"} <= failing_properties(
        "lu_linear", impl=impl)
