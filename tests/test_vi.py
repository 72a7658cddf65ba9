"""Normal-model CAVI and ADVI: registered properties, direct properties, bad input and teeth."""

import math

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as stats

import array_api_strict as xps
from refimpl import vi
from refimpl.backend import available_backends, backend_namespace, from_numpy, to_numpy
from verify.ops.vi import gaussian_target
from verify.testing import assert_property, failing_properties, property_cases

BACKENDS = available_backends(devices=True)
# Rounding allowance per dtype for ELBO steps and fixed points, relative to the quantity's size.
ROUND = {"float64": 50 * 2.0**-52, "float32": 50 * 2.0**-23}


@pytest.mark.parametrize(*property_cases(module="vi"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _put(x, backend, dtype="float64"):
    return from_numpy(np.asarray(x, dtype=np.float64), backend, dtype=dtype)


@pytest.fixture
def data():
    return np.random.default_rng(0).normal(2.0, 3.0, 37)


# -- special functions --------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_digamma_and_lgamma_match_scipy(backend, dtype):
    x = np.concatenate([np.geomspace(1e-3, 1e5, 300), np.linspace(0.5, 3.0, 101)])
    xp = backend_namespace(backend).xp
    xb = _put(x, backend, dtype)
    tol = 4 * ROUND[dtype]  # relative to max(1, |f(x)|)
    for ours, ref in ((vi._digamma, sp.digamma), (vi._lgamma, sp.gammaln)):
        got = to_numpy(ours(xp, xb)).astype(np.float64)
        expected = ref(np.asarray(x, dtype=dtype).astype(np.float64))
        assert np.max(np.abs(got - expected) / np.maximum(1, np.abs(expected))) < tol


def test_gamma_entropy_matches_scipy():
    a, b = np.array([0.3, 1.0, 4.5, 300.0]), np.array([0.2, 1.0, 7.0, 0.01])
    got = vi._gamma_entropy(np, a, b)
    np.testing.assert_allclose(got, stats.gamma(a, scale=1 / b).entropy(), rtol=1e-13, atol=1e-13)


# -- normal model: checks as functions returning an error, so the teeth tests reuse them ------


def fixed_point_error(x, backend="numpy", dtype="float64"):
    """Flat priors: E[lambda] = (n+1)/(n s2), Var q(mu) = s2/(n+1), a = n/2 + 1, b = n s2 (n+2)/(2(n+1))."""
    res = vi.normal_cavi(_put(x, backend, dtype))
    x = np.asarray(x, dtype=dtype).astype(np.float64)
    n, s2 = x.size, x.var()
    got = [float(to_numpy(v)) for v in (res.shape / res.rate, res.var, res.shape, res.rate, res.mean)]
    expected = [(n + 1) / (n * s2), s2 / (n + 1), n / 2 + 1, n * s2 * (n + 2) / (2 * (n + 1)), x.mean()]
    assert res.converged
    return max(abs(g - e) / abs(e) for g, e in zip(got, expected))


def monotonicity_error(x, backend="numpy", dtype="float64", e_lambda=0.01, **prior):
    """Largest decrease of the ELBO over single updates, relative to |ELBO|."""
    trace = to_numpy(vi.normal_cavi(_put(x, backend, dtype), e_lambda=e_lambda, **prior).elbo)
    return float(max(0.0, -np.min(np.diff(trace)) / np.max(np.abs(trace))))


def elbo_formula_error(x, mean, var, a, b, mu0=0.0, kappa0=1.5, a0=2.0, b0=3.0):
    """normal_elbo against the ELBO assembled from scipy (logpdf expectations and entropies)."""
    n = x.size
    e_lam, e_log_lam = a / b, sp.digamma(a) - np.log(b)
    expected_loglik = (n / 2 * (e_log_lam - np.log(2 * np.pi))
                       - e_lam / 2 * (np.sum((x - mean) ** 2) + n * var))
    # E_q log N(mu | mu0, 1/(kappa0 lambda)) and E_q log Gamma(lambda | a0, b0), term by term.
    expected_prior_mu = 0.5 * (np.log(kappa0) + e_log_lam - np.log(2 * np.pi)) \
        - kappa0 * e_lam / 2 * ((mean - mu0) ** 2 + var)
    expected_prior_lam = a0 * np.log(b0) - sp.gammaln(a0) + (a0 - 1) * e_log_lam - b0 * e_lam
    entropies = stats.norm(mean, np.sqrt(var)).entropy() + stats.gamma(a, scale=1 / b).entropy()
    expected = expected_loglik + expected_prior_mu + expected_prior_lam + entropies
    q = [np.asarray(v, dtype=np.float64) for v in (mean, var, a, b)]
    got = float(vi.normal_elbo(x, *q, mu0=mu0, kappa0=kappa0, a0=a0, b0=b0))
    return abs(got - expected) / abs(expected)


def log_evidence(x, mu0, kappa0, a0, b0):
    """log p(x) for the Normal-Gamma prior, from scipy's multivariate t (independent of refimpl)."""
    n = x.size
    shape = b0 / a0 * (np.eye(n) + np.ones((n, n)) / kappa0)
    return stats.multivariate_t(np.full(n, mu0), shape, df=2 * a0).logpdf(x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_flat_prior_fixed_point(data, backend, dtype):
    assert fixed_point_error(data, backend, dtype) < ROUND[dtype] * 10


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("prior", [{}, dict(mu0=-1.0, kappa0=2.0, a0=3.0, b0=0.5)])
def test_elbo_never_decreases(data, backend, dtype, prior):
    assert monotonicity_error(data, backend, dtype, **prior) <= ROUND[dtype]


def test_elbo_terms_match_scipy(data):
    assert elbo_formula_error(data, 1.3, 0.05, 7.0, 40.0) < 1e-13


def test_elbo_is_below_the_log_evidence(data):
    prior = dict(mu0=1.0, kappa0=0.5, a0=2.0, b0=4.0)
    res = vi.normal_cavi(data[:12], **prior)
    gap = log_evidence(data[:12], **prior) - float(res.elbo[-1])
    # KL(q || posterior) > 0 for the factorised q, and small: the posterior is nearly factorised.
    assert 0 < gap < 0.1


def test_proper_prior_fixed_point_is_stationary(data):
    """At convergence, one more sweep (from the returned q) leaves every parameter unchanged."""
    prior = dict(mu0=-1.0, kappa0=2.0, a0=3.0, b0=0.5)
    res = vi.normal_cavi(data, **prior)
    again = vi.normal_cavi(data, e_lambda=float(res.shape / res.rate), max_iter=1, **prior)
    for a, b in ((res.var, again.var), (res.rate, again.rate), (res.mean, again.mean)):
        assert float(a) == pytest.approx(float(b), rel=1e-13)


def test_flat_limit_of_the_conjugate_prior(data):
    flat = vi.normal_cavi(data)
    near = vi.normal_cavi(data, kappa0=1e-12, a0=0.5, b0=1e-12)
    assert float(near.shape / near.rate) == pytest.approx(float(flat.shape / flat.rate), rel=1e-10)
    assert float(near.var) == pytest.approx(float(flat.var), rel=1e-10)


def test_trace_has_two_updates_per_sweep(data):
    res = vi.normal_cavi(data, max_iter=3, tol=0.0)
    assert res.elbo.shape == (6,) and res.n_iter == 3 and not res.converged


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(a0=0.0), ValueError, "a0 must be positive"),
    (dict(kappa0=-1.0), ValueError, "kappa0 must be >= 0"),
    (dict(b0=-0.1), ValueError, "b0 must be >= 0"),
    (dict(mu0=float("nan")), TypeError, "mu0 must be a finite real number"),
    (dict(x=np.array([1.0, np.inf])), ValueError, "x must not contain infs or NaNs"),
    (dict(x=np.ones(5)), ValueError, "zero variance"),
    (dict(x=np.ones((2, 3))), ValueError, r"x must have shape \(n,\)"),
    (dict(x=np.arange(4)), TypeError, "x must have a real floating dtype"),
    (dict(e_lambda=-1.0), ValueError, "e_lambda must be positive"),
])
def test_normal_cavi_bad_input(data, kwargs, error, match):
    x = kwargs.pop("x", data)
    with pytest.raises(error, match=match):
        vi.normal_cavi(x, **kwargs)


# -- ADVI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("parametrization", vi.PARAMETRIZATIONS)
def test_advi_fit_reaches_the_gaussian_fixed_point(backend, parametrization):
    """Moment-matched eps makes the estimate exact: the fit converges to mu = m, sigma^2 = 1/Lambda_ii."""
    d = 3
    target = gaussian_target(np.random.default_rng(1), d)
    eps = math.sqrt(d) * np.concatenate([np.eye(d), -np.eye(d)])
    res = vi.advi_fit(target.log_p, target.grad_log_p, _put(np.zeros(d), backend),
                      _put(np.zeros(d), backend), _put(eps, backend), step_size=0.2, n_steps=400,
                      parametrization=parametrization)
    np.testing.assert_allclose(to_numpy(res.mu), target.m, atol=1e-10)
    np.testing.assert_allclose(to_numpy(res.sigma) ** 2, 1 / np.diag(target.precision), rtol=1e-10)
    assert np.all(np.diff(to_numpy(res.elbo)) > -1e-12)  # small steps on a concave objective


def test_advi_fit_fresh_noise_per_step():
    d = 2
    target = gaussian_target(np.random.default_rng(2), d)
    eps = np.random.default_rng(3).standard_normal((300, 64, d))
    res = vi.advi_fit(target.log_p, target.grad_log_p, np.zeros(d), np.zeros(d), eps, step_size=0.05)
    assert res.elbo.shape == (300,)
    np.testing.assert_allclose(res.mu, target.m, atol=0.2)
    np.testing.assert_allclose(res.sigma**2, 1 / np.diag(target.precision), rtol=0.3)


def test_advi_gradient_is_unbiased_for_many_samples():
    """Monte Carlo check of the estimator's mean against the exact gradient (z-score < 5)."""
    d = 3
    gen = np.random.default_rng(4)
    target = gaussian_target(gen, d)
    mu, omega = gen.uniform(-1, 1, d), gen.uniform(-0.5, 0.5, d)
    eps = gen.standard_normal((20000, d))
    sigma = np.exp(omega)
    g = target.grad_log_p(mu + sigma * eps)
    per_sample = np.concatenate([g, g * eps * sigma + 1], axis=1)
    lam = np.array(target.precision)
    exact = np.concatenate([-lam @ (mu - np.array(target.m)), 1 - np.diag(lam) * sigma**2])
    got = np.concatenate(vi.advi_elbo_grad(target.grad_log_p, mu, omega, eps))
    np.testing.assert_allclose(got, per_sample.mean(0), rtol=1e-12, atol=1e-12)
    z = (got - exact) / (per_sample.std(0) / math.sqrt(len(eps)))
    assert np.all(np.abs(z) < 5)


@pytest.mark.parametrize("change, error, match", [
    (dict(mu=np.zeros((2, 2))), ValueError, r"mu and omega must both have shape \(D,\)"),
    (dict(eps=np.zeros((4, 3))), ValueError, r"eps must have shape \(S, D\)"),
    (dict(eps=np.zeros(2)), ValueError, r"eps must have shape \(S, D\)"),
    (dict(omega=np.zeros(2, dtype=np.float32)), TypeError, "share one dtype"),
    (dict(mu=np.arange(2)), TypeError, "mu must have a real floating dtype"),
    (dict(parametrization="relu"), ValueError, "parametrization must be one of"),
    (dict(log_p=lambda z: z), ValueError, r"log_p must map z of shape \(4, 2\) to shape \(4,\)"),
    (dict(mu=xps.zeros(2, dtype=xps.float64)), TypeError, "different array libraries"),
])
def test_advi_bad_input(change, error, match):
    target = gaussian_target(np.random.default_rng(0), 2)
    args = dict(log_p=target.log_p, mu=np.zeros(2), omega=np.zeros(2), eps=np.ones((4, 2)))
    args.update(change)
    with pytest.raises(error, match=match):
        vi.advi_elbo(args.pop("log_p"), args.pop("mu"), args.pop("omega"), args.pop("eps"), **args)


def test_advi_grad_and_fit_bad_input():
    target = gaussian_target(np.random.default_rng(0), 2)
    with pytest.raises(ValueError, match=r"grad_log_p must map z of shape \(4, 2\) to shape \(4, 2\)"):
        vi.advi_elbo_grad(target.log_p, np.zeros(2), np.zeros(2), np.ones((4, 2)))
    with pytest.raises(ValueError, match="cotangent must be a 0-d array"):
        vi.advi_elbo_vjp(target.grad_log_p, np.zeros(2), np.zeros(2), np.ones((4, 2)), np.ones(2))
    with pytest.raises(ValueError, match="n_steps is required"):
        vi.advi_fit(target.log_p, target.grad_log_p, np.zeros(2), np.zeros(2), np.ones((4, 2)))
    with pytest.raises(ValueError, match="needs more"):
        vi.advi_fit(target.log_p, target.grad_log_p, np.zeros(2), np.zeros(2), np.ones((3, 4, 2)),
                    n_steps=5)
    with pytest.raises(ValueError, match="step_size must be positive"):
        vi.advi_fit(target.log_p, target.grad_log_p, np.zeros(2), np.zeros(2), np.ones((4, 2)),
                    n_steps=5, step_size=0.0)


def test_same_inputs_give_bitwise_same_outputs():
    target = gaussian_target(np.random.default_rng(0), 3)
    args = (np.ones(3), np.zeros(3), np.random.default_rng(1).standard_normal((5, 3)))
    assert vi.advi_elbo(target.log_p, *args) == vi.advi_elbo(target.log_p, *args)


# -- the checks have teeth ------------------------------------------------------------------


def _failing(monkeypatch, target, replacement, op_name="advi_elbo"):
    monkeypatch.setattr(vi, target, replacement)
    return failing_properties(op_name)


def test_missing_entropy_gradient_is_caught(monkeypatch):
    def no_entropy_term(xp, omega, sigma, eps, g, parametrization):
        d_mu = xp.mean(g, axis=0)
        return d_mu, xp.mean(g * eps, axis=0) * vi._dsigma_domega(xp, omega, sigma, parametrization)

    failed = _failing(monkeypatch, "_grad_from", no_entropy_term)
    assert {"vjp: dot-product test", "vjp: autograd", "fixed point sigma^2 = 1/diag(Lambda)",
            "moment-matched eps gives the exact ELBO and gradient"} <= failed


def test_wrong_softplus_derivative_is_caught(monkeypatch):
    original = vi._dsigma_domega
    monkeypatch.setattr(vi, "_dsigma_domega", lambda xp, omega, sigma, p: (
        original(xp, omega, sigma, p) if p == "exp" else sigma))
    failed = failing_properties("advi_elbo", profile="ci")
    assert {"vjp: dot-product test", "vjp: autograd"} <= failed


def test_wrong_entropy_constant_is_caught(monkeypatch):
    failed = _failing(monkeypatch, "_LOG_2PI", math.log(math.pi))
    assert {"matches ground truth", "entropy equals scipy"} <= failed


def test_normal_rate_update_bug_is_caught(data, monkeypatch):
    # The q(lambda) update forgets E[(x - mu)^2]'s variance part: the fixed point is off.
    monkeypatch.setattr(vi, "_q_lambda_rate", lambda b0, scatter, kappa_n, var: b0 + 0.5 * scatter)
    assert fixed_point_error(data) > 1e-3
    # It forgets the 1/2: started near the optimum, the update lowers the ELBO.
    monkeypatch.setattr(vi, "_q_lambda_rate", lambda b0, scatter, kappa_n, var: b0 + scatter + kappa_n * var)
    assert monotonicity_error(data, e_lambda=None, mu0=-1.0, kappa0=2.0, a0=3.0, b0=0.5) > 1e-3


def test_normal_checks_fail_on_planted_bugs(data, monkeypatch):
    # 1. An entropy term with the wrong sign: the ELBO formula check fails.
    original_entropy = vi._gamma_entropy
    monkeypatch.setattr(vi, "_gamma_entropy", lambda xp, a, b: -original_entropy(xp, a, b))
    assert elbo_formula_error(data, 1.3, 0.05, 7.0, 40.0) > 1e-3
    monkeypatch.setattr(vi, "_gamma_entropy", original_entropy)
    # 2. A digamma off by a constant: the fixed point is unaffected, the ELBO check is not.
    original_digamma = vi._digamma
    monkeypatch.setattr(vi, "_digamma", lambda xp, x: original_digamma(xp, x) + 1e-3)
    assert elbo_formula_error(data, 1.3, 0.05, 7.0, 40.0) > 1e-6
