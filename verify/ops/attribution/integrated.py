"""Record of :mod:`refimpl.attribution.integrated` (docs/conventions.rst, section 5.3).

Ground truth: the quadrature of every method written from its formula (the
Gauss-Legendre rule from :func:`scipy.special.roots_legendre`) and autograd's
gradients of the naive network at the path points. ``delta`` is not compared
by the generic checks (near 0 it has no relative accuracy); the property
"delta is the completeness gap" holds it to the attribution's scale. The
other properties: exact completeness on linear networks (captum's trapezoid
loses ``gap / n``), ``delta`` falling with ``n_steps`` on smooth networks, and
(refimpl only, through a power layer) exactness of each rule on polynomial
paths of its degree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.special
from hypothesis import strategies as st

from refimpl.attribution import TRAPEZOID_WEIGHTS, integrated_gradients
from refimpl.nn import Linear
from refimpl.nn._layer import Layer

from ...checks import run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng
from ._networks import (
    SMALL_BENCH_SIZES,
    affine,
    bench_case,
    naive_gradient,
    naive_output,
    naive_score,
    network_cases,
)

TOL = {"float64": 1e-10, "float32": 1e-4}
REFERENCES = (
    "Sundararajan et al. 2017, Axiomatic attribution for deep networks (ICML)",
    "captum: IntegratedGradients and captum/attr/_utils/approximation_methods.py",
)


def path_points_and_weights(method, n, trapezoid="captum"):
    """``(alpha, w)`` of ``method`` on [0, 1] with ``n`` points, from the formulas."""
    k = np.arange(n)
    if method == "gausslegendre":
        t, v = scipy.special.roots_legendre(n)
        return (t + 1.0) / 2.0, v / 2.0
    if method == "riemann_trapezoid":
        w = np.full(n, 1.0 / n if trapezoid == "captum" else 1.0 / (n - 1))
        w[[0, -1]] /= 2.0
        return k / (n - 1), w
    offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
    return (k + offset) / n, np.full(n, 1.0 / n)


def _baseline(primals):
    return primals.get("baseline", np.zeros_like(primals["x"]))


def _attribution(layers, x, target, baseline, method, n_steps, trapezoid):
    alphas, weights = path_points_and_weights(method, n_steps, trapezoid)
    step = x - baseline
    return step * sum(w * naive_gradient(layers, baseline + a * step, target)
                      for a, w in zip(alphas, weights))


def _reference(layers, x, target, baseline=None, *, method, n_steps, trapezoid):
    b = np.zeros_like(x) if baseline is None else baseline
    return {"attribution": _attribution(layers, x, target, b, method, n_steps, trapezoid)}


#: The methods in the order drawn: hypothesis favours the first, the trapezoid rule, whose
#: weights differ between captum and the textbook.
_DRAW_ORDER = ("riemann_trapezoid", "gausslegendre", "riemann_middle", "riemann_right",
               "riemann_left")


@st.composite
def _cases(draw, methods=_DRAW_ORDER, steps=(2, 6), **network_options):
    primals = draw(network_cases(**{"batchnorm": None, "max_batch": 2, **network_options}))
    if draw(st.booleans()):
        primals["baseline"] = draw(rng()).uniform(-0.5, 0.5, primals["x"].shape)
    return Case(primals, {"method": draw(st.sampled_from(methods)),
                          "n_steps": draw(st.integers(*steps)),
                          "trapezoid": draw(st.sampled_from(TRAPEZOID_WEIGHTS))})


# -- properties ---------------------------------------------------------------------------


def _scale(at_x, at_b, attribution):
    """``|f_t(x)| + |f_t(b)| + sum |IG|`` per sample, what ``delta`` is relative to: the gap is a
    difference of two scores, each rounded relative to its own size."""
    return np.abs(at_x) + np.abs(at_b) + np.abs(attribution).sum(axis=1) + 1e-300


def _run(impl, case, ctx, **params):
    """``(attribution, delta, gap, scale)``: the implementation's outputs (attribution per
    sample, flattened), the reference gap ``f_t(x) - f_t(b)`` and :func:`_scale`."""
    changed = Case(case.primals, {**case.params, **params})
    got = run_outputs(OP, impl, changed, ctx, ["attribution", "delta"])
    p = {k: ctx.rounded(v) for k, v in case.primals.items()}
    at_x = naive_score(np, p["layers"], p["x"], p["target"])
    at_b = naive_score(np, p["layers"], _baseline(p), p["target"])
    attribution = got["attribution"].reshape(at_x.shape[0], -1)
    return attribution, got["delta"], at_x - at_b, _scale(at_x, at_b, attribution)


def _completeness_gap(impl, case, ctx):
    """``delta = sum IG - (f_t(x) - f_t(b))``, relative to ``|f_t(x)| + |f_t(b)| + sum |IG|``
    per sample."""
    attribution, delta, gap, scale = _run(impl, case, ctx)
    return float(np.max(np.abs(delta - (attribution.sum(axis=1) - gap)) / scale))


def _linear_cases():
    return _cases().map(lambda c: Case({**c.primals, "layers": affine(c.primals["layers"])},
                                       c.params))


def _exact_on_linear(impl, case, ctx):
    """Affine network: ``delta = 0``, except captum's trapezoid: ``delta = -gap / n``."""
    _, delta, gap, scale = _run(impl, case, ctx)
    p = case.params
    captum_trapezoid = p["method"] == "riemann_trapezoid" and p["trapezoid"] == "captum"
    expected = -gap / p["n_steps"] if captum_trapezoid else 0.0 * gap
    return float(np.max(np.abs(delta - expected) / scale))


def _smooth_cases():
    return _cases(kind="mlp", activations=("tanh", "sigmoid"))


def _delta_falls(impl, case, ctx):
    """Smooth network: ``|delta(64)| <= max_n |delta(n)| / 2`` over ``n = 4, 6, 8``, per sample,
    up to rounding (the tolerance times ``|f_t(x)| + |f_t(b)| + sum |IG|``): every rule
    converges, at least like ``1/n``. The largest of three coarse errors, because one of them
    can vanish by accident (an error term changing sign between the path's ends)."""
    coarse = np.max([np.abs(_run(impl, case, ctx, n_steps=n)[1]) for n in (4, 6, 8)], axis=0)
    fine = _run(impl, case, ctx, n_steps=64)
    excess = np.abs(fine[1]) - 0.5 * coarse
    return float(np.max(np.maximum(excess, 0.0) / fine[3]))


@dataclass(frozen=True, repr=False)
class Power(Layer):
    """``x ** degree`` elementwise (a test layer): a polynomial path of degree ``degree``."""

    degree: int
    kind: ClassVar[str] = "activation"

    def forward(self, x):
        return x ** self.degree

    def input_vjp(self, x, g):
        return g * self.degree * x ** (self.degree - 1)


#: The path degree ``p`` (of ``h(alpha) = f_t(b + alpha (x - b))``) each rule integrates exactly.
EXACT_DEGREE = {"riemann_left": lambda n: 1, "riemann_right": lambda n: 1,
                "riemann_middle": lambda n: 2, "gausslegendre": lambda n: 2 * n}


@st.composite
def _polynomial_cases(draw):
    """``Linear, Power(p), Linear`` with ``p`` the degree the drawn rule integrates exactly."""
    gen = draw(rng())
    method = draw(st.sampled_from([*EXACT_DEGREE, "textbook trapezoid"]))
    n = draw(st.integers(2, 6))
    degree = 2 if method == "textbook trapezoid" else EXACT_DEGREE[method](n)
    d, h, c = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    layers = [Linear(gen.standard_normal((h, d)) / np.sqrt(d), gen.standard_normal(h) * 0.5),
              Power(degree), Linear(gen.standard_normal((c, h)))]
    x = gen.uniform(-1.0, 1.0, (2, d))
    primals = {"layers": layers, "x": x, "target": gen.integers(0, c, 2),
               "baseline": gen.uniform(-1.0, 1.0, (2, d))}
    trapezoid = method == "textbook trapezoid"
    return Case(primals, {"method": "riemann_trapezoid" if trapezoid else method, "n_steps": n,
                          "trapezoid": "textbook" if trapezoid else "captum"})


def _polynomial_score(layers, x, target):
    """``f_t`` of ``Linear, Power, Linear`` per sample (the naive networks have no power layer)."""
    first, power, last = layers
    return naive_score(np, [last], power.forward(naive_output(np, [first], x)), target)


def _exact_on_polynomials(impl, case, ctx):
    """``delta = 0`` on a polynomial path the rule integrates exactly, relative to
    :func:`_scale`: in float32 a gap far below the scores is their difference's rounding."""
    got = run_outputs(OP, impl, case, ctx, ["attribution", "delta"])
    p = ctx.rounded(case.primals)
    scores = [_polynomial_score(p["layers"], at, p["target"]) for at in (p["x"], p["baseline"])]
    return float(np.max(np.abs(got["delta"]) / _scale(*scores, got["attribution"])))


OP = register(Op(
    forward=integrated_gradients,
    primals=(Primal("layers", dtype="tree", differentiable=False), Primal("x"),
             Primal("target", dtype="int64"), Primal("baseline", optional=True)),
    outputs=(Output("attribution"), Output("delta", compared=False)),
    cases=_cases,
    reference=_reference,
    properties=(
        Property("delta is the completeness gap", _completeness_gap,
                 "delta = sum(attribution) - (f_t(x) - f_t(baseline)) per sample, relative to "
                 "|f_t(x)| + |f_t(baseline)| + sum |attribution|"),
        Property("exact on linear networks", _exact_on_linear,
                 "an affine network (activations removed): delta = 0 for every rule, -gap / n "
                 "for captum's trapezoid weights", cases=_linear_cases),
        Property("delta falls with n_steps", _delta_falls,
                 "tanh/sigmoid MLPs: |delta| at 64 points is at most half the largest at 4, 6 "
                 "and 8",
                 cases=_smooth_cases),
        Property("exact on polynomial paths of matching degree", _exact_on_polynomials,
                 "Linear, x**p, Linear: delta = 0 for p = 1 (left, right), 2 (middle, textbook "
                 "trapezoid) and 2n (Gauss-Legendre with n points)", cases=_polynomial_cases,
                 tolerance={"float64": 1e-12, "float32": 1e-5}, refimpl_only=True),
    ),
    tolerance=TOL,
    convention="integrated_gradients(layers, x, target, baseline=None, n_steps=50, "
               "method='gausslegendre', trapezoid='captum') returns (attribution, delta): "
               "(x - b) * sum_k w_k grad f_t(b + alpha_k (x - b)), baseline 0 by default; points "
               "and weights: riemann_left (k-1)/n, riemann_right k/n, riemann_middle (k-1/2)/n, "
               "all 1/n; riemann_trapezoid (k-1)/(n-1) with captum's weights 1/n and 1/(2n) at "
               "the ends (trapezoid='textbook': 1/(n-1), ends halved); gausslegendre "
               "(1 + t_k)/2, v_k/2 (n-point Gauss-Legendre); delta = sum(attribution) - "
               "(f_t(x) - f_t(b)) per sample.",
    section="5.3",
    references=REFERENCES,
    bench_case=lambda size: Case(bench_case(size).primals, {
        "method": "gausslegendre", "n_steps": 8, "trapezoid": "captum"}),
    bench_sizes=SMALL_BENCH_SIZES, bench_anchor=Anchor("autograd"),
))
