r"""Layer-wise relevance propagation (LRP): every standard rule, two implementations.

Convention (docs/conventions.rst, section 5.1). For one layer with inputs :math:`a_i`,
weights :math:`w_{ij}` (input ``i`` to output ``j``), bias :math:`b_j`,
:math:`z_j = \sum_i a_i w_{ij} + b_j` and upper relevance :math:`R_j`, every
weighted rule has the form

.. math::  R_i = \sum_\beta \sum_j c^\beta_{ij}\,
           \frac{f^\beta_j R_j}{S\big(\sum_{i'} c^\beta_{i'j} + b^\beta_j\big)},
           \qquad c^\beta_{ij} = \sum_k x^k_i\, w^{\beta k}_{ij},

a few *branches* :math:`\beta` (one for epsilon, two for gamma and alpha-beta),
each with input copies :math:`x^k` (``a``, ``a+``, ``a-``, bounds, ones),
modified weights :math:`w^{\beta k}`, a modified bias and an output factor
:math:`f^\beta` (a sign mask, ``alpha`` or ``-beta``). The stabiliser is
:math:`S(z) = z + \epsilon\,\mathrm{sgn}(z)` with :math:`\mathrm{sgn}(0) = +1`
(zennit, captum), or ``stabilizer="zero_only"``: :math:`z + \epsilon [z = 0]`
(iNNvestigate's ``safe_divide``).

``method="explicit"`` forms the contributions :math:`c^\beta_{ij}` as an
``(N, in, out)`` array from the layer's dense matrix (built by index
arithmetic) and sums them: small sizes only. ``method="gradient"`` (default)
runs each branch as a modified forward pass and its hand-written adjoint: one
pass with the block weight :math:`[w^{\beta k}]` (branches stacked on output
channels, copies on input channels) gives every denominator, and one adjoint
pass gives every :math:`\sum_j w^{\beta k}_{ij} s^\beta_j`. No autodiff.

Rules per layer kind: weighted layers (:class:`Linear`, :class:`Conv2d`) take
Epsilon, Gamma, AlphaBeta, ZPlus, ZBox, WSquare, Flat; average pools take
Epsilon or Norm (the epsilon rule on the averaging map); max pooling takes
Pass (relevance to the window's first maximum, as its gradient) or
Epsilon/Norm (captum); ReLU, Tanh, Sigmoid and Flatten take Pass. BatchNorm is
merged first (:func:`refimpl.nn.merge_batchnorm`, zennit) or takes Epsilon on its
affine map (captum, iNNvestigate).

Checkable by candidates: one function per rule on a single Linear or Conv2d
layer (:func:`lrp_epsilon`, :func:`lrp_gamma`, ...; ``x``, the layer's
parameters, the relevance ``R`` at its output and the rule's parameters), and
:func:`lrp` on a whole network (a list of :mod:`refimpl.nn` layers) under a
composite given as a dataclass (:class:`EpsilonPlus`, ...) whose fields a
candidate can read.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ..nn import AvgPool2d, BatchNorm, Conv2d, Linear, activations

__all__ = [
    "AlphaBeta",
    "Epsilon",
    "EpsilonAlpha2Beta1",
    "EpsilonGammaBox",
    "EpsilonPlus",
    "EpsilonPlusFlat",
    "Flat",
    "Gamma",
    "LRPResult",
    "METHODS",
    "Norm",
    "Pass",
    "STABILIZERS",
    "WSquare",
    "ZBox",
    "ZPlus",
    "lrp",
    "lrp_alpha_beta",
    "lrp_epsilon",
    "lrp_flat",
    "lrp_gamma",
    "lrp_norm",
    "lrp_wsquare",
    "lrp_zbox",
    "lrp_zplus",
]

METHODS = ("gradient", "explicit")
STABILIZERS = ("sign", "zero_only")


# ---------------------------------------------------------------------------
# stabiliser and the two generic propagations
# ---------------------------------------------------------------------------


def _stabilize(xp, z, epsilon, mode):
    # where(cond, array, array) keeps z's dtype (where of two Python floats would be float64)
    if mode == "sign":
        return xp.where(z >= 0, z + epsilon, z - epsilon)
    return xp.where(z == 0, z + epsilon, z)


def _pos(xp, v):
    return xp.maximum(v, 0.0)


def _neg(xp, v):
    return xp.minimum(v, 0.0)


@dataclass
class _Branch:
    """One denominator: weights per input copy, a bias (or None) and an output factor."""

    weights: list
    bias: object
    factor: object


def _gradient(xp, layer, inputs, branches, R, stab):
    """Every branch at once: one forward with the block weight, one adjoint pass."""
    block = xp.concat([xp.concat(br.weights, axis=1) for br in branches], axis=0)
    x = xp.concat(inputs, axis=1) if len(inputs) > 1 else inputs[0]
    z = layer.apply(x, block)
    if any(br.bias is not None for br in branches):
        _, device = get_namespace(R)
        zero = xp.zeros((branches[0].weights[0].shape[0],), dtype=R.dtype, device=device)
        bias = xp.concat([zero if br.bias is None else br.bias for br in branches])
        z = z + layer.bias_map(bias, tuple(z.shape[1:]))
    seeds = [br.factor * R for br in branches]
    s = (xp.concat(seeds, axis=1) if len(seeds) > 1 else seeds[0]) / stab(z)
    c = layer.apply_t(s, block, tuple(x.shape))
    width = inputs[0].shape[1]
    return sum(inp * c[:, k * width:(k + 1) * width, ...] for k, inp in enumerate(inputs))


def _explicit_sum(xp, terms, R, stab, shape):
    r"""``R_i = sum_beta sum_j c_ij f_j R_j / S(sum_i c_ij + b_j)`` with explicit ``c`` (N, in, out)."""
    n = R.shape[0]
    Rf = xp.reshape(R, (n, 1, -1))
    out = None
    for contributions, bias, factor in terms:
        z = xp.sum(contributions, axis=1, keepdims=True)
        if bias is not None:
            z = z + xp.reshape(bias, (1, 1, -1))
        f = factor if isinstance(factor, (int, float)) else xp.reshape(factor, (n, 1, -1))
        part = xp.sum(contributions * (f * Rf / stab(z)), axis=2)
        out = part if out is None else out + part
    return xp.reshape(out, shape)


def _contributions(xp, layer, inputs, weights, shape):
    """``c_ij = sum_k x^k_i w^k_ij`` as an (N, in, out) array, from dense matrices."""
    n = shape[0]
    return sum(xp.reshape(x, (n, -1, 1)) * layer.dense(w, shape) for x, w in zip(inputs, weights))


def _flat_bias(xp, layer, bias, out_shape):
    return None if bias is None else xp.reshape(layer.bias_map(bias, out_shape), (-1,))


# ---------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------

_KIND_NAMES = {
    "weighted": "Linear/Conv2d", "avgpool": "AvgPool2d/AdaptiveAvgPool2d", "maxpool": "MaxPool2d",
    "activation": "ReLU/Tanh/Sigmoid", "reshape": "Flatten", "batchnorm": "BatchNorm",
}


def _check_epsilon(epsilon, stabilizer):
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(f"epsilon must be a positive number (LRP-0 is a tiny epsilon), got {epsilon!r}")
    if stabilizer not in STABILIZERS:
        raise ValueError(f"stabilizer must be one of {STABILIZERS}, got {stabilizer!r}")


def _check_nonnegative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


class _Rule:
    """A propagation rule; ``accepts`` lists the layer kinds it applies to."""

    accepts: tuple = ()

    def check(self, layer, index):
        """ValueError naming the layer when this rule does not apply to it."""
        if layer.kind == "batchnorm" and "batchnorm" not in self.accepts:
            raise ValueError(f"layer {index} (BatchNorm) takes no {type(self).__name__} rule: merge it "
                             "into the layer before it with merge_batchnorm(layers) first (zennit), "
                             "or give it Epsilon (captum, iNNvestigate)")
        if layer.kind not in self.accepts:
            allowed = " or ".join(_KIND_NAMES[k] for k in self.accepts)
            raise ValueError(f"rule {index} ({self!r}) applies to {allowed} layers, but layer {index} "
                             f"is {type(layer).__name__}")

    def stab(self, xp):
        return lambda z: _stabilize(xp, z, self.epsilon, self.stabilizer)


class _WeightedRule(_Rule):
    """A rule given by branches of modified weights (weighted layers only)."""

    accepts = ("weighted",)

    def __post_init__(self):
        _check_epsilon(self.epsilon, self.stabilizer)

    def bias(self, layer):
        return None if self.zero_bias else layer.bias

    def propagate(self, xp, layer, a, z, R, method):
        """Relevance at the input; ``z`` is the forward output (the explicit method recomputes it)."""
        if method == "explicit":
            n = a.shape[0]
            dense = layer.dense(layer.weight, tuple(a.shape))
            z = xp.sum(xp.reshape(a, (n, -1, 1)) * dense, axis=1)
            bias = _flat_bias(xp, layer, self.bias(layer), tuple(R.shape[1:]))
            z = xp.reshape(z if bias is None else z + bias, tuple(R.shape))
        inputs, branches = self.branches(xp, layer, a, z, method == "explicit")
        if method == "gradient":
            return _gradient(xp, layer, inputs, branches, R, self.stab(xp))
        terms = [(_contributions(xp, layer, inputs, br.weights, tuple(a.shape)),
                  _flat_bias(xp, layer, br.bias, tuple(R.shape[1:])), br.factor) for br in branches]
        return _explicit_sum(xp, terms, R, self.stab(xp), tuple(a.shape))


def _signed_inputs(xp, a, explicit):
    """``[a+, a-]``, or ``[a]`` when no entry is negative (then ``a-`` adds exact zeros).

    The explicit method always keeps both copies, so it checks the shortcut.
    """
    if not explicit and not bool(xp.any(a < 0)):
        return [a], False
    return [_pos(xp, a), _neg(xp, a)], True


@dataclass(frozen=True)
class Epsilon(_WeightedRule):
    r"""Epsilon rule: :math:`R_i = a_i \sum_j w_{ij} R_j / S(z_j)` (bias in :math:`z`).

    On average and max pooling it is the epsilon rule on the pooling map
    (captum's default there): :math:`R_i = a_i \sum_j [i \to j] R_j / S(z_j)`.
    On an unmerged BatchNorm it is the rule on its affine map (captum's
    ``EpsilonRule``, iNNvestigate's default):
    :math:`R_i = a_i s_i R_i / S(y_i)`, :math:`s = \gamma / \sqrt{\sigma^2 + \epsilon_{bn}}`.
    ``zero_bias=True`` leaves the bias out of :math:`z` (not out of the forward pass).
    """

    epsilon: float = 1e-6
    zero_bias: bool = False
    stabilizer: str = "sign"
    accepts = ("weighted", "avgpool", "maxpool", "batchnorm")

    def propagate(self, xp, layer, a, z, R, method):
        if layer.kind == "batchnorm":
            layer = layer.as_affine()
        if layer.kind == "weighted" and method == "explicit":
            return super().propagate(xp, layer, a, z, R, method)
        if layer.kind == "weighted" and self.zero_bias:
            z = layer.apply(a, layer.weight)  # the rule's z leaves the bias out
        # z is the output: one adjoint pass, no modified forward pass needed
        return _epsilon_own_map(xp, layer, a, z, R, method, self.stab(xp))

    def branches(self, xp, layer, a, z, explicit):
        return [a], [_Branch([layer.weight], self.bias(layer), 1.0)]


def _epsilon_own_map(xp, layer, a, z, R, method, stab):
    """Epsilon rule with the layer's own map: ``a * vjp(R / S(z))`` or explicit contributions."""
    if method == "gradient":
        return a * layer.input_vjp(a, R / stab(z))
    dense = layer.dense(a)
    contributions = xp.reshape(a, (a.shape[0], -1, 1)) * dense
    return _explicit_sum(xp, [(contributions, None, 1.0)], R, stab, tuple(a.shape))


@dataclass(frozen=True)
class Norm(_Rule):
    r"""zennit's Norm: the epsilon rule on a parameter-free (pooling) map.

    For a ``k``-element average, :math:`R_i = a_i R_j / (\sum_{\text{window}} a + k\epsilon)`.
    """

    epsilon: float = 1e-6
    stabilizer: str = "sign"
    accepts = ("avgpool", "maxpool")

    def __post_init__(self):
        _check_epsilon(self.epsilon, self.stabilizer)

    def propagate(self, xp, layer, a, z, R, method):
        return _epsilon_own_map(xp, layer, a, z, R, method, self.stab(xp))


@dataclass(frozen=True)
class Gamma(_WeightedRule):
    r"""Generalised gamma rule (zennit; valid for signed inputs).

    For :math:`z_j > 0`: :math:`c_{ij} = a^+_i (w_{ij} + \gamma w^+_{ij}) + a^-_i (w_{ij} + \gamma w^-_{ij})`,
    bias :math:`b_j + \gamma b^+_j`; for :math:`z_j < 0` the same with :math:`w^\pm`
    (and :math:`b^-`) exchanged; :math:`z_j = 0` passes nothing.

    ``weights_only=True`` is captum's ``GammaRule``: :math:`w \leftarrow w + \gamma w^+`
    for every sign, bias unchanged: :math:`c_{ij} = a_i (w_{ij} + \gamma w^+_{ij})`.
    """

    gamma: float = 0.25
    epsilon: float = 1e-6
    zero_bias: bool = False
    stabilizer: str = "sign"
    weights_only: bool = False

    def __post_init__(self):
        _check_nonnegative("gamma", self.gamma)
        super().__post_init__()

    def branches(self, xp, layer, a, z, explicit):
        w, b, g = layer.weight, self.bias(layer), self.gamma
        w_up, w_dn = w + g * _pos(xp, w), w + g * _neg(xp, w)
        if self.weights_only:
            return [a], [_Branch([w_up], b, 1.0)]
        if self.zero_bias and layer.bias is not None and not explicit:
            z = layer.apply(a, w)  # the output signs of the rule leave the bias out
        b_up = None if b is None else b + g * _pos(xp, b)
        b_dn = None if b is None else b + g * _neg(xp, b)
        up, dn = xp.astype(z > 0, a.dtype), xp.astype(z < 0, a.dtype)
        inputs, signed = _signed_inputs(xp, a, explicit)
        if not signed:
            return inputs, [_Branch([w_up], b_up, up), _Branch([w_dn], b_dn, dn)]
        return inputs, [_Branch([w_up, w_dn], b_up, up), _Branch([w_dn, w_up], b_dn, dn)]


@dataclass(frozen=True)
class AlphaBeta(_WeightedRule):
    r"""Alpha-beta rule (zennit): positive and negative contributions apart.

    .. math::  R_i = \sum_j \Big[\alpha \frac{a^+_i w^+_{ij} + a^-_i w^-_{ij}}{S(z^\alpha_j)}
               - \beta \frac{a^+_i w^-_{ij} + a^-_i w^+_{ij}}{S(z^\beta_j)}\Big] R_j,

    :math:`z^\alpha_j = \sum_i (a^+_i w^+_{ij} + a^-_i w^-_{ij}) + b^+_j`,
    :math:`z^\beta_j = \sum_i (a^+_i w^-_{ij} + a^-_i w^+_{ij}) + b^-_j`.
    ``alpha - beta`` must be 1 (zennit, iNNvestigate).
    """

    alpha: float = 2.0
    beta: float = 1.0
    epsilon: float = 1e-6
    zero_bias: bool = False
    stabilizer: str = "sign"

    def __post_init__(self):
        _check_nonnegative("alpha", self.alpha)
        _check_nonnegative("beta", self.beta)
        if abs(self.alpha - self.beta - 1) > 1e-12:
            raise ValueError(f"alpha - beta must be 1, got alpha={self.alpha}, beta={self.beta}")
        super().__post_init__()

    def branches(self, xp, layer, a, z, explicit):
        w, b = layer.weight, self.bias(layer)
        wp, wn = _pos(xp, w), _neg(xp, w)
        bp = None if b is None else _pos(xp, b)
        bn = None if b is None else _neg(xp, b)
        inputs, signed = _signed_inputs(xp, a, explicit)
        return inputs, [_Branch([wp, wn] if signed else [wp], bp, float(self.alpha)),
                        _Branch([wn, wp] if signed else [wn], bn, -float(self.beta))]


@dataclass(frozen=True)
class ZPlus(_WeightedRule):
    r"""z+ rule (zennit's ``ZPlus``, valid for signed inputs): alpha-beta with
    ``alpha = 1, beta = 0``, computed with the positive branch only.

    .. math::  R_i = \sum_j \frac{a^+_i w^+_{ij} + a^-_i w^-_{ij}}
               {S(\sum_{i'} (a^+_{i'} w^+_{i'j} + a^-_{i'} w^-_{i'j}) + b^+_j)} R_j

    ``weights_only=True`` is captum's ``Alpha1_Beta0_Rule`` (iNNvestigate's
    ``Alpha1Beta0`` with ``S_zero`` is close): :math:`c_{ij} = a_i w^+_{ij}`
    whatever the sign of :math:`a_i`, with the full bias :math:`b_j`.
    """

    epsilon: float = 1e-6
    zero_bias: bool = False
    stabilizer: str = "sign"
    weights_only: bool = False

    def branches(self, xp, layer, a, z, explicit):
        w, b = layer.weight, self.bias(layer)
        if self.weights_only:
            return [a], [_Branch([_pos(xp, w)], b, 1.0)]
        inputs, signed = _signed_inputs(xp, a, explicit)
        weights = [_pos(xp, w), _neg(xp, w)] if signed else [_pos(xp, w)]
        return inputs, [_Branch(weights, None if b is None else _pos(xp, b), 1.0)]


@dataclass(frozen=True)
class ZBox(_WeightedRule):
    r"""z^B rule for inputs bounded by ``low <= a <= high`` (first layer).

    .. math::  R_i = \sum_j \frac{a_i w_{ij} - l_i w^+_{ij} - h_i w^-_{ij}}
               {S(\sum_{i'} (a_{i'} w_{i'j} - l_{i'} w^+_{i'j} - h_{i'} w^-_{i'j}))} R_j

    ``low`` and ``high`` are numbers or arrays that broadcast to one sample of
    the layer's input (``(C, 1, 1)`` for per-channel bounds). The bias cancels
    (zennit), so ``zero_bias`` changes nothing.

    The gradient method computes the bound terms of the denominator on a batch
    of one (they do not depend on the sample), and when the bounds are constant
    over each input channel (scalars, per-channel, or any bounds of a Linear
    layer) folds them into one weight :math:`l w^+ + h w^-` for the adjoint pass.
    """

    low: object = -1.0
    high: object = 1.0
    epsilon: float = 1e-6
    zero_bias: bool = False
    stabilizer: str = "sign"

    def _bound(self, xp, name, value, a):
        """``value`` broadcast to ``(1,) + a.shape[1:]``."""
        shape = (1,) + tuple(a.shape[1:])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return xp.full(shape, float(value), dtype=a.dtype, device=get_namespace(a)[1])
        require_real_floating(name, value)
        get_namespace(a, value)
        require_same_dtype(a=a, **{name: value})
        try:
            return xp.broadcast_to(value, shape)
        except ValueError as exc:
            raise ValueError(f"ZBox {name} of shape {tuple(value.shape)} does not broadcast to one "
                             f"sample of the layer input {shape[1:]}") from exc

    def _channelwise(self, a):
        """True when both bounds are constant over each input channel of ``a``."""
        if a.ndim == 2:
            return True
        return all(isinstance(v, (int, float)) or all(n == 1 for n in tuple(v.shape)[-2:])
                   for v in (self.low, self.high))

    def branches(self, xp, layer, a, z, explicit):
        shape = tuple(a.shape)
        low = xp.broadcast_to(self._bound(xp, "low", self.low, a), shape)
        high = xp.broadcast_to(self._bound(xp, "high", self.high, a), shape)
        w = layer.weight
        return [a, low, high], [_Branch([w, -_pos(xp, w), -_neg(xp, w)], None, 1.0)]

    def propagate(self, xp, layer, a, z, R, method):
        if method == "explicit":
            return super().propagate(xp, layer, a, z, R, method)
        low, high = self._bound(xp, "low", self.low, a), self._bound(xp, "high", self.high, a)
        w = layer.weight
        wp, wn = _pos(xp, w), _neg(xp, w)
        zb = layer.apply(a, w) - (layer.apply(low, wp) + layer.apply(high, wn))
        s = R / self.stab(xp)(zb)
        c_in = a.shape[1]
        if self._channelwise(a):
            lc, hc = (v if a.ndim == 2 else v[:, :, :1, :1] for v in (low, high))
            c = layer.apply_t(s, xp.concat([w, lc * wp + hc * wn], axis=1), tuple(a.shape))
            return a * c[:, :c_in, ...] - c[:, c_in:, ...]
        c = layer.apply_t(s, xp.concat([w, wp, wn], axis=1), tuple(a.shape))
        return a * c[:, :c_in, ...] - low * c[:, c_in:2 * c_in, ...] - high * c[:, 2 * c_in:, ...]


@dataclass(frozen=True)
class WSquare(_WeightedRule):
    r"""w-square rule: :math:`R_i = \sum_j w_{ij}^2 R_j / S(\sum_{i'} w_{i'j}^2 + b_j^2)`.

    Independent of the input values (zennit squares the bias too; ``zero_bias``
    is iNNvestigate's). For convolutions the sum runs over the in-bounds receptive field.
    """

    epsilon: float = 1e-6
    zero_bias: bool = False
    stabilizer: str = "sign"

    def branches(self, xp, layer, a, z, explicit):
        b = self.bias(layer)
        return [xp.ones_like(a)], [_Branch([layer.weight ** 2], None if b is None else b ** 2, 1.0)]


@dataclass(frozen=True)
class Flat(_WeightedRule):
    r"""Flat rule: :math:`R_i = \sum_{j \ni i} R_j / S(|\mathrm{RF}(j)|)`, no bias.

    ``RF(j)`` is the in-bounds receptive field of output ``j`` (border outputs of
    a padded convolution have fewer inputs). ``zero_bias`` changes nothing.
    """

    epsilon: float = 1e-6
    zero_bias: bool = False
    stabilizer: str = "sign"

    def branches(self, xp, layer, a, z, explicit):
        return [xp.ones_like(a)], [_Branch([xp.ones_like(layer.weight)], None, 1.0)]


@dataclass(frozen=True)
class Pass(_Rule):
    """Relevance passes unchanged through activations and Flatten (reshaped), and to the
    first maximum of each window through MaxPool2d (its gradient)."""

    accepts = ("activation", "reshape", "maxpool")

    def propagate(self, xp, layer, a, z, R, method):
        if layer.kind == "activation":
            return R
        if layer.kind == "reshape":
            return xp.reshape(R, tuple(a.shape))
        if method == "gradient":
            return layer.input_vjp(a, R)
        winners = layer.dense(a)
        return xp.reshape(xp.sum(winners * xp.reshape(R, (R.shape[0], 1, -1)), axis=2), tuple(a.shape))


# ---------------------------------------------------------------------------
# composites
# ---------------------------------------------------------------------------


def _composite(layers, first_kinds, first_rule, conv_rule, dense_rule, pool_rule):
    """Rules per layer; ``first_rule`` goes to the first layer whose type is in ``first_kinds``."""
    rules, first_done = [], first_rule is None
    for i, layer in enumerate(layers):
        if isinstance(layer, BatchNorm):
            raise ValueError(f"layer {i} (BatchNorm): merge it with merge_batchnorm(layers) first")
        if not first_done and isinstance(layer, first_kinds):
            rules.append(first_rule)
            first_done = True
        elif isinstance(layer, Conv2d):
            rules.append(conv_rule)
        elif isinstance(layer, Linear):
            rules.append(dense_rule)
        elif layer.kind == "avgpool":
            rules.append(pool_rule)
        else:
            rules.append(Pass())
    return rules


@dataclass(frozen=True)
class _Composite:
    """A composite: rules by layer type. ``epsilon`` is the dense layers' Epsilon rule's;
    ``rule_epsilon`` the stabiliser's epsilon of every other rule (zennit's numeric
    ``stabilizer`` argument); ``stabilizer`` the sign convention of every rule."""

    epsilon: float = 1e-6
    rule_epsilon: float = 1e-6
    stabilizer: str = "sign"

    def __post_init__(self):
        _check_epsilon(self.epsilon, self.stabilizer)
        _check_epsilon(self.rule_epsilon, self.stabilizer)

    def _dense(self):
        return Epsilon(epsilon=self.epsilon, stabilizer=self.stabilizer)

    def _pool(self):
        return Norm(epsilon=self.rule_epsilon, stabilizer=self.stabilizer)


@dataclass(frozen=True)
class EpsilonPlus(_Composite):
    """zennit's ``EpsilonPlus``: ZPlus on convolutions, Epsilon on dense layers, Norm on
    average pools, Pass elsewhere. Call it on a list of layers for the rules."""

    def __call__(self, layers):
        conv = ZPlus(epsilon=self.rule_epsilon, stabilizer=self.stabilizer)
        return _composite(layers, (), None, conv, self._dense(), self._pool())


@dataclass(frozen=True)
class EpsilonPlusFlat(_Composite):
    """zennit's ``EpsilonPlusFlat``: Flat on the first Linear or Conv2d, then as :class:`EpsilonPlus`."""

    def __call__(self, layers):
        first = Flat(epsilon=self.rule_epsilon, stabilizer=self.stabilizer)
        conv = ZPlus(epsilon=self.rule_epsilon, stabilizer=self.stabilizer)
        return _composite(layers, (Conv2d, Linear), first, conv, self._dense(), self._pool())


@dataclass(frozen=True)
class EpsilonAlpha2Beta1(_Composite):
    """zennit's ``EpsilonAlpha2Beta1``: AlphaBeta(2, 1) on convolutions, Epsilon on dense layers."""

    def __call__(self, layers):
        conv = AlphaBeta(alpha=2.0, beta=1.0, epsilon=self.rule_epsilon, stabilizer=self.stabilizer)
        return _composite(layers, (), None, conv, self._dense(), self._pool())


@dataclass(frozen=True)
class EpsilonGammaBox(_Composite):
    """zennit's ``EpsilonGammaBox``: ZBox(low, high) on the first Conv2d, Gamma on the other
    convolutions, Epsilon on dense layers, Norm on average pools, Pass elsewhere."""

    low: object = -1.0
    high: object = 1.0
    gamma: float = 0.25

    def __post_init__(self):
        super().__post_init__()
        _check_nonnegative("gamma", self.gamma)

    def __call__(self, layers):
        first = ZBox(low=self.low, high=self.high, epsilon=self.rule_epsilon,
                     stabilizer=self.stabilizer)
        conv = Gamma(gamma=self.gamma, epsilon=self.rule_epsilon, stabilizer=self.stabilizer)
        return _composite(layers, (Conv2d,), first, conv, self._dense(), self._pool())


# ---------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LRPResult:
    """Result of :func:`lrp`.

    Attributes
    ----------
    relevance : array
        Relevance at the network input (``relevance_at[0]``), the shape of ``x``.
    relevance_at : tuple of arrays
        ``relevance_at[i]`` is the relevance at the input of layer ``i``;
        the last entry is ``R_out``.
    output : array
        The network output ``sequential(layers, x)``.
    """

    relevance: object
    relevance_at: tuple
    output: object


def _check_rules(layers, rules):
    if callable(rules):
        rules = rules(layers)
    rules = list(rules)
    if len(rules) != len(layers):
        raise ValueError(f"rules must have one rule per layer: got {len(rules)} rules "
                         f"for {len(layers)} layers")
    for i, (rule, layer) in enumerate(zip(rules, layers)):
        if not isinstance(rule, _Rule):
            raise TypeError(f"rule {i} must be an LRP rule (Epsilon, Gamma, ...), "
                            f"got {type(rule).__name__}")
        rule.check(layer, i)
    return rules


def lrp(layers, x, R_out, rules, method="gradient") -> LRPResult:
    r"""Layer-wise relevance propagation through a sequential network.

    Parameters
    ----------
    layers : list of layers
        :mod:`refimpl.nn` layers: ``Linear``, ``Conv2d``, ``ReLU``, ``Tanh``,
        ``Sigmoid``, ``AvgPool2d``, ``MaxPool2d``, ``AdaptiveAvgPool2d``, ``Flatten``,
        ``BatchNorm`` (merge it first with :func:`~refimpl.nn.merge_batchnorm`, or
        give it :class:`Epsilon`).
    x : (N, ...) array
        Input batch; samples are independent.
    R_out : array
        Starting relevance, the output's shape (e.g. one-hot times the logit).
    rules : list of rules, or a composite
        One rule per layer, or a function ``layers -> rules`` such as
        ``EpsilonGammaBox(low=-1.0, high=1.0)``.
    method : {"gradient", "explicit"}
        Modified backward passes (fast), or contributions formed explicitly
        (small sizes). They agree to rounding.

    Returns
    -------
    LRPResult
        ``relevance`` at the input and ``relevance_at`` the input of every layer.

    Examples
    --------
    Epsilon on both dense layers (``EpsilonPlus``), Pass on the ReLU; the relevance
    is conserved (no bias):

    >>> import numpy as np
    >>> from refimpl.nn import Linear, ReLU
    >>> from refimpl.attribution import EpsilonPlus, lrp
    >>> layers = [Linear(np.array([[1.0, -1.0], [0.5, 0.5]])), ReLU(), Linear(np.array([[1.0, 1.0]]))]
    >>> res = lrp(layers, np.array([[2.0, 1.0]]), np.array([[2.5]]), EpsilonPlus())
    >>> np.round(res.relevance, 4).tolist(), res.output.tolist()
    ([[3.0, -0.5]], [[2.5]])
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    layers = list(layers)
    rules = _check_rules(layers, rules)
    acts = activations(layers, x)
    require_real_floating("R_out", R_out)
    xp, _ = get_namespace(x, R_out)
    require_same_dtype(x=x, R_out=R_out)
    if tuple(R_out.shape) != tuple(acts[-1].shape):
        raise ValueError(f"R_out must have the output's shape {tuple(acts[-1].shape)} "
                         f"(output of layer {len(layers) - 1}), got {tuple(R_out.shape)}")
    relevance = [R_out]
    for i in reversed(range(len(layers))):
        relevance.append(rules[i].propagate(xp, layers[i], acts[i], acts[i + 1], relevance[-1], method))
    relevance_at = tuple(reversed(relevance))
    return LRPResult(relevance_at[0], relevance_at, acts[-1])


# ---------------------------------------------------------------------------
# one rule on one layer: the records a candidate implementation is checked against
# ---------------------------------------------------------------------------


def _weighted_layer(weight, bias, stride, padding):
    """A Linear (2-D ``weight``) or Conv2d (4-D) layer; stride and padding only for Conv2d."""
    require_real_floating("weight", weight)
    if weight.ndim == 2:
        if (stride, padding) != (1, 0):
            raise ValueError(f"stride and padding apply to a Conv2d weight (4-D); weight has shape "
                             f"{tuple(weight.shape)} (Linear), got stride={stride!r}, "
                             f"padding={padding!r}")
        return Linear(weight, bias)
    if weight.ndim == 4:
        return Conv2d(weight, bias, stride, padding)
    raise ValueError(f"weight must have shape (out, in) (Linear) or (out_c, in_c, kh, kw) (Conv2d), "
                     f"got shape {tuple(weight.shape)}")


def _one_layer(rule, layer, x, R, method):
    """``rule`` on ``layer`` at input ``x`` with output relevance ``R`` (``lrp`` checks ``method``)."""
    return lrp([layer], x, R, [rule], method=method).relevance


def lrp_epsilon(x, weight, R, bias=None, *, epsilon=1e-6, zero_bias=False, stabilizer="sign",
                stride=1, padding=0, method="gradient"):
    r"""The :class:`Epsilon` rule on one Linear or Conv2d layer: relevance at its input.

    .. math::  R_i = a_i \sum_j w_{ij} R_j / S(z_j),\qquad z_j = \sum_i a_i w_{ij} + b_j

    Parameters
    ----------
    x : (N, in) or (N, C, H, W) array
        The layer's input ``a``.
    weight : (out, in) or (out_c, in_c, kh, kw) array
        A Linear weight (PyTorch layout) or a Conv2d weight.
    R : array
        Relevance at the layer's output (the output's shape).
    bias : (out,) array, optional
    epsilon, zero_bias, stabilizer
        The rule's parameters (:class:`Epsilon`).
    stride, padding : int or pair
        Conv2d only.
    method : {"gradient", "explicit"}
        Modified backward pass, or contributions formed explicitly; same numbers.

    Examples
    --------
    At ``z = 0`` the stabiliser is ``S(0) = +epsilon`` (``sgn(0) = +1``):

    >>> import numpy as np
    >>> from refimpl.attribution import lrp_epsilon
    >>> lrp_epsilon(np.array([[1.0, -1.0]]), np.array([[1.0, 1.0]]), np.array([[1.0]]),
    ...             epsilon=0.5).tolist()
    [[2.0, -2.0]]
    """
    rule = Epsilon(epsilon=epsilon, zero_bias=zero_bias, stabilizer=stabilizer)
    return _one_layer(rule, _weighted_layer(weight, bias, stride, padding), x, R, method)


def lrp_gamma(x, weight, R, bias=None, *, gamma=0.25, epsilon=1e-6, zero_bias=False,
              stabilizer="sign", weights_only=False, stride=1, padding=0, method="gradient"):
    """The :class:`Gamma` rule on one Linear or Conv2d layer; arguments as :func:`lrp_epsilon`."""
    rule = Gamma(gamma=gamma, epsilon=epsilon, zero_bias=zero_bias, stabilizer=stabilizer,
                 weights_only=weights_only)
    return _one_layer(rule, _weighted_layer(weight, bias, stride, padding), x, R, method)


def lrp_alpha_beta(x, weight, R, bias=None, *, alpha=2.0, beta=1.0, epsilon=1e-6, zero_bias=False,
                   stabilizer="sign", stride=1, padding=0, method="gradient"):
    """The :class:`AlphaBeta` rule on one Linear or Conv2d layer; arguments as :func:`lrp_epsilon`."""
    rule = AlphaBeta(alpha=alpha, beta=beta, epsilon=epsilon, zero_bias=zero_bias,
                     stabilizer=stabilizer)
    return _one_layer(rule, _weighted_layer(weight, bias, stride, padding), x, R, method)


def lrp_zplus(x, weight, R, bias=None, *, epsilon=1e-6, zero_bias=False, stabilizer="sign",
              weights_only=False, stride=1, padding=0, method="gradient"):
    """The :class:`ZPlus` rule on one Linear or Conv2d layer; arguments as :func:`lrp_epsilon`."""
    rule = ZPlus(epsilon=epsilon, zero_bias=zero_bias, stabilizer=stabilizer,
                 weights_only=weights_only)
    return _one_layer(rule, _weighted_layer(weight, bias, stride, padding), x, R, method)


def lrp_zbox(x, weight, R, bias=None, *, low=-1.0, high=1.0, epsilon=1e-6, stabilizer="sign",
             stride=1, padding=0, method="gradient"):
    """The :class:`ZBox` rule on one Linear or Conv2d layer; arguments as :func:`lrp_epsilon`."""
    rule = ZBox(low=low, high=high, epsilon=epsilon, stabilizer=stabilizer)
    return _one_layer(rule, _weighted_layer(weight, bias, stride, padding), x, R, method)


def lrp_wsquare(x, weight, R, bias=None, *, epsilon=1e-6, zero_bias=False, stabilizer="sign",
                stride=1, padding=0, method="gradient"):
    """The :class:`WSquare` rule on one Linear or Conv2d layer; arguments as :func:`lrp_epsilon`."""
    rule = WSquare(epsilon=epsilon, zero_bias=zero_bias, stabilizer=stabilizer)
    return _one_layer(rule, _weighted_layer(weight, bias, stride, padding), x, R, method)


def lrp_flat(x, weight, R, bias=None, *, epsilon=1e-6, stabilizer="sign", stride=1, padding=0,
             method="gradient"):
    """The :class:`Flat` rule on one Linear or Conv2d layer; arguments as :func:`lrp_epsilon`."""
    rule = Flat(epsilon=epsilon, stabilizer=stabilizer)
    return _one_layer(rule, _weighted_layer(weight, bias, stride, padding), x, R, method)


def lrp_norm(x, R, *, kernel_size, stride=None, epsilon=1e-6, stabilizer="sign", method="gradient"):
    r"""The :class:`Norm` rule on one average-pooling layer (:func:`refimpl.nn.avg_pool2d`).

    The epsilon rule on the averaging map, :math:`k = k_h k_w` inputs per window:

    .. math::  R_i = a_i \sum_{j \ni i} \frac{R_j}{k\, S(z_j)},\qquad
               z_j = \frac{1}{k} \sum_{i' \in j} a_{i'}

    Parameters
    ----------
    x : (N, C, H, W) array
        The pooling layer's input ``a``.
    R : (N, C, Ho, Wo) array
        Relevance at its output.
    kernel_size, stride : int or pair
        As :func:`refimpl.nn.avg_pool2d` (no padding, ``stride`` defaults to the kernel).
    epsilon, stabilizer
        The rule's parameters (:class:`Norm`).
    method : {"gradient", "explicit"}
        As :func:`lrp_epsilon`.
    """
    rule = Norm(epsilon=epsilon, stabilizer=stabilizer)
    return _one_layer(rule, AvgPool2d(kernel_size, stride), x, R, method)
