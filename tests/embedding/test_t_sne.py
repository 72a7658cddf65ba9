"""t-SNE: registered properties, scikit-learn's full schedule, bad input, documented edge cases."""

import array_api_strict as xps
import numpy as np
import pytest

import refimpl.embedding.t_sne as ts
from verify.ops.embedding.t_sne import (
    _sklearn_underflows,
    sklearn_affinities,
    sklearn_kl,
    sklearn_tsne,
)
from verify.strategies import clustered_points
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("embedding.t_sne"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


@pytest.fixture
def X():
    return clustered_points(np.random.default_rng(0), 20, 4, 2)


@pytest.fixture
def Y():
    return np.random.default_rng(1).standard_normal((20, 2))


# -- scikit-learn's own schedule ---------------------------------------------------------


def test_default_schedule_follows_sklearn_for_its_first_steps(X, monkeypatch):
    """TSNE(method="exact") as shipped (lr "auto" = 50 here): the iterates agree to 1e-12 for
    the first 10 steps; later the optimiser amplifies rounding (docs/blocks/embedding.rst)."""
    import sklearn.manifold._t_sne as sk

    Y0 = 1e-4 * np.random.default_rng(2).standard_normal((20, 2))
    iterates, kl_divergence = [], sk._kl_divergence

    def recording(params, *args, **kwargs):
        iterates.append(params.reshape(20, 2).copy())
        return kl_divergence(params, *args, **kwargs)

    monkeypatch.setattr(sk, "_kl_divergence", recording)
    sk.TSNE(method="exact", init=Y0, perplexity=5.0, max_iter=250).fit(X)
    for k in (1, 5, 10):
        # The first k steps of the default schedule: no check has happened yet.
        ours = ts.tsne(X, Y0, perplexity=5.0, exaggeration_iter=k, max_iter=k).embedding
        np.testing.assert_allclose(ours, iterates[k], rtol=0, atol=1e-12 * np.abs(iterates[k]).max())


@pytest.mark.parametrize("early_exaggeration, expected", [(1.0, 100.0), (12.0, 50.0)])
def test_learning_rate_auto_is_sklearns(early_exaggeration, expected):
    X = clustered_points(np.random.default_rng(3), 400, 3, 2)
    Y0 = 1e-4 * np.random.default_rng(4).standard_normal((400, 2))
    model = sklearn_tsne(X, Y0, exaggeration_iter=1, n_iter_check=1, perplexity=5.0, max_iter=2,
                         early_exaggeration=early_exaggeration)
    fit = ts.tsne(X, Y0, perplexity=5.0, exaggeration_iter=1, max_iter=2, n_iter_check=1,
                  early_exaggeration=early_exaggeration)
    assert model.learning_rate_ == expected == float(fit.learning_rate)
    np.testing.assert_allclose(fit.embedding, model.embedding_, rtol=1e-12)


def test_sklearn_gradient_for_dof_above_one_is_not_the_kl_gradient(X):
    """scikit-learn weighs pairs by w = (1 + d/nu)^{-(nu+1)/2}; the KL's gradient by (1 + d/nu)^{-1}."""
    P, _ = ts.tsne_affinities(X, perplexity=5.0)
    Y = np.random.default_rng(5).standard_normal((20, 3))
    ours = ts.tsne_kl_vjp(P, Y, np.ones(()), dof=2.0).Y
    h, E = 1e-6, np.zeros_like(Y)
    E[3, 1] = h
    central = (ts.tsne_kl(P, Y + E, dof=2.0) - ts.tsne_kl(P, Y - E, dof=2.0)) / (2 * h)
    assert abs(ours[3, 1] - central) < 1e-8 * np.abs(ours).max()
    _, theirs = sklearn_kl(P, Y, 2)
    assert np.linalg.norm(theirs - ours) > 0.1 * np.linalg.norm(ours)


def test_kl_gradient_with_an_asymmetric_unnormalised_p(Y):
    """P need not be symmetric nor sum to 1: the gradient uses (P + P^T)/2 and S = sum P."""
    P = np.random.default_rng(6).uniform(size=(20, 20))
    grad = ts.tsne_kl_vjp(P, Y, np.full((), 2.0)).Y
    T = np.random.default_rng(7).standard_normal(Y.shape)
    h = 1e-6
    central = (ts.tsne_kl(P, Y + h * T) - ts.tsne_kl(P, Y - h * T)) / (2 * h)
    assert abs(np.sum(grad * T) - 2.0 * central) < 1e-7 * np.linalg.norm(grad) * np.linalg.norm(T)


# -- documented edge cases ---------------------------------------------------------------


def test_duplicate_points_are_nearest_neighbours(X):
    X = np.concatenate([X, X[:3]])
    P, C = ts.tsne_affinities(X, perplexity=5.0)
    H = -np.sum(C * np.log(np.where(C > 0, C, 1.0)), axis=1)
    np.testing.assert_allclose(H, np.log(5.0), atol=1.1e-5)
    assert all(C[20 + i, i] == C[20 + i].max() for i in range(3))
    expected, _ = sklearn_affinities(X, 5.0)
    np.testing.assert_allclose(P, expected, rtol=1e-9, atol=1e-15)


def test_a_row_beyond_sklearns_exponent_range_reaches_the_perplexity():
    """Two close nearest neighbours far out: perplexity 1.6 needs beta d ~ 2300, where
    scikit-learn's unshifted e^{-beta d} underflow (its last row: two subnormals, 2 : 1) and it
    misses the entropy (the record's cases keep away); refimpl subtracts the nearest distance."""
    X = np.array([[0.0], [3.0], [3.001], [-10.0]])
    assert _sklearn_underflows(X, 1.6)
    entropy = [-np.sum(C[0] * np.log(np.where(C[0] > 0, C[0], 1.0)))
               for C in (sklearn_affinities(X, 1.6)[1], ts.tsne_affinities(X, perplexity=1.6)[1])]
    assert abs(entropy[0] - np.log(1.6)) > 0.1
    assert abs(entropy[1] - np.log(1.6)) <= 1.1e-5


def test_all_equal_rows_give_uniform_conditionals():
    """Every entropy is log(N - 1) whatever beta: the search ends, as scikit-learn's, on its
    last iterate, the uniform distribution."""
    P, C = ts.tsne_affinities(np.ones((6, 2)), perplexity=3.0)
    off = 1 - np.eye(6)
    np.testing.assert_allclose(C, off / 5)
    np.testing.assert_allclose(P, off / 30)


def test_coincident_initial_embedding_stays(X):
    """An all-equal Y0 has a zero gradient: each phase stops at its first check."""
    Y0 = np.zeros((20, 2))
    fit = ts.tsne(X, Y0, perplexity=5.0)
    np.testing.assert_array_equal(fit.embedding, Y0)
    assert int(fit.n_iter) == 100


def test_coincident_rows_of_y0_separate_when_their_data_differ(X):
    Y0 = 1e-4 * np.random.default_rng(8).standard_normal((20, 2))
    Y0[1] = Y0[0]
    Y = ts.tsne(X, Y0, perplexity=5.0, max_iter=300).embedding
    assert np.linalg.norm(Y[1] - Y[0]) > 1e-3


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_overflow_is_an_error_not_nan():
    with pytest.raises(ValueError, match="overflow float32"):
        ts.tsne_affinities(np.array([[0.0], [1e20], [3e20], [-2e20]]), perplexity=2.0)
    P, _ = ts.tsne_affinities(np.array([[0.0], [1e200], [3e200], [-2e200]]), perplexity=2.0,
                              method="plain")
    np.testing.assert_allclose(P.sum(), 1.0)
    with pytest.raises(ValueError, match="Y is too spread out"):
        ts.student_t_affinities(np.array([[0.0], [1e200], [-1e200]]))
    with pytest.raises(ValueError, match="underflows to 0"):
        ts.student_t_affinities(np.array([[0.0], [1e30], [-1e30]]), dof=100.0)


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(X=np.ones(5)), ValueError, r"X must have shape \(N, D\)"),
    (dict(X=np.ones((5, 2), dtype=int)), TypeError, "X must have a real floating dtype"),
    (dict(X=np.full((5, 2), np.nan)), ValueError, "X must not contain infs or NaNs"),
    (dict(perplexity=4.5), ValueError, r"perplexity must be in \(1, 4\] \(a row's entropy is at most log\(N - 1\)\)"),
    (dict(perplexity=1.0), ValueError, "perplexity must be in"),
    (dict(perplexity="30"), TypeError, "perplexity must be a finite real number"),
    (dict(method="exact"), ValueError, "method must be one of"),
    (dict(tol=0.0), ValueError, "tol must be > 0"),
    (dict(max_steps=0), ValueError, "max_steps must be an integer >= 1"),
    (dict(max_steps=2.0), TypeError, "max_steps must be an integer"),
    (dict(floor=-1.0), ValueError, "floor must be >= 0"),
])
def test_affinities_bad_input(kwargs, error, match):
    args = dict(X=np.random.default_rng(0).standard_normal((5, 2)), perplexity=2.0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ts.tsne_affinities(args.pop("X"), **args)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(P=np.ones((4, 4))), ValueError, r"P must have shape \(N, N\)"),
    (dict(P=-np.ones((5, 5))), ValueError, "P must be non-negative"),
    (dict(P=np.ones((5, 5), dtype=np.float32)), TypeError, "share one dtype"),
    (dict(Y=np.ones((5,))), ValueError, r"Y must have shape \(N, d\)"),
    (dict(dof=0.0), ValueError, "dof must be > 0"),
    (dict(floor=np.inf), TypeError, "floor must be a finite real number"),
])
def test_kl_bad_input(kwargs, error, match):
    args = dict(P=np.ones((5, 5)) / 20, Y=np.random.default_rng(0).standard_normal((5, 2)))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ts.tsne_kl(args.pop("P"), args.pop("Y"), **args)


def test_vjp_bad_cotangents(Y):
    with pytest.raises(ValueError, match=r"g must have the output's shape \(\)"):
        ts.tsne_kl_vjp(np.ones((20, 20)) / 380, Y, np.ones(1))
    with pytest.raises(ValueError, match="G must have the output's shape"):
        ts.student_t_affinities_vjp(Y, np.ones((20, 19)))
    with pytest.raises(ValueError, match="g must not contain infs or NaNs"):
        ts.tsne_kl_vjp(np.ones((20, 20)) / 380, Y, np.array(np.nan))
    with pytest.raises(TypeError, match="and g come from different array libraries"):
        ts.tsne_kl_vjp(np.ones((20, 20)) / 380, Y, xps.asarray(1.0, dtype=xps.float64))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(Y0=np.ones((19, 2))), ValueError, "Y0 must have one row per row of X"),
    (dict(Y0=np.ones((20, 2), dtype=np.float32)), TypeError, "share one dtype"),
    (dict(max_iter=100), ValueError, "max_iter must be an integer >= 250"),
    (dict(learning_rate=0.0), ValueError, "learning_rate must be > 0 \\(or 'auto'\\)"),
    (dict(early_exaggeration=0.5), ValueError, "early_exaggeration must be >= 1"),
    (dict(momentum=(0.5,)), ValueError, "momentum must be a pair"),
    (dict(momentum=(0.5, 1.5)), ValueError, r"momentum must be in \[0, 1\]"),
    (dict(gradient="exact"), ValueError, "gradient must be one of"),
    (dict(n_iter_check=0), ValueError, "n_iter_check must be an integer >= 1"),
    (dict(n_iter_without_progress=1.5), TypeError, "n_iter_without_progress must be an integer"),
    (dict(affinity_method="fast"), ValueError, "method must be one of"),
])
def test_fit_bad_input(X, kwargs, error, match):
    args = dict(Y0=np.zeros((20, 2)), perplexity=5.0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ts.tsne(X, args.pop("Y0"), **args)


# -- planted bugs ------------------------------------------------------------------------


def test_search_in_the_wrong_direction_is_caught(monkeypatch):
    original = ts._conditional
    monkeypatch.setattr(ts, "_conditional",
                        lambda xp, D, target, tol, steps: original(xp, D, target + 0.1, tol, steps))
    assert {"matches ground truth", "each conditional reaches the perplexity"} <= \
        failing_properties("tsne_affinities")


def test_wrong_gradient_factor_is_caught(monkeypatch):
    original = ts._kl_pair_cotangent
    monkeypatch.setattr(ts, "_kl_pair_cotangent",
                        lambda P, kern, dof, scale: 1.01 * original(P, kern, dof, scale))
    failed = failing_properties("tsne_kl")
    assert {"vjp: dot-product test", "vjp: autograd", "gradient equals scikit-learn's (dof = 1)"} <= failed
    assert "matches ground truth" in failing_properties("tsne")
