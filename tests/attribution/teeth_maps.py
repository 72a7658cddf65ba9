"""Teeth for upsampling and refinement: NumPy interpolation matrices, and planted bugs.

Read by tests/verify/test_teeth.py. ``upsample`` applies each axis's matrix built from
PyTorch's coordinate formulas (tests/_teeth_attribution.py) with ``einsum``, and its
VJP the transposed matrices; ``refine`` multiplies and sums the probability's
cotangent per sample when the probability is per sample.
"""

from __future__ import annotations

import numpy as np
from _teeth_attribution import axis_matrix, upsample

from verify import Candidate
from verify.testing import Teeth


def _upsample_vjp(maps, G, *, size, mode, scale=1.0):
    rows, cols = (axis_matrix(n, m, mode).astype(maps.dtype) for n, m in zip(maps.shape[2:], size))
    return (scale * np.einsum("ph,ncpq,qw->nchw", rows, G, cols),)


def _bilinear_matrix(bug):
    def matrix(n, m, mode):
        if mode != "bilinear":
            return axis_matrix(n, m, mode)
        P = np.zeros((m, n))
        for d in range(m):
            if bug == "align_corners=True":
                source = d * (n - 1) / (m - 1) if m > 1 else 0.0
            elif bug == "source without the -1/2":
                source = min((d + 0.5) * n / m, n - 1)
            else:  # the source may pass n - 1: its upper tap is clamped, here dropped
                source = max((d + 0.5) * n / m - 0.5, 0.0)
            low = int(source)
            P[d, low] += 1 - (source - low)
            if low + 1 < n:
                P[d, low + 1] += source - low
            elif bug != "upper tap dropped at the border":
                P[d, low] += source - low
        return P
    return matrix


def _upsample_with(bug):
    def forward(maps, *, size, mode):
        matrix = _bilinear_matrix(bug)
        rows, cols = (matrix(n, m, mode).astype(maps.dtype) for n, m in zip(maps.shape[2:], size))
        return np.einsum("ph,nchw,qw->ncpq", rows, maps, cols)
    return Candidate(forward, vjp=_upsample_vjp)


def _refine_vjp(attribution, probability, G, scale=1.0):
    p = probability.reshape(probability.shape + (1,) * (attribution.ndim - probability.ndim))
    dp = G * attribution
    if probability.ndim < attribution.ndim:
        dp = dp.reshape(len(dp), -1).sum(axis=1)
    return scale * G * p, scale * dp


def _refine(attribution, probability):
    return attribution * probability.reshape(
        probability.shape + (1,) * (attribution.ndim - probability.ndim))


TEETH = {
    "upsample": Teeth(
        correct=Candidate(lambda maps, *, size, mode: upsample(maps, size, mode),
                          vjp=_upsample_vjp),
        mutants={**{bug: _upsample_with(bug) for bug in (
            "align_corners=True", "source without the -1/2", "upper tap dropped at the border")},
            "vjp doubled": Candidate(lambda maps, *, size, mode: upsample(maps, size, mode),
                                     vjp=lambda *a, **k: _upsample_vjp(*a, **k, scale=2.0))},
        caught_by={"source without the -1/2": {"same size is the identity"},
                   "upper tap dropped at the border": {"constant maps stay constant"},
                   "vjp doubled": {"adjoint test in maps", "vjp: dot-product test"}},
    ),
    "refine": Teeth(
        correct=Candidate(_refine, vjp=_refine_vjp),
        mutants={"square root of the probability": Candidate(
                     lambda a, p: _refine(a, np.sqrt(p)), vjp=_refine_vjp),
                 "vjp doubled": Candidate(_refine, vjp=lambda *a: _refine_vjp(*a, scale=2.0))},
        caught_by={"vjp doubled": {"adjoint test in attribution", "adjoint test in probability"}},
    ),
}
