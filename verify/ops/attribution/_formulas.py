r"""LRP from its formulas on dense matrices (NumPy float64): the ground truth of the attribution records.

Every layer becomes a :class:`DenseLayer`: its per-sample matrix ``M[i, j]``
(input ``i`` to output ``j``) probed with unit inputs from the per-layer
references of :mod:`verify.ops.nn` (never from refimpl), its bias vector, and
for Flat the 0/1 matrix of the in-bounds receptive fields; max pooling gives
the 0/1 matrix of each window's first maximum. A rule's formula
(:data:`FORMULAS`, by rule class) is a list of :class:`Term` and

.. math::  R_i = \sum_{\text{terms}} \sum_j c_{ij} \frac{f_j R_j}{S(\sum_{i'} c_{i'j} + b_j)}

(docs/conventions.rst, section 5.1); Pass divides by nothing. Composites become
rules by :data:`COMPOSITE_RULES` (zennit's layer maps, by composite class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from refimpl.attribution import (
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
)
from refimpl.nn import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)

from ..nn.convolution import conv2d_reference
from ..nn.dense import linear_reference
from ..nn.network import LAYER_REFERENCES, network_activations


@dataclass(frozen=True)
class DenseLayer:
    """One layer at input ``a`` (N, in): ``M`` (in, out) or per sample (N, in, out), bias (out,)."""

    a: np.ndarray
    M: np.ndarray
    bias: np.ndarray | None = None
    ones: np.ndarray | None = None
    in_shape: tuple = ()

    @property
    def A(self):
        return self.a[:, :, None]

    def z(self, bias):
        """``z_j = sum_i a_i M_ij + b_j`` per sample."""
        z = np.einsum("ni,ij->nj" if self.M.ndim == 2 else "ni,nij->nj", self.a, self.M)
        return z if bias is None else z + bias


@dataclass(frozen=True)
class Term:
    """Contributions ``c`` (N, in, out), a bias (out,) or None, an output factor; ``divide=False``: Pass."""

    c: np.ndarray
    bias: Any
    factor: Any
    divide: bool = True


# -- layers as dense matrices -------------------------------------------------------------


def _probe(fn, in_shape):
    """``M[i, j]``: output ``j`` of the linear map ``fn`` at the ``i``-th unit input."""
    size = math.prod(in_shape)
    return fn(np.eye(size).reshape((size,) + tuple(in_shape))).reshape(size, -1)


def _flat(a):
    return a.reshape(a.shape[0], -1)


def _weighted(a, apply, weight, bias):
    """A weighted layer from ``apply(x, weight, bias)``: its matrix, bias map and receptive fields."""
    in_shape = a.shape[1:]
    zero = np.zeros((1,) + in_shape)
    return DenseLayer(
        _flat(a), _probe(lambda e: apply(e, weight, None), in_shape),
        None if bias is None else apply(zero, np.zeros_like(weight), bias).reshape(-1),
        _probe(lambda e: apply(e, np.ones_like(weight), None), in_shape), in_shape)


def weighted_dense(a, weight, bias=None, stride=1, padding=0):
    """A Linear (2-D ``weight``) or Conv2d (4-D) layer at input ``a``, from the nn references."""
    if weight.ndim == 2:
        return _weighted(a, lambda x, w, b: linear_reference(np, x, w, b), weight, bias)
    return _weighted(a, lambda x, w, b: conv2d_reference(np, x, w, b, stride, padding),
                     weight, bias)


def linear_map_dense(a, fn):
    """A parameter-free linear layer ``fn`` (an average pooling) at input ``a``."""
    return DenseLayer(_flat(a), _probe(fn, a.shape[1:]), in_shape=a.shape[1:])


def _linear_map(layer, a):
    return linear_map_dense(a, lambda e: LAYER_REFERENCES[type(layer)](np, layer, e))


def _identity(layer, a):
    return DenseLayer(_flat(a), np.eye(_flat(a).shape[1]), in_shape=a.shape[1:])


def _first_maxima(layer, a):
    """``M[n, i, j] = 1`` where input ``i`` is the first (row-major) maximum of window ``j``."""
    n, c, h, w = a.shape
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    M = np.zeros((n, c * h * w, c * ho * wo))
    for s, ch, p, q in np.ndindex(n, c, ho, wo):
        r, t = divmod(int(np.argmax(a[s, ch, p * sh:p * sh + kh, q * sw:q * sw + kw])), kw)
        M[s, (ch * h + p * sh + r) * w + q * sw + t, (ch * ho + p) * wo + q] = 1.0
    return DenseLayer(_flat(a), M, in_shape=a.shape[1:])


def _batch_norm(layer, a):
    """The affine map ``x s + (beta - mu s)``: its diagonal matrix and its shift as the bias."""
    shift = LAYER_REFERENCES[BatchNorm](np, layer, np.zeros((1,) + a.shape[1:])).reshape(-1)
    M = _probe(lambda e: LAYER_REFERENCES[BatchNorm](np, layer, e), a.shape[1:]) - shift
    return DenseLayer(_flat(a), M, shift, in_shape=a.shape[1:])


DENSE_LAYERS = {
    Linear: lambda layer, a: weighted_dense(a, layer.weight, layer.bias),
    Conv2d: lambda layer, a: weighted_dense(a, layer.weight, layer.bias, layer.stride,
                                            layer.padding),
    AvgPool2d: _linear_map,
    AdaptiveAvgPool2d: _linear_map,
    MaxPool2d: _first_maxima,
    BatchNorm: _batch_norm,
    ReLU: _identity,
    Tanh: _identity,
    Sigmoid: _identity,
    Flatten: _identity,
}


# -- the rules' formulas ------------------------------------------------------------------


def _pos(v):
    return None if v is None else np.maximum(v, 0.0)


def _neg(v):
    return None if v is None else np.minimum(v, 0.0)


def _rule_bias(rule, L):
    """The layer's bias, or None with ``zero_bias``."""
    return None if getattr(rule, "zero_bias", False) else L.bias


def _epsilon(rule, L):
    return [Term(L.A * L.M, _rule_bias(rule, L), 1.0)]


def _norm(rule, L):
    return [Term(L.A * L.M, None, 1.0)]


def _gamma(rule, L):
    g, M, b = rule.gamma, L.M, _rule_bias(rule, L)
    if rule.weights_only:
        return [Term(L.A * (M + g * _pos(M)), b, 1.0)]
    ap, an = _pos(L.A), _neg(L.A)
    up, down = M + g * _pos(M), M + g * _neg(M)
    z = L.z(b)
    return [Term(ap * up + an * down, None if b is None else b + g * _pos(b), 1.0 * (z > 0)),
            Term(ap * down + an * up, None if b is None else b + g * _neg(b), 1.0 * (z < 0))]


def _signed(rule, L, alpha, beta):
    """The positive (``alpha``) and negative (``-beta``) contributions with biases ``b+``, ``b-``."""
    b, M = _rule_bias(rule, L), L.M
    ap, an = _pos(L.A), _neg(L.A)
    return [Term(ap * _pos(M) + an * _neg(M), _pos(b), alpha),
            Term(ap * _neg(M) + an * _pos(M), _neg(b), -beta)]


def _alpha_beta(rule, L):
    return _signed(rule, L, rule.alpha, rule.beta)


def _zplus(rule, L):
    if rule.weights_only:
        return [Term(L.A * _pos(L.M), _rule_bias(rule, L), 1.0)]
    return _signed(rule, L, 1.0, 0.0)[:1]


def _zbox(rule, L):
    def bound(value):
        return np.broadcast_to(np.asarray(value, float), (L.a.shape[0],) + L.in_shape).reshape(
            L.a.shape)[:, :, None]

    return [Term(L.A * L.M - bound(rule.low) * _pos(L.M) - bound(rule.high) * _neg(L.M), None, 1.0)]


def _wsquare(rule, L):
    b = _rule_bias(rule, L)
    return [Term(np.broadcast_to(L.M ** 2, (L.a.shape[0],) + L.M.shape), None if b is None
                 else b ** 2, 1.0)]


def _flat_rule(rule, L):
    return [Term(np.broadcast_to(L.ones, (L.a.shape[0],) + L.ones.shape), None, 1.0)]


def _pass(rule, L):
    return [Term(np.broadcast_to(L.M, (L.a.shape[0],) + L.M.shape[-2:]), None, 1.0, divide=False)]


#: Every rule's terms, by rule class: ``FORMULAS[type(rule)](rule, dense_layer)``.
FORMULAS = {
    Epsilon: _epsilon,
    Norm: _norm,
    Gamma: _gamma,
    AlphaBeta: _alpha_beta,
    ZPlus: _zplus,
    ZBox: _zbox,
    WSquare: _wsquare,
    Flat: _flat_rule,
    Pass: _pass,
}


def stabilize(z, rule):
    """``S(z) = z + eps sgn(z)`` with ``sgn(0) = +1`` ("sign"), or ``z + eps [z = 0]`` ("zero_only")."""
    if rule.stabilizer == "sign":
        return z + rule.epsilon * np.where(z >= 0, 1.0, -1.0)
    return z + rule.epsilon * (z == 0)


def apply_terms(terms, R, rule):
    """``(R_in, slack)``: relevance below (N, in) and, per sample, the relevance the dividing
    terms do not pass on, ``sum_j |R_j| |1 - sum_t f_t z_t / S(z_t)|``: the stabiliser's share,
    and all of ``R_j`` where gamma's ``z_j = 0`` selects no term (bias-free, the rest is
    conserved; alpha - beta = 1 makes the factors sum to 1 elsewhere)."""
    out, passed, divides = 0.0, 0.0, False
    for term in terms:
        if not term.divide:
            out = out + np.einsum("nij,nj->ni", term.c, R)
            continue
        z = term.c.sum(axis=1) + (0.0 if term.bias is None else term.bias)
        s = stabilize(z, rule)
        out = out + np.einsum("nij,nj->ni", term.c, term.factor * R / s)
        passed, divides = passed + term.factor * z / s, True
    slack = np.sum(np.abs(R) * np.abs(1 - passed), axis=1) if divides else 0.0
    return out, slack + np.zeros(R.shape[0])


def denominators(rule, L):
    """``z`` of every term of ``rule`` on ``L`` (before the stabiliser), per sample."""
    return [t.c.sum(axis=1) + (0.0 if t.bias is None else t.bias) for t in FORMULAS[type(rule)](rule, L)]


# -- composites ---------------------------------------------------------------------------


def _zennit(layers, first_types, first, conv, dense, pool):
    """zennit's layer map: ``first`` on the first layer of ``first_types``, then by layer type."""
    rules, pending = [], first is not None
    for layer in layers:
        if pending and isinstance(layer, first_types):
            rules.append(first)
            pending = False
        elif isinstance(layer, Conv2d):
            rules.append(conv)
        elif isinstance(layer, Linear):
            rules.append(dense)
        elif isinstance(layer, (AvgPool2d, AdaptiveAvgPool2d)):
            rules.append(pool)
        else:
            rules.append(Pass())
    return rules


def _epsilon_plus(c, layers, first_types=(), first=None):
    return _zennit(layers, first_types, first,
                   ZPlus(epsilon=c.rule_epsilon, stabilizer=c.stabilizer),
                   Epsilon(epsilon=c.epsilon, stabilizer=c.stabilizer),
                   Norm(epsilon=c.rule_epsilon, stabilizer=c.stabilizer))


#: zennit's composites, by composite class: ``COMPOSITE_RULES[type(c)](c, layers)``.
COMPOSITE_RULES = {
    EpsilonPlus: _epsilon_plus,
    EpsilonPlusFlat: lambda c, layers: _epsilon_plus(
        c, layers, (Conv2d, Linear), Flat(epsilon=c.rule_epsilon, stabilizer=c.stabilizer)),
    EpsilonAlpha2Beta1: lambda c, layers: _zennit(
        layers, (), None,
        AlphaBeta(alpha=2.0, beta=1.0, epsilon=c.rule_epsilon, stabilizer=c.stabilizer),
        Epsilon(epsilon=c.epsilon, stabilizer=c.stabilizer),
        Norm(epsilon=c.rule_epsilon, stabilizer=c.stabilizer)),
    EpsilonGammaBox: lambda c, layers: _zennit(
        layers, (Conv2d,),
        ZBox(low=c.low, high=c.high, epsilon=c.rule_epsilon, stabilizer=c.stabilizer),
        Gamma(gamma=c.gamma, epsilon=c.rule_epsilon, stabilizer=c.stabilizer),
        Epsilon(epsilon=c.epsilon, stabilizer=c.stabilizer),
        Norm(epsilon=c.rule_epsilon, stabilizer=c.stabilizer)),
}


def reference_rules(layers, rules) -> list:
    """One rule per layer: the list itself, or a composite's rules."""
    if type(rules) in COMPOSITE_RULES:
        return COMPOSITE_RULES[type(rules)](rules, layers)
    return list(rules)


def reference_lrp(layers, x, R_out, rules):
    """``(relevance_at, slack_at)``: relevance at every layer's input (and ``R_out``), and the
    conservation slack of every layer, from the formulas on dense matrices."""
    acts = network_activations(np, layers, x)
    R = _flat(R_out)
    relevance, slack = [R_out], []
    for layer, rule, a in reversed(list(zip(layers, reference_rules(layers, rules), acts))):
        R, s = apply_terms(FORMULAS[type(rule)](rule, DENSE_LAYERS[type(layer)](layer, a)), R, rule)
        relevance.append(R.reshape(a.shape))
        slack.append(s)
    return relevance[::-1], slack[::-1]
