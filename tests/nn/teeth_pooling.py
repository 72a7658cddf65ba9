"""Teeth for the poolings: the loops of tests/_teeth_nn.py and planted bugs.

Read by tests/verify/test_teeth.py. Each output's cotangent goes back to its
window: ``1 / (kh kw)`` to every element (average), all to the first row-major
maximum (max), ``1 / |bin|`` over PyTorch's adaptive bins. Each mutant changes
one of these rules or the windows themselves.
"""

from __future__ import annotations

import numpy as np
from _teeth_nn import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_vjp,
    avg_pool2d,
    avg_pool2d_vjp,
    bins,
    max_pool2d,
    max_pool2d_vjp,
    pair,
    pooled,
    windows,
)

from verify import Candidate
from verify.testing import Teeth

FORWARD_CHECKS = {"matches ground truth", "matches refimpl forward"}
VJP_CHECKS = {"vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"}


def _avg(bug=None):
    def forward(x, *, kernel_size, stride=None):
        y = avg_pool2d(x, kernel_size, stride)
        return y * pair(kernel_size)[1] if bug == "divided by kh, not kh kw" else y

    def vjp(x, G, *, kernel_size, stride=None):
        if bug == "overlapping windows overwrite":
            dx = np.zeros_like(x)
            for i, j, r, c in windows(x.shape[2:], kernel_size, stride):
                dx[:, :, r, c] = G[:, :, i, j, None, None] / np.prod(pair(kernel_size))
            return (dx,)
        dx = avg_pool2d_vjp(x, G, kernel_size, stride)
        return (dx * pair(kernel_size)[1] if bug == "cotangent divided by kh only" else dx,)

    return Candidate(forward, vjp=vjp)


def _max(bug=None):
    def forward(x, *, kernel_size, stride=None):
        if bug == "window one row short":
            cells = [(i, j, slice(r.start, max(r.start + 1, r.stop - 1)), c)
                     for i, j, r, c in windows(x.shape[2:], kernel_size, stride)]
            return pooled(x, cells, lambda w: w.max(axis=(2, 3)))
        return max_pool2d(x, kernel_size, stride)

    def vjp(x, G, *, kernel_size, stride=None):
        if bug == "cotangent to every element of the window":
            return (avg_pool2d_vjp(x, G, kernel_size, stride) * np.prod(pair(kernel_size)),)
        return (max_pool2d_vjp(x, G, kernel_size, stride),)

    return Candidate(forward, vjp=vjp)


def _adaptive(bug=None):
    def forward(x, *, output_size):
        if bug == "bin ends rounded down":
            oh, ow = pair(output_size)
            cells = [(i, j, slice(r0, max(r0 + 1, (i + 1) * x.shape[2] // oh)),
                      slice(c0, max(c0 + 1, (j + 1) * x.shape[3] // ow)))
                     for i, r0, _ in bins(x.shape[2], oh) for j, c0, _ in bins(x.shape[3], ow)]
            return pooled(x, cells, lambda w: w.mean(axis=(2, 3)))
        return adaptive_avg_pool2d(x, output_size)

    def vjp(x, G, *, output_size):
        if bug == "cotangent not divided by the bin size":
            dx = np.zeros_like(x)
            oh, ow = pair(output_size)
            for i, r0, r1 in bins(x.shape[2], oh):
                for j, c0, c1 in bins(x.shape[3], ow):
                    dx[:, :, r0:r1, c0:c1] += G[:, :, i, j, None, None]
            return (dx,)
        return (adaptive_avg_pool2d_vjp(x, G, output_size),)

    return Candidate(forward, vjp=vjp)


def _teeth(factory, forward_bug, vjp_bugs):
    return Teeth(correct=factory(),
                 mutants={bug: factory(bug) for bug in (forward_bug, *vjp_bugs)},
                 caught_by={forward_bug: FORWARD_CHECKS, vjp_bugs[0]: VJP_CHECKS})


TEETH = {
    "avg_pool2d": _teeth(_avg, "divided by kh, not kh kw",
                         ("cotangent divided by kh only", "overlapping windows overwrite")),
    "max_pool2d": _teeth(_max, "window one row short",
                         ("cotangent to every element of the window",)),
    "adaptive_avg_pool2d": _teeth(_adaptive, "bin ends rounded down",
                                  ("cotangent not divided by the bin size",)),
}
