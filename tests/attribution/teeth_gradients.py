"""Teeth for the gradient attributions: NumPy backpropagation with the ReLU's rule swapped.

Read by tests/verify/test_teeth.py. The candidates read refimpl's layers by class name
and fields (tests/_teeth_nn.py) and seed the backward pass with the target's one-hot
rows (tests/_teeth_attribution.py); SmoothGrad and VarGrad stack the saliency at every
noisy input and take NumPy's mean and variance. Each mutant plants one mistake.
"""

from __future__ import annotations

import numpy as np
from _teeth_attribution import gradient

from verify import Candidate
from verify.testing import Teeth

_GROUND = {"matches ground truth", "matches refimpl forward"}


def _saliency(layers, x, target, abs=True, bug=None):
    g = gradient(layers, x, target)
    if bug == "abs ignored":
        return np.abs(g)
    return np.abs(g) if abs else g


def _noisy(layers, x, target, noise, abs, reduce):
    return reduce(np.stack([_saliency(layers, x + e, target, abs) for e in noise]))


def _sample_variance(s):
    if len(s) < 2:
        raise ValueError("the sample variance needs two noise samples")
    return s.var(axis=0, ddof=1)


def _teeth(forward, mutants, caught_by=None):
    return Teeth(correct=Candidate(forward), mutants={k: Candidate(f) for k, f in mutants.items()},
                 caught_by=caught_by or {})


TEETH = {
    "saliency": _teeth(
        _saliency,
        {"abs ignored": lambda *a, **k: _saliency(*a, **k, bug="abs ignored"),
         "gradient of unit 0": lambda layers, x, target, abs=True: _saliency(
             layers, x, np.zeros_like(target), abs)},
        {"abs ignored": _GROUND}),
    "sensitivity": _teeth(
        lambda layers, x, target: gradient(layers, x, target) ** 2,
        {"absolute gradient": lambda layers, x, target: np.abs(gradient(layers, x, target))},
        {"absolute gradient": _GROUND | {"sums to the squared gradient norm"}}),
    "input_x_gradient": _teeth(
        lambda layers, x, target: x * gradient(layers, x, target),
        {"gradient alone": lambda layers, x, target: gradient(layers, x, target)},
        {"gradient alone": _GROUND | {"equals LRP-0 on a bias-free ReLU network"}}),
    "smoothgrad": _teeth(
        lambda layers, x, target, noise, abs=True: _noisy(layers, x, target, noise, abs,
                                                          lambda s: s.mean(axis=0)),
        {"noise ignored": lambda layers, x, target, noise, abs=True: _saliency(layers, x, target,
                                                                               abs),
         "sum over S + 1": lambda layers, x, target, noise, abs=True: _noisy(
             layers, x, target, noise, abs, lambda s: s.sum(axis=0) / (len(s) + 1))},
        {"sum over S + 1": {"zero noise gives the saliency"}}),
    "vargrad": _teeth(
        lambda layers, x, target, noise, abs=True: _noisy(layers, x, target, noise, abs,
                                                          lambda s: s.var(axis=0)),
        {"second moment": lambda layers, x, target, noise, abs=True: _noisy(
            layers, x, target, noise, abs, lambda s: (s ** 2).mean(axis=0)),
         "sample variance (S - 1)": lambda layers, x, target, noise, abs=True: _noisy(
             layers, x, target, noise, abs, _sample_variance)},
        {"second moment": _GROUND | {"zero noise gives zero"}}),
    "guided_backprop": _teeth(
        lambda layers, x, target: gradient(layers, x, target, "guided"),
        {"plain gradient": lambda layers, x, target: gradient(layers, x, target),
         "min(g, 0) kept": lambda layers, x, target: gradient(
             layers, x, target, lambda a, G: np.minimum(G, 0) * (a > 0))},
        {"plain gradient": _GROUND,
         "min(g, 0) kept": {"equals the gradient on a positive ReLU network"}}),
    "deconvnet": _teeth(
        lambda layers, x, target: gradient(layers, x, target, "deconvnet"),
        {"guided rule": lambda layers, x, target: gradient(layers, x, target, "guided"),
         "min(g, 0) passed": lambda layers, x, target: gradient(
             layers, x, target, lambda a, G: np.minimum(G, 0))},
        {"guided rule": _GROUND,
         "min(g, 0) passed": {"equals the gradient on a positive ReLU network"}}),
}
