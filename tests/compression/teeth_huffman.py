"""Teeth for Huffman coding: an independent NumPy/heapq implementation and planted bugs.

Read by tests/verify/test_teeth.py. The correct code candidate builds the
tree with ``heapq`` on ``(weight, rank)`` (leaves ranked by (frequency,
symbol); merged nodes after them, or before them with
``ties="merged_first"``), reads the depths off parent pointers, and assigns
canonical codes by counting codes per length (the bl_count / next_code
loop of RFC 1951). The encoder joins ``format`` strings; the decoder grows
a (length, value) pair bit by bit until it names a code. Each mutant changes one step.
"""

from __future__ import annotations

import heapq

import numpy as np

from verify import Candidate
from verify.testing import Teeth


class Code:
    """``huffman_code``; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _depths(self, f, ties):
        """Depths of every symbol (0 if unused) and the tree's child lists."""
        n = len(f)
        used = [s for s in sorted(range(n), key=lambda s: (f[s], s))
                if f[s] > 0 or self.bug == "zero frequencies get codes"]
        depth = [0] * n
        if len(used) == 1 and self.bug != "a lone symbol gets no bit":
            depth[used[0]] = 1
        if len(used) < 2:
            return depth, {}
        merged_rank = -len(used) if ties == "merged_first" and self.bug != "ties ignored" else len(used)
        heap = [(f[s], rank, ("leaf", s)) for rank, s in enumerate(used)]
        children = {}
        for t in range(len(used) - 1):
            wa, _, a = heapq.heappop(heap)
            wb, _, b = heapq.heappop(heap)
            children[("node", t)] = (a, b)
            heapq.heappush(heap, (wa + wb, merged_rank + t, ("node", t)))
        stack = [(heap[0][2], 0)]
        while stack:
            node, d = stack.pop()
            if node[0] == "leaf":
                depth[node[1]] = d
            else:
                stack += [(child, d + 1) for child in children[node]]
        if self.bug == "depths given in symbol order":  # made in (frequency, symbol) order
            for s, d in zip(sorted(used), [depth[s] for s in used]):
                depth[s] = d
        return depth, children

    def _canonical(self, lengths, f, order):
        longest = max(lengths, default=0)
        count = [sum(1 for n in lengths if n == m) for m in range(longest + 1)]
        count[0] = 0
        next_code, code = [0] * (longest + 1), 0
        for m in range(1, longest + 1):
            code = (code + count[m - 1]) << 1 if self.bug != "no shift to a longer length" \
                else code + count[m - 1]
            next_code[m] = code
        key = (lambda s: s) if order == "symbol" else (lambda s: (-f[s], s))
        codes = [0] * len(lengths)
        for s in sorted(range(len(lengths)), key=key):
            if lengths[s]:
                codes[s] = next_code[lengths[s]]
                next_code[lengths[s]] += 1
        return codes

    def _tree_codes(self, lengths, children):
        """Codes read off the tree (left 0, right 1): optimal and prefix-free, not canonical."""
        codes = [0] * len(lengths)
        root = ("node", len(children) - 1)
        stack = [(root, 0)]
        while stack:
            node, word = stack.pop()
            if node[0] == "leaf":
                codes[node[1]] = word
            else:
                a, b = children[node]
                stack += [(a, 2 * word), (b, 2 * word + 1)]
        return codes

    def forward(self, frequencies, ties="leaves_first", order="symbol"):
        f = [int(v) for v in frequencies]
        lengths, children = self._depths(f, ties)
        if self.bug == "codes read off the tree" and children:
            codes = self._tree_codes(lengths, children)
        else:
            codes = self._canonical(lengths, f, order)
        return np.array(lengths, dtype=np.int64), np.array(codes, dtype=np.int64)


class Bits:
    """``huffman_encode`` and ``huffman_decode``; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _word(self, code, length):
        word = format(int(code), f"0{int(length)}b")
        return word[::-1] if self.bug == "least significant bit first" else word

    def encode(self, symbols, lengths, codes):
        longest = int(lengths.max())
        words = [self._word(codes[s], lengths[s]) for s in symbols.ravel()]
        if self.bug == "codes padded to the longest length":
            words = [w.ljust(longest, "0") for w in words]
        return np.array([int(b) for b in "".join(words)], dtype=np.uint8)

    def decode(self, bits, lengths, codes):
        """Read bit by bit, growing (length, value) until it names a code."""
        table = {(int(n), int(self._word(c, n), 2)): s
                 for s, (c, n) in enumerate(zip(codes, lengths)) if n}
        out, length, value = [], 0, 0
        for b in bits:
            length, value = length + 1, 2 * value + int(b)
            if (length, value) in table:
                out.append(table[length, value])
                length, value = 0, 0
        if length:
            raise ValueError("bits end inside a code")
        return np.array(out, dtype=np.int64)


def _teeth(cls, method, bugs, caught_by):
    # 30 examples: a tie rule shows only on equal weights that meet at the merging.
    return Teeth(correct=Candidate(getattr(cls(), method)),
                 mutants={bug: Candidate(getattr(cls(bug), method)) for bug in bugs},
                 caught_by=caught_by, options={"max_examples": 30})


TEETH = {
    "huffman_code": _teeth(
        Code, "forward",
        ["codes read off the tree", "ties ignored", "depths given in symbol order",
         "zero frequencies get codes", "no shift to a longer length", "a lone symbol gets no bit"],
        {
            "codes read off the tree": {"matches ground truth", "matches refimpl forward"},
            "ties ignored": {"matches ground truth"},
            "depths given in symbol order": {"optimal total length"},
            "zero frequencies get codes": {"codes only for used symbols"},
            "no shift to a longer length": {"prefix-free"},
            "a lone symbol gets no bit": {"Kraft equality"},
        },
    ),
    "huffman_encode": _teeth(
        Bits, "encode",
        ["least significant bit first", "codes padded to the longest length"],
        {
            "least significant bit first": {"matches ground truth", "decodes back"},
            "codes padded to the longest length": {"one bit per code bit"},
        },
    ),
    "huffman_decode": _teeth(
        Bits, "decode",
        ["least significant bit first"],
        {"least significant bit first": {"matches ground truth", "encodes back"}},
    ),
}
