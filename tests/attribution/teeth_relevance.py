"""Teeth for LRP: an independent NumPy implementation of every rule, and planted bugs.

Read by tests/verify/test_teeth.py. The candidate never forms a contribution
matrix: every rule is a few modified forward passes (the layer map ``f(x, W)``
with a modified weight: ``x W^T`` or the convolution loops of tests/_teeth_nn.py)
and their adjoints ``f^T(s, W)`` (``s W`` or the transposed convolution), e.g.

    epsilon   z = f(a, W) + b,  R_in = a f^T(R / S(z), W);
    z^B       z = f(a, W) - f(l, W+) - f(h, W-),  s = R / S(z),
              R_in = a f^T(s, W) - l f^T(s, W+) - h f^T(s, W-);
    pools     the epsilon rule with the pooling's own forward and VJP.

It reads refimpl's layers and rules as a framework would: by class name and
fields (``vars(rule)``), composites by their class name and ``epsilon``,
``rule_epsilon``, ``stabilizer`` (``low``, ``high``, ``gamma``). Each mutant
changes one line of one rule, of the stabiliser, or of a composite.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from _teeth_nn import LAYERS, avg_pool2d, avg_pool2d_vjp, conv2d, conv2d_input_vjp, network

from verify import Candidate
from verify.testing import Teeth

DEFAULTS = dict(epsilon=1e-6, stabilizer="sign", zero_bias=False, gamma=0.25, weights_only=False,
                alpha=2.0, beta=1.0, low=-1.0, high=1.0)


def _pos(v):
    return None if v is None else np.maximum(v, 0)


def _neg(v):
    return None if v is None else np.minimum(v, 0)


class _Map:
    """The bias-free map of a Linear or Conv2d layer with any weight, and its adjoint."""

    def __init__(self, conv, stride=1, padding=0):
        self.conv, self.stride, self.padding = conv, stride, padding

    def f(self, x, W):
        return conv2d(x, W, None, self.stride, self.padding) if self.conv else x @ W.T

    def t(self, s, W, shape):
        if self.conv:
            return conv2d_input_vjp(s, W, shape[2:], self.stride, self.padding)
        return s @ W

    def b(self, bias):
        """The bias as a term of ``z`` (0 when absent)."""
        if bias is None:
            return 0.0
        return bias[:, None, None] if self.conv else bias


class NumpyLRP:
    """Every rule by modified forward and adjoint passes; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def stab(self, z, p):
        if p.stabilizer == "sign" or self.bug == "zero_only ignored":
            if self.bug == "np.sign stabiliser (S(0) = 0)":
                return z + p.epsilon * np.sign(z)
            shift = 1e-3 * np.mean(z) if self.bug == "stabiliser shared across the batch" else 0
            up = z > 0 if self.bug == "sgn(0) = -1" else z >= 0
            return np.where(up, z + p.epsilon, z - p.epsilon) + shift
        return np.where(z == 0, z + p.epsilon, z)

    def _finish(self, R_in):
        return R_in + 1e-2 * R_in * R_in if self.bug == "quadratic term in R" else R_in

    # -- weighted layers --------------------------------------------------------------------

    def weighted(self, rule, p, M, a, W, b, R):
        b = None if p.zero_bias else b
        return self._finish(getattr(self, rule)(p, M, a, W, b, R))

    def Epsilon(self, p, M, a, W, b, R):
        return a * M.t(R / self.stab(M.f(a, W) + M.b(b), p), W, a.shape)

    def Gamma(self, p, M, a, W, b, R):
        g = p.gamma
        up, down = W + g * _pos(W), W + g * _neg(W)
        if p.weights_only:
            return a * M.t(R / self.stab(M.f(a, up) + M.b(b), p), up, a.shape)
        z = M.f(a, W) + M.b(b)
        ap, an = _pos(a), _neg(a)
        b_up = None if b is None else b + g * _pos(b)
        b_down = None if b is None else b + g * _neg(b)
        lower = z >= 0 if self.bug == "gamma mask z >= 0" else z > 0
        s_up = lower * R / self.stab(M.f(ap, up) + M.f(an, down) + M.b(b_up), p)
        if self.bug == "gamma drops the negative outputs":
            s_down = 0 * R
        else:
            s_down = (z < 0) * R / self.stab(M.f(ap, down) + M.f(an, up) + M.b(b_down), p)
        return (ap * (M.t(s_up, up, a.shape) + M.t(s_down, down, a.shape))
                + an * (M.t(s_up, down, a.shape) + M.t(s_down, up, a.shape)))

    def _signed(self, p, M, a, W, R, alpha, beta, b_alpha, b_beta):
        """``alpha (a+ W+ + a- W-)`` over its ``S(z)`` minus ``beta (a+ W- + a- W+)`` over its."""
        ap, an, wp, wn = _pos(a), _neg(a), _pos(W), _neg(W)
        second = wn if self.bug == "beta branch pairs a- with w-" else wp
        s_a = alpha * R / self.stab(M.f(ap, wp) + M.f(an, wn) + M.b(b_alpha), p)
        s_b = beta * R / self.stab(M.f(ap, wn) + M.f(an, second) + M.b(b_beta), p)
        return (ap * (M.t(s_a, wp, a.shape) - M.t(s_b, wn, a.shape))
                + an * (M.t(s_a, wn, a.shape) - M.t(s_b, second, a.shape)))

    def AlphaBeta(self, p, M, a, W, b, R):
        return self._signed(p, M, a, W, R, p.alpha, p.beta, _pos(b), _neg(b))

    def ZPlus(self, p, M, a, W, b, R):
        if p.weights_only:
            return a * M.t(R / self.stab(M.f(a, _pos(W)) + M.b(b), p), _pos(W), a.shape)
        b_alpha = b if self.bug == "zplus keeps the full bias" else _pos(b)
        return self._signed(p, M, a, W, R, 1.0, 0.0, b_alpha, None)

    def ZBox(self, p, M, a, W, b, R):
        low, high = (np.full_like(a, v) for v in (p.low, p.high))
        if self.bug == "zbox bounds swapped":
            low, high = high, low
        z = M.f(a, W) - M.f(low, _pos(W)) - M.f(high, _neg(W))
        if self.bug == "zbox keeps the layer bias":
            z = z + M.b(b)
        s = R / self.stab(z, p)
        return a * M.t(s, W, a.shape) - low * M.t(s, _pos(W), a.shape) - high * M.t(s, _neg(W), a.shape)

    def WSquare(self, p, M, a, W, b, R):
        b2 = None if b is None else (b if self.bug == "wsquare bias not squared" else b ** 2)
        z = M.f(np.ones_like(a), W ** 2) + M.b(b2)
        return M.t(R / self.stab(z, p), W ** 2, a.shape)

    def Flat(self, p, M, a, W, b, R):
        ones = np.ones_like(W)
        R_in = M.t(R / self.stab(M.f(np.ones_like(a), ones), p), ones, a.shape)
        return a * R_in if self.bug == "flat times the input" else R_in

    # -- other layers -----------------------------------------------------------------------

    def own_map(self, p, forward, vjp, a, R):
        """The epsilon rule with a layer's own forward and VJP (pools, Norm)."""
        return self._finish(a * vjp(a, R / self.stab(forward(a), p)))

    def batch_norm(self, p, layer, a, R):
        scale = layer.weight / np.sqrt(layer.running_var + layer.eps)
        shift = layer.bias - layer.running_mean * scale
        if self.bug == "batchnorm epsilon without the shift":
            shift = 0 * shift
        channels = (-1,) + (1,) * (a.ndim - 2)
        z = a * scale.reshape(channels) + (0 if p.zero_bias else shift.reshape(channels))
        return a * scale.reshape(channels) * R / self.stab(z, p)

    def propagate(self, layer, rule, p, a, R):
        kind = type(layer).__name__
        if kind in ("Linear", "Conv2d"):
            M = _Map(kind == "Conv2d", getattr(layer, "stride", 1), getattr(layer, "padding", 0))
            return self.weighted(rule, p, M, a, layer.weight, layer.bias, R)
        if kind == "BatchNorm":
            return self.batch_norm(p, layer, a, R)
        forward, vjp = LAYERS[kind](layer)
        if rule in ("Epsilon", "Norm"):
            return self.own_map(p, forward, lambda a, G: vjp(a, G)[0], a, R)
        if kind == "MaxPool2d":
            return vjp(a, R)[0]
        scale = 0.5 if self.bug == "pass halves relevance through ReLU" and kind == "ReLU" else 1.0
        return scale * R.reshape(a.shape)

    # -- composites and networks ------------------------------------------------------------

    def rules(self, layers, rules):
        """``[(rule class name, parameters)]``: a list of rule objects, or a composite's layer map."""
        if isinstance(rules, (list, tuple)):
            return [(type(r).__name__, _params(vars(r))) for r in rules]
        c = vars(rules)
        other = {"epsilon": c["rule_epsilon"], "stabilizer": c["stabilizer"]}
        dense = ("Epsilon", _params({"epsilon": c["epsilon"], "stabilizer": c["stabilizer"]}))
        conv = {"EpsilonPlus": ("ZPlus", other), "EpsilonPlusFlat": ("ZPlus", other),
                "EpsilonAlpha2Beta1": ("AlphaBeta", {**other, "alpha": 2.0, "beta": 1.0}),
                "EpsilonGammaBox": ("Gamma", {**other, "gamma": c.get("gamma")})}[type(rules).__name__]
        first = {"EpsilonPlusFlat": (("Conv2d", "Linear"), ("Flat", other)),
                 "EpsilonGammaBox": (("Conv2d",), ("ZBox", {**other, "low": c.get("low"),
                                                           "high": c.get("high")}))}.get(
            type(rules).__name__)
        out = []
        for layer in layers:
            kind = type(layer).__name__
            if first and kind in first[0]:
                out.append((first[1][0], _params(first[1][1])))
                first = None
            elif kind == "Conv2d":
                out.append((conv[0], _params(conv[1])))
            elif kind == "Linear":
                out.append(dense)
            elif kind in ("AvgPool2d", "AdaptiveAvgPool2d"):
                out.append(("Norm", _params(other)))
            else:
                out.append(("Pass", _params({})))
        return out

    def lrp(self, layers, x, R_out, *, rules):
        acts = [x]
        for forward, _ in network(layers):
            acts.append(forward(acts[-1]))
        relevance = [R_out]
        for layer, (rule, p), a in reversed(list(zip(layers, self.rules(layers, rules), acts))):
            relevance.append(self.propagate(layer, rule, p, a, relevance[-1]))
        at = tuple(relevance[::-1])
        return {"relevance": at[0], "relevance_at": at, "output": acts[-1]}


def _params(fields):
    return SimpleNamespace(**{**DEFAULTS, **{k: v for k, v in fields.items() if k in DEFAULTS}})


# -- candidates ---------------------------------------------------------------------------


def _rule_function(rule, bug=None):
    def forward(x, weight, R, bias=None, *, stride=1, padding=0, **params):
        M = _Map(weight.ndim == 4, stride, padding)
        return NumpyLRP(bug).weighted(rule, _params(params), M, x, weight, bias, R)
    return Candidate(forward)


def _norm_function(bug=None):
    def forward(x, R, *, kernel_size, stride=None, **params):
        return NumpyLRP(bug).own_map(_params(params), lambda a: avg_pool2d(a, kernel_size, stride),
                                     lambda a, G: avg_pool2d_vjp(a, G, kernel_size, stride), x, R)
    return Candidate(forward)


def _network(bug=None):
    return Candidate(NumpyLRP(bug).lrp)


_GROUND = {"matches ground truth", "matches refimpl forward"}
_QUADRATIC = "quadratic term in R"


def _rule_teeth(factory, bugs, caught_by=None):
    # Exact cases with a zero denominator and a given stabiliser are a fraction of the
    # draws: 40 examples (fast, one layer) make them certain.
    return Teeth(correct=factory(), mutants={b: factory(b) for b in (*bugs, _QUADRATIC)},
                 caught_by={_QUADRATIC: {"linear in R"},
                            **{b: _GROUND for b in (caught_by or ())}},
                 options={"max_examples": 40})


def _weighted_teeth(rule, bugs, caught_by=None):
    return _rule_teeth(lambda bug=None: _rule_function(rule, bug), bugs, caught_by)


TEETH = {
    "lrp_epsilon": _weighted_teeth("Epsilon", ("sgn(0) = -1", "zero_only ignored"),
                                   ("sgn(0) = -1", "zero_only ignored")),
    "lrp_gamma": _weighted_teeth("Gamma", ("gamma mask z >= 0", "gamma drops the negative outputs"),
                                 ("gamma drops the negative outputs",)),
    "lrp_alpha_beta": _weighted_teeth("AlphaBeta", ("beta branch pairs a- with w-",),
                                      ("beta branch pairs a- with w-",)),
    "lrp_zplus": _weighted_teeth("ZPlus", ("zplus keeps the full bias",)),
    "lrp_zbox": _weighted_teeth("ZBox", ("sgn(0) = -1", "zbox bounds swapped"),
                                ("zbox bounds swapped",)),
    "lrp_wsquare": _weighted_teeth("WSquare", ("wsquare bias not squared",)),
    "lrp_flat": _weighted_teeth("Flat", ("flat times the input",), ("flat times the input",)),
    "lrp_norm": _rule_teeth(_norm_function, ("sgn(0) = -1", "zero_only ignored")),
    "lrp": Teeth(
        correct=_network(),
        mutants={bug: _network(bug) for bug in (
            "pass halves relevance through ReLU", _QUADRATIC, "zplus keeps the full bias",
            "gamma drops the negative outputs", "flat times the input", "zbox keeps the layer bias",
            "batchnorm epsilon without the shift", "stabiliser shared across the batch",
            "np.sign stabiliser (S(0) = 0)")},
        caught_by={
            "pass halves relevance through ReLU": {"matches ground truth",
                                                   "matches the rule formulas at every layer",
                                                   "conservation (bias-free)",
                                                   "LRP-0 equals gradient x input"},
            _QUADRATIC: {"linear in R_out"},
            "zplus keeps the full bias": {"AlphaBeta(1, 0) equals ZPlus"},
            "gamma drops the negative outputs": {"Gamma(0) equals Epsilon"},
            "flat times the input": {"Flat equals WSquare with unit weights"},
            "zbox keeps the layer bias": {"ZBox(0, 0) equals Epsilon without bias"},
            "batchnorm epsilon without the shift": {"Epsilon on an unmerged BatchNorm"},
            "stabiliser shared across the batch": {"samples are independent"},
            "np.sign stabiliser (S(0) = 0)": {"no NaN at exact zeros"},
        },
    ),
}
