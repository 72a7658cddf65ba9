"""Bayesian Gaussian mixture by CAVI: scikit-learn parity, ELBO properties, bad input, teeth.

The checks are functions returning an error measure, so that the teeth tests at
the end can plant a bug and show that the same check then fails.
"""

import warnings

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as stats

import array_api_strict as xps
from refimpl import vi_bgmm as vb
from refimpl.backend import available_backends, from_numpy, to_numpy

BACKENDS = available_backends(devices=True)
TYPES = vb.COVARIANCE_TYPES
WEIGHTS = vb.WEIGHT_PRIOR_TYPES


def mixture(seed=0, n=150, d=2, k=3):
    """Three separated Gaussian clusters and random starting responsibilities for ``k`` components."""
    gen = np.random.default_rng(seed)
    centres = 4.0 * gen.standard_normal((3, d))
    X = np.concatenate([gen.standard_normal((n // 3, d)) @ gen.uniform(0.5, 1.5, (d, d)) + c
                        for c in centres])
    resp = gen.uniform(size=(len(X), k))
    return X, resp / resp.sum(1, keepdims=True)


def _fit(X, resp, backend="numpy", dtype="float64", **kwargs):
    return vb.bgmm_cavi(from_numpy(X, backend, dtype), from_numpy(resp, backend, dtype), **kwargs)


# -- checks ---------------------------------------------------------------------------------


def monotonicity_error(res):
    """Largest decrease of the full ELBO between iterations, relative to |ELBO|."""
    trace = to_numpy(res.elbo).astype(np.float64)
    return float(max(0.0, -np.min(np.diff(trace))) / np.max(np.abs(trace)))


def constant_offset_error(res):
    """Spread of (full ELBO - scikit-learn bound) over the iterations, relative to |ELBO|."""
    diff = to_numpy(res.elbo).astype(np.float64) - to_numpy(res.lower_bounds).astype(np.float64)
    return float(np.ptp(diff) / np.max(np.abs(to_numpy(res.elbo))))


def e_step_optimality_error(X, resp0, **kwargs):
    """Largest ELBO gain from perturbing the final responsibilities, relative to |ELBO|.

    For fixed q the full ELBO is maximised over r by the E-step's softmax, so
    ``r_t ∝ r exp(t u)`` (random ``u``, both signs of ``t``, on the simplex)
    can only lower it: a first-order gain in either direction means a wrong E-step.
    """
    res = vb.bgmm_cavi(X, resp0, max_iter=20, tol=0.0, **kwargs)
    best = float(vb.bgmm_elbo(res, X, res.resp))
    gen = np.random.default_rng(0)
    gains = []
    for _ in range(3):
        u = gen.standard_normal(resp0.shape)
        for t in (1e-3, -1e-3):
            r = res.resp * np.exp(t * u)
            gains.append(float(vb.bgmm_elbo(res, X, r / r.sum(1, keepdims=True))) - best)
    return max(0.0, max(gains)) / abs(best)


def e_step_error(X, resp0, **kwargs):
    """Final responsibilities against an E-step written here from the public parameters (scipy)."""
    res = vb.bgmm_cavi(X, resp0, max_iter=10, tol=0.0, **kwargs)
    n, d = X.shape
    K = resp0.shape[1]
    tied = res.prior.covariance_type == "tied"
    nu, beta = np.broadcast_to(res.degrees_of_freedom, (K,)), res.mean_precision
    conc = res.weight_concentration
    if conc.ndim == 1:
        e_log_pi = sp.digamma(conc) - sp.digamma(conc.sum())
    else:
        dsum = sp.digamma(conc[0] + conc[1])
        rest = sp.digamma(conc[1]) - dsum
        e_log_pi = sp.digamma(conc[0]) - dsum + np.concatenate([[0.0], np.cumsum(rest)[:-1]])
    log_rho = np.empty((n, len(nu)))
    for k in range(len(nu)):
        prec = res.precisions if tied else res.precisions[k]  # E[Lambda_k] = nu_k W_k
        prec = prec if prec.ndim == 2 else np.diag(np.broadcast_to(prec, (d,)))
        e_log_det = (sum(sp.digamma((nu[k] - i) / 2) for i in range(d)) + d * np.log(2)
                     + np.linalg.slogdet(prec / nu[k])[1])
        diff = X - res.means[k]
        maha = np.einsum("ni,ij,nj->n", diff, prec, diff)
        log_rho[:, k] = (e_log_pi[k] + e_log_det / 2 - d / 2 * np.log(2 * np.pi) - d / (2 * beta[k])
                         - maha / 2)
    expected = np.exp(log_rho - sp.logsumexp(log_rho, axis=1, keepdims=True))
    return float(np.max(np.abs(res.resp - expected)))


def normal_wishart_log_evidence(X, m0, beta0, nu0, A0):
    """log p(X) of the one-component model as a chain of posterior predictive t densities.

    ``p(x_n | x_<n)`` is multivariate t with ``nu_n - D + 1`` degrees of freedom,
    location ``m_n`` and shape ``(beta_n + 1) / (beta_n (nu_n - D + 1)) W_n^{-1}``
    (Murphy 2007, eq. 258): scipy evaluates it, nothing from refimpl is used.
    """
    d = X.shape[1]
    m, beta, nu, A, total = m0.copy(), beta0, nu0, A0.copy(), 0.0
    for x in X:
        df = nu - d + 1
        total += stats.multivariate_t(m, (beta + 1) / (beta * df) * A, df=df).logpdf(x)
        A = A + beta / (beta + 1) * np.outer(x - m, x - m)
        m, beta, nu = (beta * m + x) / (beta + 1), beta + 1, nu + 1
    return total


def evidence_error(X):
    """K = 1 (Dirichlet weights): q is the exact posterior, so the full ELBO is log p(X)."""
    res = vb.bgmm_cavi(X, np.ones((len(X), 1)), reg_covar=0.0, max_iter=2, tol=0.0,
                       weight_concentration_prior_type="dirichlet_distribution")
    expected = normal_wishart_log_evidence(X, X.mean(0), 1.0, float(X.shape[1]), np.cov(X.T))
    return float(np.max(np.abs(res.elbo - expected)) / abs(expected))


def entropy_errors(gen):
    """The Wishart, Dirichlet and Beta entropy pieces against scipy.stats."""
    errors = []
    for d in (1, 2, 4):
        a = gen.standard_normal((d, d + 2))
        W = a @ a.T / (d + 2)
        nu = np.array([d - 0.5 + 3 * gen.uniform()])
        logdet = np.array([np.linalg.slogdet(W)[1]])
        e_log_det = vb._e_log_det(np, nu, logdet, d)
        log_norm = vb._log_wishart_norm(np, nu, logdet, d, True)
        ours = vb._wishart_entropy(log_norm, nu, e_log_det, d)[0]
        errors.append(abs(ours - stats.wishart(df=nu[0], scale=W).entropy()))
    alpha = gen.uniform(0.1, 5.0, 4)
    errors.append(abs(vb._dirichlet_entropy(np, alpha) - stats.dirichlet(alpha).entropy()))
    a, b = gen.uniform(0.1, 5.0, 3), gen.uniform(0.1, 5.0, 3)
    errors.append(np.max(np.abs(vb._beta_entropy(np, a, b) - stats.beta(a, b).entropy())))
    return float(max(errors))


def sklearn_fit(X, resp, **kwargs):
    """scikit-learn started from ``resp`` (its k-means initialisation replaced)."""
    mixture_module = pytest.importorskip("sklearn.mixture")

    class FromResp(mixture_module.BayesianGaussianMixture):
        def _initialize_parameters(self, X, random_state, xp=None):
            self._initialize(X, resp)

    model = FromResp(n_components=resp.shape[1], **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning when max_iter is reached
        model.fit(X)
    return model


def sklearn_parity_error(X, resp, **kwargs):
    """Largest relative difference to scikit-learn: traces, parameters, predictions."""
    model = sklearn_fit(X, resp, **kwargs)
    res = vb.bgmm_cavi(X, resp, **kwargs)
    assert res.n_iter == model.n_iter_ and res.converged == model.converged_
    # ravel: for tied, scikit-learn's bounds are 1-element arrays
    pairs = [(res.lower_bounds, np.ravel(model.lower_bounds_)), (res.weights, model.weights_),
             (res.means, model.means_), (res.covariances, model.covariances_),
             (res.precisions, model.precisions_),
             (res.precisions_cholesky, model.precisions_cholesky_),
             (res.degrees_of_freedom, model.degrees_of_freedom_),
             (res.mean_precision, model.mean_precision_),
             (res.weight_concentration, np.array(model.weight_concentration_)),
             (vb.predict_proba(res, X[::7]), model.predict_proba(X[::7]))]
    for a, b in pairs:
        assert np.shape(a) == np.shape(b)
    errors = [np.max(np.abs(np.asarray(a) - b)) / max(1.0, np.max(np.abs(b))) for a, b in pairs]
    agree = np.mean(to_numpy(vb.predict(res, X)) == model.predict(X))
    return float(max(errors + [1.0 - agree]))


# -- properties ------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("weight_type", WEIGHTS)
@pytest.mark.parametrize("reg_covar", [1e-6, 0.0])
def test_matches_sklearn(covariance_type, weight_type, reg_covar):
    X, resp = mixture(d=3, k=4)
    err = sklearn_parity_error(X, resp, covariance_type=covariance_type, reg_covar=reg_covar,
                               weight_concentration_prior_type=weight_type, max_iter=40, tol=1e-6)
    assert err < 1e-10


def test_matches_sklearn_with_explicit_priors():
    X, resp = mixture(seed=3, d=2, k=3)
    priors = dict(weight_concentration_prior=2.5, mean_precision_prior=0.3,
                  mean_prior=np.array([1.0, -1.0]), degrees_of_freedom_prior=4.5,
                  covariance_prior=np.array([[2.0, 0.3], [0.3, 1.0]]))
    assert sklearn_parity_error(X, resp, max_iter=30, **priors) < 1e-10


def test_converges_like_sklearn_with_default_tolerance():
    X, resp = mixture(seed=5, d=2, k=3)
    assert sklearn_parity_error(X, resp, covariance_type="diag") < 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("weight_type", WEIGHTS)
def test_elbo_never_decreases(backend, dtype, covariance_type, weight_type):
    # reg_covar = 0: every update is the exact coordinate optimum of the full ELBO.
    X, resp = mixture(seed=1, d=2, k=4)
    res = _fit(X, resp, backend, dtype, covariance_type=covariance_type, reg_covar=0.0,
               weight_concentration_prior_type=weight_type, max_iter=30, tol=0.0)
    rounding = {"float64": 2.0**-52, "float32": 2.0**-23}[dtype] * 100
    assert monotonicity_error(res) <= rounding


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("weight_type", WEIGHTS)
def test_full_elbo_minus_sklearn_bound_is_constant(covariance_type, weight_type):
    X, resp = mixture(seed=2, d=3, k=3)
    res = _fit(X, resp, covariance_type=covariance_type, reg_covar=0.0,
               weight_concentration_prior_type=weight_type, max_iter=25, tol=0.0)
    assert constant_offset_error(res) < 1e-13


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("weight_type", WEIGHTS)
def test_final_e_step_is_exact_and_optimal(covariance_type, weight_type):
    """The final responsibilities equal an independent E-step and maximise the ELBO in r."""
    kwargs = dict(covariance_type=covariance_type, weight_concentration_prior_type=weight_type)
    assert e_step_error(*mixture(seed=3, d=3, k=4), **kwargs) < 1e-12
    assert e_step_optimality_error(*mixture(seed=1, d=2, k=4), **kwargs) < 1e-14


def test_elbo_trace_is_bgmm_elbo_at_the_iterates():
    X, resp = mixture(seed=2, d=2, k=3)
    for n in (1, 4):
        res = vb.bgmm_cavi(X, resp, max_iter=n, tol=0.0)
        # The last trace entry is the ELBO at (r_n, q_n); the final E-step then raises it.
        r_n = vb.bgmm_cavi(X, resp, max_iter=n - 1, tol=0.0).resp if n > 1 else None
        if r_n is not None:
            assert float(vb.bgmm_elbo(res, X, r_n)) == pytest.approx(float(res.elbo[-1]), rel=1e-13)
        assert float(vb.bgmm_elbo(res, X, res.resp)) >= float(res.elbo[-1])


def test_regulariser_breaks_the_constant_offset():
    """With reg_covar > 0 the M-step is not the exact optimum: the offset drifts (documented)."""
    X, resp = mixture(seed=2, d=3, k=3)
    assert constant_offset_error(_fit(X, resp, reg_covar=1e-2, max_iter=25, tol=0.0)) > 1e-8


@pytest.mark.parametrize("n, d", [(40, 3), (200, 1), (60, 5)])
def test_one_component_elbo_is_the_log_evidence(n, d):
    X = np.random.default_rng(n).standard_normal((n, d)) @ np.triu(np.ones((d, d))) + 2.0
    assert evidence_error(X) < 1e-12


def test_one_component_posterior_matches_the_conjugate_update():
    """Posterior parameters against scipy's wishart / t: E[Lambda] and the predictive density."""
    X, _ = mixture(seed=4, n=60, d=2)
    res = vb.bgmm_cavi(X, np.ones((len(X), 1)), reg_covar=0.0, max_iter=1,
                       weight_concentration_prior_type="dirichlet_distribution")
    n, d = X.shape
    xbar, A0 = X.mean(0), np.cov(X.T)
    A = A0 + (X - xbar).T @ (X - xbar)  # m0 = xbar: no shrinkage term
    W = np.linalg.inv(A)
    np.testing.assert_allclose(res.precisions[0], stats.wishart(df=d + n, scale=W).mean(), rtol=1e-12)
    np.testing.assert_allclose(res.means[0], xbar, rtol=1e-12)
    np.testing.assert_allclose(res.mean_precision, [1.0 + n], rtol=1e-14)


def test_entropy_pieces_match_scipy():
    assert entropy_errors(np.random.default_rng(0)) < 1e-12


def test_expected_log_det_matches_monte_carlo():
    gen = np.random.default_rng(1)
    d, nu = 3, np.array([5.5])
    a = gen.standard_normal((d, d))
    W = a @ a.T + np.eye(d)
    draws = stats.wishart(df=nu[0], scale=W).rvs(20000, random_state=gen)
    logdets = np.linalg.slogdet(draws)[1]
    ours = vb._e_log_det(np, nu, np.array([np.linalg.slogdet(W)[1]]), d)[0]
    assert abs(ours - logdets.mean()) < 5 * logdets.std() / np.sqrt(len(logdets))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("covariance_type", TYPES)
def test_backends_agree_with_numpy_float64(backend, dtype, covariance_type):
    X, resp = mixture(seed=6, d=2, k=3)
    kwargs = dict(covariance_type=covariance_type, max_iter=8, tol=0.0)
    ref = _fit(X, resp, **kwargs)
    res = _fit(X, resp, backend, dtype, **kwargs)
    tol = {"float64": 1e-11, "float32": 2e-3}[dtype]
    for name in ("elbo", "lower_bounds", "weights", "means", "covariances", "resp"):
        got = to_numpy(getattr(res, name)).astype(np.float64)
        expected = to_numpy(getattr(ref, name))
        assert np.max(np.abs(got - expected)) <= tol * max(1.0, np.max(np.abs(expected))), name
    new = from_numpy(X[:10] + 0.5, backend, dtype)
    proba = to_numpy(vb.predict_proba(res, new)).astype(np.float64)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=10 * tol)
    np.testing.assert_array_equal(to_numpy(vb.predict(res, new)), np.argmax(proba, axis=1))


def test_result_shapes_and_final_responsibilities():
    X, resp = mixture(d=3, k=4)
    for ct, cov_shape in (("full", (4, 3, 3)), ("tied", (3, 3)), ("diag", (4, 3)), ("spherical", (4,))):
        res = vb.bgmm_cavi(X, resp, covariance_type=ct, max_iter=5)
        assert res.covariances.shape == cov_shape and res.precisions.shape == cov_shape
        assert res.elbo.shape == res.lower_bounds.shape == (res.n_iter,)
        np.testing.assert_allclose(vb.predict_proba(res, X), res.resp, rtol=1e-10, atol=1e-14)
    res = vb.bgmm_cavi(X, resp, max_iter=3)
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
    (dict(resp_init=xps.full((10, 2), 0.5, dtype=xps.float64)), TypeError, "different array libraries"),
])
def test_bad_input(change, error, match):
    X = np.random.default_rng(0).standard_normal((10, 2))
    args = dict(X=X, resp_init=np.full((10, 2), 0.5))
    args.update(change)
    with pytest.raises(error, match=match):
        vb.bgmm_cavi(args.pop("X"), args.pop("resp_init"), **args)


def test_predict_bad_input():
    X, resp = mixture()
    res = vb.bgmm_cavi(X, resp, max_iter=2)
    with pytest.raises(ValueError, match=r"X must have shape \(M, 2\)"):
        vb.predict_proba(res, np.ones((3, 3)))
    with pytest.raises(TypeError, match="share one dtype"):
        vb.predict_proba(res, np.ones((3, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="every row of resp must sum to one"):
        vb.bgmm_elbo(res, X, np.full((len(X), 3), 0.5))
    with pytest.raises(ValueError, match=r"shapes \(N, 2\) and \(N, 3\) for this fit"):
        vb.bgmm_elbo(res, X, np.full((len(X), 2), 0.5))


# -- the checks have teeth --------------------------------------------------------------------


def _planted(monkeypatch, name, replacement):
    monkeypatch.setattr(vb, name, replacement)


def test_wrong_stick_breaking_tail_is_caught(monkeypatch):
    """gamma_2 with sum_{j >= k} instead of j > k: parity fails (the ELBO checks still hold,
    because a wrong prior is still a consistent model: only scikit-learn notices)."""
    original = vb._m_step

    def inclusive_tail(xp, feats, stats_, prior, m0c, reg_covar, d):
        q = original(xp, feats, stats_, prior, m0c, reg_covar, d)
        if q.weight_type == "dirichlet_process":
            tail = xp.flip(xp.cumulative_sum(xp.flip(stats_.nk, axis=0)), axis=0)
            q.concentration = xp.stack([q.concentration[0, :], prior.weight_concentration + tail])
            q.e_log_pi = vb._e_log_weights(xp, q.weight_type, q.concentration)
        return q

    _planted(monkeypatch, "_m_step", inclusive_tail)
    X, resp = mixture(d=2, k=3)
    pytest.importorskip("sklearn")
    assert sklearn_parity_error(X, resp, max_iter=10, tol=0.0) > 1e-4


def test_missing_mean_uncertainty_in_the_e_step_is_caught(monkeypatch):
    """Dropping -D/(2 beta_k) from log rho: the independent E-step disagrees.

    (Monotonicity and the constant offset do not see E-step bugs: the offset
    identity needs only the M-step to be optimal, and a wrong E-step can still
    raise the ELBO from one iteration to the next.)
    """
    original = vb._log_rho
    _planted(monkeypatch, "_log_rho", lambda xp, q, feats, mc: (
        original(xp, q, feats, mc) + (0.5 * feats.d / q.mean_precision)[:, None]))
    assert e_step_error(*mixture(seed=1, d=2, k=4)) > 1e-6


def test_e_step_without_weights_is_caught(monkeypatch):
    """An E-step that ignores E[log pi]: r no longer maximises the ELBO for the fitted q."""
    original = vb._log_rho
    _planted(monkeypatch, "_log_rho", lambda xp, q, feats, mc: original(xp, q, feats, mc) - q.e_log_pi[:, None])
    X, resp = mixture(seed=1, d=2, k=4)
    assert e_step_optimality_error(X, resp) > 1e-8
    assert e_step_error(X, resp) > 1e-6


def test_non_optimal_m_step_is_caught(monkeypatch):
    """nu_k off by one half: the M-step is not the optimum, so the offset drifts."""
    original = vb._m_step

    def shifted_dof(xp, feats, stats_, prior, m0c, reg_covar, d):
        q = original(xp, feats, stats_, prior, m0c, reg_covar, d)
        q.dof = q.dof + 0.5
        q.e_log_det = vb._e_log_det(xp, q.dof, q.logdet_w, d)
        return q

    _planted(monkeypatch, "_m_step", shifted_dof)
    X, resp = mixture(seed=2, d=3, k=3)
    assert constant_offset_error(_fit(X, resp, reg_covar=0.0, max_iter=25, tol=0.0)) > 1e-10


def test_wrong_wishart_normaliser_is_caught(monkeypatch):
    """A log pi term with the wrong factor: the entropy pieces and the evidence check fail."""
    original = vb._log_wishart_norm

    def wrong_pi(xp, dof, logdet_w, d, with_pi):
        out = original(xp, dof, logdet_w, d, with_pi)
        return out - d * (d - 1) / 4.0 * vb._LOG_PI if with_pi else out

    _planted(monkeypatch, "_log_wishart_norm", wrong_pi)
    assert entropy_errors(np.random.default_rng(0)) > 1e-3
    X = np.random.default_rng(40).standard_normal((40, 3))
    assert evidence_error(X) > 1e-6


def test_wrong_scatter_is_caught(monkeypatch):
    """A scatter 5% too large: q is no longer the conjugate posterior, the evidence check fails."""
    original = vb._statistics

    def uncentred(xp, feats, resp, covariance_type):
        s = original(xp, feats, resp, covariance_type)
        return vb._Stats(s.counts, s.nk, s.xbar, s.scatter * 1.05)

    _planted(monkeypatch, "_statistics", uncentred)
    X = np.random.default_rng(40).standard_normal((40, 3))
    assert evidence_error(X) > 1e-6
