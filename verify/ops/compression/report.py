"""Records of :mod:`refimpl.compression.report` (docs/conventions.rst, section 9.5).

Ground truth counts the bits from scratch: the gaps by a scan of the mask
(the sparse-index record's :func:`~verify.ops.compression.sparse_index.walk`),
the optimal Huffman total of each stream as the sum of the weights of all
merges of a ``heapq`` run (every merge adds one bit to each symbol below
it). The invariants tie the report to the encoded streams themselves:
its bit counts equal the lengths of refimpl's encodings, and Huffman
coding never costs more than fixed-width codes.
"""

from __future__ import annotations

import heapq

import numpy as np
from hypothesis import strategies as st

from refimpl.compression.huffman import huffman_code, huffman_encode
from refimpl.compression.report import compression_report
from refimpl.compression.sparse_index import relative_index_encode

from ...checks import Err, mismatch, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng, sparse_mask
from .sparse_index import walk

REFERENCES = (
    "Han, Mao and Dally 2016, Deep compression (ICLR), sections 2-4 and Table 1",
)
EXACT = {"float64": 0.0, "float32": 0.0}
FIELDS = ("n_weights", "n_kept", "n_entries", "bits_index", "bits_codes", "bits_codebook",
          "bits_total", "bits_dense")


def optimal_total(counts):
    """``sum f l`` of an optimal prefix code: the total weight of the merges (a lone symbol: 1 bit)."""
    heap = [int(c) for c in counts if c > 0]
    if len(heap) == 1:
        return heap[0]
    heapq.heapify(heap)
    total = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total


def _stream(symbols, n_symbols, huffman):
    if huffman:
        return optimal_total(np.bincount(symbols, minlength=n_symbols))
    return len(symbols) * int(np.ceil(np.log2(n_symbols)))


def _entries(codes, filler, n_clusters):
    kept = iter(codes.ravel()[codes.ravel() >= 0])
    return np.array([n_clusters if f else next(kept) for f in filler], dtype=np.int64)


def _reference(codes, *, n_clusters, index_bits, codebook_bits=32, weight_bits=32, huffman=True,
               offset="zeros_skipped", **_):
    gaps, filler = walk(codes >= 0, index_bits, offset)
    bits_index = _stream(gaps, 2**index_bits + (offset == "difference"), huffman)
    bits_codes = _stream(_entries(codes, filler, n_clusters), n_clusters + 1, huffman)
    bits_codebook = n_clusters * codebook_bits
    return (codes.size, int((codes >= 0).sum()), len(gaps), bits_index, bits_codes, bits_codebook,
            bits_index + bits_codes + bits_codebook, codes.size * weight_bits)


@st.composite
def _cases(draw):
    gen = draw(rng())
    k = draw(st.integers(1, 9))
    shape = draw(st.sampled_from([(30,), (6, 10), (2, 4, 8), (1,)]))
    mask = sparse_mask(gen, shape, draw(st.sampled_from([0.1, 0.3, 0.8, 0.0])))
    skew = gen.dirichlet(np.full(k, 0.5))  # unequal cluster sizes: Huffman pays off
    codes = np.where(mask, gen.choice(k, size=shape, p=skew), -1).astype(np.int64)
    return Case({"codes": codes}, {"n_clusters": k, "index_bits": draw(st.integers(1, 5)),
                                   "huffman": draw(st.booleans()),
                                   "offset": draw(st.sampled_from(["zeros_skipped", "difference"])),
                                   "codebook_bits": draw(st.sampled_from([32, 16])),
                                   "weight_bits": draw(st.sampled_from([32, 8]))})


def _report(impl, case, ctx, **changes):
    out = run_outputs(REPORT, impl, Case(case.primals, {**case.params, **changes}), ctx)
    return {k: int(v) for k, v in out.items()}


def _counts_equal_encoded_lengths(impl, case, ctx):
    """With Huffman coding: bits_index and bits_codes are the lengths of refimpl's encodings of
    the two streams, bits_total their sum plus the codebook."""
    got = _report(impl, case, ctx, huffman=True)
    p, codes = case.params, case.primals["codes"]
    gaps, filler = relative_index_encode(codes >= 0, bits=p["index_bits"], offset=p["offset"])
    entries = _entries(codes, filler, p["n_clusters"])
    lengths = {}
    for name, stream, size in (("bits_index", gaps, 2 ** p["index_bits"] + 1),
                               ("bits_codes", entries, p["n_clusters"] + 1)):
        if stream.size:
            table = huffman_code(np.bincount(stream, minlength=size))
            lengths[name] = huffman_encode(stream, *table).size
        else:
            lengths[name] = 0
    lengths["bits_total"] = (lengths["bits_index"] + lengths["bits_codes"]
                             + p["n_clusters"] * p.get("codebook_bits", 32))
    return Err(max(mismatch(got[k], v) for k, v in lengths.items()), "bits against encodings")


def _huffman_never_costs_more(impl, case, ctx):
    coded, fixed = _report(impl, case, ctx, huffman=True), _report(impl, case, ctx, huffman=False)
    worse = any(coded[k] > fixed[k] for k in ("bits_index", "bits_codes", "bits_total"))
    return Err(float("inf") if worse else 0.0, "Huffman bits over fixed-width bits")


def _bench_case(size):
    gen = np.random.default_rng(0)
    codes = np.where(gen.uniform(size=size) < 0.1, gen.integers(0, 32, size), -1)
    return Case({"codes": codes}, {"n_clusters": 32, "index_bits": 5})


REPORT = register(Op(
    forward=compression_report,
    primals=(Primal("codes", dtype="int64"),),
    outputs=tuple(Output(name, dtype="int") for name in FIELDS),
    cases=_cases,
    reference=_reference,
    properties=(
        Property("bit counts equal the encoded lengths", _counts_equal_encoded_lengths,
                 "bits_index, bits_codes: lengths of refimpl's Huffman encodings of the gaps and "
                 "of the entries' codes (fillers: symbol n_clusters); bits_total their sum plus "
                 "the codebook"),
        Property("Huffman never costs more than fixed width", _huffman_never_costs_more,
                 "huffman=True gives at most the bits of huffman=False, stream by stream"),
    ),
    tolerance=EXACT,
    convention="Relative index entries (fillers hold symbol n_clusters), gaps and codes "
               "Huffman-coded on their own counts (or fixed width ceil(log2 alphabet)), codebook "
               "n_clusters * codebook_bits, Huffman tables not counted; ratio = n weight_bits / bits.",
    section="9.5",
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((10**5,), (10**6,)),
    bench_anchor=Anchor("definition"),
))
