"""LRP: registered properties on every backend, composites, bad input, and teeth."""

import dataclasses

import numpy as np
import pytest

from refimpl import lrp as L
from refimpl import lrp_layers as F
from refimpl.backend import backend_namespace, from_numpy, to_numpy
from verify import get_op
from verify.checks import Context, impl_of
from verify.engine import properties_of
from verify.ops import lrp as V
from verify.ops.lrp import reference_lrp
from verify.registry import Case
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases(module="lrp"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


# -- direct tests -----------------------------------------------------------------------------


def _cnn(bias=True, seed=0):
    gen = np.random.default_rng(seed)
    return [L.Conv2d(gen.standard_normal((3, 2, 3, 3)), gen.standard_normal(3) if bias else None,
                     padding=1),
            L.ReLU(), L.AvgPool2d(2),
            L.Conv2d(gen.standard_normal((2, 3, 2, 2)) / 3, gen.standard_normal(2) if bias else None),
            L.ReLU(), L.Flatten(), L.Linear(gen.standard_normal((3, 8)) / 3,
                                            gen.standard_normal(3) if bias else None)]


@pytest.fixture
def x():
    return np.random.default_rng(1).uniform(-1, 1, (2, 2, 6, 6))


def test_composites_follow_zennit():
    layers = _cnn()
    assert L.epsilon_gamma_box(-1.0, 2.0)(layers) == [
        L.ZBox(-1.0, 2.0, 1e-6), L.Pass(), L.Norm(1e-6), L.Gamma(0.25, 1e-6), L.Pass(), L.Pass(),
        L.Epsilon(1e-6)]
    assert L.epsilon_plus()(layers)[::3] == [L.ZPlus(), L.ZPlus(), L.Epsilon(1e-6)]
    assert L.epsilon_plus_flat()(layers)[0] == L.Flat() and L.epsilon_plus_flat()(layers)[3] == L.ZPlus()
    assert L.epsilon_alpha2_beta1()(layers)[3] == L.AlphaBeta(2.0, 1.0)
    mlp = [L.Linear(np.ones((2, 3))), L.ReLU(), L.Linear(np.ones((1, 2)))]
    assert L.epsilon_plus_flat()(mlp) == [L.Flat(), L.Pass(), L.Epsilon(1e-6)]
    assert L.epsilon_gamma_box(0.0, 1.0)(mlp)[0] == L.Epsilon(1e-6)  # zB goes to the first *conv*


def test_relevance_at_every_layer_and_output(x):
    layers = _cnn()
    y = L.forward(layers, x)
    R = np.zeros_like(y)
    R[:, 1] = y[:, 1]  # one-hot times the logit
    res = L.lrp(layers, x, R, L.epsilon_gamma_box(-1.0, 1.0))
    assert len(res.relevance_at) == len(layers) + 1
    assert res.relevance is res.relevance_at[0] and res.relevance.shape == x.shape
    assert res.relevance_at[-1] is R
    np.testing.assert_array_equal(res.output, y)


def test_batchnorm_merge_matches_pytorch_formula():
    gen = np.random.default_rng(2)
    w, b = gen.standard_normal((3, 4)), gen.standard_normal(3)
    g, beta = gen.uniform(1, 2, 3), gen.standard_normal(3)
    mean, var = gen.standard_normal(3), gen.uniform(1, 2, 3)
    (merged,) = L.merge_batchnorm([L.Linear(w, b), L.BatchNorm(g, beta, mean, var, eps=1e-3)])
    s = g / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(merged.weight, w * s[:, None], rtol=1e-15)
    np.testing.assert_allclose(merged.bias, (b - mean) * s + beta, rtol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict:device1"])
@pytest.mark.parametrize("shape", [(2, 1, 1), (2, 6, 6), (6, 1)])
def test_zbox_array_bounds_match_the_formula(x, backend, shape):
    """Per-channel bounds (folded into one weight) and spatially varying ones (three copies)."""
    gen = np.random.default_rng(7)
    low = -gen.uniform(1, 2, shape)
    high = gen.uniform(1, 2, shape)
    case = _net_case(L.Epsilon(1e-6))
    net, xc = case.params["net"], case.primals["x"]
    y = V._net_reference(np)(xc, net=net)
    be = backend_namespace(backend)
    put = lambda a: from_numpy(a, be)  # noqa: E731
    layers = V._build(net, put)
    rules = L.epsilon_gamma_box(put(low), put(high))(layers)
    expected, _ = reference_lrp(net, xc, y, L.epsilon_gamma_box(low, high)(layers))
    for method in L.METHODS:
        got = L.lrp(layers, put(xc), put(y), rules, method=method).relevance
        np.testing.assert_allclose(to_numpy(got), expected[0], rtol=1e-10, atol=1e-12)


def _rules(layers):
    return L.epsilon_plus()(layers)


@pytest.mark.parametrize("change, error, match", [
    (dict(rules=lambda ls: [L.Pass()] * len(ls)), ValueError,
     r"rule 0 \(Pass\(\)\) applies to .* layer 0 is Conv2d"),
    (dict(rules=lambda ls: _rules(ls)[:2] + [L.ZBox(-1.0, 1.0)] + _rules(ls)[3:]), ValueError,
     r"rule 2 .*applies to Linear/Conv2d layers, but layer 2 is AvgPool2d"),
    (dict(rules=lambda ls: _rules(ls)[:-1]), ValueError, "got 6 rules for 7 layers"),
    (dict(rules=lambda ls: _rules(ls)[:-1] + ["epsilon"]), TypeError, "rule 6 must be an LRP rule"),
    (dict(R=np.ones((2, 4))), ValueError,
     r"R_out must have the output's shape \(2, 3\) \(output of layer 6\)"),
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
        L.lrp(layers, args["x"], args["R"], args["rules"], method=args["method"])


def test_batchnorm_must_be_merged(x):
    c = np.ones(3)
    layers = _cnn()[:1] + [L.BatchNorm(c, c, c, c)] + _cnn()[1:]
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm\) takes no Pass rule: .*merge_batchnorm"):
        L.lrp(layers, x, np.ones((2, 3)), [L.Epsilon(), L.Pass()] + _rules(_cnn())[1:])
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm\): merge it with merge_batchnorm"):
        L.epsilon_plus()(layers)
    with pytest.raises(ValueError, match=r"layer 0 \(BatchNorm\) must directly follow"):
        L.merge_batchnorm([L.BatchNorm(c, c, c, c)])
    with pytest.raises(ValueError, match=r"layer 2 \(BatchNorm\) must directly follow"):
        L.merge_batchnorm(layers[:2] + [L.BatchNorm(c, c, c, c)])
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm\) has 2 channels but layer 0 has 3"):
        L.merge_batchnorm([layers[0], L.BatchNorm(*[np.ones(2)] * 4)])


@pytest.mark.parametrize("make, match", [
    (lambda: L.Epsilon(0.0), "epsilon must be a positive number"),
    (lambda: L.Gamma(-0.5), "gamma must be a non-negative"),
    (lambda: L.AlphaBeta(2.0, 2.0), "alpha - beta must be 1"),
    (lambda: L.ZPlus(stabilizer="clip"), "stabilizer must be one of"),
    (lambda: L.Conv2d(np.ones((1, 1, 3, 3)), padding=2), r"padding must lie in \[0, kernel // 2\]"),
    (lambda: L.Conv2d(np.ones((1, 1, 3))), r"weight must have shape \(out_c, in_c, kh, kw\)"),
    (lambda: L.Linear(np.ones((2, 3)), np.ones(3)), r"bias must have shape \(out,\) = \(2,\)"),
    (lambda: L.MaxPool2d(0), "kernel_size must be positive"),
    (lambda: L.BatchNorm(*[np.ones(2)] * 3, np.ones(3)), r"running_var must have shape \(C,\)"),
])
def test_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_zbox_bounds_must_broadcast(x):
    layers = _cnn()
    rules = L.epsilon_gamma_box(np.zeros(5), 1.0)(layers)
    with pytest.raises(ValueError, match="ZBox low of shape .* does not broadcast to one sample"):
        L.lrp(layers, x, np.ones((2, 3)), rules)


# -- the checks have teeth: a planted bug must make the named properties fail ------------------



def _net_case(rule, bias=True):
    """A fixed CNN (conv-relu-maxpool-conv-relu-flatten-linear) with ``rule`` on weighted layers."""
    gen = np.random.default_rng(4)

    def conv(o, c, k, pad):
        return {"weight": gen.standard_normal((o, c, k, k)) / np.sqrt(c * k * k),
                "bias": 0.5 * gen.standard_normal(o) if bias else None, "stride": 1, "padding": pad}

    specs = (("conv", conv(3, 2, 3, 1)), ("relu", {}), ("maxpool", {"kernel_size": 2}),
             ("conv", conv(2, 3, 2, 0)), ("relu", {}), ("flatten", {}),
             ("linear", {"weight": gen.standard_normal((3, 8)) / 3,
                         "bias": 0.5 * gen.standard_normal(3) if bias else None}))
    bn = tuple(V._batchnorm_params(gen, c) for c in (3, 2, 3))
    x = gen.uniform(-1, 1, (2, 2, 6, 6))
    return Case({"x": x}, {"net": V._Net(specs, bn), "rule_set": V.WEIGHTED_RULES.index(rule)})


def _failing(case, names):
    op = get_op("lrp_network")
    ctx = Context(backend_namespace("numpy"), "float64")
    props = [p for p in properties_of(op) if p.name in names]
    assert len(props) == len(names)
    return {p.name for p in props if not p.check(impl_of(op), case, ctx) <= p.tolerance["float64"]}


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


PLANTED = [
    # (target, attribute, replacement, rule, bias, properties that must fail)
    (L.Gamma, "branches", _wrap(L.Gamma, "branches", _swap_factors), L.Gamma(0.25), True,
     {"matches the rule formulas"}),
    (L.Gamma, "branches", _wrap(L.Gamma, "branches", _drop_negative_outputs), L.Gamma(0.25), True,
     {"matches the rule formulas", "Gamma(0) equals Epsilon"}),
    (L.ZPlus, "branches", _wrap(L.ZPlus, "branches", _with_layer_bias), L.ZPlus(), True,
     {"matches the rule formulas", "AlphaBeta(1, 0) equals ZPlus"}),
    (L.ZBox, "branches", _wrap(L.ZBox, "branches", _with_layer_bias), L.ZBox(-1.0, 1.0), True,
     {"matches the rule formulas", "explicit and gradient methods agree"}),
    (L.Epsilon, "propagate", _gradient_keeps_bias(L.Epsilon.propagate),
     L.Epsilon(0.1, zero_bias=True, stabilizer="zero_only"), True, {"matches the rule formulas", "ZBox(0, 0) equals Epsilon without bias"}),
    (L.Flat, "branches", _wrap(L.Flat, "branches", _times_input), L.Flat(), True,
     {"matches the rule formulas", "Flat equals WSquare with unit weights"}),
    (L.Epsilon, "propagate", _bias_free_denominator(L.Epsilon.propagate), L.Epsilon(1e-6), True,
     {"matches the rule formulas", "LRP-0 equals gradient x input"}),
    (L.Pass, "propagate", _wrap(L.Pass, "propagate", _halve_activations), L.Epsilon(1e-6), False,
     {"matches the rule formulas", "conservation (bias-free)", "LRP-0 equals gradient x input"}),
    (L.Epsilon, "propagate", _wrap(L.Epsilon, "propagate", _square_term), L.Epsilon(1e-6), True,
     {"linear in R_out"}),
    (L, "_neg", lambda xp, v: 0.5 * xp.minimum(v, 0.0), L.AlphaBeta(2.0, 1.0), True,
     {"matches the rule formulas"}),
    (L, "_stabilize", lambda xp, z, eps, mode: z + eps + 1e-3 * xp.mean(z), L.Epsilon(1e-6), True,
     {"samples are independent", "matches the rule formulas"}),
    (L, "_stabilize", lambda xp, z, eps, mode: z,
     L.Epsilon(0.1, zero_bias=True, stabilizer="zero_only"), False, {"no NaN at exact zeros"}),
]


@pytest.mark.filterwarnings("ignore:.*encountered in divide:RuntimeWarning")  # the planted NaN
@pytest.mark.parametrize("target, attr, replacement, rule, bias, names", PLANTED,
                         ids=[f"{getattr(t, '__name__', t)}.{a}-{sorted(n)[0]}"
                              for t, a, _, _, _, n in PLANTED])
def test_planted_lrp_bug_is_caught(monkeypatch, target, attr, replacement, rule, bias, names):
    case = _net_case(rule, bias)
    assert _failing(case, names) == set()
    monkeypatch.setattr(target, attr, replacement)
    assert _failing(case, names) == names


def test_planted_merge_bug_is_caught(monkeypatch):
    case = _net_case(L.Epsilon(1e-6))
    assert _failing(case, {"merge_batchnorm preserves outputs"}) == set()
    original = F._merged
    monkeypatch.setattr(F, "_merged", lambda prev, bn, i: type(prev)(
        *(lambda m: (m.weight, m.bias + 0.01))(original(prev, bn, i)),
        *((prev.stride, prev.padding) if isinstance(prev, L.Conv2d) else ())))
    names = {"merge_batchnorm preserves outputs"}
    assert _failing(case, names) == names


def test_planted_batchnorm_shift_bug_is_caught(monkeypatch):
    case = _net_case(L.Epsilon(1e-6))
    names = {"Epsilon on an unmerged BatchNorm"}
    assert _failing(case, names) == set()
    monkeypatch.setattr(L.BatchNorm, "as_affine", lambda self: F._ChannelAffine(self.scale(), self.bias))
    assert _failing(case, names) == names


def test_planted_fold_bug_is_caught(monkeypatch):
    """Kernel offsets transposed in col2im: conv and pooling VJPs and the two LRP methods disagree."""
    def transposed_fold(xp, device, cols, in_hw, kernel, stride, padding):
        kh, kw = kernel
        n, c, _, ho, wo = cols.shape
        taps = xp.reshape(cols, (n, c, kh, kw, ho, wo))
        flipped = xp.reshape(xp.permute_dims(taps, (0, 1, 3, 2, 4, 5)), (n, c, kh * kw, ho, wo))
        return original(xp, device, flipped, in_hw, kernel, stride, padding)

    original = F._fold
    monkeypatch.setattr(F, "_fold", transposed_fold)
    failed = failing_properties("lrp_conv2d")
    assert {"vjp: dot-product test", "vjp: autograd"} <= failed
    assert _failing(_net_case(L.Gamma(0.25)), {"explicit and gradient methods agree"})
