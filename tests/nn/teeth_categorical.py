"""Teeth for softmax and log-softmax: NumPy candidates and planted bugs.

Read by tests/verify/test_teeth.py. The candidates shift by the maximum and
clamp the shifted logits at ``-max_float`` (so nothing overflows); the VJPs
are ``p (G - <p, G>)`` and ``G - p sum G``. Each mutant changes one of these.
"""

from __future__ import annotations

import numpy as np

from verify import Candidate
from verify.testing import Teeth

FORWARD_CHECKS = {"matches ground truth", "matches refimpl forward"}
VJP_CHECKS = {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"}
NEAR_MAX = "logits near the float maximum"


def shifted(x, axis, bug=None):
    """``(x - max, in range)``, the difference clamped at ``-max_float``."""
    m = np.max(x, axis=axis, keepdims=True)
    if bug == "no shift (exp overflows)":
        return x, np.ones(x.shape, bool)
    floor = np.maximum(m, 0.0) - np.finfo(x.dtype).max
    return np.maximum(x, floor) - m, x >= floor


def softmax(x, axis=-1, bug=None):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(shifted(x, axis, bug)[0])
        if bug == "normalised over the wrong axis (the first)":
            axis = 0
        return e / np.sum(e, axis=axis, keepdims=True)


def _softmax(bug=None):
    def forward(x, axis=-1):
        p = softmax(x, axis, bug)
        return p * 0.999 if bug == "sums to 0.999" else p

    def vjp(x, G, axis=-1):
        p = softmax(x, axis)
        if bug == "cotangent p (G - sum G)":
            return (p * (G - np.sum(G, axis=axis, keepdims=True)),)
        return (p * (G - np.sum(p * G, axis=axis, keepdims=True)),)

    return Candidate(forward, vjp=vjp)


def _log_softmax(bug=None):
    def forward(x, axis=-1):
        if bug == "log(softmax(x)) (-inf where exp underflows)":
            with np.errstate(divide="ignore"):
                return np.log(softmax(x, axis))
        d, in_range = shifted(x, axis, bug)
        with np.errstate(over="ignore", invalid="ignore"):
            out = d - np.log(np.sum(np.exp(d), axis=axis, keepdims=True))
        if bug == "finite floor instead of -inf below the range":
            return out
        if bug == "log of the sum over the first axis":
            out = d - np.log(np.sum(np.exp(d), axis=0, keepdims=True))
        return np.where(in_range, out, -np.inf)

    def vjp(x, G, axis=-1):
        p = softmax(x, axis)
        if bug == "cotangent G - p G":
            return (G - p * G,)
        return (G - p * np.sum(G, axis=axis, keepdims=True),)

    return Candidate(forward, vjp=vjp)


def _teeth(make, caught_by):
    return Teeth(correct=make(), mutants={bug: make(bug) for bug in caught_by},
                 caught_by=caught_by)


TEETH = {
    "softmax": _teeth(_softmax, {
        "no shift (exp overflows)": {NEAR_MAX},
        "normalised over the wrong axis (the first)": FORWARD_CHECKS,
        "sums to 0.999": FORWARD_CHECKS | {"sums to 1"},
        "cotangent p (G - sum G)": VJP_CHECKS,
    }),
    "log_softmax": _teeth(_log_softmax, {
        "log(softmax(x)) (-inf where exp underflows)": {NEAR_MAX},
        "finite floor instead of -inf below the range": {NEAR_MAX},
        "log of the sum over the first axis": FORWARD_CHECKS,
        "cotangent G - p G": VJP_CHECKS,
    }),
}
