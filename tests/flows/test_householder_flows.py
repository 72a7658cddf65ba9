"""Householder flow: registered properties, Tomczak and Welling's order, layers, bad input."""

from types import SimpleNamespace

import numpy as np
import pytest

from refimpl.flows import householder_flows as hf
from refimpl.linalg import householder_matrix
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("flows.householder_flows"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _reflector(v):
    return np.eye(v.size) - 2 * np.outer(v, v) / (v @ v)


def test_first_reflector_acts_first():
    gen = np.random.default_rng(0)
    V, x = gen.standard_normal((3, 4)), gen.standard_normal((2, 4))
    expected = x @ _reflector(V[0]).T @ _reflector(V[1]).T @ _reflector(V[2]).T  # H_3 H_2 H_1 x
    np.testing.assert_allclose(hf.householder_flow(x, V).z, expected, rtol=1e-13)
    np.testing.assert_allclose(hf.householder_flow(x, V).z, x @ householder_matrix(V), rtol=1e-13)


def test_per_sample_reflectors_are_each_samples_own():
    gen = np.random.default_rng(1)
    V, x = gen.standard_normal((3, 2, 4)), gen.standard_normal((3, 4))
    z = hf.householder_flow(x, V).z
    for n in range(3):
        np.testing.assert_allclose(z[n], hf.householder_flow(x[n:n + 1], V[n]).z[0], rtol=1e-14)


def test_layer():
    gen = np.random.default_rng(2)
    layer = hf.HouseholderFlow(gen.standard_normal((2, 3)))
    x = gen.standard_normal((4, 3))
    z, logdet = layer.forward(x)
    np.testing.assert_array_equal(logdet, np.zeros(4))
    np.testing.assert_allclose(layer.inverse(z).x, x, rtol=1e-14)
    assert isinstance(layer.forward_vjp(x, z, logdet)[1], hf.HouseholderFlow)


@pytest.mark.parametrize("call, error, match", [
    (lambda: hf.householder_flow(np.ones((2, 3)), np.ones((2, 2))), ValueError,
     r"V must have shape \(K, d\) or \(n, K, d\)"),
    (lambda: hf.householder_flow(np.ones((2, 3)), np.ones((3, 1, 3))), ValueError, "V must have shape"),
    (lambda: hf.householder_flow(np.ones((2, 3)), np.zeros((1, 3))), ValueError, "zero row"),
    (lambda: hf.householder_flow(np.ones(3), np.ones((1, 3))), ValueError, r"x must have shape"),
    (lambda: hf.HouseholderFlow(np.ones(3)), ValueError, "V must have shape"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_last_reflector_first_is_caught():
    def reversed_order(x, V):  # H_1 ... H_K x: the transpose of Tomczak and Welling's product
        return tuple(hf.householder_flow_inverse(x, V))  # (z, logdet) by position

    impl = SimpleNamespace(forward=reversed_order, vjp=hf.householder_flow_vjp)
    failed = failing_properties("householder_flow", impl=impl)
    assert "matches ground truth" in failed and "orthogonal" not in failed
