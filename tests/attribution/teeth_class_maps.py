"""Teeth for CAM, Grad-CAM and guided Grad-CAM: NumPy forward and backward passes.

Read by tests/verify/test_teeth.py. The candidates split the network at the explained
layer, backpropagate the target's one-hot rows through the tail
(tests/_teeth_attribution.py), average the gradient over (h, w) and weight the
channels; CAM's VJP spreads the map's cotangent over the channels with the target's
weights and backpropagates through the layers before the pooling.
"""

from __future__ import annotations

import numpy as np
from _teeth_attribution import gradient, seed, split, upsample
from _teeth_nn import network_forward, network_vjp

from verify import Candidate
from verify.testing import Teeth

_GROUND = {"matches ground truth", "matches refimpl forward"}


def _cam(layers, x, target, bug=None):
    features = network_forward(layers[:-3], x)
    last = layers[-1]
    weights = last.weight[target][:, :, None, None]
    heat = (weights * features).sum(axis=1, keepdims=True)
    if bug == "bias added to the map" and last.bias is not None:
        heat = heat + last.bias[target][:, None, None, None]
    return heat


def _cam_vjp(layers, x, target, G, scale=1.0):
    weights = layers[-1].weight[target][:, :, None, None]
    return None, scale * network_vjp(layers[:-3], x, weights * G)[1], None


def _grad_cam(layers, x, target, *, layer, relu=False, bug=None):
    features, tail = split(layers, x, layer + 1)
    dA = network_vjp(tail, features, seed(network_forward(tail, features), target))[1]
    alpha = dA.sum(axis=(2, 3), keepdims=True) if bug == "sum, not mean" else dA.mean(
        axis=(2, 3), keepdims=True)
    heat = (alpha * features).sum(axis=1, keepdims=True)
    return np.maximum(heat, 0) if relu and bug != "relu ignored" else heat


def _guided_grad_cam(layers, x, target, *, layer, mode="nearest", bug=None):
    heat = _grad_cam(layers, x, target, layer=layer, relu=True)
    up = upsample(heat, x.shape[2:], "bilinear" if bug == "bilinear whatever the mode" else mode)
    rule = "gradient" if bug == "plain gradient" else "guided"
    return gradient(layers, x, target, rule) * up


TEETH = {
    "cam": Teeth(
        correct=Candidate(_cam, vjp=_cam_vjp),
        mutants={"bias added to the map": Candidate(
                     lambda *a: _cam(*a, bug="bias added to the map"), vjp=_cam_vjp),
                 "vjp halved": Candidate(_cam, vjp=lambda *a: _cam_vjp(*a, scale=0.5))},
        caught_by={"bias added to the map": _GROUND | {
                       "the map's mean plus the bias is the target score"},
                   "vjp halved": {"vjp: dot-product test", "vjp: autograd",
                                  "vjp: matches refimpl"}},
    ),
    "grad_cam": Teeth(
        correct=Candidate(_grad_cam),
        mutants={bug: Candidate(lambda *a, bug=bug, **k: _grad_cam(*a, **k, bug=bug))
                 for bug in ("sum, not mean", "relu ignored")},
        caught_by={"sum, not mean": _GROUND | {"equals CAM over the pooled area at the last ReLU"},
                   "relu ignored": _GROUND},
    ),
    "guided_grad_cam": Teeth(
        correct=Candidate(_guided_grad_cam),
        mutants={bug: Candidate(lambda *a, bug=bug, **k: _guided_grad_cam(*a, **k, bug=bug))
                 for bug in ("plain gradient", "bilinear whatever the mode")},
        # the mode matters only where the upsampled map is not constant: more draws
        options={"max_examples": 30},
    ),
}
