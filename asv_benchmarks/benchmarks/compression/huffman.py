"""Huffman coding of 1M symbols against a heapq reference, in the same run.

A message of 1M symbols over 32 (geometric counts, as the codes of
quantised weights): counts, code and bits, by ``huffman_code`` and
``huffman_encode`` against the textbook ``heapq`` construction with canonical
codes and a Python bit-string join. And the code alone of an alphabet of
65536 symbols (random counts): refimpl's two-queue merge against ``heapq``.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import heapq

import numpy as np

from refimpl.compression.huffman import huffman_code, huffman_encode


def heapq_code(frequencies):
    """``(lengths, codes)``: heapq tree depths and canonical codes in (length, symbol) order."""
    n = len(frequencies)
    heap = [(int(f), s) for s, f in enumerate(frequencies)]
    heapq.heapify(heap)
    up = list(range(2 * n - 1))
    for t in range(n, 2 * n - 1):
        wa, a = heapq.heappop(heap)
        wb, b = heapq.heappop(heap)
        up[a] = up[b] = t
        heapq.heappush(heap, (wa + wb, t))
    depth = [0] * (2 * n - 1)
    for v in range(2 * n - 3, -1, -1):
        depth[v] = depth[up[v]] + 1
    lengths = depth[:n]
    codes, code, previous = [0] * n, -1, 0
    for s in sorted(range(n), key=lambda s: (lengths[s], s)):
        code = (code + 1) << (lengths[s] - previous)
        codes[s], previous = code, lengths[s]
    return lengths, codes


def join_encode(symbols, lengths, codes):
    words = [format(c, f"0{n}b") for c, n in zip(codes, lengths)]
    text = "".join([words[s] for s in symbols.tolist()])
    return np.frombuffer(text.encode(), dtype=np.uint8) - ord("0")


def refimpl_coding(message):
    return huffman_encode(message, *huffman_code(np.bincount(message, minlength=32)))


def heapq_coding(message):
    lengths, codes = heapq_code(np.bincount(message, minlength=32))
    return join_encode(message, lengths, codes)


class Huffman1M:
    timeout = 600

    def setup(self):
        gen = np.random.default_rng(0)
        self.message = np.minimum(gen.geometric(0.25, 1_000_000) - 1, 31)
        self.frequencies = gen.integers(1, 10**6, 2**16)

    def time_coding_refimpl(self):
        refimpl_coding(self.message)

    def time_coding_heapq(self):
        heapq_coding(self.message)

    def track_coding_over_heapq(self):
        return common.ratio(lambda: refimpl_coding(self.message),
                            lambda: heapq_coding(self.message), repeat=3)

    def track_code_65536_over_heapq(self):
        return common.ratio(lambda: huffman_code(self.frequencies),
                            lambda: heapq_code(self.frequencies), min_seconds=0.0, repeat=3)

    track_coding_over_heapq.unit = "ratio"
    track_code_65536_over_heapq.unit = "ratio"
