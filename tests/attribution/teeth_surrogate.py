"""Teeth for LIME: NumPy kernel weights and a least-squares fit of the augmented system.

Read by tests/verify/test_teeth.py. The candidate perturbs each sample, scores it with
NumPy forward passes, weighs it with ``exp(-d^2 / (2 w^2))`` (cosine distance with 0
similarity for a zero vector, or Euclidean; in the input or the interpretable space)
and solves ``min ||sqrt(W) (y - b - Z beta)||^2 + alpha ||beta||^2`` with
``numpy.linalg.lstsq`` on ``[sqrt(W) [1 Z]; [0 sqrt(alpha) I]]``: no centring, no
normal equations.
"""

from __future__ import annotations

import numpy as np
from _teeth_attribution import scores

from verify import Candidate
from verify.testing import Teeth


def _distance(u, v, kind):
    if kind == "euclidean":
        return np.linalg.norm(u - v)
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    return 1.0 - (u @ v / (nu * nv) if nu > 0 and nv > 0 else 0.0)


def _lime(bug=None):
    def forward(layers, x, target, samples, feature_mask=None, *, kernel_width=1.0, alpha=1.0,
                baseline=0.0, distance="cosine", space="input"):
        if bug == "interpretable space always":
            space = "interpretable"
        dtype = x.dtype
        kept = samples if feature_mask is None else samples[:, feature_mask.reshape(-1)]
        Z = samples.astype(np.float64)
        S, F = Z.shape
        out = []
        for n in range(len(x)):
            flat = x[n].reshape(-1)
            perturbed = np.where(kept, flat, np.asarray(baseline, dtype))
            y = scores(layers, perturbed.reshape((S,) + x.shape[1:]), np.full(S, target[n]))
            d = np.array([_distance(flat.astype(np.float64), p.astype(np.float64), distance)
                          if space == "input" else _distance(np.ones(F), z, distance)
                          for p, z in zip(perturbed, Z)])
            width = kernel_width ** 2 * (1.0 if bug == "kernel without the 1/2" else 2.0)
            w = np.exp(-d ** 2 / width)
            penalty = np.sqrt(alpha) * np.eye(F + 1)
            if bug != "intercept penalised":
                penalty = penalty[1:]
            A = np.vstack([np.sqrt(w)[:, None] * np.column_stack([np.ones(S), Z]), penalty])
            b = np.concatenate([np.sqrt(w) * y, np.zeros(len(penalty))])
            fit = np.linalg.lstsq(A, b, rcond=None)[0]
            out.append((fit[1:], fit[0], w))
        coefficients, intercept, weights = (np.array(v, dtype=dtype) for v in zip(*out))
        spread = coefficients if feature_mask is None else coefficients[:, feature_mask.reshape(-1)]
        return spread.reshape(x.shape), coefficients, intercept, weights
    return Candidate(forward)


TEETH = {
    "lime": Teeth(
        correct=_lime(),
        mutants={bug: _lime(bug) for bug in ("intercept penalised", "kernel without the 1/2",
                                             "interpretable space always")},
        caught_by={"intercept penalised": {"matches scikit-learn's Ridge",
                                           "equals the dense weighted least-squares solution"},
                   "kernel without the 1/2": {"matches ground truth", "matches refimpl forward"}},
    ),
}
