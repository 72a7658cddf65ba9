"""Teeth for ``linear``: the NumPy layer of tests/_teeth_nn.py and planted bugs.

Read by tests/verify/test_teeth.py. ``dx = G W``, ``dW = G^T x`` summed over the
batch axes, ``db = sum G``; each mutant changes one of these lines.
"""

from __future__ import annotations

from _teeth_nn import linear, linear_vjp

from verify import Candidate
from verify.testing import Teeth

FORWARD_CHECKS = {"matches ground truth", "matches refimpl forward"}
VJP_CHECKS = {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"}


def _candidate(bug=None):
    def forward(x, weight, bias=None):
        return linear(x, weight, None if bug == "bias not added" else bias)

    def vjp(x, weight, G, bias=None):
        dx, dW, db = linear_vjp(x, weight, G, bias)
        if bug == "dx from the transposed weight":
            dx = G @ weight[::-1]
        if bug == "bias cotangent of the last sample only" and db is not None:
            db = G.reshape(-1, weight.shape[0])[-1]
        return dx, dW, db

    return Candidate(forward, vjp=vjp)


TEETH = {
    "linear": Teeth(
        correct=_candidate(),
        mutants={bug: _candidate(bug) for bug in (
            "bias not added", "dx from the transposed weight",
            "bias cotangent of the last sample only")},
        caught_by={"bias not added": FORWARD_CHECKS,
                   "dx from the transposed weight": VJP_CHECKS},
    ),
}
