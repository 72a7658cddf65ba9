"""Gradient attributions: registered properties on every backend, bad input, planted bugs."""

import numpy as np
import pytest

from refimpl.attribution import (
    deconvnet,
    guided_backprop,
    input_x_gradient,
    saliency,
    sensitivity,
    smoothgrad,
    vargrad,
)
from refimpl.attribution import _network
from refimpl.nn import Linear, MaxPool2d, ReLU, Flatten
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("attribution.gradients"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _net():
    return [Linear(np.array([[1.0, -2.0], [0.5, 1.0]])), ReLU(), Linear(np.array([[1.0, -1.0]]))]


def test_hand_computed_values():
    x, t = np.array([[1.0, 1.0]]), np.array([0])
    # pre-activations (-1, 1.5): only the second unit is on, g = -[0.5, 1.0]
    assert saliency(_net(), x, t, abs=False).tolist() == [[-0.5, -1.0]]
    assert saliency(_net(), x, t).tolist() == [[0.5, 1.0]]
    assert sensitivity(_net(), x, t).tolist() == [[0.25, 1.0]]
    assert input_x_gradient(_net(), 2 * x, t).tolist() == [[-1.0, -2.0]]
    # the cotangent at the ReLU is (1, -1): guided keeps max(g, 0) where a > 0 (nothing),
    # the deconvnet keeps max(g, 0) = (1, 0) whatever the input's sign
    assert guided_backprop(_net(), x, t).tolist() == [[0.0, 0.0]]
    assert deconvnet(_net(), x, t).tolist() == [[1.0, -2.0]]


def test_max_pooling_routes_to_the_first_maximum():
    x = np.array([[[[1.0, 1.0], [0.0, 1.0]]]])
    layers = [MaxPool2d(2), Flatten(), Linear(np.array([[3.0]]))]
    for method in (saliency, guided_backprop, deconvnet):
        assert method(layers, x, np.array([0])).tolist() == [[[[3.0, 0.0], [0.0, 0.0]]]]


def test_noise_moments():
    x, t = np.array([[1.0, 1.0]]), np.array([0])
    noise = np.array([[[0.0, 0.0]], [[-3.0, 0.0]]])  # the second turns the first unit on
    grads = np.stack([saliency(_net(), x + e, t, abs=False) for e in noise])
    assert np.allclose(smoothgrad(_net(), x, t, noise, abs=False), grads.mean(axis=0))
    assert np.allclose(vargrad(_net(), x, t, noise, abs=False), grads.var(axis=0))
    assert np.all(vargrad(_net(), x, t, noise[:1]) == 0)


@pytest.mark.parametrize("call, error, match", [
    (lambda: saliency(_net(), np.ones((1, 2)), np.array([1])), ValueError,
     r"target must hold output indices in \[0, 1\)"),
    (lambda: saliency(_net(), np.ones((1, 2)), np.array([0, 0])), ValueError,
     r"target must have shape \(N,\) = \(1,\)"),
    (lambda: saliency(_net(), np.ones((1, 2)), np.array([0.0])), TypeError,
     "target must have an integer dtype"),
    (lambda: saliency(_net(), np.ones((1, 2), dtype=int), np.array([0])), TypeError,
     "x must have a real floating dtype"),
    (lambda: saliency(_net(), np.array([[np.nan, 1.0]]), np.array([0])), ValueError,
     "x must not contain infs or NaNs"),
    (lambda: smoothgrad(_net(), np.ones((1, 2)), np.array([0]), np.ones((2, 1, 3))), ValueError,
     r"noise must have shape \(n_samples, \*x.shape\)"),
    (lambda: vargrad(_net(), np.ones((1, 2)), np.array([0]), np.ones((2, 1, 2), np.float32)),
     TypeError, "arguments must share one dtype"),
    (lambda: saliency([np.eye(2)], np.ones((1, 2)), np.array([0])), TypeError,
     "layer 0 must be a refimpl.nn layer"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0
def test_check_finite_false_skips_the_scan():
    out = saliency(_net(), np.array([[np.inf, 1.0]]), np.array([0]), check_finite=False)
    assert out.shape == (1, 2)


def test_planted_bug_in_the_guided_rule_is_caught(monkeypatch):
    plain = _network.relu_backward
    monkeypatch.setattr(_network, "relu_backward",
                        lambda xp, a, g, rule: plain(xp, a, g, "gradient"))
    failed = failing_properties("guided_backprop", among={"matches ground truth"})
    assert failed == {"matches ground truth"}
