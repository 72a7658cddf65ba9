"""Teeth for activation maximisation: the ascent with NumPy backpropagation, and planted bugs.

Read by tests/verify/test_teeth.py.
"""

from __future__ import annotations

from _teeth_attribution import gradient, scores

from verify import Candidate
from verify.testing import Teeth


def _ascent(bug=None):
    def forward(layers, x0, unit, *, l2, lr, n_steps):
        factor = 1.0 if bug == "penalty gradient l2 x" else 2.0
        x = x0
        for _ in range(n_steps):
            x = x + lr * (gradient(layers, x, unit) - factor * l2 * x)
        penalty = 0.0 if bug == "objective without the penalty" else l2 * (x * x).reshape(
            len(x), -1).sum(axis=1)
        return x, scores(layers, x, unit) - penalty
    return Candidate(forward)


TEETH = {
    "activation_maximization": Teeth(
        correct=_ascent(),
        mutants={bug: _ascent(bug) for bug in ("penalty gradient l2 x",
                                               "objective without the penalty")},
        caught_by={"penalty gradient l2 x": {"closed form on an affine network"},
                   "objective without the penalty": {"matches ground truth"}},
    ),
}
