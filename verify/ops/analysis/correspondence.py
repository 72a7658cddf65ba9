"""Records of :mod:`refimpl.analysis.correspondence` (docs/conventions.rst, section 8.1).

Ground truth: ``numpy.corrcoef`` of the flattened channels (``channel_correlation``),
``numpy.argmax`` (``semi_matching``), ``scipy.optimize.linear_sum_assignment(maximize=True)``
(``bipartite_matching``), ``sklearn.linear_model.LinearRegression`` and ``Lasso``
(``fit_intercept=False``) on channels standardised with NumPy (``channel_regression``).
Matchings and counts are integer outputs, compared exactly: the cases keep a margin (a unique
optimal matching; lasso coefficients away from the threshold) that rounding cannot cross.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from refimpl.analysis.correspondence import (
    bipartite_matching,
    channel_correlation,
    channel_regression,
    semi_matching,
)

from ...checks import Err, mismatch, rel_error, run_outputs, worst
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng

REFERENCES = (
    "Li, Yosinski, Clune, Lipson, Hopcroft 2016, Convergent learning: do different neural "
    "networks learn the same representations? (ICLR, arXiv:1511.07543)",
    "Crouse 2016, On implementing 2D rectangular assignment algorithms (IEEE TAES 52)",
    "Tibshirani 1996, Regression shrinkage and selection via the lasso (JRSS B 58)",
)


# -- the definitions ---------------------------------------------------------------------


def channels(A):
    """``(M, C)``: channel ``c`` is column ``c``, its samples and positions flattened."""
    return np.moveaxis(np.asarray(A, np.float64), 1, -1).reshape(-1, A.shape[1])


def standardised(A):
    """Columns of :func:`channels` centred and divided by their population deviation; a
    constant column (``max = min``) is 0 (``constant="zero"``)."""
    F = channels(A)
    live = np.ptp(F, axis=0) > 0
    return np.where(live, (F - F.mean(axis=0)) / np.where(live, F.std(axis=0), 1.0), 0.0)


def _reference_correlation(A, B, **_):
    c1 = A.shape[1]
    live = np.concatenate([np.ptp(channels(A), axis=0), np.ptp(channels(B), axis=0)]) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(channels(A).T, channels(B).T)
    rho = np.where(live[:, None] & live[None, :], rho, 0.0)  # constant="zero"
    return rho[:c1, c1:]


@st.composite
def _activation_pairs(draw, constant=None):
    """``A (N, C1, ...)`` and ``B (N, C2, ...)``, ``B``'s channels noisy mixtures of ``A``'s;
    with ``constant`` (drawn when ``None``) a constant channel in ``A`` and ``constant="zero"``."""
    gen = draw(rng())
    n = draw(st.integers(2, 12))
    positions = draw(st.sampled_from([(), (2,), (3, 2)]))
    c1, c2 = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    A = gen.standard_normal((n, c1) + positions) * gen.uniform(0.1, 10, (1, c1) + (1,) * len(positions))
    mix = gen.standard_normal((c2, c1))
    B = np.einsum("dc,nc...->nd...", mix, A) + gen.uniform(0.1, 2) * gen.standard_normal((n, c2) + positions)
    params = {}
    if draw(st.booleans()) if constant is None else constant:
        A[:, draw(st.integers(0, c1 - 1))] = gen.standard_normal()
        params["constant"] = "zero"
    return Case({"A": A, "B": B}, params)


def _correlation(impl, case, ctx, A, B):
    return run_outputs(CORRELATION, impl, Case({"A": A, "B": B}, case.params), ctx)["out"]


def _swap_transposes(impl, case, ctx):
    A, B = case.primals["A"], case.primals["B"]
    return rel_error(_correlation(impl, case, ctx, B, A), _correlation(impl, case, ctx, A, B).T)


def _affine_channels(impl, case, ctx):
    """``a -> s a + t`` per channel: ``rho`` changes only by ``sign(s)``."""
    A, B = case.primals["A"], case.primals["B"]
    gen = np.random.default_rng(A.size)
    shape = (1, A.shape[1]) + (1,) * (A.ndim - 2)
    s = gen.uniform(0.2, 5.0, shape) * gen.choice([-1.0, 1.0], shape)
    moved = _correlation(impl, case, ctx, s * A + gen.uniform(-5, 5, shape), B)
    return rel_error(moved, np.sign(s.reshape(-1))[:, None] * _correlation(impl, case, ctx, A, B))


def _self_correlation(impl, case, ctx):
    """``rho(A, A)`` is symmetric with a unit diagonal; a constant channel's row and column are 0
    (``constant="zero"``)."""
    A = case.primals["A"]
    rho = _correlation(impl, case, ctx, A, A)
    live = np.ptp(channels(A), axis=0) > 0
    expected_diagonal = live.astype(float)
    return worst({"diagonal": float(np.max(np.abs(np.diag(rho) - expected_diagonal))),
                  "rho - rho^T": rel_error(rho, rho.T),
                  "constant channels": float(np.abs(rho[~live]).max(initial=0.0))})


def _constant_cases():
    return _activation_pairs(constant=True)


def _correlation_bench_case(size):
    """``size = (n, c)``: two Gaussian layers of ``c`` channels over ``n`` samples."""
    gen = np.random.default_rng(0)
    return Case({"A": gen.standard_normal(size), "B": gen.standard_normal(size)})


CORRELATION = register(Op(
    forward=channel_correlation,
    primals=(Primal("A"), Primal("B")),
    cases=_activation_pairs,
    reference=_reference_correlation,
    properties=(
        Property("swapping the networks transposes rho", _swap_transposes,
                 "channel_correlation(B, A) = channel_correlation(A, B)^T"),
        Property("invariant under affine maps of a channel", _affine_channels,
                 "a -> s a + t (per channel): rho's row scaled by sign(s)"),
        Property("self-correlation has a unit diagonal", _self_correlation,
                 "rho(A, A) is symmetric with ones on the diagonal; constant='zero': a constant "
                 "channel's row and column 0", cases=_constant_cases),
    ),
    tolerance={"float64": 1e-12, "float32": 1e-5},
    convention="rho_ab = <z_a, z_b> / M over the M = N x positions samples, z standardised with the "
               "population deviation; constant channels: ValueError, or rho = 0 (constant='zero').",
    section="8.1",
    references=REFERENCES,
    bench_case=_correlation_bench_case, bench_sizes=((1000, 64), (10000, 256)),
    bench_anchor=Anchor("corrcoef"),
))


# -- matchings ---------------------------------------------------------------------------


def _reference_semi(rho):
    return np.argmax(rho, axis=1)


@st.composite
def _correlation_matrices(draw, max_size=6):
    gen = draw(rng())
    c1, c2 = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    return Case({"rho": gen.uniform(-1.0, 1.0, (c1, c2))})


def _matching(op, impl, rho, ctx):
    return run_outputs(op, impl, Case({"rho": rho}), ctx)["out"]


def _picks_row_maxima(impl, case, ctx):
    rho = ctx.rounded(case.primals["rho"])
    m = _matching(SEMI, impl, case.primals["rho"], ctx)
    return Err(mismatch(rho[np.arange(len(rho)), m], rho.max(axis=1)), "out")


def _column_relabelling(impl, case, ctx):
    """Permuting the columns of ``rho`` relabels the partners."""
    rho = case.primals["rho"]
    perm = np.random.default_rng(rho.size).permutation(rho.shape[1])
    m = _matching(SEMI, impl, rho, ctx)
    moved = _matching(SEMI, impl, rho[:, perm], ctx)
    return Err(mismatch(perm[moved], m), "out")


def _rho_bench_case(size):
    """A correlation matrix of ``size``, uniform in [-1, 1]."""
    return Case({"rho": np.random.default_rng(0).uniform(-1, 1, size)})


SEMI = register(Op(
    forward=semi_matching,
    primals=(Primal("rho"),),
    outputs=(Output("out", dtype="int"),),
    cases=_correlation_matrices,
    reference=_reference_semi,
    properties=(
        Property("picks each row's maximum", _picks_row_maxima, "rho[a, m[a]] = max_b rho[a, b]"),
        Property("relabelling the columns relabels the partners", _column_relabelling,
                 "m(rho[:, perm]) = perm^-1 o m(rho)"),
    ),
    tolerance={"float64": 0.0, "float32": 0.0},
    convention="m[a] = argmax_b rho[a, b], ties to the lowest index; signed correlations.",
    section="8.1",
    references=REFERENCES,
    bench_case=_rho_bench_case, bench_sizes=((64, 64), (512, 512)), bench_anchor=Anchor("argmax"),
))


def _reference_bipartite(rho):
    rows, cols = linear_sum_assignment(rho, maximize=True)
    matched = np.full(rho.shape[0], -1)
    matched[rows] = cols
    return matched


def _assignment_totals(rho):
    """Totals of every injective matching of the smaller side (brute force, sorted, descending)."""
    small = rho if rho.shape[0] <= rho.shape[1] else rho.T
    rows = np.arange(small.shape[0])
    totals = [small[rows, list(p)].sum()
              for p in itertools.permutations(range(small.shape[1]), small.shape[0])]
    return np.sort(totals)[::-1]


@st.composite
def _unique_optimum(draw):
    """``rho`` whose best matching beats the second best by ``1e-3``: rounding cannot swap them."""
    case = draw(_correlation_matrices())
    totals = _assignment_totals(case.primals["rho"])
    assume(len(totals) == 1 or totals[0] - totals[1] > 1e-3)
    return case


def _total(rho, m):
    rows = np.flatnonzero(m >= 0)
    return float(rho[rows, m[rows]].sum())


def _injective(impl, case, ctx):
    """Distinct columns in range, ``-1`` exactly for the ``C1 - C2`` rows left over."""
    c1, c2 = case.primals["rho"].shape
    m = _matching(BIPARTITE, impl, case.primals["rho"], ctx)
    matched = m[m >= 0]
    ok = (len(np.unique(matched)) == len(matched) == min(c1, c2) and np.all(m < c2)
          and np.all(m >= -1))
    return Err(0.0 if ok else math.inf, "out")


def _at_least_every_matching(impl, case, ctx):
    """The total is at least that of 50 random injective matchings, and equals the
    semi-matching's when that is a bijection."""
    rho = ctx.rounded(case.primals["rho"])
    total = _total(rho, _matching(BIPARTITE, impl, case.primals["rho"], ctx))
    c1, c2 = rho.shape
    gen = np.random.default_rng(rho.size)
    others = []
    for _ in range(50):
        m = np.full(c1, -1)
        rows = gen.permutation(c1)[:min(c1, c2)]
        m[rows] = gen.permutation(c2)[:len(rows)]
        others.append(_total(rho, m))
    semi = rho.argmax(axis=1)
    shortfall = max(others) - total
    if len(np.unique(semi)) == c1:
        shortfall = max(shortfall, abs(_total(rho, semi) - total))
    return Err(max(0.0, shortfall) / max(1.0, float(np.abs(rho).sum())), "total")


def _transpose_inverts(impl, case, ctx):
    """The matching of ``rho^T`` is the inverse of the matching of ``rho``."""
    rho = case.primals["rho"]
    m = _matching(BIPARTITE, impl, rho, ctx)
    mt = _matching(BIPARTITE, impl, np.ascontiguousarray(rho.T), ctx)
    inverse = np.full(rho.shape[1], -1)
    inverse[m[m >= 0]] = np.flatnonzero(m >= 0)
    return Err(mismatch(mt, inverse), "out")


BIPARTITE = register(Op(
    forward=bipartite_matching,
    primals=(Primal("rho"),),
    outputs=(Output("out", dtype="int"),),
    cases=_unique_optimum,
    reference=_reference_bipartite,
    properties=(
        Property("an injective matching", _injective,
                 "distinct columns; -1 exactly for the C1 - C2 rows left over (a permutation when "
                 "square)"),
        Property("total at least every matching's", _at_least_every_matching,
                 "sum rho[a, m[a]] >= that of 50 random injective matchings, = the semi-matching's "
                 "when that is a bijection", tolerance={"float64": 1e-14, "float32": 1e-6}),
        Property("transposing rho inverts the matching", _transpose_inverts,
                 "m(rho^T) = m(rho)^-1"),
    ),
    tolerance={"float64": 0.0, "float32": 0.0},
    convention="The injective matching of the smaller side with the largest sum of rho (scipy's "
               "linear_sum_assignment(maximize=True)); unmatched rows -1.",
    section="8.1",
    references=REFERENCES,
    bench_case=lambda size: Case({"rho": np.random.default_rng(0).uniform(-1, 1, size)}),
    bench_sizes=((64, 64), (256, 256)),
    bench_anchor=Anchor("linear_sum_assignment"),
))


# -- regression --------------------------------------------------------------------------


def sklearn_regression(A, B, l1=None):
    """``(coef (C1, C2), loss (C2,), n_used (C2,))`` from scikit-learn on the standardised channels."""
    from sklearn.linear_model import Lasso, LinearRegression

    ZA, ZB = standardised(A), standardised(B)
    if l1 is None:
        model = LinearRegression(fit_intercept=False).fit(ZA, ZB)
    else:
        model = Lasso(alpha=l1, fit_intercept=False, tol=1e-15, max_iter=100_000).fit(ZA, ZB)
    W = np.atleast_2d(model.coef_).T.reshape(ZA.shape[1], ZB.shape[1])
    return W, np.mean((ZB - ZA @ W) ** 2, axis=0), np.count_nonzero(W, axis=0)


def _reference_regression(A, B, *, l1=None, **_):
    return sklearn_regression(A, B, l1)


def _lasso_margin(A, B, l1):
    """The smallest relative distance of a lasso coefficient, or a KKT gradient, from the
    threshold: the zero pattern's safety margin against rounding."""
    ZA, ZB = standardised(A), standardised(B)
    W, _, _ = sklearn_regression(A, B, l1)
    gradient = np.abs(ZA.T @ (ZB - ZA @ W)) / len(ZA)
    active = W != 0
    slack = np.where(active, np.abs(W) / max(np.abs(W).max(), 1e-300), 1.0 - gradient / l1)
    return float(slack.min())


@st.composite
def _regression_cases(draw):
    """Least squares or the lasso (``l1`` in ``[0.01, 0.3]``), ``M >= C1 + 3`` samples."""
    case = draw(_activation_pairs())
    A, B = case.primals["A"], case.primals["B"]
    assume(channels(A).shape[0] >= A.shape[1] + 3)
    if draw(st.booleans()):
        l1 = float(np.random.default_rng(A.size).uniform(0.01, 0.3))
        assume(_lasso_margin(A, B, l1) > 1e-2)
        return Case(case.primals, {**case.params, "l1": l1})
    return case


def _regress(impl, case, ctx, A, B, names):
    return run_outputs(REGRESSION, impl, Case({"A": A, "B": B}, case.params), ctx, names)


def _self_regression(impl, case, ctx):
    """Least squares of ``A`` on itself: the identity (0 for a constant channel), loss 0
    (relative to 1)."""
    A = case.primals["A"]
    params = {k: v for k, v in case.params.items() if k != "l1"}
    out = _regress(impl, Case(case.primals, params), ctx, A, A, ["coef", "loss"])
    live = np.ptp(channels(A), axis=0) > 0
    return worst({"coef": rel_error(out["coef"], np.diag(live.astype(float))),
                  "loss": float(out["loss"].max())})


@st.composite
def _independent_cases(draw):
    """``A`` and ``B`` independent standard normal, ``M = 120 .. 400`` samples."""
    gen = draw(rng())
    n, c1, c2 = draw(st.integers(30, 100)), draw(st.integers(1, 6)), draw(st.integers(4, 8))
    positions = draw(st.sampled_from([(), (2, 2)]))
    n = n * 4 if positions == () else n
    return Case({"A": gen.standard_normal((n, c1) + positions),
                 "B": gen.standard_normal((n, c2) + positions)})


def _independent_loss(impl, case, ctx):
    r"""Independent Gaussian channels: each least-squares loss is ``1 - R^2`` with
    ``R^2 ~ Beta(k/2, (M - k - 1)/2)`` exactly (mean ``k/(M - 1)``: the loss is 1 less the
    ``k`` fitted directions in expectation). Error ``-log10(p) / 8`` of the smallest two-sided
    p-value, so that a correct op fails with probability below ``1e-8`` per target."""
    from scipy.stats import beta

    A, B = case.primals["A"], case.primals["B"]
    loss = _regress(impl, case, ctx, A, B, ["loss"])["loss"]
    M, k = channels(A).shape
    law = beta(k / 2, (M - k - 1) / 2)
    # The most favourable R^2 within the loss's rounding: a tiny R^2 must not read as negative.
    rounding = 100 * np.finfo(ctx.dtype).eps
    p = 2 * np.minimum(law.cdf(1 - loss + rounding), law.sf(1 - loss - rounding))
    return Err(-np.log10(max(float(p.min()), 1e-300)) / 8, "loss")


def _lasso_optimality(impl, case, ctx):
    """The lasso's KKT conditions, from the standardised channels written here:
    ``Z_A^T (z_b - Z_A w) / M = l1 sign(w_j)`` where ``w_j != 0``, ``|...| <= l1`` elsewhere
    (relative to ``l1``)."""
    ZA, ZB = standardised(ctx.rounded(case.primals["A"])), standardised(ctx.rounded(case.primals["B"]))
    W = _regress(impl, case, ctx, case.primals["A"], case.primals["B"], ["coef"])["coef"]
    l1 = case.params["l1"]
    gradient = ZA.T @ (ZB - ZA @ W) / len(ZA)
    violation = np.where(W != 0, np.abs(gradient - l1 * np.sign(W)), np.maximum(np.abs(gradient) - l1, 0))
    return Err(float(violation.max()) / l1, "coef")


def _lasso_cases():
    return _regression_cases().filter(lambda c: "l1" in c.params)


def _consistent_outputs(impl, case, ctx):
    """``loss`` is the mean squared residual of ``coef`` and ``n_used`` counts its nonzeros."""
    A, B = case.primals["A"], case.primals["B"]
    out = _regress(impl, case, ctx, A, B, ["coef", "loss", "n_used"])
    ZA, ZB = standardised(ctx.rounded(A)), standardised(ctx.rounded(B))
    loss = np.mean((ZB - ZA @ out["coef"]) ** 2, axis=0)
    return worst({"loss": rel_error(out["loss"], loss, scale=1.0),
                  "n_used": mismatch(out["n_used"], np.count_nonzero(out["coef"], axis=0))})


def _regression_bench_case(size):
    """``size = (n, c)``: ``B`` a noisy linear map of ``A``, least squares (``l1=None``)."""
    gen = np.random.default_rng(0)
    n, c = size
    A = gen.standard_normal((n, c))
    return Case({"A": A, "B": A @ gen.standard_normal((c, c)) + 0.1 * gen.standard_normal((n, c))})


REGRESSION = register(Op(
    forward=channel_regression,
    primals=(Primal("A"), Primal("B")),
    outputs=(Output("coef"), Output("loss"), Output("n_used", dtype="int")),
    cases=_regression_cases,
    reference=_reference_regression,
    properties=(
        Property("a network regressed on itself loses nothing", _self_regression,
                 "least squares of A on A: coef = I (0 for a constant channel), loss = 0"),
        Property("independent channels lose 1 in expectation", _independent_loss,
                 "independent Gaussian A, B: 1 - loss ~ Beta(C1/2, (M - C1 - 1)/2) (mean loss "
                 "1 - C1/(M - 1)), every two-sided p-value above 1e-8",
                 tolerance={"float64": 1.0, "float32": 1.0},
                 cases=_independent_cases),
        Property("the lasso's optimality conditions hold", _lasso_optimality,
                 "Z_A^T (z_b - Z_A w)/M = l1 sign(w) on the support, |.| <= l1 off it",
                 tolerance={"float64": 1e-9, "float32": 2e-3}, cases=_lasso_cases),
        Property("loss and n_used describe coef", _consistent_outputs,
                 "loss = mean squared residual of coef, n_used = its nonzeros per column"),
    ),
    tolerance={"float64": 1e-9, "float32": 2e-3},
    convention="Each standardised channel of B regressed on all of A's: least squares (minimum "
               "norm), or scikit-learn's lasso (1/(2M)) ||z_b - Z_A w||^2 + l1 ||w||_1; loss = "
               "mean squared residual per channel, n_used = nonzero coefficients.",
    section="8.1",
    references=REFERENCES,
    bench_case=_regression_bench_case, bench_sizes=((500, 32),), bench_anchor=Anchor("sklearn"),
))
