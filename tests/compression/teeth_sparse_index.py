"""Teeth for the relative index: an independent NumPy implementation and planted bugs.

Read by tests/verify/test_teeth.py. The correct encoder takes the steps
between kept positions with ``np.diff`` (from ``-1``, or from ``0`` with
``offset="difference"``), splits each into ``q`` fillers and a remainder by
``divmod`` and interleaves them with ``np.repeat``; the decoder is a
cumulative sum. Each mutant changes one of these steps.
"""

from __future__ import annotations

import numpy as np

from verify import Candidate
from verify.testing import Teeth


class RelativeIndex:
    """``relative_index_encode`` and ``relative_index_decode``; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def encode(self, mask, bits, offset="zeros_skipped"):
        positions = np.flatnonzero(mask.ravel())
        skipped = offset == "zeros_skipped"
        start = -1 if skipped and self.bug != "first gap from position 0" else 0
        steps = np.diff(positions, prepend=start)
        span = 2**bits
        if skipped:
            run = steps if self.bug == "filler when the run reaches the limit" else steps - 1
            fillers = run // span
            rest, filler_gap = steps - 1 - fillers * span, span - 1
        else:
            fillers = np.maximum(steps - 1, 0) // span
            rest, filler_gap = steps - fillers * span, span
        if self.bug == "no fillers":
            fillers, rest = np.zeros_like(fillers), steps - 1 if skipped else steps
        gaps = np.concatenate([[filler_gap] * q + [r] for q, r in zip(fillers, rest)] or [[]])
        filler = np.concatenate([[True] * q + [False] for q in fillers] or [[]])
        return gaps.astype(np.int64), filler.astype(bool)

    def decode(self, gaps, filler, shape, offset="zeros_skipped"):
        advance = gaps + 1 if offset == "zeros_skipped" else gaps
        positions = np.cumsum(advance) - (1 if offset == "zeros_skipped" else 0)
        mask = np.zeros(int(np.prod(shape)), dtype=bool)
        keep = np.ones_like(filler) if self.bug == "fillers marked as kept" else ~filler
        mask[positions[keep]] = True
        return mask.reshape(shape)


def _teeth(method, bugs, caught_by):
    return Teeth(correct=Candidate(getattr(RelativeIndex(), method)),
                 mutants={bug: Candidate(getattr(RelativeIndex(bug), method)) for bug in bugs},
                 caught_by=caught_by)


TEETH = {
    "relative_index_encode": _teeth(
        "encode",
        ["first gap from position 0", "filler when the run reaches the limit", "no fillers"],
        {
            "first gap from position 0": {"matches ground truth", "decodes back"},
            "filler when the run reaches the limit": {"matches ground truth", "gaps fit the format"},
            "no fillers": {"matches ground truth", "gaps fit the format"},
        },
    ),
    "relative_index_decode": _teeth(
        "decode",
        ["fillers marked as kept"],
        {"fillers marked as kept": {"matches ground truth", "encodes back"}},
    ),
}
