"""Teeth for the activations: NumPy candidates and planted bugs.

Read by tests/verify/test_teeth.py. ``relu' = [x > 0]`` (0 at 0, PyTorch),
``tanh' = 1 - tanh^2``, ``sigmoid' = s (1 - s)`` with ``s`` from ``exp(-|x|)``
(no overflow). Each mutant changes one of these.
"""

from __future__ import annotations

import numpy as np
from _teeth_nn import sigmoid

from verify import Candidate
from verify.testing import Teeth

FORWARD_CHECKS = {"matches ground truth", "matches refimpl forward"}
VJP_CHECKS = {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"}


def _relu(bug=None):
    slope = 0.01 if bug == "leaky (slope 0.01)" else 0.0

    def forward(x):
        return np.where(x > 0, x, slope * x)

    def vjp(x, G):
        if bug == "cotangent on the wrong side":
            return (G * (x < 0),)
        positive = x >= 0 if bug == "subgradient 1 at x = 0" else x > 0
        return (np.where(positive, G, slope * G),)

    return Candidate(forward, vjp=vjp)


def _tanh(bug=None):
    def forward(x):
        return 2 * sigmoid(x) - 1 if bug == "2 sigmoid(x) - 1 (tanh(x / 2))" else np.tanh(x)

    def vjp(x, G):
        t = np.tanh(x)
        return (G * (1 - t) if bug == "derivative 1 - tanh" else G * (1 - t * t),)

    return Candidate(forward, vjp=vjp)


def _sigmoid(bug=None):
    def forward(x):
        if bug == "exp(x) / (1 + exp(x)) everywhere (overflow)":
            with np.errstate(over="ignore", invalid="ignore"):
                return np.exp(x) / (1 + np.exp(x))
        return sigmoid(x)

    def vjp(x, G):
        s = sigmoid(x)
        return (G * s * (1 + s) if bug == "derivative s (1 + s)" else G * s * (1 - s),)

    return Candidate(forward, vjp=vjp)


TEETH = {
    "relu": Teeth(
        correct=_relu(),
        mutants={bug: _relu(bug) for bug in ("leaky (slope 0.01)", "cotangent on the wrong side",
                                             "subgradient 1 at x = 0")},
        caught_by={"leaky (slope 0.01)": FORWARD_CHECKS, "cotangent on the wrong side": VJP_CHECKS,
                   "subgradient 1 at x = 0": {"subgradient 0 at x = 0"}},
    ),
    "tanh": Teeth(
        correct=_tanh(),
        mutants={bug: _tanh(bug) for bug in ("2 sigmoid(x) - 1 (tanh(x / 2))",
                                             "derivative 1 - tanh")},
        caught_by={"2 sigmoid(x) - 1 (tanh(x / 2))": FORWARD_CHECKS,
                   "derivative 1 - tanh": VJP_CHECKS},
    ),
    "sigmoid": Teeth(
        correct=_sigmoid(),
        mutants={bug: _sigmoid(bug) for bug in ("exp(x) / (1 + exp(x)) everywhere (overflow)",
                                                "derivative s (1 + s)")},
        caught_by={"exp(x) / (1 + exp(x)) everywhere (overflow)": FORWARD_CHECKS,
                   "derivative s (1 + s)": VJP_CHECKS},
    ),
}
