"""Teeth for ``batch_norm``: the NumPy layer of tests/_teeth_nn.py and planted bugs.

Read by tests/verify/test_teeth.py. With ``r = (var + eps)^(-1/2)``:
``dx = G g r``, ``dg = sum G (x - m) r``, ``db = sum G``, ``dm = -sum G g r``,
``dvar = -sum G (x - m) g r^3 / 2``; each mutant changes one of these lines or
the forward.
"""

from __future__ import annotations

import numpy as np
from _teeth_nn import batch_norm, batch_norm_vjp

from verify import Candidate
from verify.testing import Teeth

FORWARD_CHECKS = {"matches ground truth", "matches refimpl forward"}
VJP_CHECKS = {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"}


def _candidate(bug=None):
    def forward(x, weight, bias, running_mean, running_var, *, eps=1e-5):
        if bug == "eps outside the square root":
            return batch_norm(x, weight, bias, running_mean, (np.sqrt(running_var) + eps) ** 2, 0.0)
        return batch_norm(x, weight, bias, running_mean, running_var, eps)

    def vjp(x, weight, bias, running_mean, running_var, G, *, eps=1e-5):
        dx, dw, db, dm, dv = batch_norm_vjp(x, weight, bias, running_mean, running_var, G, eps)
        if bug == "variance cotangent without the 1/2":
            dv = 2 * dv
        if bug == "mean cotangent with the wrong sign":
            dm = -dm
        return dx, dw, db, dm, dv

    return Candidate(forward, vjp=vjp)


TEETH = {
    "batch_norm": Teeth(
        correct=_candidate(),
        mutants={bug: _candidate(bug) for bug in (
            "eps outside the square root", "variance cotangent without the 1/2",
            "mean cotangent with the wrong sign")},
        caught_by={"eps outside the square root": FORWARD_CHECKS,
                   "variance cotangent without the 1/2": VJP_CHECKS,
                   "mean cotangent with the wrong sign": VJP_CHECKS},
    ),
}
