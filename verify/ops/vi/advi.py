r"""Records of :mod:`refimpl.vi.advi` (docs/conventions.rst, section 6.3).

Primals ``mu (D,)``, ``omega (D,)`` and the noise ``eps (S, D)`` (an input,
so the dot-product test perturbs it too); the target is given by the params
``log_p`` and ``grad_log_p``, the bound methods of a :class:`GaussianTarget`
``log p(z) = c - 1/2 (z - m)^T Lambda (z - m)``: a candidate calls them on its
own arrays (any array-API namespace), and the references read ``m``,
``Lambda`` and ``c`` from the target itself (``log_p.__self__``).

Ground truth: for ``advi_elbo`` an explicit loop over the samples plus
``scipy.stats.multivariate_normal(mu, diag(sigma^2)).entropy()``; for
``advi_elbo_grad`` autograd's gradient of a naive ELBO written in
``autograd.numpy``; for ``advi_fit`` a NumPy loop of steps along that
autograd gradient. For moment-matched noise (sample mean 0, sample second
moment ``I``) the estimate equals its expectation, which is known in closed
form for the Gaussian target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
import scipy.stats
from autograd import grad
from hypothesis import strategies as st

from refimpl.backend import get_namespace
from refimpl.vi.advi import PARAMETRIZATIONS, advi_elbo, advi_elbo_grad, advi_elbo_vjp, advi_fit

from ...checks import Err, rel_error, run_outputs, run_vjp
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng

CONVENTION = (
    "q = N(mu, diag(sigma^2)), sigma = exp(omega) or softplus(omega); z_s = mu + sigma * eps_s "
    "with eps (S, D) an input; ELBO estimate mean_s log p(z_s) + sum log sigma + D/2 (1 + log 2 pi); "
    "the target by keyword: log_p(z) (S,) and grad_log_p(z) (S, D)."
)
REFERENCES = (
    "Kucukelbir et al. 2017, Automatic differentiation variational inference (JMLR 18)",
    "Kingma and Welling 2014, Auto-encoding variational Bayes (ICLR)",
    "Titsias and Lazaro-Gredilla 2014, Doubly stochastic variational Bayes (ICML)",
)
TOL = {"float64": 1e-12, "float32": 2e-5}
FIT_TOL = {"float64": 1e-11, "float32": 2e-5}
ROUND = {"float64": 50 * 2.0**-52, "float32": 50 * 2.0**-23}


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
        """The same density in autograd.numpy (for the references)."""
        r = z - anp.array(self.m)
        return -0.5 * anp.sum(r * anp.dot(r, anp.array(self.precision)), axis=-1) + self.c


def gaussian_target(gen, d, c=None):
    """A well-conditioned target: ``Lambda = Q diag(l) Q^T``, ``l`` in ``[0.5, 2]``."""
    q, _ = np.linalg.qr(gen.standard_normal((d, d)))
    lam = (q * gen.uniform(0.5, 2.0, d)) @ q.T
    lam = 0.5 * (lam + lam.T)
    # c keeps the ELBO away from 0 (|ELBO| >= 1.4 D + 1), so relative errors stay meaningful.
    c = -(3.0 * d + 1.0) if c is None else c
    # Plain floats: the repr (reports, golden vectors' params) then reads as Python literals.
    return GaussianTarget(tuple(gen.uniform(-1, 1, d).tolist()), tuple(map(tuple, lam.tolist())),
                          float(c))


def target_params(target: GaussianTarget, parametrization="exp") -> dict:
    """The keyword params of the ADVI ops for ``target``."""
    return {"log_p": target.log_p, "grad_log_p": target.grad_log_p,
            "parametrization": parametrization}


def target_of(log_p) -> GaussianTarget:
    """The :class:`GaussianTarget` whose bound ``log_p`` the case passes."""
    target = getattr(log_p, "__self__", None)
    if not isinstance(target, GaussianTarget):
        raise TypeError("the ADVI records pass the bound methods of a GaussianTarget as log_p")
    return target


# -- the definition -------------------------------------------------------------------------


def _sigma_np(np_, omega, parametrization):
    return np_.exp(omega) if parametrization == "exp" else np_.logaddexp(0.0, omega)


def _omega_for(sigma, parametrization):
    """The ``omega`` that gives ``sigma``."""
    return np.log(sigma) if parametrization == "exp" else np.log(np.expm1(sigma))


def _dsigma(omega, parametrization):
    """``dsigma / domega``: ``sigma`` for exp, ``sigmoid(omega)`` for softplus."""
    return np.exp(omega) if parametrization == "exp" else 1.0 / (1.0 + np.exp(-omega))


def _reference(mu, omega, eps, *, log_p, parametrization, **_):
    target = target_of(log_p)
    sigma = _sigma_np(np, omega, parametrization)
    m, lam = np.array(target.m), np.array(target.precision)
    log_ps = [target.c - 0.5 * (z - m) @ lam @ (z - m) for z in mu + sigma * eps]
    entropy = scipy.stats.multivariate_normal(mu, np.diag(sigma**2)).entropy()
    return np.asarray(np.mean(log_ps) + entropy)


def _naive(mu, omega, eps, *, log_p, parametrization, **_):
    sigma = _sigma_np(anp, omega, parametrization)
    entropy = anp.sum(anp.log(sigma)) + 0.5 * mu.shape[0] * (1.0 + math.log(2 * math.pi))
    return anp.mean(target_of(log_p).naive_log_p(mu + sigma * eps)) + entropy


def _reference_grad(mu, omega, eps, **params):
    """``(d/dmu, d/domega)`` of the naive ELBO, by autograd."""
    return (grad(lambda m: _naive(m, omega, eps, **params))(mu),
            grad(lambda w: _naive(mu, w, eps, **params))(omega))


def _reference_fit(mu, omega, eps, *, step_size, n_steps=None, **params):
    """Gradient ascent along :func:`_reference_grad`, the ELBO recorded before each step."""
    per_step = eps.ndim == 3
    n_steps = eps.shape[0] if n_steps is None else n_steps
    trace = []
    for t in range(n_steps):
        e = eps[t] if per_step else eps
        trace.append(_reference(mu, omega, e, **params))
        d_mu, d_omega = _reference_grad(mu, omega, e, **params)
        mu, omega = mu + step_size * d_mu, omega + step_size * d_omega
    return mu, omega, _sigma_np(np, omega, params["parametrization"]), np.array(trace)


def exact(target: GaussianTarget, mu, omega, parametrization):
    """Expected ELBO and its gradient for the Gaussian target (what moment-matched noise gives).

    ``c - 1/2 [(mu - m)^T Lambda (mu - m) + sum_d Lambda_dd sigma_d^2] + H[q]``;
    ``d/dmu = -Lambda (mu - m)``, ``d/domega = (1/sigma - Lambda_dd sigma) dsigma/domega``.
    """
    m, lam = np.array(target.m), np.array(target.precision)
    sigma = _sigma_np(np, omega, parametrization)
    diag = np.diag(lam)
    elbo = (target.c - 0.5 * ((mu - m) @ lam @ (mu - m) + diag @ sigma**2)
            + np.sum(np.log(sigma)) + 0.5 * mu.shape[0] * (1 + math.log(2 * math.pi)))
    return elbo, -lam @ (mu - m), (1.0 / sigma - diag * sigma) * _dsigma(omega, parametrization)


def optimum(target: GaussianTarget, parametrization):
    """``(m, omega)`` with ``sigma_d^2 = 1 / Lambda_dd``: where the expected gradient vanishes."""
    sigma = 1.0 / np.sqrt(np.diag(np.array(target.precision)))
    return np.array(target.m), _omega_for(sigma, parametrization)


def moment_matched_noise(d):
    """``sqrt(D) [I; -I]``: sample mean 0 and sample second moment ``I`` exactly."""
    return math.sqrt(d) * np.concatenate([np.eye(d), -np.eye(d)])


# -- inputs ---------------------------------------------------------------------------------


@st.composite
def _cases(draw, moment_matched=False):
    gen = draw(rng())
    d = draw(st.integers(1, 5))
    parametrization = draw(st.sampled_from(PARAMETRIZATIONS))
    sigma = gen.uniform(0.5, 2.0, d)
    eps = (moment_matched_noise(d) if moment_matched
           else gen.standard_normal((draw(st.integers(1, 6)), d)))
    primals = {"mu": gen.uniform(-1.5, 1.5, d), "omega": _omega_for(sigma, parametrization),
               "eps": eps}
    return Case(primals, target_params(gaussian_target(gen, d), parametrization))


@st.composite
def _fit_cases(draw, moment_matched=False):
    """Fixed noise ``(S, D)`` with ``n_steps``, or fresh noise ``(T, S, D)``; small steps."""
    case = draw(_cases(moment_matched))
    eps = case.primals["eps"]
    params = {**case.params, "step_size": draw(st.sampled_from([0.01, 0.03, 0.05]))}
    if moment_matched or draw(st.booleans()):
        params["n_steps"] = draw(st.integers(1, 12))
    else:
        gen = np.random.default_rng(eps.size)
        eps = gen.standard_normal((draw(st.integers(1, 8)),) + eps.shape)
        params["n_steps"] = None
    return Case({**case.primals, "eps": eps}, params)


def _bench_case(size):
    samples, d = size
    gen = np.random.default_rng(0)
    primals = {"mu": gen.standard_normal(d), "omega": np.zeros(d),
               "eps": gen.standard_normal((samples, d))}
    return Case(primals, target_params(gaussian_target(gen, d)))


# -- invariants (impl is refimpl's or a candidate's) ----------------------------------------


def _with(case, **changes):
    primals = {k: changes.get(k, v) for k, v in case.primals.items()}
    params = {**case.params, **{k: v for k, v in changes.items() if k not in case.primals}}
    return Case(primals, params)


def _elbo(impl, case, ctx, **changes):
    return float(run_outputs(ELBO, impl, _with(case, **changes), ctx)["out"])


def _gradient_by(op_name):
    """``(d/dmu, d/domega)`` from the op under test: the ELBO's VJP at cotangent 1, or the gradient."""

    def gradient(impl, case, ctx, **changes):
        case = _with(case, **changes)
        if op_name == "advi_elbo_grad":
            out = run_outputs(GRAD, impl, case, ctx)
            return out["mu"], out["omega"]
        cot = run_vjp(ELBO, impl, case, ctx, [np.ones(())])
        return cot["mu"][0], cot["omega"][0]

    return gradient


def _exact_gradient_error(got, case, ctx):
    target = target_of(case.params["log_p"])
    _, d_mu, d_omega = exact(target, ctx.rounded(case.primals["mu"]),
                             ctx.rounded(case.primals["omega"]), case.params["parametrization"])
    scale = np.linalg.norm(np.array(target.precision)) + 1.0
    return Err(rel_error(np.concatenate(got), np.concatenate([d_mu, d_omega]), scale=scale),
               "gradient")


def _moment_matched_is_exact(op_name):
    gradient = _gradient_by(op_name)

    def check(impl, case, ctx):
        errors = [_exact_gradient_error(gradient(impl, case, ctx), case, ctx)]
        if op_name == "advi_elbo":
            target = target_of(case.params["log_p"])
            elbo, _, _ = exact(target, ctx.rounded(case.primals["mu"]),
                               ctx.rounded(case.primals["omega"]), case.params["parametrization"])
            errors.append(Err(rel_error(_elbo(impl, case, ctx), elbo), "output"))
        return max(errors)

    return check


def _fixed_point(op_name):
    """At ``mu = m``, ``sigma_d^2 = 1/Lambda_dd`` the exact gradient vanishes."""
    gradient = _gradient_by(op_name)

    def check(impl, case, ctx):
        mu, omega = optimum(target_of(case.params["log_p"]), case.params["parametrization"])
        got = gradient(impl, case, ctx, mu=mu, omega=omega)
        return Err(float(np.max(np.abs(np.concatenate(got)))), "gradient")

    return check


def _entropy_matches_scipy(impl, case, ctx):
    """With ``log p = 0`` the estimate is the entropy, exactly: scipy's Gaussian entropy."""
    d = case.primals["mu"].shape[0]
    zero = GaussianTarget(tuple([0.0] * d), tuple([tuple([0.0] * d)] * d), 0.0)
    sigma = _sigma_np(np, ctx.rounded(case.primals["omega"]), case.params["parametrization"])
    expected = scipy.stats.multivariate_normal(np.zeros(d), np.diag(sigma**2)).entropy()
    return rel_error(_elbo(impl, case, ctx, **target_params(zero, case.params["parametrization"])),
                     expected)


def _same_sigma(case, parametrization):
    """``omega`` of ``parametrization`` at the case's ``sigma``."""
    sigma = _sigma_np(np, case.primals["omega"], case.params["parametrization"])
    return _omega_for(sigma, parametrization)


def _parametrizations_agree(impl, case, ctx):
    """``exp`` at ``omega = log sigma`` and softplus at ``omega = log(expm1(sigma))`` agree."""
    values = [_elbo(impl, case, ctx, omega=_same_sigma(case, p), parametrization=p)
              for p in PARAMETRIZATIONS]
    return rel_error(values[1], values[0])


def _gradient_in_sigma_agrees(impl, case, ctx):
    """``d/dmu`` and ``(d/domega) / (dsigma/domega)`` are the same for both parametrizations."""
    gradient = _gradient_by("advi_elbo_grad")
    per = []
    for p in PARAMETRIZATIONS:
        omega = _same_sigma(case, p)
        d_mu, d_omega = gradient(impl, case, ctx, omega=omega, parametrization=p)
        per.append(np.concatenate([d_mu, d_omega / _dsigma(ctx.rounded(omega), p)]))
    return Err(rel_error(per[1], per[0]), "gradient")


def _explicit_gradient_is_vjp(impl, case, ctx):
    """refimpl's ``advi_elbo_grad`` equals the first two cotangents of the VJP at cotangent 1."""
    local = {k: ctx.local(v) for k, v in case.primals.items()}
    explicit = advi_elbo_grad(local["mu"], local["omega"], local["eps"], **case.params)
    got = np.concatenate([np.asarray(g, np.float64) for g in explicit])
    return rel_error(got, np.concatenate(_gradient_by("advi_elbo")(impl, case, ctx)))


ELBO = register(Op(
    forward=advi_elbo,
    vjp=advi_elbo_vjp,
    primals=(Primal("mu"), Primal("omega"), Primal("eps")),
    cases=_cases,
    reference=_reference,
    naive=_naive,
    properties=(
        Property("moment-matched eps gives the exact ELBO and gradient",
                 _moment_matched_is_exact("advi_elbo"),
                 "eps with sample mean 0 and second moment I: estimate = exact Gaussian-target "
                 "ELBO, VJP at 1 = (-Lambda (mu - m), (1/sigma - Lambda_ii sigma) dsigma/domega)",
                 cases=lambda: _cases(moment_matched=True)),
        Property("fixed point sigma^2 = 1/diag(Lambda)", _fixed_point("advi_elbo"),
                 "the VJP at cotangent 1 vanishes at mu = m, sigma_i^2 = 1/Lambda_ii",
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
    section="6.3",
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((256, 10), (1024, 100)),
    bench_anchor=Anchor("definition"),
))

GRAD = register(Op(
    forward=advi_elbo_grad,
    primals=(Primal("mu"), Primal("omega"), Primal("eps")),
    outputs=(Output("mu"), Output("omega")),
    cases=_cases,
    reference=_reference_grad,
    properties=(
        Property("moment-matched eps gives the exact gradient",
                 _moment_matched_is_exact("advi_elbo_grad"),
                 "eps with sample mean 0 and second moment I: (-Lambda (mu - m), "
                 "(1/sigma - Lambda_ii sigma) dsigma/domega)",
                 cases=lambda: _cases(moment_matched=True)),
        Property("fixed point sigma^2 = 1/diag(Lambda)", _fixed_point("advi_elbo_grad"),
                 "the gradient vanishes at mu = m, sigma_i^2 = 1/Lambda_ii",
                 tolerance={"float64": 1e-13, "float32": 5e-6},
                 cases=lambda: _cases(moment_matched=True)),
        Property("gradient in sigma agrees across parametrizations", _gradient_in_sigma_agrees,
                 "d/dmu and (d/domega) / (dsigma/domega) are the same for exp and softplus"),
    ),
    tolerance=TOL,
    convention=CONVENTION + " Gradient: d/dmu = mean_s g_s, d/domega = (mean_s g_s eps_s + "
                            "1/sigma) dsigma/domega, g_s = grad_log_p(z_s).",
    section="6.3",
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((256, 10), (1024, 100)),
    bench_anchor=Anchor("autograd"),
))


# -- the fit --------------------------------------------------------------------------------


def _fit(impl, case, ctx, **changes):
    return run_outputs(FIT, impl, _with(case, **changes), ctx)


def _fit_never_decreases(impl, case, ctx):
    """Moment-matched noise: the objective is the exact, concave expected ELBO; steps of 0.02."""
    trace = _fit(impl, case, ctx, step_size=0.02, n_steps=20)["elbo"]
    return Err(max(0.0, -float(np.min(np.diff(trace)))) / float(np.max(np.abs(trace))), "elbo")


def _fit_fixed_point(impl, case, ctx):
    """Started at the optimum (moment-matched noise), the fit stays there."""
    mu, omega = optimum(target_of(case.params["log_p"]), case.params["parametrization"])
    out = _fit(impl, case, ctx, mu=mu, omega=omega, n_steps=5)
    return max(Err(rel_error(out["mu"], ctx.rounded(mu), scale=1.0), "mu"),
               Err(rel_error(out["omega"], ctx.rounded(omega), scale=1.0), "omega"))


def _fresh_noise_of_equal_draws(impl, case, ctx):
    """``eps`` of shape ``(T, S, D)`` with ``T`` equal slices equals fixed ``eps`` and ``n_steps = T``."""
    eps = case.primals["eps"]
    fixed = eps if eps.ndim == 2 else eps[0]
    steps = case.params["n_steps"] or eps.shape[0]
    once = _fit(impl, case, ctx, eps=fixed, n_steps=steps)
    tiled = _fit(impl, case, ctx, eps=np.broadcast_to(fixed, (steps,) + fixed.shape).copy(),
                 n_steps=None)
    return max(Err(rel_error(tiled[k], once[k]), k) for k in once)


def _fit_bench_case(size):
    """:func:`_bench_case` and 20 steps of 0.05."""
    case = _bench_case(size)
    return Case(case.primals, {**case.params, "step_size": 0.05, "n_steps": 20})


FIT = register(Op(
    forward=advi_fit,
    primals=(Primal("mu"), Primal("omega"), Primal("eps")),
    outputs=(Output("mu"), Output("omega"), Output("sigma"), Output("elbo")),
    cases=_fit_cases,
    reference=_reference_fit,
    properties=(
        Property("ELBO never decreases with small steps", _fit_never_decreases,
                 "moment-matched eps (a concave objective), 20 steps of 0.02: the trace never "
                 "decreases, to 50 ulps of max |ELBO|", tolerance=ROUND,
                 cases=lambda: _fit_cases(moment_matched=True)),
        Property("optimum is a fixed point", _fit_fixed_point,
                 "moment-matched eps, started at mu = m, sigma^2 = 1/diag(Lambda): stays there",
                 tolerance={"float64": 1e-13, "float32": 5e-6},
                 cases=lambda: _fit_cases(moment_matched=True)),
        Property("fresh noise of equal draws is fixed noise", _fresh_noise_of_equal_draws,
                 "eps (T, S, D) with equal slices gives the fit with eps (S, D), n_steps = T"),
    ),
    tolerance=FIT_TOL,
    convention="Plain gradient ascent (mu, omega) += step_size advi_elbo_grad(...), n_steps "
               "steps; eps (S, D) reused at every step, or (T, S, D) fresh per step (n_steps "
               "default T); elbo holds the estimate before each step.",
    section="6.3",
    references=REFERENCES,
    bench_case=_fit_bench_case, bench_sizes=((64, 10),), bench_anchor=Anchor("autograd"),
))
