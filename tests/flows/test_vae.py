"""The Householder-flow VAE bound: registered properties, ADVI's ELBO as a special case, bad input."""

import numpy as np
import pytest

from refimpl.flows import householder_flow, householder_vae_bound, householder_vae_bound_vjp
from refimpl.vi import advi_elbo
from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("flows.vae"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _decoder():
    m, lam = np.array([0.5, -1.0, 0.2]), np.diag([1.0, 2.0, 0.5])

    def log_lik(z):
        return -0.5 * np.einsum("si,ij,sj->s", z - m, lam, z - m)

    def grad_log_lik(z):
        return -(z - m) @ lam

    return log_lik, grad_log_lik


def test_exact_entropy_is_advi_on_the_flowed_target():
    # On top of ADVI: with the exact entropy the bound is advi_elbo of log p(z) = log_lik(H z) + log N(H z).
    gen = np.random.default_rng(0)
    mu, omega, V, eps = gen.standard_normal(3), 0.3 * gen.standard_normal(3), \
        gen.standard_normal((2, 3)), gen.standard_normal((5, 3))
    log_lik, _ = _decoder()

    def flowed(z):
        zK = householder_flow(z, V).z
        return log_lik(zK) - 0.5 * np.sum(zK**2, axis=1) - 1.5 * np.log(2 * np.pi)

    for parametrization in ("exp", "softplus"):
        bound = householder_vae_bound(mu, omega, V, eps, log_lik=log_lik, entropy="exact",
                                      parametrization=parametrization)
        elbo = advi_elbo(mu, omega, eps, log_p=flowed, parametrization=parametrization)
        assert float(bound) == pytest.approx(float(elbo), rel=1e-13)


_ARGS = (np.zeros(3), np.zeros(3), np.ones((2, 3)), np.ones((4, 3)))


@pytest.mark.parametrize("call, error, match", [
    (lambda: householder_vae_bound(*_ARGS, log_lik=None), TypeError, "log_lik is required"),
    (lambda: householder_vae_bound(*_ARGS, log_lik=3), TypeError, "log_lik must be a callable"),
    (lambda: householder_vae_bound_vjp(*_ARGS, np.array(1.0), grad_log_lik=None), TypeError,
     "grad_log_lik is required"),
    (lambda: householder_vae_bound(*_ARGS, log_lik=_decoder()[0], entropy="analytic"), ValueError,
     "entropy must be one of"),
    (lambda: householder_vae_bound(*_ARGS[:2], np.ones((2, 2)), _ARGS[3], log_lik=_decoder()[0]),
     ValueError, r"V must have shape \(K, D\) with D = 3"),
    (lambda: householder_vae_bound(*_ARGS, log_lik=lambda z: z), ValueError,
     r"log_lik must map z of shape \(4, 3\) to shape \(4,\)"),
    (lambda: householder_vae_bound_vjp(*_ARGS, np.ones(2), grad_log_lik=_decoder()[1]), ValueError,
     "cotangent must be a 0-d array"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
