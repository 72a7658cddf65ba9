"""Activation maximisation: registered properties, the iteration, bad input, planted bugs."""

import numpy as np
import pytest

from refimpl.attribution import activation_maximization
from refimpl.attribution import maximization as AM
from refimpl.nn import Linear, Tanh
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("attribution.maximization"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _net():
    return [Linear(np.array([[1.0, -2.0], [0.5, 0.5]])), Tanh(), Linear(np.array([[1.0, 2.0]]))]


def test_zero_steps_return_the_start_and_its_objective():
    x0 = np.array([[0.3, -0.2]])
    res = activation_maximization(_net(), x0, np.array([0]), l2=0.5, n_steps=0)
    assert res.x.tolist() == x0.tolist()
    y = np.tanh(x0 @ np.array([[1.0, -2.0], [0.5, 0.5]]).T) @ np.array([1.0, 2.0])
    assert np.isclose(res.objective[0], y[0] - 0.5 * 0.13)


def test_ascent_increases_the_objective_with_small_steps():
    x0 = np.array([[0.3, -0.2]])
    objectives = [activation_maximization(_net(), x0, np.array([0]), lr=0.05, n_steps=k).objective
                  for k in range(6)]
    assert all(b > a for a, b in zip(objectives, objectives[1:]))


@pytest.mark.parametrize("kw, error, match", [
    ({"lr": 0.0}, ValueError, "lr must be > 0"),
    ({"l2": -0.1}, ValueError, "l2 must be >= 0"),
    ({"n_steps": -1}, ValueError, "n_steps must be an integer >= 0"),
    ({"unit": np.array([1])}, ValueError, r"unit must hold output indices in \[0, 1\)"),
    ({"x0": np.array([[1, 2]])}, TypeError, "x0 must have a real floating dtype"),
])
def test_bad_input_names_the_argument(kw, error, match):
    args = {"x0": np.zeros((1, 2)), "unit": np.array([0]), **kw}
    with pytest.raises(error, match=match):
        activation_maximization(_net(), args.pop("x0"), args.pop("unit"), **args)


def test_planted_bug_in_the_penalty_gradient_is_caught(monkeypatch):
    """A gradient scaled by 1/2 (a wrong VJP) fails the closed form on affine networks."""
    right = AM.target_gradient
    monkeypatch.setattr(AM, "target_gradient",
                        lambda *a, **k: (right(*a, **k)[0], 0.5 * right(*a, **k)[1]))
    assert failing_properties("activation_maximization",
                              among={"closed form on an affine network"}) == {
        "closed form on an affine network"}
