"""Bayesian Gaussian mixture by CAVI: registered properties, private pieces against scipy,
results from scikit-learn's fit, bad input and planted bugs."""


import numpy as np
import pytest
import scipy.stats as stats

import array_api_strict as xps
from refimpl.vi import bgmm as vb
from verify.ops.vi.bgmm import sklearn_fit
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("vi.bgmm"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def mixture(seed=0, n=60, d=2, k=3):
    """Three separated Gaussian clusters and random starting responsibilities for ``k`` components."""
    gen = np.random.default_rng(seed)
    centres = 4.0 * gen.standard_normal((3, d))
    X = np.concatenate([gen.standard_normal((n // 3, d)) @ gen.uniform(0.5, 1.5, (d, d)) + c
                        for c in centres])
    resp = gen.uniform(size=(len(X), k))
    return X, resp / resp.sum(1, keepdims=True)


# -- private pieces against scipy -------------------------------------------------------------


def test_entropy_pieces_match_scipy():
    gen = np.random.default_rng(0)
    for d in (1, 2, 4):
        a = gen.standard_normal((d, d + 2))
        W = a @ a.T / (d + 2)
        nu = np.array([d - 0.5 + 3 * gen.uniform()])
        logdet = np.array([np.linalg.slogdet(W)[1]])
        e_log_det = vb._e_log_det(np, nu, logdet, d)
        ours = vb._wishart_entropy(vb._log_wishart_norm(np, nu, logdet, d, True), nu, e_log_det, d)
        assert ours[0] == pytest.approx(stats.wishart(df=nu[0], scale=W).entropy(), abs=1e-12)
    alpha = gen.uniform(0.1, 5.0, 4)
    assert vb._dirichlet_entropy(np, alpha) == pytest.approx(stats.dirichlet(alpha).entropy(), abs=1e-12)
    a, b = gen.uniform(0.1, 5.0, 3), gen.uniform(0.1, 5.0, 3)
    np.testing.assert_allclose(vb._beta_entropy(np, a, b), stats.beta(a, b).entropy(), atol=1e-12)


def test_expected_log_det_matches_monte_carlo():
    gen = np.random.default_rng(1)
    d, nu = 3, np.array([5.5])
    a = gen.standard_normal((d, d))
    W = a @ a.T + np.eye(d)
    logdets = np.linalg.slogdet(stats.wishart(df=nu[0], scale=W).rvs(20000, random_state=gen))[1]
    ours = vb._e_log_det(np, nu, np.array([np.linalg.slogdet(W)[1]]), d)[0]
    assert abs(ours - logdets.mean()) < 5 * logdets.std() / np.sqrt(len(logdets))


# -- relations between the fit's traces and bgmm_elbo -----------------------------------------


def test_elbo_trace_is_bgmm_elbo_at_the_iterates():
    X, resp = mixture(seed=2)
    for n in (2, 4):
        res = vb.bgmm_cavi(X, resp, max_iter=n, tol=0.0)
        # The last entry is the ELBO at (r_n, q_n); the final E-step then raises it.
        r_n = vb.bgmm_cavi(X, resp, max_iter=n - 1, tol=0.0).resp
        assert float(vb.bgmm_elbo(res, X, r_n)) == pytest.approx(float(res.elbo[-1]), rel=1e-13)
        assert float(vb.bgmm_elbo(res, X, res.resp)) >= float(res.elbo[-1])


def test_regulariser_breaks_the_constant_offset():
    """With reg_covar > 0 the M-step is not the exact optimum: the offset drifts (documented)."""
    X, resp = mixture(seed=2, d=3)
    res = vb.bgmm_cavi(X, resp, reg_covar=1e-2, max_iter=25, tol=0.0)
    assert np.ptp(res.elbo - res.lower_bounds) / np.max(np.abs(res.elbo)) > 1e-8


@pytest.mark.parametrize("covariance_type", vb.COVARIANCE_TYPES)
def test_result_from_sklearn_fit_predicts_like_sklearn(covariance_type):
    """A BGMMResult assembled from scikit-learn's attributes: the public fields are the whole fit."""
    X, resp = mixture(seed=5)
    model = sklearn_fit(X, resp, covariance_type=covariance_type, max_iter=5, tol=0.0)
    ours = vb.bgmm_cavi(X, resp, covariance_type=covariance_type, max_iter=5, tol=0.0)
    fields = {name: np.asarray(getattr(model, f"{name}_")) for name in (
        "weights", "means", "covariances", "precisions", "precisions_cholesky",
        "degrees_of_freedom", "mean_precision", "weight_concentration")}
    result = vb.BGMMResult(**fields, elbo=None, lower_bounds=np.asarray(model.lower_bounds_),
                           n_iter=model.n_iter_, converged=model.converged_,
                           resp=model.predict_proba(X), prior=ours.prior)
    new = X[::5] + 0.3
    np.testing.assert_allclose(vb.bgmm_predict_proba(result, new), model.predict_proba(new),
                               rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(vb.bgmm_predict(result, new), model.predict(new))


def test_result_shapes():
    X, resp = mixture(d=3, k=4)
    for ct, shape in (("full", (4, 3, 3)), ("tied", (3, 3)), ("diag", (4, 3)), ("spherical", (4,))):
        res = vb.bgmm_cavi(X, resp, covariance_type=ct, max_iter=3)
        assert res.covariances.shape == res.precisions.shape == res.precisions_cholesky.shape == shape
        assert res.elbo.shape == res.lower_bounds.shape == (res.n_iter,)
        assert np.shape(res.degrees_of_freedom) == (() if ct == "tied" else (4,))
    assert res.weight_concentration.shape == (2, 4) and res.prior.weight_concentration == 0.25


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("change, error, match", [
    (dict(X=np.ones((2, 2)), resp_init=np.full((2, 3), 1 / 3)), ValueError, "fewer than the 3 components"),
    (dict(X=np.array([[np.nan, 0.0]] + [[1.0, 2.0]] * 9)), ValueError, "X must not contain infs or NaNs"),
    (dict(resp_init=np.full((10, 2), 0.4)), ValueError, "must sum to one"),
    (dict(resp_init=np.tile([1.5, -0.5], (10, 1))), ValueError, "must be non-negative"),
    (dict(weight_concentration_prior=0.0), ValueError, "weight_concentration_prior must be positive"),
    (dict(mean_precision_prior=-1.0), ValueError, "mean_precision_prior must be positive"),
    (dict(degrees_of_freedom_prior=1.0), ValueError, "degrees_of_freedom_prior must be > D - 1"),
    (dict(covariance_prior=np.array([[1.0, 2.0], [2.0, 1.0]])), ValueError, "positive definite"),
    (dict(covariance_prior=np.array([[1.0, 0.1], [0.0, 1.0]])), ValueError, "symmetric"),
    (dict(covariance_type="diag", covariance_prior=np.array([1.0, 0.0])), ValueError, "positive definite"),
    (dict(covariance_type="spherical", covariance_prior=-2.0), ValueError, "must be positive"),
    (dict(covariance_prior=np.eye(3)), ValueError, r"covariance_prior must have shape \(2, 2\)"),
    (dict(mean_prior=np.zeros(3)), ValueError, r"mean_prior must have shape \(2,\)"),
    (dict(covariance_type="spherical_tied"), ValueError, "covariance_type must be one of"),
    (dict(weight_concentration_prior_type="pitman_yor"), ValueError, "must be one of"),
    (dict(reg_covar=-1.0), ValueError, "reg_covar must be non-negative"),
    (dict(max_iter=0), ValueError, "max_iter must be a positive integer"),
    (dict(tol=-1.0), ValueError, "tol must be a non-negative number"),
    (dict(resp_init=np.full((10, 2), 0.5, dtype=np.float32)), TypeError, "share one dtype"),
    (dict(X=np.ones(10)), ValueError, r"X must have shape \(N, D\)"),
    (dict(resp_init=np.full((9, 2), 0.5)), ValueError, r"resp_init \(N, K\)"),
    (dict(resp_init=xps.full((10, 2), 0.5, dtype=xps.float64)), TypeError,
     "X and resp_init come from different array libraries"),
    (dict(reg_covar=float("inf")), ValueError, "reg_covar must be non-negative and finite"),
    (dict(X=np.random.default_rng(0).standard_normal((10, 2)) * 1e300), ValueError,
     r"the default covariance_prior \(the sample covariance of X\) overflows"),
])
def test_bad_input(change, error, match):
    args = dict(X=np.random.default_rng(0).standard_normal((10, 2)), resp_init=np.full((10, 2), 0.5))
    args.update(change)
    with pytest.raises(error, match=match):
        vb.bgmm_cavi(args.pop("X"), args.pop("resp_init"), **args)


def test_predict_and_elbo_bad_input():
    X, resp = mixture()
    res = vb.bgmm_cavi(X, resp, max_iter=2)
    with pytest.raises(ValueError, match=r"X must have shape \(M, 2\) for this fit"):
        vb.bgmm_predict_proba(res, np.ones((3, 3)))
    with pytest.raises(TypeError, match="share one dtype"):
        vb.bgmm_predict(res, np.ones((3, 2), dtype=np.float32))
    with pytest.raises(TypeError, match="result must be a BGMMResult"):
        vb.bgmm_predict_proba({"means": res.means}, X)
    with pytest.raises(ValueError, match="every row of resp must sum to one"):
        vb.bgmm_elbo(res, X, np.full((len(X), 3), 0.5))
    with pytest.raises(ValueError, match=r"resp must have shape \(N, 3\) for this fit"):
        vb.bgmm_elbo(res, X, np.full((len(X), 2), 0.5))


# -- planted bugs: the records' checks catch them ---------------------------------------------


def test_wrong_stick_breaking_tail_is_caught(monkeypatch):
    """gamma_2 with sum_{j >= k} instead of j > k: scikit-learn disagrees."""
    original = vb._m_step

    def inclusive_tail(xp, feats, stats_, prior, m0c, reg_covar, d):
        q = original(xp, feats, stats_, prior, m0c, reg_covar, d)
        if q.weight_type == "dirichlet_process":
            tail = xp.flip(xp.cumulative_sum(xp.flip(stats_.nk, axis=0)), axis=0)
            q.concentration = xp.stack([q.concentration[0, :], prior.weight_concentration + tail])
            q.e_log_pi = vb._e_log_weights(xp, q.weight_type, q.concentration)
        return q

    monkeypatch.setattr(vb, "_m_step", inclusive_tail)
    assert failing_properties("bgmm_cavi", among={"matches ground truth"})


def _plus(log_rho, term):
    """``log rho`` with ``term`` (K,) added to every row's constant."""
    return log_rho._replace(const=log_rho.const + term[:, None])


def test_e_step_bugs_are_caught(monkeypatch):
    """Dropping -D/(2 beta_k), or E[log pi], from log rho: the independent E-step disagrees."""
    original = vb._log_rho
    among = {"final responsibilities are an E-step"}
    monkeypatch.setattr(vb, "_log_rho", lambda xp, q, feats, mc: _plus(
        original(xp, q, feats, mc), 0.5 * feats.d / q.mean_precision))
    assert failing_properties("bgmm_cavi", among=among) == among
    assert "matches ground truth" in failing_properties("bgmm_predict_proba")
    monkeypatch.setattr(vb, "_log_rho", lambda xp, q, feats, mc: _plus(
        original(xp, q, feats, mc), -q.e_log_pi))
    assert failing_properties("bgmm_cavi", among=among) == among
    assert "maximal at the final E-step" in failing_properties(
        "bgmm_elbo", among={"maximal at the final E-step"})


def test_non_optimal_m_step_is_caught(monkeypatch):
    """nu_k off by one half: the M-step is not the optimum, so the offset drifts."""
    original = vb._m_step

    def shifted_dof(xp, feats, stats_, prior, m0c, reg_covar, d):
        q = original(xp, feats, stats_, prior, m0c, reg_covar, d)
        q.dof = q.dof + 0.5
        q.e_log_det = vb._e_log_det(xp, q.dof, q.logdet_w, d)
        return q

    monkeypatch.setattr(vb, "_m_step", shifted_dof)
    among = {"full ELBO minus scikit-learn's bound is constant"}
    assert failing_properties("bgmm_cavi", among=among) == among


def test_wrong_wishart_normaliser_is_caught(monkeypatch):
    """The prior's log pi term with the wrong factor: the log evidence check fails."""
    original = vb._log_wishart_norm

    def wrong_pi(xp, dof, logdet_w, d, with_pi):
        out = original(xp, dof, logdet_w, d, with_pi)
        return out - d * (d - 1) / 4.0 * vb._LOG_PI if with_pi else out

    monkeypatch.setattr(vb, "_log_wishart_norm", wrong_pi)
    among = {"one component: ELBO is the log evidence"}
    assert failing_properties("bgmm_cavi", among=among) == among
    assert "matches ground truth" in failing_properties("bgmm_elbo", among={"matches ground truth"})


def test_wrong_scatter_is_caught(monkeypatch):
    """A scatter 5% too large: q is no longer the conjugate posterior."""
    original = vb._statistics

    def inflated(xp, feats, resp, covariance_type):
        s = original(xp, feats, resp, covariance_type)
        return vb._Stats(s.counts, s.nk, s.xbar, s.scatter * 1.05, s.scale)

    monkeypatch.setattr(vb, "_statistics", inflated)
    among = {"one component: ELBO is the log evidence", "one component: q is the Normal-Wishart posterior"}
    assert failing_properties("bgmm_cavi", among=among) == among
