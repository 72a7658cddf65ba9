"""Records of :mod:`refimpl.compression.huffman` (docs/conventions.rst, section 9.3).

Ground truth for the code is a ``heapq`` Huffman tree with the documented tie
rule and the canonical assignment written as RFC 1951 does; independent of
both, the invariants: Kraft's equality (exact fractions), optimality against
the package-merge algorithm (Larmore and Hirschberg 1990, a different
construction of optimal lengths), prefix-freeness, and no code for an
unused symbol. Encoding and decoding are checked against bit strings built
with Python's ``format`` and a bit-by-bit table walk, and against each
other (refimpl's side on NumPy copies). Cases mix flat and Fibonacci-like
frequencies (long codes), zeros and lone symbols, canonical and
bit-complemented (non-canonical) prefix codes.
"""

from __future__ import annotations

import heapq
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

from refimpl.compression.huffman import huffman_code, huffman_decode, huffman_encode

from ...checks import Err, mismatch, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng

REFERENCES = (
    "Huffman 1952, A method for the construction of minimum-redundancy codes (Proc. IRE)",
    "van Leeuwen 1976, On the construction of Huffman trees (ICALP): the two-queue algorithm",
    "Larmore and Hirschberg 1990, A fast algorithm for optimal length-limited Huffman codes (J. ACM)",
    "RFC 1951 (DEFLATE), section 3.2.2: canonical codes",
    "Han, Mao and Dally 2016, Deep compression (ICLR), section 4",
)
EXACT = {"float64": 0.0, "float32": 0.0}


# -- the definitions ------------------------------------------------------------------------------


def heap_lengths(frequencies, ties="leaves_first"):
    """Huffman lengths from a ``heapq`` tree; equal weights pop by rank (leaves before merged
    nodes with ``leaves_first``, after them otherwise; older before newer)."""
    f = [int(v) for v in frequencies]
    used = sorted((v, s) for s, v in enumerate(f) if v > 0)
    lengths = [0] * len(f)
    if len(used) == 1:
        lengths[used[0][1]] = 1
    if len(used) < 2:
        return lengths
    offset = len(used) if ties == "leaves_first" else -10 * len(used)
    heap = [(v, rank, [s]) for rank, (v, s) in enumerate(used)]
    heapq.heapify(heap)
    for t in range(len(used) - 1):
        wa, _, a = heapq.heappop(heap)
        wb, _, b = heapq.heappop(heap)
        for s in a + b:  # every leaf below the new node moves one level down
            lengths[s] += 1
        heapq.heappush(heap, (wa + wb, offset + t, a + b))
    return lengths


def canonical(lengths, frequencies, order="symbol"):
    """RFC 1951's assignment over the symbols sorted by (length, key)."""
    key = (lambda s: (lengths[s], s)) if order == "symbol" else \
        (lambda s: (lengths[s], -int(frequencies[s]), s))
    codes, code, previous = [0] * len(lengths), -1, 0
    for s in sorted((s for s in range(len(lengths)) if lengths[s]), key=key):
        code = (code + 1) << (lengths[s] - previous)
        codes[s], previous = code, lengths[s]
    return codes


def _reference_code(frequencies, *, ties="leaves_first", order="symbol"):
    lengths = heap_lengths(frequencies, ties)
    return np.array(lengths), np.array(canonical(lengths, frequencies, order))


def package_merge_cost(weights):
    """Minimum of ``sum w_i l_i`` over prefix codes: package-merge with the limit ``n - 1``."""
    leaves = sorted(weights)
    items = list(leaves)
    for _ in range(len(leaves) - 2):
        packages = [items[i] + items[i + 1] for i in range(0, len(items) - 1, 2)]
        items = sorted(leaves + packages)
    return sum(items[:2 * len(leaves) - 2])


def bit_string(symbols, lengths, codes):
    return "".join(format(int(codes[s]), f"0{int(lengths[s])}b") for s in symbols)


def _reference_encode(symbols, lengths, codes, **_):
    return np.array([int(b) for b in bit_string(symbols.ravel(), lengths, codes)], dtype=np.int64)


def _reference_decode(bits, lengths, codes, **_):
    table = {format(int(c), f"0{int(n)}b"): s for s, (c, n) in enumerate(zip(codes, lengths)) if n}
    out, word = [], ""
    for b in bits:
        word += str(int(b))
        if word in table:
            out.append(table[word])
            word = ""
    return np.array(out, dtype=np.int64)


# -- inputs -----------------------------------------------------------------------------------------


def _frequencies(draw, gen):
    n = draw(st.integers(1, 12))
    kind = draw(st.sampled_from(["small", "small", "fibonacci", "wide", "zeros"]))
    if kind == "small":  # many ties, where the tie rules differ
        f = gen.integers(0, 5, n)
    elif kind == "fibonacci":  # the deepest trees
        fib = [1, 1]
        while len(fib) < n:
            fib.append(fib[-1] + fib[-2])
        f = gen.permutation(np.array(fib[:n]))
    elif kind == "wide":
        f = gen.integers(1, 10**6, n)
    else:
        f = np.zeros(n, dtype=np.int64)
        f[gen.integers(0, n)] = gen.integers(0, 3)
    return np.asarray(f, dtype=np.int64)


@st.composite
def _code_cases(draw):
    f = _frequencies(draw, draw(rng()))
    return Case({"frequencies": f}, {"ties": draw(st.sampled_from(["leaves_first", "merged_first"])),
                                     "order": draw(st.sampled_from(["symbol", "frequency"]))})


@st.composite
def _tables(draw):
    """``(gen, lengths, codes, used symbols)``: a canonical code, or its bit complement."""
    gen = draw(rng())
    f = _frequencies(draw, gen)
    if not f.any():
        f[0] = 1
    lengths = np.array(heap_lengths(f))
    codes = np.array(canonical(lengths, f))
    if draw(st.booleans()):
        codes = np.where(lengths > 0, codes ^ ((1 << lengths) - 1), 0)
    return gen, lengths, codes, np.flatnonzero(lengths)


@st.composite
def _encode_cases(draw):
    gen, lengths, codes, used = draw(_tables())
    symbols = gen.choice(used, draw(st.integers(0, 40)))
    return Case({"symbols": symbols.astype(np.int64), "lengths": lengths, "codes": codes})


@st.composite
def _decode_cases(draw):
    gen, lengths, codes, used = draw(_tables())
    message = gen.choice(used, draw(st.integers(0, 40)))
    return Case({"bits": _reference_encode(message, lengths, codes), "lengths": lengths,
                 "codes": codes})


# -- invariants --------------------------------------------------------------------------------------


def _code(impl, case, ctx):
    out = run_outputs(CODE, impl, case, ctx)
    return [int(v) for v in out["lengths"]], [int(v) for v in out["codes"]]


def _kraft_equality(impl, case, ctx):
    """``sum 2^-l = 1`` over the used symbols (1/2 for a lone one), in exact fractions."""
    lengths, _ = _code(impl, case, ctx)
    f = case.primals["frequencies"]
    used = [n for n, v in zip(lengths, f) if v > 0]
    total = sum((Fraction(1, 2**n) if n else Fraction(0) for n in used), Fraction(0))
    expected = Fraction(1, 2) if len(used) == 1 else Fraction(int(len(used) > 0))
    return Err(0.0 if total == expected else float("inf"), f"Kraft sum {total}")


def _optimal(impl, case, ctx):
    lengths, _ = _code(impl, case, ctx)
    f = [int(v) for v in case.primals["frequencies"]]
    used = [v for v in f if v > 0]
    best = package_merge_cost(used) if len(used) > 1 else sum(used)
    return Err(mismatch(sum(v * n for v, n in zip(f, lengths)), best), "total bits")


def _codes_only_for_used(impl, case, ctx):
    lengths, _ = _code(impl, case, ctx)
    used = case.primals["frequencies"] > 0
    return Err(mismatch(np.array(lengths) > 0, used), "symbols with a code")


def _prefix_free(impl, case, ctx):
    lengths, codes = _code(impl, case, ctx)
    words = [format(c, f"0{n}b") for c, n in zip(codes, lengths) if n]
    clash = any(len(a) != len(b) and b.startswith(a) or (a == b and i != j)
                for i, a in enumerate(words) for j, b in enumerate(words))
    too_long = any(c >> n for c, n in zip(codes, lengths))
    return Err(float("inf") if clash or too_long else 0.0, "prefix-free")


def _refimpl_np(fn, *args):
    return np.asarray(fn(*[np.asarray(a) for a in args]))


def _decodes_back(impl, case, ctx):
    bits = run_outputs(ENCODE, impl, case, ctx)["out"].astype(np.int64)
    back = _refimpl_np(huffman_decode, bits, case.primals["lengths"], case.primals["codes"])
    return Err(mismatch(back, case.primals["symbols"].ravel()), "huffman_decode(bits)")


def _bit_count(impl, case, ctx):
    bits = run_outputs(ENCODE, impl, case, ctx)["out"]
    s, lengths = case.primals["symbols"], case.primals["lengths"]
    return Err(mismatch(bits.size, int(lengths[s.ravel()].sum())), "number of bits")


def _encodes_back(impl, case, ctx):
    symbols = run_outputs(DECODE, impl, case, ctx)["out"].astype(np.int64)
    again = _refimpl_np(huffman_encode, symbols, case.primals["lengths"], case.primals["codes"])
    return Err(mismatch(again, case.primals["bits"]), "huffman_encode(symbols)")


def _bench_code(size):
    return Case({"frequencies": np.random.default_rng(0).integers(1, 10**6, size)})


CODE = register(Op(
    forward=huffman_code,
    primals=(Primal("frequencies", dtype="int64"),),
    outputs=(Output("lengths", dtype="int"), Output("codes", dtype="int")),
    cases=_code_cases,
    reference=_reference_code,
    properties=(
        Property("Kraft equality", _kraft_equality,
                 "sum over used symbols of 2^-l is exactly 1 (1/2 for a lone symbol)"),
        Property("optimal total length", _optimal,
                 "sum f l equals the optimum of package-merge (Larmore-Hirschberg)"),
        Property("codes only for used symbols", _codes_only_for_used,
                 "length > 0 exactly where the frequency is > 0"),
        Property("prefix-free", _prefix_free, "no code is a prefix of another; codes fit their lengths"),
    ),
    tolerance=EXACT,
    convention="Optimal lengths by merging the lightest (leaves in (frequency, symbol) order; on "
               "equal weights leaves before merged nodes), canonical codes in (length, symbol) "
               "order (RFC 1951), none for frequency 0, one bit for a lone symbol.",
    section="9.3",
    references=REFERENCES,
    bench_case=_bench_code,
    bench_sizes=((10**4,),),
    bench_anchor=Anchor("heapq"),
))

def _message_bench_case(size):
    """``size = (n, m)``: ``n`` symbols drawn by a Zipf-like law over ``m``, with their code
    (the reference's canonical Huffman code of their counts)."""
    n, m = size
    gen = np.random.default_rng(0)
    p = 1.0 / np.arange(1, m + 1)
    symbols = gen.choice(m, size=n, p=p / p.sum())
    lengths, codes = _reference_code(np.bincount(symbols, minlength=m))
    return Case({"symbols": symbols, "lengths": lengths, "codes": codes})


def _bits_bench_case(size):
    """The bits of :func:`_message_bench_case`'s message, with its code."""
    message = _message_bench_case(size).primals
    return Case({"bits": _reference_encode(**message), "lengths": message["lengths"],
                 "codes": message["codes"]})


ENCODE = register(Op(
    forward=huffman_encode,
    primals=(Primal("symbols", dtype="int64"), Primal("lengths", dtype="int64"),
             Primal("codes", dtype="int64")),
    outputs=(Output("out", dtype="int"),),
    cases=_encode_cases,
    reference=_reference_encode,
    properties=(
        Property("decodes back", _decodes_back,
                 "refimpl's huffman_decode of the bits gives the symbols"),
        Property("one bit per code bit", _bit_count, "len(bits) = sum of lengths[symbols]"),
    ),
    tolerance=EXACT,
    convention="Bits (uint8 0/1, one per entry) of the codes of symbols in C order, each most "
               "significant bit first; any prefix code.",
    section="9.3",
    references=REFERENCES,
    bench_case=_message_bench_case, bench_sizes=((10**4, 64), (10**5, 256)),
    bench_anchor=Anchor("definition"),
))




DECODE = register(Op(
    forward=huffman_decode,
    primals=(Primal("bits", dtype="int64"), Primal("lengths", dtype="int64"),
             Primal("codes", dtype="int64")),
    outputs=(Output("out", dtype="int"),),
    cases=_decode_cases,
    reference=_reference_decode,
    properties=(
        Property("encodes back", _encodes_back,
                 "refimpl's huffman_encode of the symbols gives the bits"),
    ),
    tolerance=EXACT,
    convention="The symbols whose codes (any prefix code, most significant bit first) "
               "concatenate to bits; an incomplete or unknown code is a ValueError.",
    section="9.3",
    references=REFERENCES,
    bench_case=_bits_bench_case, bench_sizes=((10**4, 64), (10**5, 256)),
    bench_anchor=Anchor("definition"),
))
