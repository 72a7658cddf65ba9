"""Magnitude pruning of 1M weights against ``numpy.argpartition`` (PyTorch's topk), same run.

refimpl sorts (exact count, documented tie rule); the baseline selects the
``k`` smallest magnitudes in linear time with ties in no stated order.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.compression.pruning import dsd_masks, prune_magnitude


def argpartition_mask(w, sparsity):
    k = round(sparsity * w.size)
    keep = np.ones(w.size, dtype=bool)
    keep[np.argpartition(np.abs(w).ravel(), k)[:k]] = False
    return keep.reshape(w.shape)


class Prune1M:
    def setup(self):
        self.w = np.random.default_rng(0).standard_normal((1000, 1000))

    def time_prune_magnitude(self):
        prune_magnitude(self.w, 0.9)

    def track_prune_over_argpartition(self):
        return common.ratio(lambda: prune_magnitude(self.w, 0.9),
                            lambda: argpartition_mask(self.w, 0.9))

    def track_dsd_over_argpartition(self):
        stack = np.stack([self.w, self.w, self.w])
        return common.ratio(lambda: dsd_masks(stack, (0.0, 0.9, 0.0)),
                            lambda: argpartition_mask(self.w, 0.9))

    track_prune_over_argpartition.unit = "ratio"
    track_dsd_over_argpartition.unit = "ratio"
