"""Capsules: registered properties on every backend, the squash's range, planted bugs, bad input."""

import numpy as np
import pytest

from refimpl.nn import dynamic_routing, dynamic_routing_vjp, squash, squash_vjp
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("nn.capsules"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_squash_has_no_overflow_and_is_zero_at_zero(dtype):
    big = np.finfo(dtype).max
    s = np.array([[big / 2, big / 2], [0.0, 0.0], [3.0, 4.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        v = squash(s)
        ds = squash_vjp(s, np.ones_like(s)).s
    np.testing.assert_allclose(v[0], [2 ** -0.5] * 2, rtol=1e-6)
    np.testing.assert_array_equal(v[1], 0.0)
    np.testing.assert_array_equal(ds[1], 0.0)
    np.testing.assert_allclose(np.linalg.norm(v[2]), 25 / 26, rtol=1e-6)
    assert v.dtype == dtype and np.all(np.isfinite(ds))


def test_routing_vjp_goes_through_the_couplings():
    """With three iterations the couplings depend on u_hat: detaching them changes the VJP."""
    gen = np.random.default_rng(0)
    u_hat, G = gen.standard_normal((4, 3, 2)), gen.standard_normal((3, 2))
    full = dynamic_routing_vjp(u_hat, G, n_iter=3).u_hat
    frozen = dynamic_routing_vjp(u_hat, G, n_iter=1).u_hat  # uniform couplings
    assert np.linalg.norm(full - frozen) > 1e-3 * np.linalg.norm(full)
    h, t = 1e-6, gen.standard_normal(u_hat.shape)
    fd = (dynamic_routing(u_hat + h * t, n_iter=3) - dynamic_routing(u_hat - h * t, n_iter=3)) / (2 * h)
    np.testing.assert_allclose(np.sum(full * t), np.sum(G * fd), rtol=1e-7)


def test_planted_wrong_softmax_axis_is_caught(monkeypatch):
    """Couplings normalised over the input capsules: ground truth and the one-iteration check fail."""
    import refimpl.nn.capsules as module

    real = module.probabilities
    monkeypatch.setattr(module, "probabilities", lambda xp, b, axis: real(xp, b, -2))
    failed = failing_properties("dynamic_routing", among={
        "matches ground truth", "one iteration is the squash of the uniform average"})
    assert failed == {"matches ground truth", "one iteration is the squash of the uniform average"}


def test_bad_input():
    with pytest.raises(TypeError, match="s must have a real floating dtype"):
        squash(np.arange(3))
    with pytest.raises(ValueError, match="s must not contain infs or NaNs"):
        squash(np.array([np.inf, 1.0]))
    with pytest.raises(ValueError, match=r"u_hat must have shape \(\.\.\., n_in, n_out, d\)"):
        dynamic_routing(np.ones((2, 3)))
    with pytest.raises(ValueError, match="n_iter must be a positive int"):
        dynamic_routing(np.ones((2, 3, 4)), n_iter=0)
    with pytest.raises(ValueError, match=r"cotangent must have the output's shape \(3, 4\)"):
        dynamic_routing_vjp(np.ones((2, 3, 4)), np.ones((2, 4)))
