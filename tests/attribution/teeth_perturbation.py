"""Teeth for occlusion and feature ablation: NumPy masks and forward passes.

Read by tests/verify/test_teeth.py. Occlusion builds every window as a boolean mask
(corners ``0, s, 2s, ...`` while ``corner < D - k + s``, the mask cut by the array's
end), feature ablation one mask per group id; each mask's score drop goes to its
features, averaged over the windows covering each feature.
"""

from __future__ import annotations

import itertools

import numpy as np
from _teeth_attribution import scores

from verify import Candidate
from verify.testing import Teeth


def _drops(layers, x, target, masks, baseline, sign=1.0):
    """``sum_m Delta_m m`` and ``sum_m m``."""
    total, count = np.zeros_like(x), np.zeros(x.shape[1:], dtype=x.dtype)
    for mask in masks:
        perturbed = np.where(mask, np.asarray(baseline, x.dtype), x)
        drop = sign * (scores(layers, x, target) - scores(layers, perturbed, target))
        total += drop.reshape((-1,) + (1,) * mask.ndim) * mask
        count += mask
    return total, count


def _occlusion(bug=None):
    def forward(layers, x, target, *, window, strides, baseline=0.0):
        shape = x.shape[1:]
        masks = []
        for corner in itertools.product(*(range(0, n - k + s, s)
                                          for n, k, s in zip(shape, window, strides))):
            if bug == "border windows dropped" and any(
                    c + k > n for c, k, n in zip(corner, window, shape)):
                continue
            mask = np.zeros(shape, dtype=bool)
            mask[tuple(slice(c, c + k) for c, k in zip(corner, window))] = True
            masks.append(mask)
        total, count = _drops(layers, x, target, masks, baseline,
                              -1.0 if bug == "drop sign flipped" else 1.0)
        return total / np.maximum(count, 1)
    return Candidate(forward)


def _ablation(bug=None):
    def forward(layers, x, target, feature_mask, *, baseline=0.0):
        masks = [(feature_mask != g) if bug == "complement ablated" else (feature_mask == g)
                 for g in np.unique(feature_mask)]
        return _drops(layers, x, target, masks, baseline)[0]
    return Candidate(forward)


TEETH = {
    "occlusion": Teeth(
        correct=_occlusion(),
        mutants={bug: _occlusion(bug) for bug in ("border windows dropped", "drop sign flipped")},
        caught_by={"border windows dropped": {"windows cut at the border count"},
                   "drop sign flipped": {
            "matches ground truth", "one window over the sample gives the total drop",
            "one-element windows on an affine network are input times gradient"}},
    ),
    "feature_ablation": Teeth(
        correct=_ablation(),
        mutants={"complement ablated": _ablation("complement ablated")},
        caught_by={"complement ablated": {"matches ground truth", "exact on an additive network"}},
    ),
}
