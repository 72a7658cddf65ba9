"""LRP: registered properties on every backend, the reference tables, composites, bad input, teeth."""

import dataclasses

import numpy as np
import pytest

import refimpl.attribution as A
from refimpl.attribution import relevance as L
from refimpl.backend import backend_namespace, from_numpy, to_numpy
from refimpl.nn import (
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    sequential,
)
import verify
from verify import get_op
from verify._tree import tree_map
from verify.checks import Context, impl_of
from verify.engine import properties_of
from verify.ops.attribution._formulas import COMPOSITE_RULES, DENSE_LAYERS, FORMULAS, reference_lrp
from verify.ops.attribution.relevance import uniform_rules
from verify.registry import Case
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("attribution.relevance"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


# -- the reference tables cover every exported class ----------------------------------------


def _exported(base):
    return {v for v in vars(A).values() if isinstance(v, type) and issubclass(v, base)}


def test_every_rule_class_has_a_formula():
    assert _exported(L._Rule) == set(FORMULAS)


def test_every_composite_has_a_reference_layer_map():
    assert _exported(L._Composite) == set(COMPOSITE_RULES)


def test_every_layer_class_has_a_dense_form():
    from verify.ops.nn.network import LAYER_REFERENCES

    assert set(DENSE_LAYERS) == set(LAYER_REFERENCES)


# -- composites: the rules they produce, field by field --------------------------------------


def _cnn(bias=True, seed=0, pool=AvgPool2d):
    gen = np.random.default_rng(seed)
    return [Conv2d(gen.standard_normal((3, 2, 3, 3)), gen.standard_normal(3) if bias else None,
                   padding=1),
            ReLU(), pool(2),
            Conv2d(gen.standard_normal((2, 3, 2, 2)) / 3, gen.standard_normal(2) if bias else None),
            ReLU(), Flatten(), Linear(gen.standard_normal((3, 8)) / 3,
                                      gen.standard_normal(3) if bias else None)]


def _mlp():
    return [Linear(np.ones((2, 3))), ReLU(), Linear(np.ones((1, 2)))]


OPTIONS = [{}, {"epsilon": 1e-3}, {"rule_epsilon": 0.1}, {"stabilizer": "zero_only"},
           {"epsilon": 1e-3, "rule_epsilon": 0.1, "stabilizer": "zero_only"}]


def _expected(options):
    """``(dense Epsilon, keywords of every other rule)`` for composite ``options``."""
    stabilizer = options.get("stabilizer", "sign")
    return (A.Epsilon(epsilon=options.get("epsilon", 1e-6), stabilizer=stabilizer),
            {"epsilon": options.get("rule_epsilon", 1e-6), "stabilizer": stabilizer})


@pytest.mark.parametrize("options", OPTIONS)
def test_epsilon_plus(options):
    dense, kw = _expected(options)
    assert A.EpsilonPlus(**options)(_cnn()) == [
        A.ZPlus(**kw), A.Pass(), A.Norm(**kw), A.ZPlus(**kw), A.Pass(), A.Pass(), dense]
    assert A.EpsilonPlus(**options)(_cnn(pool=MaxPool2d))[2] == A.Pass()


@pytest.mark.parametrize("options", OPTIONS)
def test_epsilon_plus_flat(options):
    dense, kw = _expected(options)
    assert A.EpsilonPlusFlat(**options)(_cnn()) == [
        A.Flat(**kw), A.Pass(), A.Norm(**kw), A.ZPlus(**kw), A.Pass(), A.Pass(), dense]
    assert A.EpsilonPlusFlat(**options)(_mlp()) == [A.Flat(**kw), A.Pass(), dense]


@pytest.mark.parametrize("options", OPTIONS)
def test_epsilon_alpha2_beta1(options):
    dense, kw = _expected(options)
    ab = A.AlphaBeta(alpha=2.0, beta=1.0, **kw)
    assert A.EpsilonAlpha2Beta1(**options)(_cnn()) == [
        ab, A.Pass(), A.Norm(**kw), ab, A.Pass(), A.Pass(), dense]


@pytest.mark.parametrize("options", OPTIONS + [{"gamma": 1.0}, {"low": 0.0, "high": 2.0},
                                               {"low": -2.0, "high": 1.5, "gamma": 0.5,
                                                "epsilon": 1e-3, "stabilizer": "zero_only"}])
def test_epsilon_gamma_box(options):
    dense, kw = _expected(options)
    box = A.ZBox(low=options.get("low", -1.0), high=options.get("high", 1.0), **kw)
    gamma = A.Gamma(gamma=options.get("gamma", 0.25), **kw)
    assert A.EpsilonGammaBox(**options)(_cnn()) == [
        box, A.Pass(), A.Norm(**kw), gamma, A.Pass(), A.Pass(), dense]
    assert A.EpsilonGammaBox(**options)(_mlp())[0] == dense  # ZBox goes to the first *Conv2d*


def test_epsilon_gamma_box_passes_array_bounds_on():
    low, high = -np.ones((2, 1, 1)), np.ones((2, 1, 1))
    box = A.EpsilonGammaBox(low=low, high=high)(_cnn())[0]
    assert box.low is low and box.high is high


def test_composites_refuse_batchnorm_and_bad_options():
    layers = _cnn()[:1] + [BatchNorm(*[np.ones(3)] * 4)] + _cnn()[1:]
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm\): merge it with merge_batchnorm"):
        A.EpsilonPlus()(layers)
    for make, match in [(lambda: A.EpsilonPlus(epsilon=0.0), "epsilon must be > 0"),
                        (lambda: A.EpsilonPlus(rule_epsilon=-1.0), "epsilon must be > 0"),
                        (lambda: A.EpsilonPlusFlat(stabilizer=1e-6), "stabilizer must be one of"),
                        (lambda: A.EpsilonGammaBox(gamma=-0.5), "gamma must be >= 0")]:
        with pytest.raises(ValueError, match=match):
            make()


# -- direct tests -----------------------------------------------------------------------------


@pytest.fixture
def x():
    return np.random.default_rng(1).uniform(-1, 1, (2, 2, 6, 6))


def test_relevance_at_every_layer_and_output(x):
    layers = _cnn()
    y = sequential(layers, x)
    R = np.zeros_like(y)
    R[:, 1] = y[:, 1]  # one-hot times the logit
    res = A.lrp(layers, x, R, A.EpsilonGammaBox())
    assert len(res.relevance_at) == len(layers) + 1
    assert res.relevance is res.relevance_at[0] and res.relevance.shape == x.shape
    assert res.relevance_at[-1] is R
    np.testing.assert_array_equal(res.output, y)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict:device1"])
@pytest.mark.parametrize("shape", [(2, 1, 1), (2, 6, 6), (6, 1)])
def test_zbox_array_bounds_match_the_formula(x, backend, shape):
    """Per-channel bounds (folded into one weight) and spatially varying ones (three copies)."""
    gen = np.random.default_rng(7)
    low, high = -gen.uniform(1, 2, shape), gen.uniform(1, 2, shape)
    layers = _cnn(pool=MaxPool2d)
    y = sequential(layers, x)
    expected, _ = reference_lrp(layers, x, y, A.EpsilonGammaBox(low=low, high=high))
    be = backend_namespace(backend)

    def put(a):
        return from_numpy(a, be)

    rules = A.EpsilonGammaBox(low=put(low), high=put(high))
    for method in A.METHODS:
        got = A.lrp(tree_map(put, layers), put(x), put(y), rules, method=method).relevance
        np.testing.assert_allclose(to_numpy(got), expected[0], rtol=1e-10, atol=1e-12)


def test_rule_function_is_lrp_on_one_layer(x):
    gen = np.random.default_rng(3)
    conv = Conv2d(gen.standard_normal((3, 2, 3, 2)), gen.standard_normal(3), (2, 1), (1, 0))
    R = gen.standard_normal(conv.forward(x).shape)
    rule = A.Gamma(gamma=0.5, epsilon=1e-3, weights_only=True)
    np.testing.assert_array_equal(
        A.lrp_gamma(x, conv.weight, R, bias=conv.bias, gamma=0.5, epsilon=1e-3, weights_only=True,
                    stride=(2, 1), padding=(1, 0)),
        A.lrp([conv], x, R, [rule]).relevance)


def _rules(layers):
    return A.EpsilonPlus()(layers)


@pytest.mark.parametrize("change, error, match", [
    (dict(rules=lambda ls: [A.Pass()] * len(ls)), ValueError,
     r"rule 0 \(Pass\(\)\) applies to .* layer 0 is Conv2d"),
    (dict(rules=lambda ls: _rules(ls)[:2] + [A.ZBox()] + _rules(ls)[3:]), ValueError,
     r"rule 2 .*applies to Linear/Conv2d layers, but layer 2 is AvgPool2d"),
    (dict(rules=lambda ls: _rules(ls)[:-1]), ValueError, "got 6 rules for 7 layers"),
    (dict(rules=lambda ls: _rules(ls)[:-1] + ["epsilon"]), TypeError, "rule 6 must be an LRP rule"),
    (dict(R=np.ones((2, 4))), ValueError,
     r"R_out must have the output's shape \(2, 3\)"),
    (dict(R=np.ones((2, 3), dtype=np.float32)), TypeError, "share one dtype"),
    (dict(x=np.ones((2, 2, 5, 6))), ValueError, r"layer 6 \(Linear\): x must have shape \(\.\.\., in\)"),
    (dict(x=np.ones((2, 3, 6, 6))), ValueError, r"layer 0 \(Conv2d\): x must have 2 channels"),
    (dict(method="autograd"), ValueError, "method must be one of"),
])
def test_bad_input(x, change, error, match):
    layers = _cnn()
    args = dict(x=x, R=np.ones((2, 3)), rules=_rules, method="gradient")
    args.update(change)
    with pytest.raises(error, match=match):
        A.lrp(layers, args["x"], args["R"], args["rules"], method=args["method"])


@pytest.mark.parametrize("call, error, match", [
    (lambda: A.lrp_epsilon(np.ones((2, 3)), np.ones((2, 3, 1)), np.ones((2, 2))), ValueError,
     r"weight must have shape \(out, in\) \(Linear\) or \(out_c, in_c, kh, kw\)"),
    (lambda: A.lrp_epsilon(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 2)), stride=2), ValueError,
     "stride and padding apply to a Conv2d weight"),
    (lambda: A.lrp_alpha_beta(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 2)), alpha=1.0,
                              beta=1.0), ValueError, "alpha - beta must be 1"),
    (lambda: A.lrp_norm(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), kernel_size=2,
                        stabilizer="clip"), ValueError, "stabilizer must be one of"),
    (lambda: A.lrp_zplus(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3))), ValueError,
     r"R must have the output's shape \(2, 2\)"),
    (lambda: A.lrp_zbox(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 2)), low=1.0, high=0.5),
     ValueError, "low must not exceed high"),
    (lambda: A.lrp_zbox(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 2)), low=np.nan), TypeError,
     "low must be a finite real number"),
    (lambda: A.lrp_gamma(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 2)), gamma=np.inf),
     TypeError, "gamma must be a finite real number"),
    (lambda: A.lrp_epsilon(np.ones((2, 3)), np.ones((2, 3)),
                           np.array([[1.0, np.nan], [1.0, 1.0]])),
     ValueError, "R must not contain infs or NaNs"),
    (lambda: A.lrp_epsilon(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 2), np.float32)),
     TypeError, "x: float64, R: float32"),
])
def test_rule_function_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_batchnorm_takes_epsilon_or_must_be_merged(x):
    c = np.ones(3)
    layers = _cnn()[:1] + [BatchNorm(c, c, c, c)] + _cnn()[1:]
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm\) takes no Pass rule: .*merge_batchnorm"):
        A.lrp(layers, x, np.ones((2, 3)), [A.Epsilon(), A.Pass()] + _rules(_cnn())[1:])


@pytest.mark.parametrize("make, error, match", [
    (lambda: A.Epsilon(epsilon=0.0), ValueError, "epsilon must be > 0"),
    (lambda: A.Gamma(gamma=-0.5), ValueError, "gamma must be >= 0"),
    (lambda: A.AlphaBeta(alpha=2.0, beta=2.0), ValueError, "alpha - beta must be 1"),
    (lambda: A.ZPlus(stabilizer="clip"), ValueError, "stabilizer must be one of"),
    (lambda: A.Norm(epsilon=True), TypeError, "epsilon must be a finite real number"),
    (lambda: A.Epsilon(epsilon=np.inf), TypeError, "epsilon must be a finite real number"),
])
def test_bad_rule(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_zbox_bounds_must_broadcast(x):
    rules = A.EpsilonGammaBox(low=np.zeros(5), high=1.0)(_cnn())
    with pytest.raises(ValueError, match="ZBox low of shape .* does not broadcast to one sample"):
        A.lrp(_cnn(), x, np.ones((2, 3)), rules)


# -- the checks have teeth: a planted bug must make the named properties fail ------------------


def _net_case(rule, bias=True, method="gradient", batchnorm=False):
    """A fixed CNN (conv-relu-maxpool-conv-relu-flatten-linear) with ``rule`` on weighted layers."""
    gen = np.random.default_rng(4)
    layers = _cnn(bias, seed=4, pool=MaxPool2d)
    if batchnorm:
        layers = layers[:1] + [BatchNorm(*[gen.uniform(0.5, 2.0, 3) for _ in range(4)])] + layers[1:]
    x = gen.uniform(-1, 1, (2, 2, 6, 6))
    rules = uniform_rules(layers, rule)
    if batchnorm:
        rules[1] = A.Epsilon()
    R = gen.standard_normal((2, 3)) * sequential(layers, x)
    return Case({"layers": layers, "x": x, "R_out": R}, {"rules": rules, "method": method})


def _failing(case, names):
    op = get_op("lrp")
    ctx = Context(backend_namespace("numpy"), "float64")
    props = [p for p in properties_of(op) if p.name in names]
    assert len(props) == len(names)
    return {p.name for p in props
            if not p.check(impl_of(op), case, ctx) <= (p.tolerance or op.tolerance)["float64"]}


def _wrap(cls, name, after):
    original = getattr(cls, name)

    def planted(self, *args):
        return after(self, args, original(self, *args))
    return planted


def _drop_negative_outputs(self, args, result):
    inputs, (up, dn) = result
    dn.factor = 0.0 * dn.factor
    return inputs, [up, dn]


def _swap_factors(self, args, result):
    inputs, (up, dn) = result
    up.factor, dn.factor = dn.factor, up.factor
    return inputs, [up, dn]


def _with_layer_bias(self, args, result):
    inputs, branches = result
    branches[0].bias = args[1].bias
    return inputs, branches


def _times_input(self, args, result):
    return [args[2]], result[1]


def _halve_activations(self, args, result):
    return 0.5 * result if args[1].kind == "activation" else result


def _square_term(self, args, result):
    return result + 1e-2 * result * result


def _bias_free_denominator(original):
    """Epsilon that divides by the output without its bias (explicit method unchanged)."""
    def planted(self, xp, layer, a, z, R, method):
        if method == "gradient" and layer.kind == "weighted" and layer.bias is not None:
            z = z - layer.bias_map(layer.bias, tuple(z.shape[1:]))
        return original(self, xp, layer, a, z, R, method)
    return planted


def _gradient_keeps_bias(original):
    """Epsilon whose gradient method ignores ``zero_bias``."""
    def planted(self, xp, layer, a, z, R, method):
        rule = dataclasses.replace(self, zero_bias=False) if method == "gradient" else self
        return original(rule, xp, layer, a, z, R, method)
    return planted


FORMULAS_CHECK = "matches the rule formulas at every layer"
_EPSILON_ZERO_ONLY = A.Epsilon(epsilon=0.1, zero_bias=True, stabilizer="zero_only")
PLANTED = [
    # (target, attribute, replacement, rule, bias, method, properties that must fail)
    (L.Gamma, "branches", _wrap(L.Gamma, "branches", _swap_factors), A.Gamma(), True, "gradient",
     {FORMULAS_CHECK}),
    (L.Gamma, "branches", _wrap(L.Gamma, "branches", _drop_negative_outputs), A.Gamma(), True,
     "gradient", {FORMULAS_CHECK, "Gamma(0) equals Epsilon"}),
    (L.ZPlus, "branches", _wrap(L.ZPlus, "branches", _with_layer_bias), A.ZPlus(), True, "gradient",
     {FORMULAS_CHECK, "AlphaBeta(1, 0) equals ZPlus"}),
    (L.ZBox, "branches", _wrap(L.ZBox, "branches", _with_layer_bias), A.ZBox(), True, "explicit",
     {FORMULAS_CHECK, "explicit and gradient methods agree"}),
    (L.Epsilon, "propagate", _gradient_keeps_bias(L.Epsilon.propagate), _EPSILON_ZERO_ONLY, True,
     "gradient", {FORMULAS_CHECK, "ZBox(0, 0) equals Epsilon without bias"}),
    (L.Flat, "branches", _wrap(L.Flat, "branches", _times_input), A.Flat(), True, "gradient",
     {FORMULAS_CHECK, "Flat equals WSquare with unit weights"}),
    (L.Epsilon, "propagate", _bias_free_denominator(L.Epsilon.propagate), A.Epsilon(), True,
     "gradient", {FORMULAS_CHECK, "LRP-0 equals gradient x input"}),
    (L.Pass, "propagate", _wrap(L.Pass, "propagate", _halve_activations), A.Epsilon(), False,
     "gradient", {FORMULAS_CHECK, "conservation (bias-free)", "LRP-0 equals gradient x input"}),
    (L.Epsilon, "propagate", _wrap(L.Epsilon, "propagate", _square_term), A.Epsilon(), True,
     "gradient", {"linear in R_out"}),
    (L, "_neg", lambda xp, v: 0.5 * xp.minimum(v, 0.0), A.AlphaBeta(), True, "gradient",
     {FORMULAS_CHECK}),
    (L, "_stabilize", lambda xp, z, eps, mode: z + eps + 1e-3 * xp.mean(z), A.Epsilon(), True,
     "gradient", {"samples are independent", FORMULAS_CHECK}),
    (L, "_stabilize", lambda xp, z, eps, mode: z, _EPSILON_ZERO_ONLY, False, "gradient",
     {"no NaN at exact zeros"}),
]


@pytest.mark.filterwarnings("ignore:.*encountered in divide:RuntimeWarning")  # the planted NaN
@pytest.mark.parametrize("target, attr, replacement, rule, bias, method, names", PLANTED,
                         ids=[f"{getattr(t, '__name__', t)}.{a}-{sorted(n)[0]}"
                              for t, a, _, _, _, _, n in PLANTED])
def test_planted_lrp_bug_is_caught(monkeypatch, target, attr, replacement, rule, bias, method, names):
    case = _net_case(rule, bias, method)
    assert _failing(case, names) == set()
    monkeypatch.setattr(target, attr, replacement)
    assert _failing(case, names) == names


def test_planted_batchnorm_shift_bug_is_caught(monkeypatch):
    from refimpl.nn.normalization import _ChannelAffine

    case = _net_case(A.Epsilon(), method="explicit", batchnorm=True)  # gradient: z is the output
    names = {"Epsilon on an unmerged BatchNorm"}
    assert _failing(case, names) == set()
    monkeypatch.setattr(BatchNorm, "as_affine", lambda self: _ChannelAffine(self.scale(), self.bias))
    assert _failing(case, names) == names


def _negative_at_zero(xp, z, eps, mode):
    """``sgn(0) = -1``: the sign stabiliser's zero goes the wrong way."""
    return xp.where(z > 0, z + eps, z - eps) if mode == "sign" else xp.where(z == 0, z + eps, z)


@pytest.mark.parametrize("function", ["lrp_epsilon", "lrp_norm"])
def test_planted_sign_at_zero_is_caught(monkeypatch, function):
    """The exact cases have a zero denominator: sgn(0) = -1 flips its relevance."""
    monkeypatch.setattr(L, "_stabilize", _negative_at_zero)
    assert "matches ground truth" in failing_properties(function, profile="ci")


def test_planted_sign_at_zero_is_caught_by_the_zbox_rule(monkeypatch):
    """A directed case, as the ci draws hold no z = 0 for z-box: with l = h = 0 the
    denominator is sum_i a_i w_i = 1 - 1 = 0, and sgn(0) = -1 flips the relevance."""
    case = Case({"x": np.array([[1.0, 1.0]]), "weight": np.array([[1.0, -1.0]]),
                 "R": np.array([[1.0]])}, {"low": 0.0, "high": 0.0})
    tolerance = get_op("lrp_zbox").tolerance["float64"]

    def error():
        return verify.replay(A.lrp_zbox, "lrp_zbox", "matches ground truth", case)

    assert error() <= tolerance
    monkeypatch.setattr(L, "_stabilize", _negative_at_zero)
    assert error() > tolerance


def test_planted_gamma_mask_at_zero_is_caught(monkeypatch):
    """Gamma passes nothing where ``z = 0``; a mask ``z >= 0`` is caught on the exact cases."""
    def upper_includes_zero(self, args, result):
        inputs, (up, dn) = result
        if not self.weights_only:
            xp, z = args[0], args[3]
            up.factor = xp.astype(z >= 0, args[2].dtype)
        return inputs, [up, dn]

    monkeypatch.setattr(L.Gamma, "branches", _wrap(L.Gamma, "branches", upper_includes_zero))
    assert "matches ground truth" in failing_properties("lrp_gamma", profile="ci")


def test_planted_explicit_bug_is_caught_on_one_layer(monkeypatch):
    monkeypatch.setattr(L.ZBox, "branches", _wrap(L.ZBox, "branches", _with_layer_bias))
    assert "explicit and gradient methods agree" in failing_properties("lrp_zbox")


@pytest.mark.parametrize("method", A.METHODS)
def test_wsquare_holds_where_the_squares_overflow(method):
    """w, b -> c w, c b with epsilon -> c^2 epsilon leaves the rule unchanged; at c = 2^600 the
    squares overflow, the relevance does not (epsilon 1e-300 is negligible both ways)."""
    gen = np.random.default_rng(5)
    x, w, b = gen.standard_normal((2, 3)), gen.standard_normal((4, 3)), gen.standard_normal(4)
    R = gen.standard_normal((2, 4))
    expected = A.lrp_wsquare(x, w, R, bias=b, epsilon=1e-300, method=method)
    c = 2.0 ** 600
    got = A.lrp_wsquare(x, w * c, R, bias=b * c, epsilon=1e-300, method=method)
    np.testing.assert_allclose(got, expected, rtol=1e-13)
