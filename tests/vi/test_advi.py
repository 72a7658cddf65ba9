"""ADVI: registered properties on every backend, convergence, bad input, planted bugs."""

import math

import numpy as np
import pytest

import array_api_strict as xps
from refimpl.backend import available_backends, from_numpy, to_numpy
from refimpl.vi import advi
from verify.ops.vi.advi import gaussian_target, moment_matched_noise, target_params
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("vi.advi"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _target(seed=0, d=2):
    target = gaussian_target(np.random.default_rng(seed), d)
    return target, target_params(target)


@pytest.mark.parametrize("backend", available_backends(devices=True))
@pytest.mark.parametrize("parametrization", advi.PARAMETRIZATIONS)
def test_fit_reaches_the_gaussian_fixed_point(backend, parametrization):
    """Moment-matched eps makes the estimate exact: the fit converges to mu = m, sigma^2 = 1/Lambda_ii."""
    d = 3
    target, params = _target(1, d)
    params["parametrization"] = parametrization
    zeros = from_numpy(np.zeros(d), backend)
    res = advi.advi_fit(zeros, zeros, from_numpy(moment_matched_noise(d), backend), step_size=0.2,
                        n_steps=400, **params)
    np.testing.assert_allclose(to_numpy(res.mu), target.m, atol=1e-10)
    np.testing.assert_allclose(to_numpy(res.sigma) ** 2, 1 / np.diag(target.precision), rtol=1e-10)


def test_fit_with_fresh_noise_per_step_finds_the_optimum_roughly():
    d = 2
    target, params = _target(2, d)
    eps = np.random.default_rng(3).standard_normal((300, 64, d))
    res = advi.advi_fit(np.zeros(d), np.zeros(d), eps, step_size=0.05, **params)
    assert res.elbo.shape == (300,)
    np.testing.assert_allclose(res.mu, target.m, atol=0.2)
    np.testing.assert_allclose(res.sigma**2, 1 / np.diag(target.precision), rtol=0.3)


def test_gradient_is_unbiased_for_many_samples():
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
    got = np.concatenate(advi.advi_elbo_grad(mu, omega, eps, grad_log_p=target.grad_log_p))
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
    (dict(log_p=None), TypeError, "log_p is required"),
    (dict(log_p=3.0), TypeError, "log_p must be a callable"),
    (dict(mu=xps.zeros(2, dtype=xps.float64)), TypeError, "different array libraries"),
])
def test_elbo_bad_input(change, error, match):
    args = dict(mu=np.zeros(2), omega=np.zeros(2), eps=np.ones((4, 2)), **_target()[1])
    args.update(change)
    with pytest.raises(error, match=match):
        advi.advi_elbo(args.pop("mu"), args.pop("omega"), args.pop("eps"), **args)


def test_grad_vjp_and_fit_bad_input():
    target, params = _target()
    start = (np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match=r"grad_log_p must map z of shape \(4, 2\) to shape \(4, 2\)"):
        advi.advi_elbo_grad(*start, np.ones((4, 2)), grad_log_p=target.log_p)
    with pytest.raises(TypeError, match="grad_log_p is required"):
        advi.advi_elbo_grad(*start, np.ones((4, 2)), grad_log_p=None, log_p=target.log_p)
    with pytest.raises(ValueError, match="cotangent must be a 0-d array"):
        advi.advi_elbo_vjp(*start, np.ones((4, 2)), np.ones(2), grad_log_p=target.grad_log_p)
    with pytest.raises(ValueError, match="n_steps is required"):
        advi.advi_fit(*start, np.ones((4, 2)), **params)
    with pytest.raises(ValueError, match="needs more"):
        advi.advi_fit(*start, np.ones((3, 4, 2)), n_steps=5, **params)
    with pytest.raises(ValueError, match="step_size must be positive"):
        advi.advi_fit(*start, np.ones((4, 2)), n_steps=5, step_size=0.0, **params)
    with pytest.raises(ValueError, match="n_steps must be a non-negative integer"):
        advi.advi_fit(*start, np.ones((4, 2)), n_steps=2.5, **params)
    with pytest.raises(ValueError, match=r"eps must have shape \(S, D\)"):
        advi.advi_fit(*start, np.ones((4, 3)), n_steps=0, **params)


def test_same_inputs_give_bitwise_same_outputs():
    _, params = _target(0, 3)
    args = (np.ones(3), np.zeros(3), np.random.default_rng(1).standard_normal((5, 3)))
    assert advi.advi_elbo(*args, **params) == advi.advi_elbo(*args, **params)


# -- planted bugs: the records' checks catch them ---------------------------------------------


def test_missing_entropy_gradient_is_caught(monkeypatch):
    def no_entropy_term(xp, omega, sigma, eps, g, parametrization):
        d_mu = xp.mean(g, axis=0)
        return d_mu, xp.mean(g * eps, axis=0) * advi._dsigma_domega(xp, omega, sigma, parametrization)

    monkeypatch.setattr(advi, "_grad_from", no_entropy_term)
    assert {"vjp: dot-product test", "vjp: autograd", "fixed point sigma^2 = 1/diag(Lambda)",
            "moment-matched eps gives the exact ELBO and gradient"} <= failing_properties("advi_elbo")
    assert {"matches ground truth", "fixed point sigma^2 = 1/diag(Lambda)"} <= failing_properties(
        "advi_elbo_grad")
    assert "optimum is a fixed point" in failing_properties("advi_fit", among={"optimum is a fixed point"})


def test_wrong_softplus_derivative_is_caught(monkeypatch):
    original = advi._dsigma_domega
    monkeypatch.setattr(advi, "_dsigma_domega", lambda xp, omega, sigma, p: (
        original(xp, omega, sigma, p) if p == "exp" else sigma))
    assert {"vjp: dot-product test", "vjp: autograd"} <= failing_properties("advi_elbo", profile="ci")
    assert "gradient in sigma agrees across parametrizations" in failing_properties(
        "advi_elbo_grad", profile="ci")


def test_wrong_entropy_constant_is_caught(monkeypatch):
    monkeypatch.setattr(advi, "LOG_2PI", math.log(math.pi))
    assert {"matches ground truth", "entropy equals scipy"} <= failing_properties("advi_elbo")
