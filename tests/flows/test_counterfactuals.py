"""Counterfactuals: registered properties on every backend, the boundary, scaled beta, bad input."""

import numpy as np
import pytest

from refimpl.flows import ActNorm, Reverse, Sequential, counterfactual, counterfactual_vjp, flow_forward
from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("flows.counterfactuals"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


_FLOW = Sequential([ActNorm(np.array([0.3, -0.2, 0.1]), np.array([1.0, 0.0, -1.0])), Reverse()])


def test_the_counterfactual_is_on_the_boundary_and_moves_along_beta():
    beta, x = np.array([1.0, -2.0, 0.5]), np.random.default_rng(0).standard_normal((4, 3))
    x_cf = counterfactual(_FLOW, beta, x)
    z, z_cf = flow_forward(_FLOW, x).z, flow_forward(_FLOW, x_cf).z
    np.testing.assert_allclose(z_cf @ beta, 0, atol=1e-14)
    move = z_cf - z
    np.testing.assert_allclose(move - np.outer(move @ beta, beta) / (beta @ beta), 0, atol=1e-14)


def test_beta_of_any_scale():
    # ||beta||^2 overflows for beta ~ 1e200: the direction is computed from beta / max|beta|.
    beta, x = np.array([1.0, -2.0, 0.5]), np.random.default_rng(1).standard_normal((2, 3))
    for factor in (1e-200, 1e200):
        np.testing.assert_allclose(counterfactual(_FLOW, factor * beta, x),
                                   counterfactual(_FLOW, beta, x), rtol=1e-13)
    dbeta = counterfactual_vjp(_FLOW, 1e200 * beta, x, np.ones((2, 3))).beta
    assert np.all(np.isfinite(dbeta))


@pytest.mark.parametrize("beta, error, match", [
    (np.zeros(3), ValueError, "beta must not be zero"),
    (np.ones(2), ValueError, r"beta must have the shape of one representation f\(x\)\[n\], \(3,\)"),
    (np.ones(3, dtype=np.float32), TypeError, "share one dtype"),
])
def test_bad_input(beta, error, match):
    with pytest.raises(error, match=match):
        counterfactual(_FLOW, beta, np.ones((2, 3)))
