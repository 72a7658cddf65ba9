"""Teeth for ``conv2d``: the loops of tests/_teeth_nn.py and planted bugs.

Read by tests/verify/test_teeth.py. The candidate sums shifted, strided slices of
the padded input over the kernel offsets; its VJP adds ``G w`` back at the same
slices (then unpads), ``dw`` pairs ``G`` with each slice, ``db`` sums ``G`` over
samples and space. Each mutant changes one of these steps.
"""

from __future__ import annotations

from _teeth_nn import conv2d, conv2d_input_vjp, conv2d_vjp

from verify import Candidate
from verify.testing import Teeth

FORWARD_CHECKS = {"matches ground truth", "matches refimpl forward"}
VJP_CHECKS = {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"}


def _candidate(bug=None):
    def kernel(weight):
        return weight[:, :, ::-1, ::-1] if bug == "convolution (flipped kernel)" else weight

    def forward(x, weight, bias=None, *, stride=1, padding=0):
        return conv2d(x, kernel(weight), bias, stride, padding)

    def vjp(x, weight, G, bias=None, *, stride=1, padding=0):
        dx, dw, db = conv2d_vjp(x, kernel(weight), G, bias, stride, padding)
        if bug == "padding off by one in dx":
            dx = conv2d_input_vjp(G, weight, x.shape[2:], stride, padding, dx_shift=1)
        if bug == "bias cotangent not summed over space" and db is not None:
            db = G[:, :, 0, 0].sum(axis=0)
        return dx, kernel(dw), db

    return Candidate(forward, vjp=vjp)


TEETH = {
    "conv2d": Teeth(
        correct=_candidate(),
        mutants={bug: _candidate(bug) for bug in (
            "convolution (flipped kernel)", "padding off by one in dx",
            "bias cotangent not summed over space")},
        caught_by={"convolution (flipped kernel)": FORWARD_CHECKS,
                   "bias cotangent not summed over space": VJP_CHECKS},
    ),
}
