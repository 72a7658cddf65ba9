"""Teeth for the compression report: an independent NumPy implementation and planted bugs.

Read by tests/verify/test_teeth.py. The correct candidate builds the entry
stream with Python lists (a filler before each entry for every full span of
zeros), and prices a Huffman-coded stream by the two-queue merge of its
sorted counts (the optimal total is the sum of the merged weights), a
fixed-width one at ``ceil(log2 alphabet)`` bits per symbol. Each mutant
changes one term.
"""

from __future__ import annotations

import numpy as np

from verify import Candidate
from verify.testing import Teeth


def _merge_total(counts):
    """Sum of the merged weights of the two-queue Huffman run on the positive counts."""
    leaves = sorted(int(c) for c in counts if c > 0)
    if len(leaves) == 1:
        return leaves[0]
    merged, total, i, j = [], 0, 0, 0
    for _ in range(len(leaves) - 1):
        pair = []
        for _ in range(2):
            if j < len(merged) and (i == len(leaves) or merged[j] < leaves[i]):
                pair.append(merged[j])
                j += 1
            else:
                pair.append(leaves[i])
                i += 1
        merged.append(sum(pair))
        total += merged[-1]
    return total


class Report:
    """``compression_report``; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _entries(self, codes, bits, offset, k):
        span, gaps, symbols = 2**bits, [], []
        skipped = offset == "zeros_skipped"
        last = -1 if skipped else 0
        for p in np.flatnonzero(codes.ravel() >= 0):
            step = p - last
            q = (step - 1) // span if step > 0 else 0
            if self.bug != "fillers not stored":
                gaps += [span - 1 if skipped else span] * q
                symbols += [k] * q
            gaps.append(step - 1 - q * span if skipped else step - q * span)
            symbols.append(int(codes.ravel()[p]))
            last = p
        return gaps, symbols

    def _bits(self, stream, alphabet, huffman):
        if huffman == (self.bug == "huffman flag inverted"):
            return len(stream) * int(np.ceil(np.log2(alphabet)))
        return _merge_total(np.bincount(np.asarray(stream, dtype=np.int64), minlength=alphabet))

    def forward(self, codes, n_clusters, index_bits, codebook_bits=32, weight_bits=32,
                huffman=True, offset="zeros_skipped"):
        gaps, symbols = self._entries(codes, index_bits, offset, n_clusters)
        bits_index = self._bits(gaps, 2**index_bits + (offset == "difference"), huffman)
        bits_codes = self._bits(symbols, n_clusters + 1, huffman)
        codebook = 0 if self.bug == "codebook not counted" else n_clusters * codebook_bits
        figures = (codes.size, int((codes >= 0).sum()), len(gaps), bits_index, bits_codes,
                   codebook, bits_index + bits_codes + codebook, codes.size * weight_bits)
        return tuple(np.asarray(v, dtype=np.int64) for v in figures)


TEETH = {
    "compression_report": Teeth(
        correct=Candidate(Report().forward),
        mutants={bug: Candidate(Report(bug).forward)
                 for bug in ("fillers not stored", "codebook not counted", "huffman flag inverted")},
        caught_by={
            "fillers not stored": {"matches ground truth", "bit counts equal the encoded lengths"},
            "codebook not counted": {"matches ground truth", "bit counts equal the encoded lengths"},
            "huffman flag inverted": {"matches ground truth",
                                      "Huffman never costs more than fixed width"},
        },
    ),
}
