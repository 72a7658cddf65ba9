"""Teeth for integrated gradients: captum's quadratures in NumPy, and planted bugs.

Read by tests/verify/test_teeth.py. The candidate builds the points and weights as
captum does (``numpy.polynomial.legendre.leggauss`` rescaled to [0, 1];
``linspace`` for the Riemann rules), evaluates the gradient at every point by NumPy
backpropagation (tests/_teeth_attribution.py) and forms ``delta`` from two forward
passes. Each mutant plants one mistake.
"""

from __future__ import annotations

import numpy as np
from _teeth_attribution import gradient, scores

from verify import Candidate
from verify.testing import Teeth


def _rule(method, n, trapezoid):
    if method == "gausslegendre":
        t, v = np.polynomial.legendre.leggauss(n)
        return 0.5 * (1 + t), 0.5 * v
    if method == "riemann_trapezoid":
        w = np.full(n, 1 / n) if trapezoid == "captum" else np.full(n, 1 / (n - 1))
        w[0] /= 2
        w[-1] /= 2
        return np.linspace(0, 1, n), w
    start = {"riemann_left": 0, "riemann_middle": 0.5 / n, "riemann_right": 1 / n}[method]
    return np.linspace(start, start + 1 - 1 / n, n), np.full(n, 1 / n)


def _ig(bug=None):
    def forward(layers, x, target, baseline=None, *, method="gausslegendre", n_steps=50,
                trapezoid="captum"):
        b = np.zeros_like(x) if baseline is None else baseline
        if bug == "trapezoid weights swapped":
            trapezoid = {"captum": "textbook", "textbook": "captum"}[trapezoid]
        alphas, weights = _rule(method, 4 if bug == "n_steps ignored" else n_steps, trapezoid)
        total = sum(float(w) * gradient(layers, b + float(a) * (x - b), target)
                    for a, w in zip(alphas, weights))
        attribution = (x if bug == "times x, not x - baseline" else x - b) * total
        delta = attribution.reshape(len(x), -1).sum(axis=1) - (scores(layers, x, target)
                                                              - scores(layers, b, target))
        return attribution, -delta if bug == "delta sign flipped" else delta
    return Candidate(forward)


TEETH = {
    "integrated_gradients": Teeth(
        correct=_ig(),
        mutants={bug: _ig(bug) for bug in ("trapezoid weights swapped", "n_steps ignored",
                                           "times x, not x - baseline", "delta sign flipped")},
        caught_by={"trapezoid weights swapped": {"matches ground truth", "exact on linear networks"},
                   "n_steps ignored": {"delta falls with n_steps"},
                   "times x, not x - baseline": {"exact on linear networks"},
                   "delta sign flipped": {"delta is the completeness gap"}},
    ),
}
