"""Registry records for layer-wise relevance propagation (CONVENTIONS section 5).

Layer ops (``lrp_linear``, ``lrp_conv2d``, the pools, ``lrp_relu``) get the
generic checks against references from the definition (``scipy.signal.correlate``
for the convolution, loops for the pools, PyTorch's bin formula for adaptive
pooling). ``lrp_network`` is a random small sequential network (MLP or CNN) as
a function of its input; its VJP is gradient backpropagation, and its LRP
properties compare :func:`refimpl.lrp.lrp` with an independent NumPy
implementation of every rule's formula on dense matrices (probed from the
reference forwards), and check conservation, linearity, the identities between
rules, and the agreement of the explicit and gradient methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import array_api_compat
import autograd.numpy as anp
import numpy as np
import scipy.signal
from hypothesis import strategies as st

from refimpl import lrp as L

from ..checks import rel_error
from ..registry import Case, Op, Property, register
from ..strategies import rng

TOL = {"float64": 1e-12, "float32": 2e-5}
LRP_TOL = {"float64": 1e-10, "float32": 2e-3}
REFERENCES = (
    "Bach et al. 2015, On pixel-wise explanations by layer-wise relevance propagation (PLoS ONE)",
    "Montavon et al. 2019, Layer-wise relevance propagation: an overview (LNCS 11700)",
    "Anders et al. 2021, Software for dataset-wide XAI: from local explanations to global "
    "insights with Zennit, CoRelAy, and ViRelAy (arXiv:2106.13200)",
)


# -- layer references (NumPy float64, from the definition) and naive autograd forwards --------


def _conv_ref(x, weight, bias=None, *, stride=1, padding=0):
    s, p = stride, padding
    xp_ = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    full = np.stack([np.stack([sum(scipy.signal.correlate(xp_[n, c], weight[o, c], mode="valid")
                                   for c in range(x.shape[1]))
                               for o in range(weight.shape[0])]) for n in range(x.shape[0])])
    out = full[:, :, ::s, ::s]
    return out if bias is None else out + bias[:, None, None]


def _conv_naive(x, weight, bias=None, *, stride=1, padding=0):
    """Sum over kernel offsets of shifted, strided input slices (autograd.numpy)."""
    p, s = padding, stride
    xp_ = anp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="constant")
    kh, kw = weight.shape[2:]
    ho, wo = (xp_.shape[2] - kh) // s + 1, (xp_.shape[3] - kw) // s + 1
    out = 0.0
    for i in range(kh):
        for j in range(kw):
            patch = xp_[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s]
            out = out + anp.einsum("nchw,oc->nohw", patch, weight[:, :, i, j])
    return out if bias is None else out + bias[:, None, None]


def _windows_ref(np_, x, k, s):
    ho, wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    return [[x[:, :, p * s:p * s + k, q * s:q * s + k] for q in range(wo)] for p in range(ho)]


def _pool_ref(np_, reduce):
    def pool(x, *, kernel_size, stride=None):
        win = _windows_ref(np_, x, kernel_size, stride or kernel_size)
        return np_.stack([np_.stack([reduce(np_, w) for w in row], axis=-1) for row in win], axis=-2)
    return pool


def _mean(np_, w):
    return np_.mean(np_.reshape(w, w.shape[:2] + (-1,)), axis=-1)


def _max(np_, w):
    return np_.max(np_.reshape(w, w.shape[:2] + (-1,)), axis=-1)


def _adaptive(np_, x, output_size):
    oh, ow = output_size
    h, w = x.shape[2:]
    rows = [(i * h // oh, math.ceil((i + 1) * h / oh)) for i in range(oh)]
    cols = [(j * w // ow, math.ceil((j + 1) * w / ow)) for j in range(ow)]
    return np_.stack([np_.stack([_mean(np_, x[:, :, a:b, c:d]) for c, d in cols], axis=-1)
                      for a, b in rows], axis=-2)


# -- layer op cases -------------------------------------------------------------------------


@st.composite
def _image_cases(draw, kind):
    gen = draw(rng())
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    h, w = draw(st.integers(k, 7)), draw(st.integers(k, 7))
    x = gen.standard_normal((n, c, h, w))
    if kind == "conv2d":
        o = draw(st.integers(1, 3))
        params = {"stride": draw(st.integers(1, 2)), "padding": draw(st.integers(0, k // 2))}
        return Case({"x": x, "weight": gen.standard_normal((o, c, k, k)),
                     "bias": gen.standard_normal(o)}, params)
    if kind == "adaptive":
        return Case({"x": x}, {"output_size": (draw(st.integers(1, h)), draw(st.integers(1, w)))})
    if kind == "relu":
        return Case({"x": x})
    return Case({"x": x}, {"kernel_size": k, "stride": draw(st.one_of(st.none(), st.integers(1, 2)))})


@st.composite
def _linear_cases(draw):
    gen = draw(rng())
    n, i, o = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    return Case({"x": gen.standard_normal((n, i)), "weight": gen.standard_normal((o, i)),
                 "bias": gen.standard_normal(o)})


def _layer_op(name, forward, vjp, primals, cases, reference, naive, convention):
    register(Op(name=name, module="lrp_layers", forward=forward, vjp=vjp, primals=primals, cases=cases,
                reference=reference, naive=naive, properties=(), tolerance=TOL,
                convention=convention, references=REFERENCES))


def _register_layers():
    from refimpl import lrp_layers as F

    _layer_op("lrp_linear", F.linear, F.linear_vjp, ("x", "weight", "bias"), _linear_cases,
              lambda x, weight, bias: x @ weight.T + bias,
              lambda x, weight, bias: anp.dot(x, weight.T) + bias,
              "y = x W^T + b, W of shape (out, in) (PyTorch nn.Linear).")
    _layer_op("lrp_conv2d", F.conv2d, F.conv2d_vjp,
              ("x", "weight", "bias"), lambda: _image_cases("conv2d"), _conv_ref, _conv_naive,
              "Cross-correlation with zero padding, NCHW, weight (out_c, in_c, kh, kw) "
              "(PyTorch F.conv2d).")
    _layer_op("lrp_avg_pool2d", F.avg_pool2d, F.avg_pool2d_vjp, ("x",), lambda: _image_cases("pool"),
              _pool_ref(np, _mean), _pool_ref(anp, _mean),
              "Mean over kernel x kernel windows, no padding, stride defaults to the kernel.")
    _layer_op("lrp_max_pool2d", F.max_pool2d, F.max_pool2d_vjp, ("x",), lambda: _image_cases("pool"),
              _pool_ref(np, _max), _pool_ref(anp, _max),
              "Max over windows; the gradient goes to the first maximum (row-major), as PyTorch.")
    _layer_op("lrp_adaptive_avg_pool2d", F.adaptive_avg_pool2d, F.adaptive_avg_pool2d_vjp, ("x",),
              lambda: _image_cases("adaptive"),
              lambda x, output_size: _adaptive(np, x, output_size),
              lambda x, output_size: _adaptive(anp, x, output_size),
              "PyTorch bins [floor(i H / oh), ceil((i + 1) H / oh)).")
    _layer_op("lrp_relu", F.relu, F.relu_vjp, ("x",), lambda: _image_cases("relu"),
              lambda x: np.maximum(x, 0), lambda x: anp.maximum(x, 0.0),
              "max(x, 0); gradient 0 at x = 0, as PyTorch.")


_register_layers()


# -- random networks ------------------------------------------------------------------------

# Rule sets of the LRP properties: each case draws one (a weighted rule everywhere, or a composite).
WEIGHTED_RULES = (
    L.Epsilon(1e-6), L.Epsilon(0.1, zero_bias=True, stabilizer="zero_only"),
    L.Gamma(0.25), L.Gamma(1.0, 1e-3, zero_bias=True), L.Gamma(0.25, weights_only=True),
    L.AlphaBeta(2.0, 1.0), L.AlphaBeta(1.0, 0.0, stabilizer="zero_only"),
    L.ZPlus(), L.ZPlus(weights_only=True), L.WSquare(), L.WSquare(zero_bias=True), L.Flat(),
    L.ZBox(-1.0, 1.0), L.ZBox(-2.0, 1.5, 1e-3),
)


def _captum_style(layers):
    """captum's defaults: epsilon everywhere, max pooling included (Pass on ReLU and Flatten)."""
    return [L.Epsilon(1e-6, stabilizer="sign") if layer.kind in ("weighted", "avgpool", "maxpool")
            else L.Pass() for layer in layers]


COMPOSITES = (L.epsilon_gamma_box(-1.0, 1.0), L.epsilon_plus(), L.epsilon_plus_flat(),
              L.epsilon_alpha2_beta1(), _captum_style)
_rule_index = st.integers(0, len(WEIGHTED_RULES) + len(COMPOSITES) - 1)



@dataclass(frozen=True)
class _Net:
    """A small sequential network as NumPy arrays: ``specs`` of ``(kind, params)``.

    ``bn`` holds BatchNorm parameters ``(gamma, beta, mean, var)`` for the
    output of every weighted layer, used by the merge property.
    """

    specs: tuple
    bn: tuple

    def __repr__(self):
        def one(kind, p):
            if kind in ("linear", "conv"):
                suffix = "" if p.get("bias") is not None else "-nobias"
                return f"{kind}{tuple(p['weight'].shape)}{suffix}"
            return kind + "".join(f"{v}" for k, v in p.items() if k != "bias")
        return "Net[" + ", ".join(one(k, p) for k, p in self.specs) + "]"

    def replace_weighted(self, fn):
        """A copy with ``fn(params) -> params`` applied to every weighted layer."""
        specs = tuple((k, fn(dict(p)) if k in ("linear", "conv") else p) for k, p in self.specs)
        return _Net(specs, self.bn)

    def with_batchnorm(self):
        """A copy with a BatchNorm (parameters ``bn``) after every weighted layer."""
        specs, params = [], iter(self.bn)
        for kind, p in self.specs:
            specs.append((kind, p))
            if kind in ("linear", "conv"):
                specs.append(("batchnorm", dict(zip(("gamma", "beta", "mean", "var"), next(params)))))
        return _Net(tuple(specs), self.bn)


def _no_bias(p):
    return {**p, "bias": None}


def _unit_weights(p):
    return {**p, "weight": np.ones_like(p["weight"]), "bias": None}


def _weighted(gen, shape, fan_in):
    return gen.standard_normal(shape) / math.sqrt(fan_in)


def _batchnorm_params(gen, c):
    gamma, beta = gen.uniform(0.5, 2, c), gen.standard_normal(c)
    return gamma, beta, gen.standard_normal(c), gen.uniform(0.5, 2, c)


@st.composite
def _nets(draw):
    gen = draw(rng())
    n = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    specs, bn = [], []

    def dense(i, o):
        specs.append(("linear", {"weight": _weighted(gen, (o, i), i),
                                 "bias": 0.5 * gen.standard_normal(o) if bias else None}))
        bn.append(_batchnorm_params(gen, o))

    if draw(st.booleans()):
        sizes = [draw(st.integers(1, 6)) for _ in range(draw(st.integers(2, 4)))]
        x = gen.uniform(-1, 1, (n, sizes[0]))
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i:
                specs.append(("relu", {}))
            dense(a, b)
        return Case({"x": x}, {"net": _Net(tuple(specs), tuple(bn)), "rule_set": draw(_rule_index)})
    c, h, w = draw(st.integers(1, 2)), draw(st.integers(4, 6)), draw(st.integers(4, 6))
    x = gen.uniform(-1, 1, (n, c, h, w))
    for layer in range(2):
        k = draw(st.integers(1, min(3, h, w)))
        o = draw(st.integers(1, 3))
        p = {"weight": _weighted(gen, (o, c, k, k), c * k * k),
             "bias": 0.5 * gen.standard_normal(o) if bias else None,
             "stride": draw(st.integers(1, 2)) if layer == 0 else 1,
             "padding": draw(st.integers(0, k // 2))}
        specs += [("conv", p), ("relu", {})]
        bn.append(_batchnorm_params(gen, o))
        h, w = ((size + 2 * p["padding"] - k) // p["stride"] + 1 for size in (h, w))
        c = o
        if layer == 0:
            pool = draw(st.sampled_from(["avgpool", "maxpool", "adaptive"]))
            if pool == "adaptive":
                out = (draw(st.integers(1, h)), draw(st.integers(1, w)))
                specs.append((pool, {"output_size": out}))
                h, w = out
            else:
                k = min(2, h, w)
                specs.append((pool, {"kernel_size": k}))
                h, w = (h - k) // k + 1, (w - k) // k + 1
    specs.append(("flatten", {}))
    dense(c * h * w, draw(st.integers(1, 3)))
    return Case({"x": x}, {"net": _Net(tuple(specs), tuple(bn)), "rule_set": draw(_rule_index)})


BN_EPS = 1e-5


def _build(net, put):
    """refimpl layers of ``net``; ``put`` moves a NumPy array to the backend."""
    layers = []
    for kind, p in net.specs:
        if kind in ("linear", "conv"):
            bias = None if p["bias"] is None else put(p["bias"])
            if kind == "linear":
                layers.append(L.Linear(put(p["weight"]), bias))
            else:
                layers.append(L.Conv2d(put(p["weight"]), bias, p["stride"], p["padding"]))
        elif kind == "batchnorm":
            layers.append(L.BatchNorm(*[put(p[k]) for k in ("gamma", "beta", "mean", "var")], BN_EPS))
        else:
            layers.append(_plain_layer(kind, p))
    return layers


def _plain_layer(kind, p):
    if kind == "relu":
        return L.ReLU()
    if kind == "flatten":
        return L.Flatten()
    if kind == "adaptive":
        return L.AdaptiveAvgPool2d(p["output_size"])
    return {"avgpool": L.AvgPool2d, "maxpool": L.MaxPool2d}[kind](p["kernel_size"])


def _putter(x):
    xp = array_api_compat.array_namespace(x)
    device = array_api_compat.device(x)
    return lambda a: xp.asarray(a, dtype=x.dtype, device=device)


def _net_forward(x, *, net, rule_set):
    """The network's output (``rule_set`` only selects the rules of the LRP properties)."""
    return L.forward(_build(net, _putter(x)), x)


def _net_vjp(x, cotangent, *, net, rule_set):
    return L.forward_vjp(_build(net, _putter(x)), x, cotangent)


def _layer_ref(np_, kind, p, x):
    if kind == "linear":
        y = np_.dot(x, p["weight"].T)
        return y if p["bias"] is None else y + p["bias"]
    if kind == "conv":
        fn = _conv_ref if np_ is np else _conv_naive
        return fn(x, p["weight"], p["bias"], stride=p["stride"], padding=p["padding"])
    if kind == "relu":
        return np_.maximum(x, 0.0)
    if kind == "batchnorm":
        shape = (-1,) + (1,) * (x.ndim - 2)
        scale = np_.reshape(p["gamma"] / np_.sqrt(p["var"] + BN_EPS), shape)
        return (x - np_.reshape(p["mean"], shape)) * scale + np_.reshape(p["beta"], shape)
    if kind == "flatten":
        return np_.reshape(x, (x.shape[0], -1))
    if kind == "adaptive":
        return _adaptive(np_, x, p["output_size"])
    return _pool_ref(np_, _mean if kind == "avgpool" else _max)(x, kernel_size=p["kernel_size"])


def _net_reference(np_):
    def run(x, *, net, rule_set=None):
        for kind, p in net.specs:
            x = _layer_ref(np_, kind, p, x)
        return x
    return run


# -- an independent LRP: every rule's formula on dense matrices (NumPy float64) -------------


def _probe(kind, p, in_shape):
    """Dense per-sample matrix ``M[i, j]`` of a linear layer, probed with unit inputs."""
    size = int(np.prod(in_shape))
    basis = np.eye(size).reshape((size,) + tuple(in_shape))
    return _layer_ref(np, kind, {**p, "bias": None}, basis).reshape(size, -1)


def _max_winners(a, k):
    """``W[n, i, j] = 1`` where input ``i`` is the first maximum (row-major) of window ``j``."""
    n, c, h, w = a.shape
    ho, wo = (h - k) // k + 1, (w - k) // k + 1
    win = np.zeros((n, c * h * w, c * ho * wo))
    for s in range(n):
        for ch in range(c):
            for p in range(ho):
                for q in range(wo):
                    block = a[s, ch, p * k:p * k + k, q * k:q * k + k]
                    r, t = divmod(int(np.argmax(block)), k)
                    win[s, (ch * h + p * k + r) * w + q * k + t, (ch * ho + p) * wo + q] = 1.0
    return win


def _stab(z, rule):
    if rule.stabilizer == "sign":
        return z + rule.epsilon * np.where(z >= 0, 1.0, -1.0)
    return z + rule.epsilon * (z == 0)


def _terms(rule, a, M, ones, b, z_true, in_shape):
    """``[(c (N, in, out), bias (out,), factor)]`` straight from CONVENTIONS section 5."""
    name = type(rule).__name__
    ap, an = np.maximum(a, 0)[:, :, None], np.minimum(a, 0)[:, :, None]
    A = a[:, :, None]
    Mp, Mn = np.maximum(M, 0), np.minimum(M, 0)
    b = np.zeros(M.shape[1]) if b is None or getattr(rule, "zero_bias", False) else b
    if name == "Epsilon":
        return [(A * M, b, 1.0)]
    if name == "Gamma":
        g = rule.gamma
        if rule.weights_only:
            return [(A * (M + g * Mp), b, 1.0)]
        up = ap * (M + g * Mp) + an * (M + g * Mn)
        dn = ap * (M + g * Mn) + an * (M + g * Mp)
        return [(up, b + g * np.maximum(b, 0), (z_true > 0) * 1.0),
                (dn, b + g * np.minimum(b, 0), (z_true < 0) * 1.0)]
    if name in ("AlphaBeta", "ZPlus"):
        if getattr(rule, "weights_only", False):
            return [(A * Mp, b, 1.0)]
        alpha, beta = (rule.alpha, rule.beta) if name == "AlphaBeta" else (1.0, 0.0)
        return [(ap * Mp + an * Mn, np.maximum(b, 0), alpha),
                (ap * Mn + an * Mp, np.minimum(b, 0), -beta)]
    if name == "ZBox":
        low = np.broadcast_to(np.asarray(rule.low, float), (a.shape[0],) + in_shape).reshape(a.shape)
        high = np.broadcast_to(np.asarray(rule.high, float), (a.shape[0],) + in_shape).reshape(a.shape)
        return [(A * M - low[:, :, None] * Mp - high[:, :, None] * Mn, None, 1.0)]
    if name == "WSquare":
        return [(np.broadcast_to(M ** 2, (a.shape[0],) + M.shape), b ** 2, 1.0)]
    if name == "Flat":
        return [(np.broadcast_to(ones, (a.shape[0],) + ones.shape), None, 1.0)]
    raise AssertionError(f"no reference for {name}")


def _apply_terms(terms, R, rule):
    """Relevance below and the conservation slack ``sum |f R| |1 - z / S(z)|`` per sample."""
    out, slack = 0.0, 0.0
    for c, bias, factor in terms:
        z = c.sum(axis=1) + (0.0 if bias is None else bias)
        s = _stab(z, rule)
        out = out + np.einsum("nij,nj->ni", c, factor * R / s)
        slack = slack + np.sum(np.abs(factor * R) * np.abs(1 - z / s), axis=1)
    return out, slack


def reference_lrp(net, x, R_out, rules):
    """``(relevance_at, slack_at)`` from the formulas, with dense matrices of the reference layers."""
    acts = [x]
    for kind, p in net.specs:
        acts.append(_layer_ref(np, kind, p, acts[-1]))
    R = R_out.reshape(x.shape[0], -1)
    relevance, slack = [R_out], []
    for (kind, p), rule, a, y in zip(reversed(net.specs), reversed(rules), acts[-2::-1], acts[:0:-1]):
        n, in_shape = a.shape[0], a.shape[1:]
        af = a.reshape(n, -1)
        if kind in ("relu", "flatten"):
            R_in, s = R, np.zeros(n)
        elif kind == "maxpool" and type(rule).__name__ == "Pass":
            R_in, s = np.einsum("nij,nj->ni", _max_winners(a, p["kernel_size"]), R), np.zeros(n)
        elif kind in ("avgpool", "adaptive", "maxpool"):
            M = _max_winners(a, p["kernel_size"]) if kind == "maxpool" else _probe(kind, p, in_shape)
            R_in, s = _apply_terms([(af[:, :, None] * M, None, 1.0)], R, rule)
        elif kind == "batchnorm":
            b = _layer_ref(np, kind, p, np.zeros((1,) + in_shape)).reshape(-1)
            M = _probe(kind, p, in_shape) - b
            z_true = af @ M + (0.0 if rule.zero_bias else b)
            R_in, s = _apply_terms(_terms(rule, af, M, None, b, z_true, in_shape), R, rule)
        else:
            M = _probe(kind, p, in_shape)
            ones = _probe(kind, _unit_weights(p), in_shape)
            b = None if p["bias"] is None else _layer_ref(np, kind, {**p, "weight": 0 * p["weight"]},
                                                          np.zeros((1,) + in_shape)).reshape(-1)
            z_true = af @ M + (0.0 if b is None or getattr(rule, "zero_bias", False) else b)
            R_in, s = _apply_terms(_terms(rule, af, M, ones, b, z_true, in_shape), R, rule)
        R = R_in
        relevance.append(R.reshape(a.shape))
        slack.append(s)
    return relevance[::-1], slack[::-1]


# -- rule sets and LRP properties -------------------------------------------------------------



def _uniform(layers, weighted_rule, pool_epsilon=1e-6):
    """``weighted_rule`` on weighted layers, Norm on average pools, Pass elsewhere."""
    def pick(layer):
        if layer.kind == "weighted":
            return weighted_rule
        return L.Norm(pool_epsilon) if layer.kind == "avgpool" else L.Pass()
    return [pick(layer) for layer in layers]


def _rule_set(layers, index):
    """Rule set ``index``: a weighted rule everywhere (Norm on pools), or a composite."""
    if index < len(WEIGHTED_RULES):
        return _uniform(layers, WEIGHTED_RULES[index])
    return COMPOSITES[index - len(WEIGHTED_RULES)](layers)


def _setup(case, ctx, transform=None):
    net = case.params["net"] if transform is None else case.params["net"].replace_weighted(transform)
    x = ctx.rounded(case.primals["x"])
    layers = _build(net, ctx.put)
    y = _net_reference(np)(x, net=net)
    R_out = np.random.default_rng(11).standard_normal(y.shape) * y
    return net, x, layers, R_out


def _run(layers, x, R, rules, ctx, method="gradient"):
    res = L.lrp(layers, ctx.put(x), ctx.put(R), rules, method=method)
    return [ctx.take(r, a.shape, f"relevance_at[{i}]") for i, (r, a) in
            enumerate(zip(res.relevance_at, _shapes_like(res.relevance_at)))]


def _shapes_like(arrays):
    return [np.empty(tuple(a.shape)) for a in arrays]


def _worst(got, expected):
    return max(rel_error(g, e) for g, e in zip(got, expected))


def _matches_formulas(impl, case, ctx):
    net, x, layers, R_out = _setup(case, ctx)
    errors = []
    rules = _rule_set(layers, case.params["rule_set"])
    expected, _ = reference_lrp(net, x, R_out, rules)
    for method in L.METHODS:
        errors.append(_worst(_run(layers, x, R_out, rules, ctx, method), expected))
    return max(errors)


def _methods_agree(impl, case, ctx):
    _, x, layers, R_out = _setup(case, ctx)
    rules = _rule_set(layers, case.params["rule_set"])
    return _worst(_run(layers, x, R_out, rules, ctx, "gradient"),
                  _run(layers, x, R_out, rules, ctx, "explicit"))


def _conservation(impl, case, ctx):
    """Per layer and sample: ``|sum R_in - sum R_out| <= sum_j |f R_j| |1 - z_j / S(z_j)|``.

    Bias-free network; the slack is the stabiliser's share from the reference
    denominators (``eps / (|z| + eps)`` per unit of relevance), so alpha-beta is
    held to it too (a branch with ``z = 0`` has slack ``|beta R_j|``).
    """
    net, x, layers, R_out = _setup(case, ctx, _no_bias)
    rules = _rule_set(layers, case.params["rule_set"])
    got = _run(layers, x, R_out, rules, ctx)
    _, slack = reference_lrp(net, x, R_out, rules)
    worst = 0.0
    for below, above, s in zip(got[:-1], got[1:], slack):
        n = below.shape[0]
        gap = np.abs(below.reshape(n, -1).sum(1) - above.reshape(n, -1).sum(1))
        scale = np.abs(below).reshape(n, -1).sum(1) + np.abs(above).reshape(n, -1).sum(1) + 1e-300
        worst = max(worst, float(np.max(np.maximum(gap - s, 0) / scale)))
    return worst


def _linearity(impl, case, ctx):
    _, x, layers, R1 = _setup(case, ctx)
    R2 = np.random.default_rng(5).standard_normal(R1.shape)
    rules = _rule_set(layers, case.params["rule_set"])
    both = _run(layers, x, R1 + 2.5 * R2, rules, ctx)
    first, second = _run(layers, x, R1, rules, ctx), _run(layers, x, R2, rules, ctx)
    apart = [p + 2.5 * q for p, q in zip(first, second)]
    return _worst(both, apart)


def _compare(case, ctx, first, second, transform=None, pool_epsilon=1e-6):
    _, x, layers, R_out = _setup(case, ctx, transform)
    return _worst(_run(layers, x, R_out, _uniform(layers, first, pool_epsilon), ctx),
                  _run(layers, x, R_out, _uniform(layers, second, pool_epsilon), ctx))


def _alpha1_beta0_is_zplus(impl, case, ctx):
    return _compare(case, ctx, L.AlphaBeta(1.0, 0.0), L.ZPlus())


def _gamma0_is_epsilon(impl, case, ctx):
    return _compare(case, ctx, L.Gamma(0.0, 1e-6), L.Epsilon(1e-6))


def _flat_is_unit_wsquare(impl, case, ctx):
    return _compare(case, ctx, L.Flat(), L.WSquare(), transform=_unit_weights)


def _zbox_zero_is_epsilon_without_bias(impl, case, ctx):
    return _compare(case, ctx, L.ZBox(0.0, 0.0), L.Epsilon(1e-6, zero_bias=True))


def _lrp0_is_gradient_times_input(impl, case, ctx):
    """Epsilon -> 0 with ``R_out = y * G``: relevance equals ``x * grad(<G, f>)`` at every layer."""
    net, x, layers, _ = _setup(case, ctx)
    G = np.random.default_rng(3).standard_normal(_net_reference(np)(x, net=net).shape)
    acts = [x]
    for kind, p in net.specs:
        acts.append(_layer_ref(np, kind, p, acts[-1]))
    got = _run(layers, x, G * acts[-1], _uniform(layers, L.Epsilon(1e-13), 1e-13), ctx)
    errors = []
    for i in range(len(layers)):
        g = ctx.take(L.forward_vjp(layers[i:], ctx.put(acts[i]), ctx.put(G))[0], acts[i].shape)
        errors.append(rel_error(got[i], acts[i] * g))
    return max(errors)


def _merge_batchnorm(impl, case, ctx):
    net = case.params["net"].with_batchnorm()
    expected = _net_reference(np)(ctx.rounded(case.primals["x"]), net=net)
    merged = L.merge_batchnorm(_build(net, ctx.put))
    return rel_error(ctx.take(L.forward(merged, ctx.put(case.primals["x"])), expected.shape), expected)


def _epsilon_on_batchnorm(impl, case, ctx):
    """captum / iNNvestigate: the epsilon rule on an unmerged BatchNorm's affine map."""
    net = case.params["net"].with_batchnorm()
    x = ctx.rounded(case.primals["x"])
    layers = _build(net, ctx.put)
    y = _net_reference(np)(x, net=net)
    R_out = np.random.default_rng(11).standard_normal(y.shape) * y
    index = case.params["rule_set"] % len(WEIGHTED_RULES)
    rules = [L.Epsilon(1e-6, zero_bias=index % 2 == 1) if layer.kind == "batchnorm" else rule
             for layer, rule in zip(layers, _uniform(layers, WEIGHTED_RULES[index]))]
    expected, _ = reference_lrp(net, x, R_out, rules)
    return max(_worst(_run(layers, x, R_out, rules, ctx, method), expected) for method in L.METHODS)


def _per_sample(impl, case, ctx):
    _, x, layers, R_out = _setup(case, ctx)
    rules = _rule_set(layers, case.params["rule_set"])
    batch = _run(layers, x, R_out, rules, ctx)
    alone = [_run(layers, x[s:s + 1], R_out[s:s + 1], rules, ctx) for s in range(x.shape[0])]
    return _worst(batch, [np.concatenate(parts) for parts in zip(*alone)])


def _no_nan_at_zeros(impl, case, ctx):
    """A zero input sample, zero relevance entries, bias-free: every relevance stays finite."""
    net, x, layers, R_out = _setup(case, ctx, _no_bias)
    x = x.copy()
    x[0] = 0.0
    R_out = R_out.copy()
    R_out.reshape(-1)[::2] = 0.0
    rules = _rule_set(layers, case.params["rule_set"])
    for method in L.METHODS:
        if not all(np.all(np.isfinite(r)) for r in _run(layers, x, R_out, rules, ctx, method)):
            return float("inf")
    return 0.0


def _lrp_property(name, check, description, tolerance=LRP_TOL):
    return Property(name, check, description, tolerance=tolerance, refimpl_only=True)


NETWORK_PROPERTIES = (
    _lrp_property("matches the rule formulas", _matches_formulas,
                  "both methods equal an independent NumPy implementation of CONVENTIONS section 5 "
                  "on dense matrices, for every rule and composite, at every layer"),
    _lrp_property("explicit and gradient methods agree", _methods_agree,
                  "method='explicit' equals method='gradient' at every layer, every rule set"),
    _lrp_property("conservation (bias-free)", _conservation,
                  "per layer and sample, abs(sum R_in - sum R_out) <= the stabiliser's share "
                  "sum_j abs(f R_j (1 - z_j/S(z_j))), relative to the sum of abs(R)"),
    _lrp_property("linear in R_out", _linearity, "lrp(R1 + c R2) = lrp(R1) + c lrp(R2)"),
    _lrp_property("AlphaBeta(1, 0) equals ZPlus", _alpha1_beta0_is_zplus,
                  "two branches with beta = 0 equal the one-branch z+ rule"),
    _lrp_property("Gamma(0) equals Epsilon", _gamma0_is_epsilon,
                  "gamma = 0 gives the epsilon rule (no exact-zero outputs in the cases)"),
    _lrp_property("Flat equals WSquare with unit weights", _flat_is_unit_wsquare,
                  "all weights 1, no bias: flat = w-square"),
    _lrp_property("ZBox(0, 0) equals Epsilon without bias", _zbox_zero_is_epsilon_without_bias,
                  "bounds l = h = 0 give the epsilon rule with zero_bias=True"),
    _lrp_property("LRP-0 equals gradient x input", _lrp0_is_gradient_times_input,
                  "epsilon 1e-13 with R_out = y * G equals a * (VJP of the tail network) at every layer",
                  {"float64": 1e-7, "float32": 2e-3}),
    _lrp_property("merge_batchnorm preserves outputs", _merge_batchnorm,
                  "BatchNorm after every weighted layer, merged: the outputs of the reference "
                  "network with BatchNorm", TOL),
    _lrp_property("Epsilon on an unmerged BatchNorm", _epsilon_on_batchnorm,
                  "captum/iNNvestigate: epsilon rule on the BatchNorm affine map, both methods "
                  "equal the formula (BatchNorm after every weighted layer)"),
    _lrp_property("samples are independent", _per_sample,
                  "LRP of a batch equals LRP of each sample alone"),
    _lrp_property("no NaN at exact zeros", _no_nan_at_zeros,
                  "a zero sample and zero relevance entries give finite relevance everywhere", TOL),
)

register(Op(
    name="lrp_network",
    module="lrp",
    forward=_net_forward,
    vjp=_net_vjp,
    primals=("x",),
    cases=_nets,
    reference=_net_reference(np),
    naive=_net_reference(anp),
    properties=NETWORK_PROPERTIES,
    tolerance=TOL,
    convention="A random small MLP or CNN (conv-relu-pool-conv-relu-flatten-linear) as a function "
               "of its input; vjp = gradient backpropagation. LRP: zennit's generalised rules, "
               "S(z) = z + eps sgn(z) with sgn(0) = +1, R_out explicit, PyTorch layouts.",
    references=REFERENCES,
))
