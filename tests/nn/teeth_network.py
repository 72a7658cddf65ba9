"""Teeth for ``sequential``: a NumPy network built from the layers' class names and fields.

Read by tests/verify/test_teeth.py. The candidate reads every refimpl.nn layer as a
framework would (tests/_teeth_nn.py: ``Linear`` -> weight, bias; ``Conv2d`` ->
weight, bias, stride, padding; ...), runs it forward and backpropagates, returning
per layer a dict of its fields' cotangents. Each mutant replaces one layer type.
"""

from __future__ import annotations

import numpy as np
from _teeth_nn import LAYERS, batch_norm, linear, linear_vjp, network_forward, network_vjp

from verify import Candidate
from verify.testing import Teeth


def _variance_not_rooted(layer):
    forward, vjp = LAYERS["BatchNorm"](layer)
    return (lambda x: batch_norm(x, layer.weight, layer.bias, layer.running_mean,
                                 layer.running_var ** 2, layer.eps), vjp)


def _bias_ignored(layer):
    forward, vjp = LAYERS["Linear"](layer)
    return lambda x: linear(x, layer.weight), vjp


def _bias_cotangent_of_one_sample(layer):
    def vjp(x, G):
        dx, dW, db = linear_vjp(x, layer.weight, G, layer.bias)
        return dx, {"weight": dW, **({} if db is None else {"bias": G[0]})}
    return LAYERS["Linear"](layer)[0], vjp


BUGS = {
    "Linear bias ignored": {"Linear": _bias_ignored},
    "batch norm divides by the variance, not its root": {"BatchNorm": _variance_not_rooted},
    "relu cotangent passed through": {
        "ReLU": lambda layer: (lambda x: np.maximum(x, 0), lambda x, G: (G, {}))},
    "Linear bias cotangent of the first sample": {"Linear": _bias_cotangent_of_one_sample},
}


def _candidate(bug=None):
    table = {**LAYERS, **BUGS.get(bug, {})}
    return Candidate(lambda layers, x: network_forward(layers, x, table),
                     vjp=lambda layers, x, G: network_vjp(layers, x, G, table))


TEETH = {
    "sequential": Teeth(
        correct=_candidate(),
        mutants={bug: _candidate(bug) for bug in BUGS},
        caught_by={
            "Linear bias ignored": {"matches ground truth", "merge_batchnorm preserves outputs"},
            "relu cotangent passed through": {"vjp: autograd", "vjp: dot-product test"},
            "Linear bias cotangent of the first sample": {"vjp: matches refimpl"},
        },
    ),
}
