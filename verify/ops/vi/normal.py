r"""Records of :mod:`refimpl.vi.normal` (docs/conventions.rst, section 6.1).

``normal_cavi`` is a fit: primal ``x``, the Normal-Gamma prior and the
stopping rule as params, outputs ``mean, var, shape, rate`` compared and the
ELBO trace, ``n_iter`` and ``converged`` returned but not compared (their
lengths and counts depend on rounding). Ground truth is the fixed point in
closed form: with ``m = (kappa0 mu0 + n xbar) / (kappa0 + n)`` and
``C = sum (x_i - m)^2 + kappa0 (m - mu0)^2`` the two coordinate updates meet
at ``E[lambda] = (a0 + n/2) / (b0 + C/2)`` (flat defaults:
``(n + 1) / (n s2)``), ``var = 1 / ((kappa0 + n) E[lambda])``,
``shape = a0 + (n + 1)/2``, ``rate = shape / E[lambda]``.

``normal_elbo`` (primals ``x`` and the four 0-d variational parameters) is
checked against the ELBO assembled from ``scipy.special`` and the entropies
of ``scipy.stats``. The fit's properties read its ELBO trace through the
same reference.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special as sp
import scipy.stats as stats
from hypothesis import strategies as st

from refimpl.vi.normal import normal_cavi, normal_elbo

from ...checks import Err, rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng

CONVENTION_CAVI = (
    "x_i ~ N(mu, 1/lambda), mu | lambda ~ N(mu0, 1/(kappa0 lambda)), lambda ~ Gamma(a0, rate b0) "
    "(defaults: the flat limit kappa0 = 0, a0 = 1/2, b0 = 0); q(mu) = N(mean, var), "
    "q(lambda) = Gamma(shape, rate); a sweep updates q(mu) then q(lambda), elbo holds the ELBO "
    "after each update (2 per sweep), stop when a sweep changes E[lambda] by <= tol E[lambda]."
)
CONVENTION_ELBO = (
    "E_q[log p(x, mu, lambda)] + H[q(mu)] + H[q(lambda)] for q(mu) = N(mean, var), "
    "q(lambda) = Gamma(shape, rate); the normalising constants of improper prior factors "
    "(kappa0 = 0, b0 = 0) are dropped."
)
REFERENCES = (
    "Bishop 2006, Pattern Recognition and Machine Learning, section 10.1.3",
    "Blei, Kucukelbir and McAuliffe 2017, Variational inference: a review for statisticians (JASA)",
    "Murphy 2007, Conjugate Bayesian analysis of the Gaussian distribution (technical note)",
)
TOL = {"float64": 1e-12, "float32": 5e-5}
# Rounding allowance of an ELBO comparison, relative to |ELBO|.
ROUND = {"float64": 50 * 2.0**-52, "float32": 50 * 2.0**-23}
PRIOR = {"mu0": 0.0, "kappa0": 0.0, "a0": 0.5, "b0": 0.0}
LOG_2PI = math.log(2 * math.pi)


# -- the definition -------------------------------------------------------------------------


def _prior(params):
    return {k: params.get(k, v) for k, v in PRIOR.items()}


def _fixed_point(x, *, mu0=0.0, kappa0=0.0, a0=0.5, b0=0.0, **_):
    """``(mean, var, shape, rate)`` where both coordinate updates hold (see the module docstring)."""
    n = x.shape[0]
    kappa_n = kappa0 + n
    mean = (kappa0 * mu0 + n * np.mean(x)) / kappa_n
    scatter = np.sum((x - mean) ** 2) + kappa0 * (mean - mu0) ** 2
    e_lam = (a0 + 0.5 * n) / (b0 + 0.5 * scatter)
    shape = a0 + 0.5 * (n + 1)
    return mean, 1.0 / (kappa_n * e_lam), shape, shape / e_lam


def _reference_cavi(x, **params):
    return dict(zip(("mean", "var", "shape", "rate"), map(np.asarray, _fixed_point(x, **params))))


def elbo_reference(x, mean, var, shape, rate, *, mu0=0.0, kappa0=0.0, a0=0.5, b0=0.0, **_):
    """The ELBO term by term: expectations with ``scipy.special``, entropies from ``scipy.stats``."""
    mean, var, shape, rate = (float(v) for v in (mean, var, shape, rate))
    n = x.shape[0]
    e_lam, e_log_lam = shape / rate, sp.digamma(shape) - math.log(rate)
    likelihood = 0.5 * n * (e_log_lam - LOG_2PI) - 0.5 * e_lam * (np.sum((x - mean) ** 2) + n * var)
    prior_mu = 0.5 * e_log_lam - 0.5 * kappa0 * e_lam * ((mean - mu0) ** 2 + var)
    if kappa0 > 0:  # the normalising constant of a proper N(mu0, 1/(kappa0 lambda))
        prior_mu += 0.5 * (math.log(kappa0) - LOG_2PI)
    prior_lam = (a0 - 1.0) * e_log_lam - b0 * e_lam
    if b0 > 0:  # ... and of a proper Gamma(a0, b0)
        prior_lam += a0 * math.log(b0) - sp.gammaln(a0)
    entropies = stats.norm(mean, math.sqrt(var)).entropy() + stats.gamma(shape, scale=1 / rate).entropy()
    return np.asarray(likelihood + prior_mu + prior_lam + entropies)


def log_evidence(x, *, mu0, kappa0, a0, b0, **_):
    """``log p(x)`` of a proper Normal-Gamma prior: a multivariate t (scipy), Murphy (2007) eq. 110."""
    n = x.shape[0]
    shape = b0 / a0 * (np.eye(n) + np.ones((n, n)) / kappa0)
    return float(stats.multivariate_t(np.full(n, mu0), shape, df=2 * a0).logpdf(x))


# -- inputs ---------------------------------------------------------------------------------


def _draw_prior(draw, gen, proper=False):
    """Flat, partly flat or proper priors (each of kappa0 and b0 zero or not)."""
    prior = {"mu0": float(gen.uniform(-3, 3))}
    for name, low, high in (("kappa0", 0.1, 5.0), ("b0", 0.1, 5.0)):
        prior[name] = float(gen.uniform(low, high)) if proper or draw(st.booleans()) else 0.0
    prior["a0"] = float(gen.uniform(0.5, 5.0)) if proper or draw(st.booleans()) else 0.5
    if not proper and draw(st.booleans()):
        return {}  # the defaults: the lecture's flat priors
    return prior


def _data(draw, gen, max_n=40):
    n = draw(st.integers(2, max_n))
    return gen.uniform(-5, 5) + gen.uniform(0.3, 3.0) * gen.standard_normal(n)


@st.composite
def _cavi_cases(draw, proper=False, max_n=40):
    gen = draw(rng())
    x = _data(draw, gen, max_n)
    params = _draw_prior(draw, gen, proper)
    # Start E[lambda] anywhere from 1/100 to 100 times the data's precision (or the default).
    start = draw(st.sampled_from([None, 0.01, 0.3, 3.0, 100.0]))
    params["e_lambda"] = None if start is None else float(start / np.var(x))
    params["tol"] = draw(st.sampled_from([None, 1e-14]))
    params["max_iter"] = 100
    return Case({"x": x}, params)


@st.composite
def _elbo_cases(draw):
    gen = draw(rng())
    x = _data(draw, gen)
    q = {"mean": np.mean(x) + gen.uniform(-1, 1), "var": gen.uniform(0.01, 2.0),
         "shape": gen.uniform(0.5, 20.0), "rate": gen.uniform(0.1, 50.0)}
    return Case({"x": x, **{k: np.asarray(v) for k, v in q.items()}}, _draw_prior(draw, gen))


# -- invariants of the fit (impl may be refimpl's or a candidate's) -------------------------


def _fit(impl, case, ctx, names=None, **changes):
    return run_outputs(CAVI, impl, Case(case.primals, {**case.params, **changes}), ctx, names)


def _elbo_never_decreases(impl, case, ctx):
    """The largest decrease over single updates, relative to ``max |ELBO|`` (8 sweeps)."""
    trace = _fit(impl, case, ctx, ["elbo"], tol=0.0, max_iter=8)["elbo"]
    return Err(max(0.0, -float(np.min(np.diff(trace)))) / float(np.max(np.abs(trace))), "elbo")


def _last_elbo_is_the_elbo_of_q(impl, case, ctx):
    """``elbo[-1]`` equals the reference ELBO at the returned ``(mean, var, shape, rate)``."""
    out = _fit(impl, case, ctx, ["mean", "var", "shape", "rate", "elbo"], tol=0.0, max_iter=3)
    q = [out[k] for k in ("mean", "var", "shape", "rate")]
    expected = elbo_reference(ctx.rounded(case.primals["x"]), *q, **_prior(case.params))
    return Err(rel_error(out["elbo"][-1], expected), "elbo[-1]")


def _fixed_point_is_stationary(impl, case, ctx):
    """One more sweep, started at the returned ``E[lambda] = shape / rate``, changes nothing."""
    first = _fit(impl, case, ctx)
    again = _fit(impl, case, ctx, e_lambda=float(first["shape"] / first["rate"]), max_iter=1)
    return max(Err(rel_error(again[k], first[k]), k) for k in first)


def _two_entries_per_sweep(impl, case, ctx):
    """``tol = 0``: ``n_iter = max_iter`` sweeps, 2 ELBO entries each; default tol: converged."""
    names = ["elbo", "n_iter", "converged"]
    fixed = _fit(impl, case, ctx, names, tol=0.0, max_iter=3)
    settled = _fit(impl, case, ctx, ["n_iter", "converged"], tol=None, max_iter=100)
    ok = (fixed["elbo"].shape == (6,) and int(fixed["n_iter"]) == 3 and not fixed["converged"]
          and bool(settled["converged"]) and 1 <= int(settled["n_iter"]) <= 100)
    return Err(0.0 if ok else float("inf"), "elbo, n_iter, converged")


def _below_the_log_evidence(impl, case, ctx):
    """``ELBO <= log p(x)`` (scipy's multivariate t), relative to ``|log p(x)|``."""
    trace = _fit(impl, case, ctx, ["elbo"], tol=0.0, max_iter=20)["elbo"]
    evidence = log_evidence(ctx.rounded(case.primals["x"]), **_prior(case.params))
    return Err(max(0.0, float(trace[-1]) - evidence) / abs(evidence), "elbo[-1]")


def _bench_data(size):
    return Case({"x": 2.0 + 1.5 * np.random.default_rng(0).standard_normal(size)})


CAVI = register(Op(
    forward=normal_cavi,
    primals=(Primal("x"),),
    outputs=(Output("mean"), Output("var"), Output("shape"), Output("rate"),
             Output("elbo", compared=False), Output("n_iter", dtype="int", compared=False),
             Output("converged", dtype="bool", compared=False)),
    cases=_cavi_cases,
    reference=_reference_cavi,
    properties=(
        Property("ELBO never decreases", _elbo_never_decreases,
                 "over every single update (8 sweeps, tol = 0), to 50 ulps of max |ELBO|",
                 tolerance=ROUND),
        Property("last ELBO is the ELBO of q", _last_elbo_is_the_elbo_of_q,
                 "elbo[-1] equals the scipy-assembled ELBO at the returned mean, var, shape, rate"),
        Property("fixed point is stationary", _fixed_point_is_stationary,
                 "one sweep from e_lambda = shape / rate returns the same q"),
        Property("two ELBO entries per sweep", _two_entries_per_sweep,
                 "tol = 0: n_iter = max_iter, 2 n_iter entries, not converged; default tol: converged"),
        Property("ELBO below the log evidence", _below_the_log_evidence,
                 "proper prior: ELBO <= log p(x), scipy's multivariate t marginal",
                 tolerance=ROUND, cases=lambda: _cavi_cases(proper=True, max_n=25)),
    ),
    tolerance=TOL,
    convention=CONVENTION_CAVI,
    section="6.1",
    references=REFERENCES,
    bench_case=_bench_data, bench_sizes=((10**4,), (10**6,)), bench_anchor=Anchor("definition"),
))


# -- the ELBO -------------------------------------------------------------------------------


def _elbo_at(impl, case, ctx, q):
    return run_outputs(ELBO, impl, Case({**case.primals, **q}, case.params), ctx)["out"]


def coordinate_optimum(x, shape, rate, mean, var, *, mu0=0.0, kappa0=0.0, a0=0.5, b0=0.0, **_):
    """The CAVI updates: ``(mean, var)`` given ``q(lambda) = Gamma(shape, rate)``, and
    ``(shape, rate)`` given ``q(mu) = N(mean, var)``."""
    n = x.shape[0]
    kappa_n = kappa0 + n
    mu_star = (kappa0 * mu0 + n * np.mean(x)) / kappa_n
    var_star = rate / (kappa_n * shape)
    scatter = np.sum((x - mean) ** 2) + kappa0 * (mean - mu0) ** 2
    return mu_star, var_star, a0 + 0.5 * (n + 1), b0 + 0.5 * (scatter + kappa_n * var)


def _maximal_at_the_coordinate_optima(impl, case, ctx):
    """Each CAVI update maximises the ELBO in its factor: moving off it never raises the ELBO.

    ``q(mu)`` at its optimum (given the case's ``q(lambda)``), then ``q(lambda)``
    at its optimum (given the case's ``q(mu)``); each parameter moved by 1%
    either way. Returns the largest gain relative to ``|ELBO|``.
    """
    p = {k: float(ctx.rounded(v)) for k, v in case.primals.items() if k != "x"}
    x = ctx.rounded(case.primals["x"])
    mu_star, var_star, a_star, b_star = coordinate_optimum(x, **p, **_prior(case.params))
    gains = {}
    for best in ({"mean": mu_star, "var": var_star}, {"shape": a_star, "rate": b_star}):
        at = {**p, **best}
        top = float(_elbo_at(impl, case, ctx, {k: np.asarray(v) for k, v in at.items()}))
        for name in best:
            for factor in (0.99, 1.01):
                moved = {k: np.asarray(v * factor if k == name else v) for k, v in at.items()}
                gains[name] = max(gains.get(name, 0.0),
                                  float(_elbo_at(impl, case, ctx, moved)) - top)
    scale = abs(float(elbo_reference(x, **p, **_prior(case.params))))
    return max(Err(g / scale, f"gain moving {k}") for k, g in gains.items())


def _elbo_bench_case(size):
    """:func:`_bench_data` and a factorised posterior near its fit."""
    x = _bench_data(size).primals["x"]
    q = {"mean": np.mean(x), "var": np.var(x) / x.size, "shape": x.size / 2,
         "rate": x.size * np.var(x) / 2}
    return Case({"x": x, **{k: np.asarray(v) for k, v in q.items()}})


ELBO = register(Op(
    forward=normal_elbo,
    primals=(Primal("x"), Primal("mean"), Primal("var"), Primal("shape"), Primal("rate")),
    cases=_elbo_cases,
    reference=elbo_reference,
    properties=(
        Property("maximal at the coordinate optima", _maximal_at_the_coordinate_optima,
                 "moving q(mu) off its CAVI update (or q(lambda) off its) by 1% lowers the ELBO",
                 tolerance=ROUND),
    ),
    tolerance=TOL,
    convention=CONVENTION_ELBO,
    section="6.1",
    references=REFERENCES,
    bench_case=_elbo_bench_case, bench_sizes=((10**4,), (10**6,)),
    bench_anchor=Anchor("definition"),
))
