"""Record of :mod:`refimpl.flows.vae` (docs/conventions.rst, section 3.10).

``householder_vae_bound(mu, omega, V, eps)`` with the decoder's
log-likelihood given by the params ``log_lik`` and ``grad_log_lik``: the
bound methods of the ADVI records' :class:`~verify.ops.vi.advi.GaussianTarget`
(a quadratic ``log p(x | z) = c - 1/2 (z - m)^T Lambda (z - m)``, what a
linear Gaussian decoder gives), ``parametrization`` and ``entropy`` drawn.

Ground truth: an explicit loop over the samples with the reflectors
multiplied densely and the densities from ``scipy.stats.multivariate_normal``
(prior, ``q_0`` and its entropy). Invariant: when ``q`` is the exact
posterior of the quadratic likelihood under the ``N(0, I)`` prior (built from
the drawn reflectors and scales), the ``"sample"`` bound equals the evidence
``log p(x)`` (in closed form by ``scipy.stats.multivariate_normal``) for any
noise.
"""

from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as np
import scipy.stats
from hypothesis import strategies as st

from refimpl.flows import ENTROPIES, vae
from refimpl.vi.advi import PARAMETRIZATIONS

from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng, rows_with_norms
from ..vi.advi import GaussianTarget, gaussian_target, target_of
from ._common import householder_matrices

REFERENCES = (
    "Tomczak and Welling 2016, Improving variational auto-encoders using Householder flow "
    "(arXiv:1611.09630)",
    "Kingma and Welling 2014, Auto-encoding variational Bayes (ICLR)",
)
TOL = {"float64": 1e-12, "float32": 5e-5}


def _sigma(np_, omega, parametrization):
    return np_.exp(omega) if parametrization == "exp" else np_.log(1.0 + np_.exp(omega))


def _omega_for(sigma, parametrization):
    return np.log(sigma) if parametrization == "exp" else np.log(np.expm1(sigma))


def _params(target, parametrization, entropy):
    return {"log_lik": target.log_p, "grad_log_lik": target.grad_log_p,
            "parametrization": parametrization, "entropy": entropy}


@st.composite
def _cases(draw):
    gen = draw(rng())
    d = draw(st.integers(1, 4))
    parametrization = draw(st.sampled_from(PARAMETRIZATIONS))
    primals = {"mu": gen.uniform(-1.0, 1.0, d),
               "omega": _omega_for(gen.uniform(0.5, 1.5, d), parametrization),
               "V": rows_with_norms(gen, (draw(st.integers(1, d + 1)), d)),
               "eps": gen.standard_normal((draw(st.integers(1, 4)), d))}
    return Case(primals, _params(gaussian_target(gen, d), parametrization,
                                 draw(st.sampled_from(ENTROPIES))))


@st.composite
def _posterior_cases(draw):
    """``q`` is the posterior of a quadratic likelihood built for it, and ``log p(x)`` is known.

    ``H = U^T`` from the drawn reflectors, ``Sigma = H diag(sigma^2) H^T`` with
    ``sigma^2`` in ``[0.2, 0.8]`` and mean ``H mu``: then ``Lambda = Sigma^{-1} - I``
    (eigenvalues in ``[0.25, 4]``) and ``m = Lambda^{-1} Sigma^{-1} H mu``.
    """
    gen = draw(rng())
    d = draw(st.integers(1, 4))
    parametrization = draw(st.sampled_from(PARAMETRIZATIONS))
    V = rows_with_norms(gen, (draw(st.integers(1, d + 1)), d))
    mu, sigma = gen.uniform(-1.0, 1.0, d), np.sqrt(gen.uniform(0.2, 0.8, d))
    H = householder_matrices(np, V).T
    precision = H @ np.diag(1.0 / sigma**2) @ H.T
    lam = precision - np.eye(d)
    lam = 0.5 * (lam + lam.T)
    m = np.linalg.solve(lam, precision @ (H @ mu))
    target = GaussianTarget(tuple(m.tolist()), tuple(map(tuple, lam.tolist())),
                            float(gen.uniform(-3.0, 3.0)))
    primals = {"mu": mu, "omega": _omega_for(sigma, parametrization), "V": V,
               "eps": gen.standard_normal((draw(st.integers(1, 4)), d))}
    return Case(primals, _params(target, parametrization, "sample"))


def _evidence(target: GaussianTarget):
    """``log int exp(c - 1/2 (z - m)^T Lambda (z - m)) N(z; 0, I) dz`` by scipy.stats."""
    m, lam = np.array(target.m), np.array(target.precision)
    d = m.shape[0]
    return (target.c + 0.5 * d * math.log(2 * math.pi) - 0.5 * np.linalg.slogdet(lam)[1]
            + scipy.stats.multivariate_normal(np.zeros(d), np.eye(d) + np.linalg.inv(lam)).logpdf(m))


def _reference(mu, omega, V, eps, *, log_lik, parametrization, entropy, **_):
    target = target_of(log_lik)
    m, lam = np.array(target.m), np.array(target.precision)
    sigma = _sigma(np, omega, parametrization)
    H = householder_matrices(np, V).T  # z_K = H_K ... H_1 z_0
    d = mu.shape[0]
    prior, q0 = scipy.stats.multivariate_normal(np.zeros(d)), scipy.stats.multivariate_normal(
        mu, np.diag(sigma**2))
    terms = []
    for e in eps:
        z0 = mu + sigma * e
        zK = H @ z0
        terms.append(target.c - 0.5 * (zK - m) @ lam @ (zK - m) + prior.logpdf(zK)
                     - (q0.logpdf(z0) if entropy == "sample" else 0.0))
    return np.asarray(np.mean(terms) + (q0.entropy() if entropy == "exact" else 0.0))


def _naive(mu, omega, V, eps, *, log_lik, parametrization, entropy, **_):
    sigma = _sigma(anp, omega, parametrization)
    z0 = mu + sigma * eps
    zK = anp.dot(z0, householder_matrices(anp, V))
    d = mu.shape[0]
    log_2pi = math.log(2 * math.pi)
    prior = -0.5 * anp.sum(zK * zK, axis=1) - 0.5 * d * log_2pi
    if entropy == "sample":
        minus_log_q0 = 0.5 * anp.sum(eps * eps, axis=1) + 0.5 * d * log_2pi
    else:
        minus_log_q0 = 0.5 * d * (1.0 + log_2pi)
    return (anp.mean(target_of(log_lik).naive_log_p(zK) + prior + minus_log_q0)
            + anp.sum(anp.log(sigma)))


def _exact_posterior(impl, case, ctx):
    """At the exact posterior every sample's term is ``log p(x)``: the bound is the evidence."""
    got = run_outputs(OP, impl, case, ctx)["out"]
    return rel_error(got, _evidence(target_of(case.params["log_lik"])), scale=1.0)


def _bench_case(size):
    samples, d = size
    gen = np.random.default_rng(0)
    primals = {"mu": gen.standard_normal(d), "omega": np.zeros(d),
               "V": gen.standard_normal((d, d)), "eps": gen.standard_normal((samples, d))}
    return Case(primals, _params(gaussian_target(gen, d), "exp", "sample"))


OP = register(Op(
    forward=vae.householder_vae_bound, vjp=vae.householder_vae_bound_vjp,
    primals=(Primal("mu"), Primal("omega"), Primal("V"), Primal("eps")),
    outputs=(Output("out", scale=1.0),), cases=_cases, reference=_reference, naive=_naive,
    properties=(Property("exact posterior gives log p(x)", _exact_posterior,
                         "q = the posterior of a quadratic likelihood under N(0, I): the 'sample' "
                         "bound equals log p(x) (scipy.stats.multivariate_normal) for any noise",
                         cases=_posterior_cases),),
    tolerance=TOL, section="3.10", references=REFERENCES,
    convention="z_0 = mu + sigma * eps (sigma = exp or softplus of omega), z_K = H_K ... H_1 z_0 "
               "(householder_flow, V (K, D)); bound = mean_s [log_lik(z_K) + log N(z_K; 0, I) - "
               "log q_0(z_0)] (entropy='sample'; 'exact': the entropy of q_0 in place of "
               "-mean log q_0); the decoder by keyword: log_lik(z) (S,), grad_log_lik(z) (S, D).",
    bench_case=_bench_case, bench_sizes=((64, 256),), bench_anchor=Anchor("definition"),
))
