"""Network dissection and IBD against their dense NumPy / scipy definitions.

``dissection_iou`` sorts each unit's values for its threshold, upsamples with two small
interpolation matrices (GEMMs) and counts intersections with one GEMM; the baseline is the
record's ground truth (``numpy.quantile``, ``numpy.interp`` per row and column, ``einsum``).
``ibd`` solves each candidate's non-negative least squares by an active set in array-API
calls; the baseline is the same greedy loop around ``scipy.optimize.nnls``.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.analysis.dissection import dissection_iou, ibd
from verify.ops.analysis.dissection import _reference_dissection, greedy_nnls


class Dissection:
    """N = 32 images, U = 64 units at 7 x 7, K = 20 concepts at 56 x 56."""

    timeout = 300

    def setup(self):
        gen = np.random.default_rng(0)
        self.activations = gen.standard_normal((32, 64, 7, 7))
        self.masks = gen.uniform(size=(32, 20, 56, 56)) < 0.1

    def time_dissection_iou(self):
        dissection_iou(self.activations, self.masks)

    def track_dissection_over_dense(self):
        return common.ratio(lambda: dissection_iou(self.activations, self.masks),
                            lambda: _reference_dissection(self.activations, self.masks,
                                                          quantile=0.005), repeat=3)

    track_dissection_over_dense.unit = "ratio"


class IBD:
    """A 512-dimensional class weight, 100 concepts, 5 steps."""

    timeout = 300

    def setup(self):
        gen = np.random.default_rng(0)
        self.Q = gen.standard_normal((100, 512))
        self.w = gen.uniform(0, 1, 100) @ self.Q

    def time_ibd(self):
        ibd(self.w, self.Q, k=5)

    def track_ibd_over_scipy_nnls(self):
        return common.ratio(lambda: ibd(self.w, self.Q, k=5),
                            lambda: greedy_nnls(self.w, self.Q, 5), repeat=3)

    track_ibd_over_scipy_nnls.unit = "ratio"
