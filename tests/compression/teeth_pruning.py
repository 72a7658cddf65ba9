"""Teeth for the pruning masks: an independent NumPy implementation and planted bugs.

Read by tests/verify/test_teeth.py. The correct candidate ranks the weights
with ``np.lexsort`` on (flat index or its negative, magnitude) and counts
with Python's ``round``; DSD's mask compares with the ``k``-th smallest
magnitude from ``np.partition``. Each mutant changes one of these steps.
"""

from __future__ import annotations

import math

import numpy as np

from verify import Candidate
from verify.testing import Teeth


class Pruning:
    """``prune_magnitude``, ``prune_threshold`` and ``dsd_masks``; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _count(self, n, sparsity, count):
        if self.bug == "round half up":
            return math.floor(sparsity * n + 0.5)
        if self.bug == "int() truncation":
            return int(sparsity * n)
        if count == "kept" and self.bug != "count option ignored":
            return n - round((1.0 - sparsity) * n)
        return round(sparsity * n)

    def _exact(self, w, k, ties):
        a = w.ravel() if self.bug == "signed values ranked" else np.abs(w.ravel())
        index = np.arange(a.size)
        low_first = ties == "low_index" and self.bug != "ties option ignored"
        order = np.lexsort((index if low_first else -index, a))
        keep = np.ones(a.size, dtype=bool)
        keep[order[:k]] = False
        return keep.reshape(w.shape)

    def magnitude(self, w, sparsity, ties="low_index", count="pruned"):
        return self._exact(w, self._count(w.size, sparsity, count), ties)

    def threshold(self, w, threshold, at_threshold="prune"):
        a = w if self.bug == "signed values compared" else np.abs(w)
        if self.bug == "keeps the weights below":
            return a < threshold
        if at_threshold == "keep" and self.bug != "at_threshold ignored":
            return a >= threshold
        return a > threshold

    def _dsd_mask(self, w, k, ties):
        if ties != "prune_all":
            return self._exact(w, k, ties)
        if k == 0:
            return np.ones(w.shape, dtype=bool)
        a = np.abs(w)
        lam = np.partition(a.ravel(), k - 1)[k - 1]
        if self.bug == "keeps the ties at lambda":
            return a >= lam
        if self.bug == "keeps the smallest":
            return a <= lam
        return a > lam

    def dsd(self, snapshots, sparsities, ties="prune_all", count="pruned"):
        n = snapshots[0].size
        if self.bug == "dense phases pruned too":
            sparsities = [max(sparsities)] * len(sparsities)
        first = snapshots[0]
        return np.stack([self._dsd_mask(first if self.bug == "mask of the first snapshot" else w,
                                        self._count(n, s, count), ties)
                         for w, s in zip(snapshots, sparsities)])


def _teeth(method, bugs, caught_by):
    # 30 examples: a rounding convention shows only where s n lands on a half-integer.
    return Teeth(correct=Candidate(getattr(Pruning(), method)),
                 mutants={bug: Candidate(getattr(Pruning(bug), method)) for bug in bugs},
                 caught_by=caught_by, options={"max_examples": 30})


TEETH = {
    "prune_magnitude": _teeth(
        "magnitude",
        ["round half up", "int() truncation", "count option ignored", "ties option ignored",
         "signed values ranked"],
        {
            "round half up": {"matches ground truth", "prunes exactly the stated count"},
            "int() truncation": {"matches ground truth", "prunes exactly the stated count"},
            "count option ignored": {"matches refimpl forward", "prunes exactly the stated count"},
            "ties option ignored": {"matches ground truth", "ties follow the flat index"},
            "signed values ranked": {"matches ground truth", "keeps the largest magnitudes"},
        },
    ),
    "prune_threshold": _teeth(
        "threshold",
        ["at_threshold ignored", "keeps the weights below", "signed values compared"],
        {
            "at_threshold ignored": {"matches ground truth", "matches refimpl forward"},
            "keeps the weights below": {"matches ground truth", "monotone in the threshold"},
        },
    ),
    "dsd_masks": _teeth(
        "dsd",
        ["mask of the first snapshot", "keeps the ties at lambda", "dense phases pruned too",
         "keeps the smallest"],
        {
            "mask of the first snapshot": {"matches ground truth", "each phase prunes the smallest"},
            "keeps the ties at lambda": {"matches ground truth", "each phase prunes the smallest"},
            "dense phases pruned too": {"dense phases keep every weight"},
            "keeps the smallest": {"each phase prunes the smallest"},
        },
    ),
}
