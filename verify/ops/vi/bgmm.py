r"""Records of :mod:`refimpl.vi.bgmm` (docs/conventions.rst, section 6.2).

``bgmm_cavi`` is a fit: primals ``X (N, D)`` and ``resp_init (N, K)`` (the
optional ``mean_prior`` and ``covariance_prior`` arrays too), scikit-learn's
options as params. Ground truth is scikit-learn's ``BayesianGaussianMixture``
started from the same responsibilities (its k-means start replaced), compared
on ``weights, means, covariances, precisions, precisions_cholesky,
degrees_of_freedom, mean_precision, weight_concentration, lower_bounds,
n_iter, converged`` and the final responsibilities (its ``predict_proba(X)``);
the full ELBO trace is checked by the properties. Cases are small (``N <= 30``,
``D <= 3``, ``K <= 3``, at most 4 iterations) so that a check takes
milliseconds.

``bgmm_elbo``, ``bgmm_predict_proba`` and ``bgmm_predict`` take the fit as a
``"tree"`` primal ``result`` (a :class:`refimpl.vi.BGMMResult`, drawn by
fitting refimpl's ``bgmm_cavi`` to drawn data). A candidate receives it with
every array in its own library and computes from its public fields, as the
references here do: ``W_k = precisions_k / nu_k`` (``degrees_of_freedom``,
one value for ``tied``), ``m_k = means_k``, ``beta_k = mean_precision_k``,
``E[log pi]`` from ``weight_concentration`` (Dirichlet ``alpha`` ``(K,)`` or
stick-breaking ``(2, K)``), the family from ``prior.covariance_type`` and
``prior.weight_concentration_prior_type``, and the prior (``bgmm_elbo``) from
``prior.weight_concentration, mean_precision, mean, degrees_of_freedom,
covariance`` (``W_0^{-1}``). References: the E-step and the full ELBO
(Bishop 10.70-10.77) written with ``scipy.special`` and the entropies of
``scipy.stats``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from types import SimpleNamespace

import numpy as np
import scipy.special as sp
import scipy.stats as stats
from hypothesis import assume
from hypothesis import strategies as st

from refimpl.vi.bgmm import (
    COVARIANCE_TYPES,
    WEIGHT_PRIOR_TYPES,
    bgmm_cavi,
    bgmm_elbo,
    bgmm_predict,
    bgmm_predict_proba,
)

from ...checks import Err, mismatch, rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, get_op, register
from ...strategies import rng

CONVENTION = (
    "scikit-learn's BayesianGaussianMixture (1.9) model, priors, defaults and update order, "
    "started from resp_init: an M-step, then per iteration E-step, M-step and both bounds "
    "(full ELBO and sklearn's lower_bounds_); N_k + 10 eps; S_k + reg_covar I; stop when "
    "sklearn's bound changes by less than tol."
)
REFERENCES = (
    "Bishop 2006, Pattern Recognition and Machine Learning, section 10.2",
    "Blei and Jordan 2006, Variational inference for Dirichlet process mixtures (Bayesian Analysis 1)",
    "scikit-learn, sklearn.mixture.BayesianGaussianMixture (1.9)",
)
TOL = {"float64": 1e-10, "float32": 3e-3}  # a fit of a few iterations against scikit-learn
EXACT_TOL = {"float64": 1e-11, "float32": 1e-4}  # one evaluation, no iterations
ROUND = {"float64": 100 * 2.0**-52, "float32": 100 * 2.0**-23}
FITTED = ("weights", "means", "covariances", "precisions", "precisions_cholesky",
          "degrees_of_freedom", "mean_precision", "weight_concentration", "lower_bounds",
          "n_iter", "converged", "resp")
LOG_2PI = math.log(2 * math.pi)


# -- the fitted q and the prior from public fields -------------------------------------------


def _full_matrices(values, layout, K, d):
    """``(K, D, D)`` matrices from a full ``(K, D, D)``, tied ``(D, D)``, diag ``(K, D)`` or
    spherical ``(K,)`` array."""
    values = np.asarray(values, dtype=np.float64)
    if layout == "tied":
        return np.broadcast_to(values, (K, d, d))
    if layout == "diag":
        return values[:, :, None] * np.eye(d)
    if layout == "spherical":
        return values[:, None, None] * np.eye(d)
    return values


def expected_log_pi(concentration):
    """``E[log pi_k]``: Dirichlet ``psi(alpha_k) - psi(sum alpha)``, or stick-breaking
    ``psi(g1_k) - psi(g1_k + g2_k) + sum_{j<k} (psi(g2_j) - psi(g1_j + g2_j))``."""
    c = np.asarray(concentration, dtype=np.float64)
    if c.ndim == 1:
        return sp.digamma(c) - sp.digamma(c.sum())
    total = sp.digamma(c[0] + c[1])
    rest = sp.digamma(c[1]) - total
    return sp.digamma(c[0]) - total + np.concatenate([[0.0], np.cumsum(rest)[:-1]])


def fitted_q(result):
    """``q`` from a result's public fields (any object with them): ``nu, beta, m, W (K, D, D)``,
    ``E[log |Lambda_k|]`` and ``E[log pi_k]``."""
    means = np.asarray(result.means, dtype=np.float64)
    K, d = means.shape
    nu = np.broadcast_to(np.asarray(result.degrees_of_freedom, dtype=np.float64), (K,))
    W = _full_matrices(result.precisions, result.prior.covariance_type, K, d) / nu[:, None, None]
    e_log_det = (sp.digamma(0.5 * (nu[:, None] - np.arange(d))).sum(axis=1) + d * math.log(2)
                 + np.linalg.slogdet(W)[1])
    return SimpleNamespace(nu=nu, beta=np.asarray(result.mean_precision, dtype=np.float64),
                           m=means, W=W, e_log_det=e_log_det,
                           e_log_pi=expected_log_pi(result.weight_concentration), K=K, d=d)


def _quadratic(W, V):
    """``v_nk^T W_k v_nk`` for ``V (N, K, D)``."""
    return np.einsum("nki,kij,nkj->nk", V, W, V)


def expected_log_joint(q, X):
    """``E[log pi_k] + E[log N(x_n | mu_k, Lambda_k^{-1})]``, shape ``(N, K)`` (Bishop 10.46):
    ``E[log pi_k] + E[log|Lambda_k|]/2 - D/2 log 2 pi - D/(2 beta_k) - nu_k/2 (x - m_k)^T W_k (x - m_k)``.

    In ``numpy.longdouble``: where it is x87 extended or quad precision (x86-64, aarch64 Linux),
    its range (to 1e4932) holds the quadratic forms of data near 1e300, so the reference judges
    there too; where it is double, it overflows as the definition does.
    """
    X = np.asarray(X, dtype=np.float64)
    diff = (X[:, None, :] - q.m[None, :, :]).astype(np.longdouble)
    return (q.e_log_pi + 0.5 * q.e_log_det - 0.5 * q.d * LOG_2PI - 0.5 * q.d / q.beta
            - 0.5 * q.nu * _quadratic(q.W.astype(np.longdouble), diff))


def e_step_reference(result, X):
    """Responsibilities: the softmax of :func:`expected_log_joint` over components."""
    with np.errstate(invalid="ignore"):  # a candidate's NaN parameters give NaN, reported as such
        log_rho = expected_log_joint(fitted_q(result), X)
        e = np.exp(log_rho - np.max(log_rho, axis=1, keepdims=True))
        return (e / np.sum(e, axis=1, keepdims=True)).astype(np.float64)


def _log_wishart_normaliser(W, nu):
    """``log B(W, nu) = -nu/2 log|W| - nu D/2 log 2 - log Gamma_D(nu/2)`` (``scipy.special.multigammaln``)."""
    d = W.shape[-1]
    return -0.5 * nu * np.linalg.slogdet(W)[1] - 0.5 * nu * d * math.log(2) - sp.multigammaln(0.5 * nu, d)


def _weight_terms(concentration, alpha0):
    """``E[log p(pi)] - E[log q(pi)]`` with the entropies of ``scipy.stats``."""
    c = np.asarray(concentration, dtype=np.float64)
    if c.ndim == 1:
        K = c.shape[0]
        log_c0 = sp.gammaln(K * alpha0) - K * sp.gammaln(alpha0)
        return (log_c0 + (alpha0 - 1) * expected_log_pi(c).sum()
                + stats.dirichlet(c).entropy())
    e_log_rest = sp.digamma(c[1]) - sp.digamma(c[0] + c[1])  # E[log(1 - v_k)]
    return float(np.sum(math.log(alpha0) + (alpha0 - 1) * e_log_rest
                        + stats.beta(c[0], c[1]).entropy()))


def _mean_precision_terms(q, prior):
    """``E[log p(mu, Lambda)] - E[log q(mu, Lambda)]`` summed over components.

    Per component ``E[log N(mu | m0, (beta0 Lambda)^{-1})] + E[log W(Lambda | W0, nu0)]
    - E[log N(mu | m_k, (beta_k Lambda)^{-1})] + H[W(W_k, nu_k)]``, with
    ``E[(mu - a)^T Lambda (mu - a)] = D / beta_k + nu_k (m_k - a)^T W_k (m_k - a)``.
    """
    d, K = q.d, q.K
    beta0, nu0 = float(prior.mean_precision), float(prior.degrees_of_freedom)
    m0 = np.asarray(prior.mean, dtype=np.float64)
    cov0 = _full_matrices(np.asarray(prior.covariance)[None], prior.covariance_type, 1, d)[0]
    W0 = np.linalg.inv(cov0)
    diff = (q.m - m0)[None]
    prior_mu = (0.5 * d * math.log(beta0 / (2 * math.pi)) + 0.5 * q.e_log_det
                - 0.5 * beta0 * (d / q.beta + q.nu * _quadratic(q.W, diff)[0]))
    prior_lam = (_log_wishart_normaliser(W0, nu0) + 0.5 * (nu0 - d - 1) * q.e_log_det
                 - 0.5 * q.nu * np.einsum("ij,kji->k", cov0, q.W))
    log_q_mu = 0.5 * d * np.log(q.beta / (2 * math.pi)) + 0.5 * q.e_log_det - 0.5 * d
    entropy_lam = np.array([stats.wishart(df=q.nu[k], scale=q.W[k]).entropy() for k in range(K)])
    return float(np.sum(prior_mu + prior_lam - log_q_mu + entropy_lam))


def on_the_simplex(name, resp):
    """``resp`` as float64, ValueError unless its rows are probabilities (to 1e-6): the ground
    truth is defined there only (scikit-learn would take any weights)."""
    r = np.asarray(resp, dtype=np.float64)
    if not (np.all(r >= 0) and np.all(np.abs(r.sum(axis=1) - 1.0) <= 1e-6)):
        raise ValueError(f"{name}: rows must be probabilities")
    return r


def elbo_reference(result, X, resp):
    """The full ELBO (Bishop 10.70-10.77) at ``resp`` and the result's ``q`` and prior."""
    q = fitted_q(result)
    r = on_the_simplex("resp", resp)
    with np.errstate(over="ignore"):  # an ELBO beyond the float range is -inf
        joint = float(np.sum(r * expected_log_joint(q, X)))  # E[log p(X|Z,mu,Lambda)] + E[log p(Z|pi)]
    entropy_z = -float(np.sum(sp.xlogy(r, r)))
    weights = _weight_terms(result.weight_concentration, float(result.prior.weight_concentration))
    return np.asarray(joint + entropy_z + weights + _mean_precision_terms(q, result.prior))


# -- scikit-learn, started from given responsibilities --------------------------------------


def sklearn_fit(X, resp_init, *, mean_prior=None, covariance_prior=None, **options):
    """scikit-learn's ``BayesianGaussianMixture`` with its initialisation replaced by ``resp_init``."""
    from sklearn.mixture import BayesianGaussianMixture

    class FromResp(BayesianGaussianMixture):
        def _initialize_parameters(self, X, random_state, xp=None):
            self._initialize(X, resp_init)

    if covariance_prior is not None and np.ndim(covariance_prior) == 0:
        covariance_prior = float(covariance_prior)  # spherical: a number
    model = FromResp(n_components=resp_init.shape[1], mean_prior=mean_prior,
                     covariance_prior=covariance_prior, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning when max_iter is reached
        model.fit(X)
    return model


def _reference_fit(X, resp_init, **options):
    model = sklearn_fit(X, on_the_simplex("resp_init", resp_init), **options)
    values = {name: getattr(model, f"{name}_") for name in FITTED[:-1]}
    values["weight_concentration"] = np.array(values["weight_concentration"])
    values["lower_bounds"] = np.ravel(values["lower_bounds"])
    values["resp"] = model.predict_proba(X)
    return {k: np.asarray(v) for k, v in values.items()}


# -- inputs ---------------------------------------------------------------------------------


def _mixture(gen, n, d):
    """``n`` points from up to three separated Gaussian clusters in ``d`` dimensions."""
    centres = 4.0 * gen.standard_normal((3, d))
    labels = np.arange(n) % 3
    return centres[labels] + gen.standard_normal((n, d)) @ gen.uniform(0.5, 1.5, (d, d))


def _responsibilities(draw, gen, n, K):
    """Random rows on the simplex; sometimes one component starts empty (K >= 2)."""
    resp = gen.uniform(0.05, 1.0, size=(n, K))
    if K >= 2 and draw(st.booleans()):
        resp[:, draw(st.integers(0, K - 1))] = 0.0
    return resp / resp.sum(axis=1, keepdims=True)


def _spd(gen, d):
    a = gen.standard_normal((d, d))
    return a @ a.T / d + np.eye(d)


def _priors(draw, gen, d, covariance_type):
    """Explicit priors (or scikit-learn's defaults): primals and params."""
    if not draw(st.booleans()):
        return {}, {}
    primals = {"mean_prior": gen.uniform(-2, 2, d)}
    cov = _spd(gen, d)
    primals["covariance_prior"] = {"diag": np.diag(cov).copy(), "spherical": np.asarray(cov[0, 0])
                                   }.get(covariance_type, cov)
    params = {"weight_concentration_prior": float(gen.uniform(0.1, 3.0)),
              "mean_precision_prior": float(gen.uniform(0.1, 3.0)),
              "degrees_of_freedom_prior": float(d - 1 + gen.uniform(0.5, 4.0))}
    return primals, params


@st.composite
def fit_cases(draw, covariance_types=COVARIANCE_TYPES, weight_types=WEIGHT_PRIOR_TYPES, max_iter=4):
    """``bgmm_cavi`` cases: ``N <= 30`` points in ``D <= 3`` dimensions, ``K <= 3`` components,
    explicit or default priors, ``tol = 0`` and at most ``max_iter`` iterations.

    A candidate that supports only some covariance types or weight priors passes
    ``verify.check(..., cases=lambda: fit_cases(covariance_types=("full",)))``.
    """
    gen = draw(rng())
    d, K = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(max(K, 6), 30))
    covariance_type = draw(st.sampled_from(covariance_types))
    primals, params = _priors(draw, gen, d, covariance_type)
    primals = {"X": _mixture(gen, n, d), "resp_init": _responsibilities(draw, gen, n, K), **primals}
    params.update(covariance_type=covariance_type,
                  weight_concentration_prior_type=draw(st.sampled_from(weight_types)),
                  reg_covar=draw(st.sampled_from([1e-6, 0.0])), tol=0.0,
                  max_iter=draw(st.integers(1, max_iter)))
    return Case(primals, params)


@st.composite
def _one_component_cases(draw):
    """``K = 1``, Dirichlet weights, ``reg_covar = 0``: ``q`` is the exact posterior."""
    case = draw(fit_cases())
    X = case.primals["X"]
    primals = {k: v for k, v in case.primals.items() if k != "resp_init"}
    params = {**case.params, "weight_concentration_prior_type": "dirichlet_distribution",
              "covariance_type": draw(st.sampled_from(["full", "tied"])), "reg_covar": 0.0,
              "max_iter": 2}
    if "covariance_prior" in primals:
        primals["covariance_prior"] = _spd(np.random.default_rng(X.size), X.shape[1])
    return Case({**primals, "resp_init": np.ones((X.shape[0], 1))}, params)


def _fitted_result(draw):
    """A fit of refimpl's ``bgmm_cavi`` to drawn data, and that data."""
    case = draw(fit_cases())
    p = case.primals
    options = {k: v for k, v in p.items() if k not in ("X", "resp_init")}
    return bgmm_cavi(p["X"], p["resp_init"], **options, **case.params), p["X"]


@st.composite
def _predict_cases(draw, margin=None):
    """The fit's data followed by new points; with ``margin``, only rows whose best component
    leads the next by at least ``margin`` in log-probability (labels that rounding cannot flip)."""
    result, X = _fitted_result(draw)
    gen = np.random.default_rng(X.size)
    new = X[gen.integers(0, len(X), 8)] + gen.standard_normal((8, X.shape[1]))
    X = np.concatenate([X, new])
    if margin is not None:
        top = np.sort(expected_log_joint(fitted_q(result), X), axis=1)
        X = X[top[:, -1] - (top[:, -2] if top.shape[1] > 1 else -np.inf) >= margin]
        assume(len(X) > 0)
    return Case({"result": result, "X": X})


@st.composite
def _elbo_cases(draw):
    """The fit's final responsibilities, random ones, or a mix."""
    result, X = _fitted_result(draw)
    gen = np.random.default_rng(X.size)
    other = gen.dirichlet(np.ones(result.resp.shape[1]), size=len(X))
    t = draw(st.sampled_from([0.0, 0.5, 1.0]))
    return Case({"result": result, "X": X, "resp": (1 - t) * result.resp + t * other})


# -- invariants of the fit ------------------------------------------------------------------


def _fit(impl, case, ctx, names, **changes):
    return run_outputs(CAVI, impl, Case(case.primals, {**case.params, **changes}), ctx, names)


def _exact_coordinate_ascent(impl, case, ctx):
    return _fit(impl, case, ctx, ["elbo", "lower_bounds"], reg_covar=0.0, tol=0.0, max_iter=6)


def _elbo_never_decreases(impl, case, ctx):
    """``reg_covar = 0`` (every update the exact coordinate optimum): the full ELBO never
    decreases, relative to ``max |ELBO|``."""
    trace = _exact_coordinate_ascent(impl, case, ctx)["elbo"]
    return Err(max(0.0, -float(np.min(np.diff(trace)))) / float(np.max(np.abs(trace))), "elbo")


def _constant_offset(impl, case, ctx):
    """``reg_covar = 0``: ``elbo - lower_bounds`` is one constant (sklearn drops terms that are
    constant, or cancel at the exact M-step); its spread relative to ``max |ELBO|``."""
    out = _exact_coordinate_ascent(impl, case, ctx)
    return Err(float(np.ptp(out["elbo"] - out["lower_bounds"]) / np.max(np.abs(out["elbo"]))),
               "elbo - lower_bounds")


def _as_result(out, params):
    """The fit's outputs as an object with the public fields the references read."""
    prior = SimpleNamespace(covariance_type=params.get("covariance_type", "full"))
    return SimpleNamespace(prior=prior, **out)


def _final_e_step(impl, case, ctx):
    """The returned ``resp`` is the E-step of the returned ``q`` (written here with scipy)."""
    names = ["means", "precisions", "degrees_of_freedom", "mean_precision",
             "weight_concentration", "resp"]
    out = _fit(impl, case, ctx, names)
    expected = e_step_reference(_as_result(out, case.params), ctx.rounded(case.primals["X"]))
    return Err(rel_error(out["resp"], expected), "resp")


def normal_wishart_chain(X, m0, beta0, nu0, A0):
    """``log p(X)`` of the one-component model, and its posterior ``(m, beta, nu, A = W^{-1})``.

    A chain of posterior predictive multivariate t densities (Murphy 2007,
    eq. 258), each evaluated by scipy, and the conjugate updates between them.
    """
    d = X.shape[1]
    m, beta, nu, A, total = np.array(m0, float), float(beta0), float(nu0), np.array(A0, float), 0.0
    for x in X:
        df = nu - d + 1
        total += stats.multivariate_t(m, (beta + 1) / (beta * df) * A, df=df).logpdf(x)
        A = A + beta / (beta + 1) * np.outer(x - m, x - m)
        m, beta, nu = (beta * m + x) / (beta + 1), beta + 1, nu + 1
    return total, (m, beta, nu, A)


def _one_component_posterior(case, ctx):
    X = ctx.rounded(case.primals["X"])
    p = case.params
    m0 = ctx.rounded(case.primals["mean_prior"]) if "mean_prior" in case.primals else X.mean(0)
    A0 = (ctx.rounded(case.primals["covariance_prior"]) if "covariance_prior" in case.primals
          else np.atleast_2d(np.cov(X.T)))
    return normal_wishart_chain(X, m0, p.get("mean_precision_prior", 1.0),
                                p.get("degrees_of_freedom_prior", float(X.shape[1])), A0)


def _one_component_evidence(impl, case, ctx):
    """``K = 1``: ``q`` is the exact posterior, so every ELBO entry is ``log p(X)``."""
    evidence, _ = _one_component_posterior(case, ctx)
    trace = _fit(impl, case, ctx, ["elbo"])["elbo"]
    return Err(float(np.max(np.abs(trace - evidence))) / abs(evidence), "elbo")


def _one_component_posterior_matches(impl, case, ctx):
    """``K = 1``: ``m, beta, nu`` and ``E[Lambda] = nu W`` (scipy's Wishart mean) of the posterior."""
    _, (m, beta, nu, A) = _one_component_posterior(case, ctx)
    out = _fit(impl, case, ctx, ["means", "mean_precision", "degrees_of_freedom", "precisions"])
    expected = {"means": m, "mean_precision": beta, "degrees_of_freedom": nu,
                "precisions": stats.wishart(df=nu, scale=np.linalg.inv(A)).mean()}
    return max(Err(rel_error(out[k], np.reshape(v, out[k].shape)), k) for k, v in expected.items())


def _stops_with_sklearn(impl, case, ctx):
    """Default ``tol = 1e-3``: as many iterations as scikit-learn (at most 30), the same verdict."""
    options = {**case.params, "tol": 1e-3, "max_iter": 30}
    got = _fit(impl, case, ctx, ["n_iter", "converged"], **options)
    X = ctx.rounded(case.primals["X"])
    others = {k: ctx.rounded(v) for k, v in case.primals.items() if k != "X"}
    model = sklearn_fit(X, others.pop("resp_init"), **others, **options)
    return Err(max(mismatch(got["n_iter"], model.n_iter_),
                   mismatch(got["converged"], model.converged_)), "n_iter, converged")


def _fit_bench_case(size):
    """``size = (n, d, K)``: three clusters, ``K`` components from random responsibilities,
    full covariances, 20 iterations."""
    n, d, K = size
    gen = np.random.default_rng(0)
    resp = gen.uniform(0.05, 1.0, size=(n, K))
    return Case({"X": _mixture(gen, n, d), "resp_init": resp / resp.sum(axis=1, keepdims=True)},
                {"covariance_type": "full", "tol": 0.0, "max_iter": 20})


def _fitted_bench_case(size):
    """refimpl's fit of :func:`_fit_bench_case` (the input, set up outside the timing), its data
    and its responsibilities."""
    case = _fit_bench_case(size)
    result = bgmm_cavi(*case.primals.values(), **case.params)
    return Case({"result": result, "X": case.primals["X"]})


def _elbo_bench_case(size):
    case = _fitted_bench_case(size)
    return Case({**case.primals, "resp": case.primals["result"].resp})


CAVI = register(Op(
    forward=bgmm_cavi,
    primals=(Primal("X"), Primal("resp_init", differentiable=False),
             Primal("mean_prior", optional=True, differentiable=False),
             Primal("covariance_prior", optional=True, differentiable=False)),
    outputs=(Output("weights"), Output("means"), Output("covariances"), Output("precisions"),
             Output("precisions_cholesky"), Output("degrees_of_freedom"),
             Output("mean_precision"), Output("weight_concentration"), Output("elbo", compared=False),
             Output("lower_bounds"), Output("n_iter", dtype="int"),
             Output("converged", dtype="bool"), Output("resp")),
    cases=fit_cases,
    reference=_reference_fit,
    properties=(
        Property("ELBO never decreases", _elbo_never_decreases,
                 "reg_covar = 0, 6 iterations: the full ELBO never decreases (100 ulps of max |ELBO|)",
                 tolerance=ROUND),
        Property("full ELBO minus scikit-learn's bound is constant", _constant_offset,
                 "reg_covar = 0: elbo - lower_bounds has no spread across iterations",
                 tolerance=EXACT_TOL),
        Property("final responsibilities are an E-step", _final_e_step,
                 "resp equals the E-step of the returned means, precisions, nu, beta and "
                 "weight concentration (scipy)"),
        Property("one component: ELBO is the log evidence", _one_component_evidence,
                 "K = 1, Dirichlet, reg_covar = 0: every ELBO entry equals log p(X), a chain of "
                 "scipy multivariate t predictive densities", tolerance=EXACT_TOL,
                 cases=_one_component_cases),
        Property("one component: q is the Normal-Wishart posterior",
                 _one_component_posterior_matches,
                 "K = 1: means, mean_precision, degrees_of_freedom and precisions equal the "
                 "conjugate posterior (E[Lambda] from scipy.stats.wishart)", tolerance=EXACT_TOL,
                 cases=_one_component_cases),
        Property("stops when scikit-learn stops", _stops_with_sklearn,
                 "tol = 1e-3, max_iter = 30: n_iter and converged equal scikit-learn's",
                 dtypes=("float64",)),
    ),
    tolerance=TOL,
    convention=CONVENTION,
    section="6.2",
    references=REFERENCES,
    bench_case=_fit_bench_case, bench_sizes=((500, 5, 4),), bench_anchor=Anchor("sklearn"),
))


# -- the fitted model: ELBO, responsibilities, labels ---------------------------------------


def _shifted(result, X, c):
    """The fit and the data moved by ``c``: means, the prior's mean and ``X``."""
    prior = dataclasses.replace(result.prior, mean=result.prior.mean + c)
    return dataclasses.replace(result, means=result.means + c, prior=prior), X + c


def _translation(op_name):
    """Moving the data, the fitted means and the prior mean together changes nothing."""

    def check(impl, case, ctx):
        op = get_op(op_name)
        result, X = case.primals["result"], case.primals["X"]
        c = np.random.default_rng(3).uniform(-3, 3, X.shape[1])
        moved, X_moved = _shifted(result, X, c)
        name = op.outputs[0].name
        before = run_outputs(op, impl, case, ctx)[name]
        after = run_outputs(op, impl, Case({**case.primals, "result": moved, "X": X_moved},
                                           case.params), ctx)[name]
        if op.outputs[0].dtype == "int":
            return Err(mismatch(after, before), name)
        return Err(rel_error(after, before), name)

    return check


def _perturbed(resp, t, u):
    r = resp * np.exp(t * u)
    return r / r.sum(axis=1, keepdims=True)


def _maximal_at_the_final_e_step(impl, case, ctx):
    """For the fitted ``q`` the ELBO is maximal in ``r`` at the E-step, ``result.resp``: moving
    ``r`` along ``r exp(t u)`` either way never raises it (relative to ``|ELBO|``)."""
    result = case.primals["result"]
    top = float(run_outputs(ELBO, impl, Case({**case.primals, "resp": result.resp}), ctx)["out"])
    u = np.random.default_rng(0).standard_normal(result.resp.shape)
    gains = [float(run_outputs(ELBO, impl, Case({**case.primals, "resp": _perturbed(
        result.resp, t, u)}), ctx)["out"]) - top for t in (1e-2, -1e-2)]
    return Err(max(0.0, max(gains)) / abs(top), "gain off the E-step")





ELBO = register(Op(
    forward=bgmm_elbo,
    primals=(Primal("result", dtype="tree"), Primal("X"), Primal("resp", differentiable=False)),
    cases=_elbo_cases,
    reference=elbo_reference,
    properties=(
        Property("maximal at the final E-step", _maximal_at_the_final_e_step,
                 "r = result.resp maximises the ELBO for the fitted q (perturbations either way)",
                 tolerance=ROUND),
        Property("translation invariance", _translation("bgmm_elbo"),
                 "X, the fitted means and the prior mean moved together: the same ELBO"),
    ),
    tolerance=EXACT_TOL,
    convention="The full ELBO (Bishop 10.70-10.77, every constant) at resp and the fitted "
               "q(pi, mu, Lambda) and prior of result (its public fields).",
    section="6.2",
    references=REFERENCES,
    bench_case=_elbo_bench_case, bench_sizes=((500, 5, 4),), bench_anchor=Anchor("definition"),
))


def _rows_sum_to_one(impl, case, ctx):
    resp = run_outputs(PROBA, impl, case, ctx)["out"]
    return Err(float(np.max(np.abs(resp.sum(axis=1) - 1.0))), "row sums")


def _fit_data_gives_the_final_e_step(impl, case, ctx):
    """On the fit's own data the responsibilities are the fit's final ``resp``."""
    result = case.primals["result"]
    n = result.resp.shape[0]
    resp = run_outputs(PROBA, impl, Case({"result": result, "X": case.primals["X"][:n]}), ctx)["out"]
    return Err(rel_error(resp, ctx.rounded(result.resp)), "out")





PROBA = register(Op(
    forward=bgmm_predict_proba,
    primals=(Primal("result", dtype="tree"), Primal("X")),
    cases=_predict_cases,
    reference=e_step_reference,
    properties=(
        Property("rows sum to one", _rows_sum_to_one, "sum_k r_nk = 1", tolerance=EXACT_TOL),
        Property("the fit's data gives its final E-step", _fit_data_gives_the_final_e_step,
                 "bgmm_predict_proba(result, X_fit) = result.resp"),
        Property("translation invariance", _translation("bgmm_predict_proba"),
                 "X, the fitted means and the prior mean moved together: the same responsibilities"),
    ),
    tolerance={"float64": 1e-11, "float32": 2e-4},
    convention="r_nk proportional to exp(E[log pi_k] + E[log|Lambda_k|]/2 - D/2 log 2 pi "
               "- D/(2 beta_k) - nu_k/2 (x_n - m_k)^T W_k (x_n - m_k)), W_k = precisions_k / nu_k.",
    section="6.2",
    references=REFERENCES,
    bench_case=_fitted_bench_case, bench_sizes=((500, 5, 4),),
    bench_anchor=Anchor("definition"),
))


def _reference_labels(result, X):
    return np.argmax(expected_log_joint(fitted_q(result), X), axis=1)





register(Op(
    forward=bgmm_predict,
    primals=(Primal("result", dtype="tree"), Primal("X")),
    outputs=(Output("out", dtype="int"),),
    cases=lambda: _predict_cases(margin=0.05),
    reference=_reference_labels,
    properties=(
        Property("translation invariance", _translation("bgmm_predict"),
                 "X, the fitted means and the prior mean moved together: the same labels"),
    ),
    tolerance=TOL,
    convention="The most responsible component of each row (argmax of bgmm_predict_proba); "
               "cases keep rows whose best log-probability leads by at least 0.05.",
    section="6.2",
    references=REFERENCES,
    bench_case=_fitted_bench_case, bench_sizes=((500, 5, 4),),
    bench_anchor=Anchor("definition"),
))
