"""Integrated gradients: registered properties, captum's quadratures, bad input, planted bugs."""

import numpy as np
import pytest

from refimpl.attribution import PATH_METHODS, integrated_gradients
from refimpl.attribution import integrated as I
from refimpl.nn import Linear, Tanh
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("attribution.integrated"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _captum(method, n):
    """captum's approximation_parameters, written with NumPy (float64, before its casts)."""
    if method == "gausslegendre":
        t, v = np.polynomial.legendre.leggauss(n)
        return 0.5 * (1 + t), 0.5 * v
    deltas = np.full(n, 1 / n)
    if method == "riemann_trapezoid":
        deltas[[0, -1]] /= 2
        return np.linspace(0, 1, n), deltas
    start, stop = {"riemann_left": (0, 1 - 1 / n), "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
                   "riemann_right": (1 / n, 1)}[method]
    return np.linspace(start, stop, n), deltas


@pytest.mark.parametrize("method", PATH_METHODS)
@pytest.mark.parametrize("n", [2, 3, 7, 50, 128])
def test_points_and_weights_are_captums(method, n):
    points, weights = I.path_rule(method, n)
    expected = _captum(method, n)
    np.testing.assert_allclose(points, expected[0], rtol=0, atol=4e-16)
    # numpy's leggauss (captum's source) loses up to 1e-11 of the weights near t = +-1 at large n
    np.testing.assert_allclose(weights, expected[1], rtol=1e-10, atol=0)


def _decimal_gauss_weight(n, t):
    """The Gauss-Legendre weight at the node nearest ``t`` in 50-digit arithmetic (Newton in t)."""
    from decimal import Decimal, localcontext

    with localcontext() as context:
        context.prec = 50
        x = Decimal(t)
        for _ in range(6):
            a, b = Decimal(1), x
            for k in range(2, n + 1):
                a, b = b, ((2 * k - 1) * x * b - (k - 1) * a) / k
            slope = n * (x * b - a) / (x * x - 1)
            x -= b / slope
        return float(2 / ((1 - x * x) * slope * slope))


@pytest.mark.parametrize("n", [3, 50, 128])
def test_gauss_legendre_weights_to_near_full_precision(n):
    points, weights = I.path_rule("gausslegendre", n)
    exact = [_decimal_gauss_weight(n, 2 * a - 1) / 2 for a in points]
    np.testing.assert_allclose(weights, exact, rtol=1e-12, atol=0)


@pytest.mark.parametrize("n", [2, 5, 50])
def test_trapezoid_weights(n):
    assert np.isclose(sum(I.path_rule("riemann_trapezoid", n)[1]), 1 - 1 / n)
    textbook = I.path_rule("riemann_trapezoid", n, trapezoid="textbook")[1]
    assert np.isclose(sum(textbook), 1.0) and np.isclose(textbook[0], 1 / (2 * (n - 1)))


@pytest.mark.parametrize("method", PATH_METHODS)
def test_float32_weights_round_as_captum(method):
    points, weights = I.path_rule(method, 50, float32_weights=True)
    assert np.array_equal(np.float32(weights), weights)
    exact_points, exact_weights = I.path_rule(method, 50)
    assert np.array_equal(np.float32(exact_weights), weights)
    if method != "gausslegendre":  # captum's Riemann points come from a float32 linspace
        assert np.array_equal(np.float32(exact_points), points)
    else:
        assert points == exact_points


def test_linear_model_is_exact_and_captums_trapezoid_loses_gap_over_n():
    net = [Linear(np.array([[2.0, -1.0, 0.5]]), np.array([0.3]))]
    x, b, t = np.array([[1.0, 2.0, -1.0]]), np.array([[0.5, -1.0, 0.0]]), np.array([0])
    gap = 2.0 * 0.5 - 1.0 * 3.0 + 0.5 * -1.0
    for method in PATH_METHODS:
        ig = integrated_gradients(net, x, t, b, method=method, n_steps=4)
        expected = -gap / 4 if method == "riemann_trapezoid" else 0.0
        assert abs(ig.delta[0] - expected) < 1e-14, method
    textbook = integrated_gradients(net, x, t, b, method="riemann_trapezoid", n_steps=4,
                                    trapezoid="textbook")
    assert abs(textbook.delta[0]) < 1e-14


@pytest.mark.parametrize("call, error, match", [
    (lambda: integrated_gradients(_net(), _x(), _t(), method="simpson"), ValueError,
     "method must be one of"),
    (lambda: integrated_gradients(_net(), _x(), _t(), method="riemann_trapezoid", n_steps=1),
     ValueError, "n_steps must be an integer >= 2"),
    (lambda: integrated_gradients(_net(), _x(), _t(), n_steps=0), ValueError,
     "n_steps must be an integer >= 1"),
    (lambda: integrated_gradients(_net(), _x(), _t(), n_steps=2.5), TypeError,
     "n_steps must be an integer"),
    (lambda: integrated_gradients(_net(), _x(), _t(), trapezoid="exact"), ValueError,
     "trapezoid must be one of"),
    (lambda: integrated_gradients(_net(), _x(), _t(), np.zeros((1, 3))), ValueError,
     r"baseline must have the shape of x \(1, 2\)"),
    (lambda: integrated_gradients(_net(), _x(), _t(), np.array([[np.nan, 0.0]])), ValueError,
     "baseline must not contain infs or NaNs"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _net():
    return [Linear(np.array([[1.0, -1.0], [0.5, 0.5]])), Tanh(), Linear(np.array([[1.0, 2.0]]))]


def _x():
    return np.array([[0.3, -0.7]])


def _t():
    return np.array([0])


def test_planted_bug_in_the_gauss_legendre_rule_is_caught(monkeypatch):
    """The refimpl-only polynomial property fails when the rule uses one point too few."""
    rule = I.path_rule
    monkeypatch.setattr(I, "path_rule", lambda method, n, *a: rule(method, max(n - 1, 1), *a)
                        if method == "gausslegendre" else rule(method, n, *a))
    failed = failing_properties("integrated_gradients",
                                among={"exact on polynomial paths of matching degree"})
    assert failed == {"exact on polynomial paths of matching degree"}
