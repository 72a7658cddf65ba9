"""Channel correspondence: registered properties, bad input, documented edge cases, planted bugs."""

import numpy as np
import pytest

import refimpl.analysis.correspondence as co
import verify
from verify.registry import Case
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("analysis.correspondence"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


@pytest.fixture
def A():
    return np.random.default_rng(0).standard_normal((6, 3, 2, 2))


def test_correlation_at_extreme_scales(A):
    """Each channel is scaled by its peak before squaring: 1e200 and 1e-200 activations give
    the correlations of the unscaled ones."""
    rho = co.channel_correlation(A, A[:, ::-1])
    np.testing.assert_allclose(co.channel_correlation(1e200 * A, 1e-200 * A[:, ::-1]), rho, atol=1e-14)


def test_constant_channels(A):
    A = A.copy()
    A[:, 1] = 0.3
    with pytest.raises(ValueError, match=r"A has constant channels \[1\]"):
        co.channel_correlation(A, A)
    rho = co.channel_correlation(A, A, constant="zero")
    assert np.all(rho[1] == 0) and np.all(rho[:, 1] == 0)
    fit = co.channel_regression(A, A, constant="zero")
    assert fit.loss[1] == 0 and fit.n_used[1] == 0 and np.all(fit.coef[1] == 0)


def test_bipartite_matching_of_a_large_matrix_is_scipys():
    from scipy.optimize import linear_sum_assignment

    rho = np.random.default_rng(1).uniform(-1, 1, (60, 45))
    rows, cols = linear_sum_assignment(rho, maximize=True)
    expected = np.full(60, -1)
    expected[rows] = cols
    np.testing.assert_array_equal(co.bipartite_matching(rho), expected)


def test_ties_still_give_a_permutation():
    """Several optimal matchings (all of them, here): one of them, a permutation."""
    m = co.bipartite_matching(np.ones((5, 5)))
    assert sorted(m.tolist()) == list(range(5))
    np.testing.assert_array_equal(co.semi_matching(np.ones((2, 3))), [0, 0])


def test_lasso_that_does_not_converge_is_an_error(A):
    with pytest.raises(RuntimeError, match="did not converge in max_iter = 1"):
        co.channel_regression(A, A[:, :2] + A[:, 1:], l1=0.01, max_iter=1, tol=1e-300)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(A=np.ones(4)), ValueError, r"A must have shape \(N, C, \.\.\.\) with C >= 1"),
    (dict(B=np.ones((6, 2, 2, 2), dtype=np.float32)), TypeError, "share one dtype"),
    (dict(B=np.ones((5, 2, 2, 2))), ValueError, "must share N and the positions"),
    (dict(B=np.ones((6, 2, 3, 2))), ValueError, "must share N and the positions"),
    (dict(A=np.ones((1, 2)), B=np.ones((1, 2))), ValueError, "at least 2 samples"),
    (dict(A=np.full((6, 3), np.nan)), ValueError, "A must not contain infs or NaNs"),
    (dict(constant="ignore"), ValueError, "constant must be one of"),
])
def test_correlation_bad_input(A, kwargs, error, match):
    args = dict(A=A, B=np.random.default_rng(2).standard_normal((6, 2, 2, 2)))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        co.channel_correlation(args.pop("A"), args.pop("B"), **args)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(l1=0.0), ValueError, r"l1 must be > 0 \(or None for least squares\)"),
    (dict(l1=True), TypeError, "l1 must be a finite real number"),
    (dict(max_iter=0), ValueError, "max_iter must be an integer >= 1"),
    (dict(tol=-1.0), ValueError, "tol must be > 0"),
])
def test_regression_bad_input(A, kwargs, error, match):
    with pytest.raises(error, match=match):
        co.channel_regression(A, A, **kwargs)


@pytest.mark.parametrize("rho, error, match", [
    (np.ones(3), ValueError, r"rho must have shape \(C1, C2\)"),
    (np.ones((0, 3)), ValueError, r"rho must have shape \(C1, C2\) with C1, C2 >= 1"),
    (np.ones((2, 2), dtype=int), TypeError, "rho must have a real floating dtype"),
    (np.array([[1.0, np.inf]]), ValueError, "rho must not contain infs or NaNs"),
])
def test_matching_bad_input(rho, error, match):
    for matching in (co.semi_matching, co.bipartite_matching):
        with pytest.raises(error, match=match):
            matching(rho)


# -- planted bugs ------------------------------------------------------------------------


def test_dual_step_dropped_is_caught(monkeypatch):
    """Without the path's length in the dual update the reduced costs go wrong: on a directed
    case (the ci draws no longer reach it), the matching is no longer the optimal one."""
    original = co._augmenting_path

    def no_dual_step(xp, cost, u, v, row4col, start):
        sink, shortest, path, rows_seen, cols_seen, distance = original(xp, cost, u, v, row4col, start)
        return sink, shortest, path, rows_seen, cols_seen, 0.0 * distance

    case = Case({"rho": np.array([[-0.2, 0.8, -0.9], [0.6, -0.2, 0.7], [-1.0, -0.3, -0.8]])})
    tolerance = verify.get_op("bipartite_matching").tolerance["float64"]

    def error():
        return verify.replay(co.bipartite_matching, "bipartite_matching", "matches ground truth",
                             case)

    assert error() <= tolerance
    monkeypatch.setattr(co, "_augmenting_path", no_dual_step)
    assert error() > tolerance


def test_biased_least_squares_is_caught(monkeypatch):
    original = co._least_squares
    monkeypatch.setattr(co, "_least_squares", lambda xp, ZA, ZB: 1.01 * original(xp, ZA, ZB))
    assert {"matches ground truth", "a network regressed on itself loses nothing"} <= \
        failing_properties("channel_regression")
