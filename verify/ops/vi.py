"""Registry record for the reparameterised mean-field Gaussian ELBO (CONVENTIONS section 4).

One op, ``advi_elbo``, with primals ``mu (D,)``, ``omega (D,)`` and the noise
``eps (S, D)`` (an input, so it is a primal of the dot-product test too) and
a Gaussian target as a parameter: ``log p(z) = -1/2 (z - m)^T Lambda (z - m) + c``.
Ground truth: the expected log density by an explicit loop over samples plus
``scipy.stats.multivariate_normal(mu, diag(sigma^2)).entropy()``.

The CAVI fits (normal model, Bayesian Gaussian mixture) are iterative
algorithms without a VJP; their properties are direct tests in
``tests/test_vi.py`` and ``tests/test_vi_bgmm.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
import scipy.stats
from hypothesis import strategies as st

from refimpl.backend import get_namespace
from refimpl.vi import PARAMETRIZATIONS, advi_elbo, advi_elbo_grad, advi_elbo_vjp

from ..checks import rel_error
from ..registry import Case, Op, Property, register
from ..strategies import rng

CONVENTION = (
    "q = N(mu, diag(sigma^2)), sigma = exp(omega) (or softplus(omega)); z_s = mu + sigma * eps_s "
    "with eps (S, D) an input; ELBO estimate mean_s log p(z_s) + sum log sigma + D/2 (1 + log 2 pi). "
    "Registered with a Gaussian target log p(z) = -1/2 (z - m)^T Lambda (z - m) + c."
)
REFERENCES = (
    "Kucukelbir et al. 2017, Automatic differentiation variational inference (JMLR 18)",
    "Kingma and Welling 2014, Auto-encoding variational Bayes (ICLR)",
    "Titsias and Lazaro-Gredilla 2014, Doubly stochastic variational Bayes (ICML)",
)
TOL = {"float64": 1e-12, "float32": 2e-5}


@dataclass(frozen=True)
class GaussianTarget:
    """``log p(z) = -1/2 (z - m)^T Lambda (z - m) + c`` for rows ``z``, in any namespace.

    ``m`` and ``Lambda`` are held as nested tuples (hashable, printable) and
    placed on the namespace, device and dtype of ``z`` at each call.
    """

    m: tuple
    precision: tuple
    c: float

    def _arrays(self, z):
        xp, device = get_namespace(z)
        m = xp.asarray(self.m, dtype=z.dtype, device=device)
        return xp, m, xp.asarray(self.precision, dtype=z.dtype, device=device)

    def log_p(self, z):
        xp, m, lam = self._arrays(z)
        r = z - m
        return -0.5 * xp.sum(r * xp.matmul(r, lam), axis=-1) + self.c

    def grad_log_p(self, z):
        xp, m, lam = self._arrays(z)
        return -xp.matmul(z - m, lam)

    def naive_log_p(self, z):
        """The same density in autograd.numpy (for the autograd check)."""
        r = z - anp.array(self.m)
        return -0.5 * anp.sum(r * anp.dot(r, anp.array(self.precision)), axis=-1) + self.c

    def __repr__(self) -> str:
        return f"GaussianTarget(D={len(self.m)}, c={self.c:g})"


def gaussian_target(gen, d, c=None):
    """A well-conditioned target: ``Lambda = Q diag(l) Q^T``, ``l`` in ``[0.5, 2]``."""
    q, _ = np.linalg.qr(gen.standard_normal((d, d)))
    lam = (q * gen.uniform(0.5, 2.0, d)) @ q.T
    lam = 0.5 * (lam + lam.T)
    # c keeps the ELBO away from 0 (|ELBO| >= 1.4 D + 1), so relative errors stay meaningful.
    c = -(3.0 * d + 1.0) if c is None else c
    return GaussianTarget(tuple(gen.uniform(-1, 1, d)), tuple(map(tuple, lam)), c)


def _sigma_np(np_, omega, parametrization):
    return np_.exp(omega) if parametrization == "exp" else np_.logaddexp(0.0, omega)


def _omega_for(sigma, parametrization):
    """The ``omega`` that gives ``sigma``."""
    return np.log(sigma) if parametrization == "exp" else np.log(np.expm1(sigma))


def _reference(mu, omega, eps, *, target, parametrization):
    sigma = _sigma_np(np, omega, parametrization)
    m, lam = np.array(target.m), np.array(target.precision)
    log_p = [target.c - 0.5 * (z - m) @ lam @ (z - m) for z in mu + sigma * eps]
    entropy = scipy.stats.multivariate_normal(mu, np.diag(sigma**2)).entropy()
    return np.asarray(np.mean(log_p) + entropy)


def _naive(mu, omega, eps, *, target, parametrization):
    sigma = _sigma_np(anp, omega, parametrization)
    d = mu.shape[0]
    entropy = anp.sum(anp.log(sigma)) + 0.5 * d * (1.0 + math.log(2 * math.pi))
    return anp.mean(target.naive_log_p(mu + sigma * eps)) + entropy


def _forward(mu, omega, eps, *, target, parametrization):
    return advi_elbo(target.log_p, mu, omega, eps, parametrization=parametrization)


def _vjp(mu, omega, eps, cotangent, *, target, parametrization):
    return advi_elbo_vjp(target.grad_log_p, mu, omega, eps, cotangent,
                         parametrization=parametrization)


# -- inputs -------------------------------------------------------------------------------


@st.composite
def _cases(draw, moment_matched=False):
    gen = draw(rng())
    d = draw(st.integers(1, 5))
    parametrization = draw(st.sampled_from(PARAMETRIZATIONS))
    sigma = gen.uniform(0.5, 2.0, d)
    if moment_matched:
        # mean_s eps_s = 0 and mean_s eps_s eps_s^T = I exactly: the estimate is the expectation.
        eps = math.sqrt(d) * np.concatenate([np.eye(d), -np.eye(d)])
    else:
        eps = gen.standard_normal((draw(st.integers(1, 6)), d))
    primals = {"mu": gen.uniform(-1.5, 1.5, d), "omega": _omega_for(sigma, parametrization),
               "eps": eps}
    return Case(primals, {"target": gaussian_target(gen, d), "parametrization": parametrization})


# -- invariants ---------------------------------------------------------------------------


def _elbo(impl, case, ctx, **changes):
    primals = {**case.primals, **{k: v for k, v in changes.items() if k in case.primals}}
    params = {**case.params, **{k: v for k, v in changes.items() if k not in case.primals}}
    out = impl.forward(*[ctx.put(primals[k]) for k in ("mu", "omega", "eps")], **params)
    return float(ctx.take(out, ()))


def _gradient(impl, case, ctx, **changes):
    primals = {**case.primals, **{k: v for k, v in changes.items() if k in case.primals}}
    args = [ctx.put(primals[k]) for k in ("mu", "omega", "eps")] + [ctx.put(np.ones(()))]
    d_mu, d_omega, _ = impl.vjp(*args, **case.params)
    d = primals["mu"].shape[0]
    return ctx.take(d_mu, (d,), "cotangent of mu"), ctx.take(d_omega, (d,), "cotangent of omega")


def _exact(case, ctx):
    """Exact ELBO and gradient for the Gaussian target (inputs as rounded to the dtype)."""
    target, par = case.params["target"], case.params["parametrization"]
    mu, omega = ctx.rounded(case.primals["mu"]), ctx.rounded(case.primals["omega"])
    m, lam = np.array(target.m), np.array(target.precision)
    sigma = _sigma_np(np, omega, par)
    diag = np.diag(lam)
    d = mu.shape[0]
    elbo = (target.c - 0.5 * ((mu - m) @ lam @ (mu - m) + diag @ sigma**2)
            + np.sum(np.log(sigma)) + 0.5 * d * (1 + math.log(2 * math.pi)))
    dsigma = sigma if par == "exp" else 1.0 / (1.0 + np.exp(-omega))
    return elbo, -lam @ (mu - m), (1.0 / sigma - diag * sigma) * dsigma


def _moment_matched_is_exact(impl, case, ctx):
    elbo, d_mu, d_omega = _exact(case, ctx)
    got_mu, got_omega = _gradient(impl, case, ctx)
    scale = np.linalg.norm(np.array(case.params["target"].precision)) + 1.0
    return max(rel_error(_elbo(impl, case, ctx), elbo),
               rel_error(np.concatenate([got_mu, got_omega]), np.concatenate([d_mu, d_omega]),
                         scale=scale))


def _fixed_point(impl, case, ctx):
    """At ``mu = m``, ``sigma_i^2 = 1/Lambda_ii`` the exact gradient vanishes."""
    target, par = case.params["target"], case.params["parametrization"]
    sigma = 1.0 / np.sqrt(np.diag(np.array(target.precision)))
    got_mu, got_omega = _gradient(impl, case, ctx, mu=np.array(target.m),
                                  omega=_omega_for(sigma, par))
    return float(np.max(np.abs(np.concatenate([got_mu, got_omega]))))


def _entropy_matches_scipy(impl, case, ctx):
    """With ``log p = 0`` the estimate is the entropy, exactly: scipy's Gaussian entropy."""
    d = case.primals["mu"].shape[0]
    zero = GaussianTarget(tuple([0.0] * d), tuple([tuple([0.0] * d)] * d), 0.0)
    sigma = _sigma_np(np, ctx.rounded(case.primals["omega"]), case.params["parametrization"])
    expected = scipy.stats.multivariate_normal(np.zeros(d), np.diag(sigma**2)).entropy()
    return rel_error(_elbo(impl, case, ctx, target=zero), expected)


def _parametrizations_agree(impl, case, ctx):
    """``exp`` at ``omega = log sigma`` and softplus at ``omega = log(expm1(sigma))`` agree."""
    sigma = _sigma_np(np, case.primals["omega"], case.params["parametrization"])
    values = [_elbo(impl, case, ctx, omega=_omega_for(sigma, p), parametrization=p)
              for p in PARAMETRIZATIONS]
    return rel_error(values[1], values[0])


def _explicit_gradient_is_vjp(impl, case, ctx):
    """``advi_elbo_grad`` equals the first two cotangents of the VJP at cotangent 1."""
    args = [ctx.put(case.primals[k]) for k in ("mu", "omega", "eps")]
    target, par = case.params["target"], case.params["parametrization"]
    d = case.primals["mu"].shape[0]
    explicit = advi_elbo_grad(target.grad_log_p, *args, parametrization=par)
    got = np.concatenate([ctx.take(g, (d,)) for g in explicit])
    return rel_error(got, np.concatenate(_gradient(impl, case, ctx)))


def _bench_case(size):
    samples, d = size
    gen = np.random.default_rng(0)
    primals = {"mu": gen.standard_normal(d), "omega": np.zeros(d),
               "eps": gen.standard_normal((samples, d))}
    return Case(primals, {"target": gaussian_target(gen, d), "parametrization": "exp"})


register(Op(
    name="advi_elbo",
    module="vi",
    forward=_forward,
    vjp=_vjp,
    primals=("mu", "omega", "eps"),
    cases=_cases,
    reference=_reference,
    naive=_naive,
    properties=(
        Property("moment-matched eps gives the exact ELBO and gradient", _moment_matched_is_exact,
                 "eps with sample mean 0 and second moment I: estimate = exact Gaussian-target "
                 "ELBO, gradient = (-Lambda (mu - m), (1/sigma - Lambda_ii sigma) dsigma/domega)",
                 cases=lambda: _cases(moment_matched=True)),
        Property("fixed point sigma^2 = 1/diag(Lambda)", _fixed_point,
                 "the exact gradient vanishes at mu = m, sigma_i^2 = 1/Lambda_ii",
                 tolerance={"float64": 1e-13, "float32": 5e-6},
                 cases=lambda: _cases(moment_matched=True)),
        Property("entropy equals scipy", _entropy_matches_scipy,
                 "log p = 0: the estimate equals scipy.stats.multivariate_normal(...).entropy()"),
        Property("parametrizations agree", _parametrizations_agree,
                 "exp and softplus give the same ELBO at the same sigma"),
        Property("explicit gradient equals the vjp", _explicit_gradient_is_vjp,
                 "advi_elbo_grad = advi_elbo_vjp at cotangent 1", refimpl_only=True),
    ),
    tolerance=TOL,
    convention=CONVENTION,
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((256, 10), (1024, 100)),
))
