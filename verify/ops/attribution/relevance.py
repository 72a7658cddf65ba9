"""Records of :mod:`refimpl.attribution.relevance` (docs/conventions.rst, section 5.1).

One record per single-layer rule function (``lrp_epsilon``, ``lrp_gamma``,
...: primals ``x``, ``weight``, ``R`` and the optional ``bias``; ``lrp_norm``:
``x`` and ``R``), and one for :func:`~refimpl.attribution.lrp` on a whole
network. Ground truth is every rule's formula on dense matrices
(:mod:`verify.ops.attribution._formulas`, by rule class). None has a VJP:
an attribution method is not differentiated here.

The rule functions' cases mix Gaussian data with exact ones (multiples of
1/4: every sum is exact in any order) in which one output's denominator is
exactly zero, so that the stabiliser's ``sgn(0) = +1`` shows, or a whole
input sample is zero. ``lrp``'s cases are :func:`verify.strategies.networks`
(ReLU MLPs and CNNs) under one weighted rule everywhere, a composite, or
captum's choice; its properties read the implementation's ``relevance_at``
(the relevance at every layer's input).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import autograd
import autograd.numpy as anp
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refimpl.attribution import (
    METHODS,
    STABILIZERS,
    AlphaBeta,
    Epsilon,
    EpsilonAlpha2Beta1,
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
    Flat,
    Gamma,
    Norm,
    Pass,
    WSquare,
    ZBox,
    ZPlus,
    lrp,
    lrp_alpha_beta,
    lrp_epsilon,
    lrp_flat,
    lrp_gamma,
    lrp_norm,
    lrp_wsquare,
    lrp_zbox,
    lrp_zplus,
)
from refimpl.nn import AdaptiveAvgPool2d, AvgPool2d, BatchNorm, Conv2d, Linear, MaxPool2d, ReLU

from ...checks import CheckError, call_forward, outputs_of, rel_error, run_outputs, worst
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import networks, rng
from ..nn.convolution import conv2d_reference
from ..nn.dense import linear_reference
from ..nn.network import network_activations, network_reference
from ..nn.pooling import avg_pool_reference
from ._formulas import (
    FORMULAS,
    _flat,
    apply_terms,
    denominators,
    linear_map_dense,
    reference_lrp,
    weighted_dense,
)

LRP_TOL = {"float64": 1e-10, "float32": 2e-3}
REFERENCES = (
    "Bach et al. 2015, On pixel-wise explanations by layer-wise relevance propagation (PLoS ONE)",
    "Montavon et al. 2019, Layer-wise relevance propagation: an overview (LNCS 11700)",
    "Anders et al. 2021, Software for dataset-wide XAI: from local explanations to global "
    "insights with Zennit, CoRelAy, and ViRelAy (arXiv:2106.13200)",
)
STABILIZER = ("S(z) = z + epsilon sgn(z) with sgn(0) = +1 (stabilizer='sign'), or "
              "z + epsilon [z = 0] (stabilizer='zero_only')")


# -- single-layer rule functions: parameters and formulas -----------------------------------


def _params(**fields):
    """The rule's parameters: ``epsilon`` and ``stabilizer`` always, ``fields`` besides."""
    return st.fixed_dictionaries({"epsilon": st.sampled_from([1e-6, 1e-3, 0.5]),
                                  "stabilizer": st.sampled_from(STABILIZERS), **fields})


def _with_pair(params, names, pairs):
    return params.flatmap(lambda p: st.sampled_from(pairs).map(lambda v: {**p, **dict(zip(names, v))}))


@dataclass(frozen=True)
class _RuleFunction:
    """A single-layer rule function: its rule class, parameters, exact-zero recipe, convention.

    ``zero(rule)`` says how an exact case gets a zero denominator at output 0 of
    sample 0: in the rule's own denominator (``"input"``: by moving one input
    under a unit weight, ``"bias"``: by moving the bias), in the plain ``z``
    (``"z"``: gamma's output signs), or by a zero input sample (``"row"``) where
    no denominator can vanish with nonzero contributions.
    """

    rule: type
    params: st.SearchStrategy
    zero: Callable
    convention: str


_ZB, _WO = st.booleans(), st.booleans()

RULE_FUNCTIONS = {
    lrp_epsilon: _RuleFunction(
        Epsilon, _params(zero_bias=_ZB), lambda rule: "input",
        "R_i = a_i sum_j w_ij R_j / S(z_j), z_j = sum_i a_i w_ij + b_j (b left out with "
        "zero_bias)"),
    lrp_gamma: _RuleFunction(
        Gamma, _params(gamma=st.sampled_from([0.0, 0.25, 1.0]), zero_bias=_ZB, weights_only=_WO),
        lambda rule: "bias" if rule.weights_only else "z",
        "zennit's generalised gamma: for z_j > 0 the contributions a+ (w + gamma w+) + a- (w + "
        "gamma w-) over S(their sum + b + gamma b+), for z_j < 0 the same with w+ and w- (b+ and "
        "b-) exchanged, nothing for z_j = 0; weights_only=True is captum's a (w + gamma w+) with "
        "bias b"),
    lrp_alpha_beta: _RuleFunction(
        AlphaBeta, _with_pair(_params(zero_bias=_ZB), ("alpha", "beta"),
                              [(2.0, 1.0), (1.0, 0.0), (1.5, 0.5)]),
        lambda rule: "row",
        "alpha (a+ w+ + a- w-) / S(z_alpha) - beta (a+ w- + a- w+) / S(z_beta), biases b+ and b- "
        "in z_alpha and z_beta, alpha - beta = 1"),
    lrp_zplus: _RuleFunction(
        ZPlus, _params(zero_bias=_ZB, weights_only=_WO),
        lambda rule: "bias" if rule.weights_only else "row",
        "(a+ w+ + a- w-) / S(their sum + b+); weights_only=True is captum's a w+ / "
        "S(sum a w+ + b)"),
    lrp_zbox: _RuleFunction(
        ZBox, _with_pair(_params(), ("low", "high"),
                         [(-1.0, 1.0), (-2.0, 1.5), (0.0, 0.0), (0.0, 1.0)]),
        lambda rule: "input",
        "(a_i w_ij - l w+_ij - h w-_ij) / S(the sum over i), low l and high h scalars, the bias "
        "cancels"),
    lrp_wsquare: _RuleFunction(
        WSquare, _params(zero_bias=_ZB), lambda rule: "row",
        "w_ij^2 / S(sum_i w_ij^2 + b_j^2) times R_j (b left out with zero_bias), independent of "
        "a"),
    lrp_flat: _RuleFunction(
        Flat, _params(), lambda rule: "row",
        "R_j / S(|RF(j)|) to every input of the in-bounds receptive field RF(j), no bias"),
}


def _relevance(rule, L, R, shape):
    return apply_terms(FORMULAS[type(rule)](rule, L), _flat(R), rule)[0].reshape(shape)


def _weighted_reference(rule_class):
    def reference(x, weight, R, bias=None, *, stride=1, padding=0, method=None, **params):
        L = weighted_dense(x, weight, bias, stride, padding)
        return _relevance(rule_class(**params), L, R, x.shape)
    return reference


def _norm_reference(x, R, *, kernel_size, stride=None, method=None, **params):
    L = linear_map_dense(x, lambda e: avg_pool_reference(np, e, kernel_size, stride))
    return _relevance(Norm(**params), L, R, x.shape)


# -- single-layer rule functions: cases -----------------------------------------------------


def _layer_geometry(draw, gen, values, n):
    """``(x, weight, params, weight tap, input tap)`` of a Linear or Conv2d layer."""
    if draw(st.booleans()):
        i, o = draw(st.integers(1, 5)), draw(st.integers(1, 4))
        return values((n, i)), values((o, i)), {}, (0, 0), (0, 0)
    c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    x = values((n, c, draw(st.integers(kh, 5)), draw(st.integers(kw, 5))))
    # output (0, 0, 0, 0) reads padded pixel (ph, pw) = input pixel (0, 0) through tap (ph, pw)
    return x, values((o, c, kh, kw)), {"stride": stride, "padding": (ph, pw)}, (0, 0, ph, pw), \
        (0, 0, 0, 0)


def _zeroed(mode, rule, x, weight, bias, geometry, weight_tap, input_tap):
    """Exact data changed so that output 0 of sample 0 has a zero denominator (see RULE_FUNCTIONS)."""
    x, weight = x.copy(), weight.copy()
    if mode == "bias" and (bias is None or rule.zero_bias):
        mode = "row"
    if mode == "row":
        x[0] = 0.0
        return x, weight, bias
    weight[weight_tap] = 1.0  # the denominator moves one for one with the tapped input or the bias
    target = Epsilon(zero_bias=rule.zero_bias) if mode == "z" else rule
    z = denominators(target, weighted_dense(x, weight, bias, **geometry))[0][0, 0]
    if mode == "bias":
        bias = bias.copy()
        bias[0] -= z
    else:
        x[input_tap] -= z
    # A zero denominator over contributions that all vanish (z^B with a = l under w > 0, one
    # input) is 0 / 0 in disguise: every method computes it by cancelling terms of size R / eps.
    terms = FORMULAS[type(target)](target, weighted_dense(x, weight, bias, **geometry))
    if not np.any(terms[0].c[0, :, 0]):
        return _zeroed("row", rule, x, weight, bias, geometry, weight_tap, input_tap)
    return x, weight, bias


def _cancelled_zero(rule, L):
    """Some z^B_j = 0 with every contribution ``a w - l w+ - h w-`` zero though some ``a w`` is not.

    There the relevance is 0 * (R / eps), but any method that applies the three
    weights separately gets that zero from terms of size ``R / eps`` (the
    relevance is infinitely ill-conditioned in ``a``): such exact cases are
    left out. Other rules' contributions vanish only with their factors.
    """
    if not isinstance(rule, ZBox):
        return False
    c = FORMULAS[ZBox](rule, L)[0].c
    live = np.any(L.A * L.M != 0, axis=1)
    return bool(np.any(~np.any(c != 0, axis=1) & live))


def _dyadic(gen):
    """Multiples of 1/4 in [-1, 1]: sums of their products are exact in any order and precision."""
    return lambda shape: gen.integers(-4, 5, shape) / 4.0


@st.composite
def _weighted_cases(draw, function):
    entry = RULE_FUNCTIONS[function]
    rule_class, params = entry.rule, draw(entry.params)
    gen = draw(rng())
    exact = draw(st.booleans())
    values = _dyadic(gen) if exact else gen.standard_normal
    x, weight, geometry, weight_tap, input_tap = _layer_geometry(draw, gen, values,
                                                                 draw(st.integers(1, 3)))
    bias = values(weight.shape[0]) if draw(st.booleans()) else None
    if exact:
        rule = rule_class(**params)
        x, weight, bias = _zeroed(entry.zero(rule), rule, x, weight, bias, geometry, weight_tap,
                                  input_tap)
        assume(not _cancelled_zero(rule, weighted_dense(x, weight, bias, **geometry)))
    y = (conv2d_reference(np, x, weight, None, **geometry) if geometry
         else linear_reference(np, x, weight))
    primals = {"x": x, "weight": weight, "R": gen.standard_normal(y.shape)}
    if bias is not None:
        primals["bias"] = bias
    return Case(primals, {**params, **geometry, "method": draw(st.sampled_from(METHODS))})


@st.composite
def _norm_cases(draw):
    """Average pooling; exact cases have kernels of 1, 2 or 4 entries (exact means) and a zero mean."""
    params = draw(_params())
    gen = draw(rng())
    exact = draw(st.booleans())
    sides = st.sampled_from([1, 2]) if exact else st.integers(1, 3)
    kh, kw = draw(sides), draw(sides)
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 2), st.integers(1, 2))))
    values = _dyadic(gen) if exact else gen.standard_normal
    x = values((draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(kh, 5)),
                draw(st.integers(kw, 5))))
    if exact:
        x[0, 0, 0, 0] -= x[0, 0, :kh, :kw].sum()
    y = avg_pool_reference(np, x, (kh, kw), stride)
    return Case({"x": x, "R": gen.standard_normal(y.shape)},
                {**params, "kernel_size": (kh, kw), "stride": stride,
                 "method": draw(st.sampled_from(METHODS))})


# -- single-layer rule functions: properties and records ------------------------------------


def _linear_in_R(op):
    def check(impl, case, ctx):
        """``f(R1 + 2.5 R2) = f(R1) + 2.5 f(R2)``: every rule is linear in the upper relevance."""
        R1 = case.primals["R"]
        R2 = np.random.default_rng(5).standard_normal(R1.shape)

        def run(R):
            return run_outputs(op, impl, case, ctx, primals={**case.primals, "R": R})["relevance"]

        return rel_error(run(R1 + 2.5 * R2), run(R1) + 2.5 * run(R2))
    return check


def _methods_agree(op):
    def check(impl, case, ctx):
        """``method="explicit"`` equals ``method="gradient"``."""
        got = [run_outputs(op, impl, Case(case.primals, {**case.params, "method": m}), ctx)
               ["relevance"] for m in METHODS]
        return rel_error(got[1], got[0])
    return check


def _weighted_bench_case(size):
    """``size = (n, in, out)``: one Linear layer, inputs in [0, 1) (post-ReLU), Gaussian R."""
    n, fan_in, fan_out = size
    gen = np.random.default_rng(0)
    return Case({"x": gen.uniform(size=(n, fan_in)),
                 "weight": gen.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in),
                 "R": gen.standard_normal((n, fan_out)), "bias": gen.standard_normal(fan_out)})


def _norm_bench_case(size):
    """``size = (n, c, side)``: 2 x 2 average pooling of ``(n, c, side, side)`` inputs."""
    n, c, side = size
    gen = np.random.default_rng(0)
    return Case({"x": gen.uniform(size=(n, c, side, side)),
                 "R": gen.standard_normal((n, c, side // 2, side // 2))}, {"kernel_size": 2})


def _rule_record(function, primals, cases, reference, convention, bench_case, bench_sizes):
    """One rule function's record, benchmarked against its formulas on dense matrices."""
    op = Op(
        forward=function, primals=primals, outputs=(Output("relevance"),), cases=cases,
        reference=reference, tolerance=LRP_TOL, convention=f"{convention}; {STABILIZER}.",
        section="5.1", references=REFERENCES, options=("method",),
        bench_case=bench_case, bench_sizes=bench_sizes, bench_anchor=Anchor("dense"),
    )
    return register(dataclasses.replace(op, properties=(
        Property("linear in R", _linear_in_R(op), "f(R1 + 2.5 R2) = f(R1) + 2.5 f(R2)"),
        Property("explicit and gradient methods agree", _methods_agree(op),
                 "method='explicit' equals method='gradient'", refimpl_only=True),
    )))


_WEIGHTED_PRIMALS = (Primal("x"), Primal("weight"), Primal("R"), Primal("bias", optional=True))
_LAYER = ("one Linear (weight (out, in)) or Conv2d (weight (O, C, kh, kw), stride, padding) "
          "layer with input x, optional bias and relevance R at its output: ")

for _function, _entry in RULE_FUNCTIONS.items():
    _rule_record(_function, _WEIGHTED_PRIMALS, lambda f=_function: _weighted_cases(f),
                 _weighted_reference(_entry.rule), _LAYER + _entry.convention,
                 _weighted_bench_case, ((16, 64, 64), (64, 256, 256)))

_rule_record(lrp_norm, (Primal("x"), Primal("R")), _norm_cases, _norm_reference,
             "the epsilon rule on one average pooling (kernel_size, stride; k = kh kw): "
             "R_i = a_i sum_{j contains i} R_j / (k S(z_j)), z_j the window mean",
             _norm_bench_case, ((4, 4, 8), (8, 8, 8)))


# -- lrp on networks: rule sets and cases ---------------------------------------------------

#: One weighted rule on every Linear and Conv2d (Norm on average pools, Pass elsewhere).
WEIGHTED_RULES = (
    Epsilon(), Epsilon(epsilon=0.1, zero_bias=True, stabilizer="zero_only"),
    Gamma(), Gamma(gamma=1.0, epsilon=1e-3, zero_bias=True), Gamma(weights_only=True),
    AlphaBeta(alpha=2.0, beta=1.0), AlphaBeta(alpha=1.0, beta=0.0, stabilizer="zero_only"),
    ZPlus(), ZPlus(weights_only=True), WSquare(), WSquare(zero_bias=True), Flat(),
    ZBox(low=-1.0, high=1.0), ZBox(low=-2.0, high=1.5, epsilon=1e-3),
)
#: zennit's composites, with their options.
COMPOSITES = (
    EpsilonGammaBox(), EpsilonPlus(), EpsilonPlusFlat(), EpsilonAlpha2Beta1(),
    EpsilonPlus(rule_epsilon=0.1, stabilizer="zero_only"),
    EpsilonGammaBox(low=-2.0, high=1.5, gamma=1.0, epsilon=1e-3, stabilizer="zero_only"),
)
_WEIGHTED = (Linear, Conv2d)
_AVERAGE = (AvgPool2d, AdaptiveAvgPool2d)


def uniform_rules(layers, rule, pool_epsilon=1e-6) -> list:
    """``rule`` on every weighted layer, Norm on average pools, Pass elsewhere."""
    return [rule if isinstance(layer, _WEIGHTED)
            else Norm(epsilon=pool_epsilon) if isinstance(layer, _AVERAGE) else Pass()
            for layer in layers]


def captum_rules(layers) -> list:
    """captum's defaults: Epsilon on weighted layers and every pooling, Pass elsewhere."""
    return [Epsilon() if isinstance(layer, _WEIGHTED + _AVERAGE + (MaxPool2d,)) else Pass()
            for layer in layers]


def _rules(draw, layers, batchnorm):
    index = draw(st.integers(0, len(WEIGHTED_RULES) + len(COMPOSITES)))
    if batchnorm:  # captum / iNNvestigate: the epsilon rule on every unmerged BatchNorm
        zero_bias = draw(st.booleans())
        return [Epsilon(zero_bias=zero_bias) if isinstance(layer, BatchNorm) else rule for layer, rule
                in zip(layers, uniform_rules(layers, WEIGHTED_RULES[index % len(WEIGHTED_RULES)]))]
    if index < len(WEIGHTED_RULES):
        return uniform_rules(layers, WEIGHTED_RULES[index])
    if index < len(WEIGHTED_RULES) + len(COMPOSITES):
        return COMPOSITES[index - len(WEIGHTED_RULES)]
    return captum_rules(layers)


@st.composite
def _lrp_cases(draw, batchnorm=False):
    """ReLU networks, ``R_out = y * noise``, a rule set, and refimpl's method."""
    layers, x = draw(networks(activations=("relu",), batchnorm=batchnorm))
    y = network_reference(np, layers, x)
    R_out = draw(rng()).standard_normal(y.shape) * y
    return Case({"layers": layers, "x": x, "R_out": R_out},
                {"rules": _rules(draw, layers, batchnorm),
                 "method": draw(st.sampled_from(METHODS))})


def _lrp_reference(layers, x, R_out, *, rules, method=None):
    return {"relevance": reference_lrp(layers, x, R_out, rules)[0][0]}


def _lrp_bench_case(size):
    """``size = (n, d)``: Linear(d, d), ReLU, Linear(d, d), ReLU, Linear(d, 10) on ``n``
    inputs, EpsilonPlus, and R_out = the output (dense formulas of convolutions would be
    the reference's whole cost: an MLP keeps the anchor to the rules' work)."""
    n, d = size
    gen = np.random.default_rng(0)

    def linear(fan_in, fan_out):
        return Linear(gen.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in),
                      gen.standard_normal(fan_out))

    layers = [linear(d, d), ReLU(), linear(d, d), ReLU(), linear(d, 10)]
    x = gen.standard_normal((n, d))
    return Case({"layers": layers, "x": x, "R_out": network_reference(np, layers, x)},
                {"rules": EpsilonPlus()})


# -- lrp on networks: properties through the implementation ---------------------------------

_LRP_PRIMALS = ("layers", "x", "R_out")


def _split(case, changes):
    primals = {**case.primals, **{k: v for k, v in changes.items() if k in _LRP_PRIMALS}}
    params = {**case.params, **{k: v for k, v in changes.items() if k not in _LRP_PRIMALS}}
    return primals, params


def _relevances(impl, case, ctx, **changes) -> list:
    """``relevance_at`` of ``impl.forward`` with primals or params changed, checked, as float64."""
    primals, params = _split(case, changes)
    at = outputs_of(LRP, call_forward(LRP, impl.forward, primals, params, ctx.put))["relevance_at"]
    shapes = [a.shape for a in network_activations(np, primals["layers"], primals["x"])]
    if not isinstance(at, (list, tuple)) or len(at) != len(shapes):
        raise CheckError(f"relevance_at must be a sequence of {len(shapes)} arrays (the input of "
                         f"every layer, then R_out), got {type(at).__name__}")
    return [ctx.take(r, s, f"relevance_at[{i}]") for i, (r, s) in enumerate(zip(at, shapes))]


def _expected(case, ctx, **changes):
    """``(relevance_at, slack_at)`` of the formulas on the inputs the implementation saw."""
    primals, params = _split(case, changes)
    p = {k: ctx.rounded(v) for k, v in primals.items()}
    return reference_lrp(p["layers"], p["x"], p["R_out"], params["rules"])


def _by_layer(got, expected):
    return worst({f"relevance_at[{i}]": rel_error(g, e) for i, (g, e) in enumerate(zip(got, expected))})


def _replace_weighted(layers, **fields):
    return [dataclasses.replace(layer, **{k: f(layer) for k, f in fields.items()})
            if isinstance(layer, _WEIGHTED) else layer for layer in layers]


def _without_bias(layers):
    return _replace_weighted(layers, bias=lambda layer: None)


def _unit_weights(layers):
    return _replace_weighted(layers, weight=lambda layer: np.ones_like(layer.weight),
                             bias=lambda layer: None)


def _matches_formulas(impl, case, ctx):
    return _by_layer(_relevances(impl, case, ctx), _expected(case, ctx)[0])


def _lrp_methods_agree(impl, case, ctx):
    return _by_layer(*[_relevances(impl, case, ctx, method=m) for m in METHODS])


def _conservation(impl, case, ctx):
    """Per layer and sample: ``|sum R_in - sum R_out| <= sum_j |R_j| |1 - sum_t f_t z_t / S(z_t)|``.

    Bias-free network; the slack is what the reference's terms ``t`` do not pass on: the
    stabiliser's share (``eps / (|z| + eps)`` per unit of relevance; alpha-beta's branch with
    ``z = 0`` leaves ``|beta R_j|``) and all of ``R_j`` where gamma's ``z_j = 0`` (a unit
    whose inputs are all 0) passes nothing, by its convention.
    """
    layers = _without_bias(case.primals["layers"])
    got = _relevances(impl, case, ctx, layers=layers)
    _, slack = _expected(case, ctx, layers=layers)
    errors = {}
    for i, (below, above, s) in enumerate(zip(got[:-1], got[1:], slack)):
        gap = np.abs(_flat(below).sum(1) - _flat(above).sum(1))
        scale = np.abs(_flat(below)).sum(1) + np.abs(_flat(above)).sum(1) + 1e-300
        errors[f"layer {i}"] = float(np.max(np.maximum(gap - s, 0.0) / scale))
    return worst(errors)


def _linear_in_R_out(impl, case, ctx):
    R1 = case.primals["R_out"]
    R2 = np.random.default_rng(5).standard_normal(R1.shape)
    both, first, second = (_relevances(impl, case, ctx, R_out=R) for R in (R1 + 2.5 * R2, R1, R2))
    return _by_layer(both, [p + 2.5 * q for p, q in zip(first, second)])


def _same_relevance(first, second, transform=None):
    """Two uniform rule sets give the same relevance at every layer (layers ``transform``-ed)."""
    def check(impl, case, ctx):
        layers = case.primals["layers"] if transform is None else transform(case.primals["layers"])
        return _by_layer(*[_relevances(impl, case, ctx, layers=layers,
                                       rules=uniform_rules(layers, rule)) for rule in (first, second)])
    return check


def _lrp0_is_gradient_times_input(impl, case, ctx):
    """Epsilon 1e-13 with ``R_out = y G``: relevance equals ``a * grad <G, tail(a)>`` at every layer
    (autograd of the reference network's tail)."""
    p = {k: ctx.rounded(v) for k, v in case.primals.items()}
    acts = network_activations(np, p["layers"], p["x"])
    G = np.random.default_rng(3).standard_normal(acts[-1].shape)
    rules = uniform_rules(case.primals["layers"], Epsilon(epsilon=1e-13), pool_epsilon=1e-13)
    got = _relevances(impl, case, ctx, R_out=G * acts[-1], rules=rules)
    errors = {}
    for i, a in enumerate(acts[:-1]):
        tail = p["layers"][i:]
        gradient = autograd.grad(lambda v: anp.sum(G * network_reference(anp, tail, v)))(a)
        errors[f"relevance_at[{i}]"] = rel_error(got[i], a * gradient)
    return worst(errors)


def _per_sample(impl, case, ctx):
    x, R = case.primals["x"], case.primals["R_out"]
    batch = _relevances(impl, case, ctx)
    alone = [_relevances(impl, case, ctx, x=x[s:s + 1], R_out=R[s:s + 1]) for s in range(x.shape[0])]
    return _by_layer(batch, [np.concatenate(parts) for parts in zip(*alone)])


def _no_nan_at_zeros(impl, case, ctx):
    """A zero input sample and zero relevance entries, bias-free: every relevance is finite."""
    x, R = case.primals["x"].copy(), case.primals["R_out"].copy()
    x[0] = 0.0
    R.reshape(-1)[::2] = 0.0
    got = _relevances(impl, case, ctx, layers=_without_bias(case.primals["layers"]), x=x, R_out=R)
    return 0.0 if all(np.all(np.isfinite(r)) for r in got) else float("inf")


LRP_PROPERTIES = (
    Property("matches the rule formulas at every layer", _matches_formulas,
                  "relevance_at equals the formulas of docs/conventions.rst, section 5.1, on dense "
                  "matrices, at every layer, for every rule set and composite"),
    Property("explicit and gradient methods agree", _lrp_methods_agree,
                  "method='explicit' equals method='gradient' at every layer", refimpl_only=True),
    Property("conservation (bias-free)", _conservation,
                  "per layer and sample, abs(sum R_in - sum R_out) <= what the terms t do not "
                  "pass on, sum_j abs(R_j (1 - sum_t f_t z_t/S(z_t))) (the stabiliser's share, "
                  "gamma's z_j = 0), relative to the sum of abs(R)"),
    Property("linear in R_out", _linear_in_R_out, "lrp(R1 + c R2) = lrp(R1) + c lrp(R2)"),
    Property("AlphaBeta(1, 0) equals ZPlus",
                  _same_relevance(AlphaBeta(alpha=1.0, beta=0.0), ZPlus()),
                  "two branches with beta = 0 equal the one-branch z+ rule"),
    Property("Gamma(0) equals Epsilon", _same_relevance(Gamma(gamma=0.0), Epsilon()),
                  "gamma = 0 gives the epsilon rule (no exact-zero outputs in the cases)"),
    Property("Flat equals WSquare with unit weights",
                  _same_relevance(Flat(), WSquare(), _unit_weights),
                  "all weights 1, no bias: flat = w-square"),
    Property("ZBox(0, 0) equals Epsilon without bias",
                  _same_relevance(ZBox(low=0.0, high=0.0), Epsilon(zero_bias=True)),
                  "bounds l = h = 0 give the epsilon rule with zero_bias=True"),
    Property("LRP-0 equals gradient x input", _lrp0_is_gradient_times_input,
                  "epsilon 1e-13 with R_out = y * G equals a * (autograd VJP of the reference "
                  "tail network) at every layer", tolerance={"float64": 1e-7, "float32": 2e-3}),
    Property("Epsilon on an unmerged BatchNorm", _matches_formulas,
                  "captum/iNNvestigate: a BatchNorm after every weighted layer takes the epsilon "
                  "rule on its affine map; every layer equals the formulas",
                  cases=lambda: _lrp_cases(batchnorm=True)),
    Property("samples are independent", _per_sample,
                  "LRP of a batch equals LRP of each sample alone"),
    Property("no NaN at exact zeros", _no_nan_at_zeros,
                  "a zero sample and zero relevance entries give finite relevance everywhere"),
)

LRP = register(Op(
    forward=lrp,
    primals=(Primal("layers", dtype="tree", differentiable=False), Primal("x"), Primal("R_out")),
    outputs=(Output("relevance"), Output("relevance_at", differentiable=False, compared=False),
             Output("output", differentiable=False, compared=False)),
    cases=_lrp_cases,
    reference=_lrp_reference,
    properties=LRP_PROPERTIES,
    tolerance=LRP_TOL,
    convention="lrp(layers, x, R_out, rules=...) returns relevance (at x), relevance_at (at the "
               "input of every layer, then R_out) and output; layers as for sequential; rules is "
               "one rule per layer, read by class name and fields (Epsilon(epsilon, zero_bias, "
               "stabilizer), Gamma(gamma, epsilon, zero_bias, stabilizer, weights_only), "
               "AlphaBeta(alpha, beta, epsilon, zero_bias, stabilizer), ZPlus(epsilon, zero_bias, "
               "stabilizer, weights_only), ZBox(low, high, epsilon, zero_bias, stabilizer), "
               "WSquare(epsilon, zero_bias, stabilizer), Flat(epsilon, zero_bias, stabilizer), "
               "Norm(epsilon, stabilizer), Pass()), or a zennit composite (EpsilonPlus, "
               "EpsilonPlusFlat, EpsilonAlpha2Beta1, EpsilonGammaBox with low, high, gamma; all "
               "with epsilon for dense layers, rule_epsilon for the other rules, stabilizer) that "
               f"maps layers to rules by type; {STABILIZER}.",
    section="5.1",
    references=REFERENCES,
    options=("method",),
    bench_case=_lrp_bench_case, bench_sizes=((16, 64), (64, 256)), bench_anchor=Anchor("dense"),
))
