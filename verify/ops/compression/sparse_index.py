"""Records of :mod:`refimpl.compression.sparse_index` (docs/conventions.rst, section 9.4).

Ground truth walks the flattened mask position by position, emitting a
filler whenever the gap would outgrow the format, as Figure 2 of Deep
Compression draws it; the invariants: every stored gap fits the format,
and the round trip through the other op (refimpl's, on NumPy copies).
Masks have clumps and long runs of zeros (:func:`verify.strategies.sparse_mask`)
and 1- to 4-bit gaps, so that fillers, runs of fillers and an entry at
position 0 all occur.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from refimpl.compression.sparse_index import relative_index_decode, relative_index_encode

from ...checks import Err, mismatch, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng, sparse_mask

REFERENCES = (
    "Han, Mao and Dally 2016, Deep compression (ICLR), section 2 and Figure 2 (relative index, "
    "filler zeros)",
)
EXACT = {"float64": 0.0, "float32": 0.0}


def walk(mask, bits, offset="zeros_skipped"):
    """``(gaps, filler)`` by scanning the flat mask: a filler at the last position a gap reaches."""
    reach = 2**bits - 1 if offset == "zeros_skipped" else 2**bits  # the largest storable gap
    gaps, filler = [], []
    last = -1 if offset == "zeros_skipped" else 0
    for p in np.flatnonzero(mask.ravel()):
        gap = p - last - 1 if offset == "zeros_skipped" else p - last
        while gap > reach:
            gaps.append(reach)
            filler.append(True)
            last += reach + 1 if offset == "zeros_skipped" else reach
            gap = p - last - 1 if offset == "zeros_skipped" else p - last
        gaps.append(gap)
        filler.append(False)
        last = p
    return np.array(gaps, dtype=np.int64), np.array(filler, dtype=bool)


def _reference_encode(mask, *, bits, offset="zeros_skipped", **_):
    return walk(mask, bits, offset)


def _reference_decode(gaps, filler, *, shape, offset="zeros_skipped", **_):
    mask = np.zeros(int(np.prod(shape)), dtype=bool)
    p = -1 if offset == "zeros_skipped" else 0
    for g, f in zip(gaps, filler):
        p += int(g) + 1 if offset == "zeros_skipped" else int(g)
        mask[p] = not f
    return mask.reshape(shape)


@st.composite
def _masks(draw):
    gen = draw(rng())
    # Listed from the most telling: hypothesis draws (and shrinks towards) the first ones more.
    shape = draw(st.sampled_from([(40,), (5, 9), (3, 4, 5), (16,), (1,)]))
    mask = sparse_mask(gen, shape, draw(st.sampled_from([0.2, 0.05, 0.5, 0.9, 0.0])))
    return mask, {"bits": draw(st.integers(1, 4)),
                  "offset": draw(st.sampled_from(["zeros_skipped", "difference"]))}


@st.composite
def _encode_cases(draw):
    mask, params = draw(_masks())
    return Case({"mask": mask}, params)


@st.composite
def _decode_cases(draw):
    mask, params = draw(_masks())
    gaps, filler = walk(mask, params["bits"], params["offset"])
    return Case({"gaps": gaps, "filler": filler}, {"shape": mask.shape, "offset": params["offset"]})


def _gaps_fit(impl, case, ctx):
    gaps = run_outputs(ENCODE, impl, case, ctx)["gaps"]
    reach = 2 ** case.params["bits"] - (case.params["offset"] == "zeros_skipped")
    return Err(0.0 if gaps.size == 0 or (gaps.min() >= 0 and gaps.max() <= reach) else float("inf"),
               "gaps in range")


def _decodes_back(impl, case, ctx):
    out = run_outputs(ENCODE, impl, case, ctx)
    mask = case.primals["mask"]
    back = relative_index_decode(out["gaps"].astype(np.int64), out["filler"].astype(bool),
                                 shape=mask.shape, offset=case.params["offset"])
    return Err(mismatch(back, mask), "relative_index_decode(encoding)")


def _encodes_back(impl, case, ctx):
    mask = run_outputs(DECODE, impl, case, ctx)["out"].astype(bool)
    gaps, filler = relative_index_encode(mask, bits=_bits_of(case), offset=case.params["offset"])
    return Err(max(mismatch(gaps, case.primals["gaps"]), mismatch(filler, case.primals["filler"])),
               "relative_index_encode(mask)")


def _bits_of(case):
    """The gap width the case was encoded with: the smallest that holds its largest gap."""
    gaps = case.primals["gaps"]
    largest = int(gaps.max()) if gaps.size else 0
    if case.params["offset"] == "difference":
        largest -= 1
    return max(1, int(largest).bit_length())


def _bench_case(size):
    mask = np.random.default_rng(0).uniform(size=size) < 0.1
    return Case({"mask": mask}, {"bits": 4})


ENCODE = register(Op(
    forward=relative_index_encode,
    primals=(Primal("mask", dtype="bool"),),
    outputs=(Output("gaps", dtype="int"), Output("filler", dtype="bool")),
    cases=_encode_cases,
    reference=_reference_encode,
    properties=(
        Property("gaps fit the format", _gaps_fit,
                 "0 <= gap <= 2^bits - 1 (zeros_skipped) or 2^bits (difference)"),
        Property("decodes back", _decodes_back, "refimpl's relative_index_decode gives the mask"),
    ),
    tolerance=EXACT,
    convention="Per stored entry (C order) the zeros skipped since the previous one (first from "
               "the start), at most 2^bits - 1; a longer run is cut by fillers (zero weights) "
               "storing 2^bits - 1; offset='difference': index differences as the paper's Figure 2.",
    section="9.4",
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((10**5,), (10**6,)),
    bench_anchor=Anchor("definition"),
))

def _decode_bench_case(size):
    """The reference's relative index (4 bits) of :func:`_bench_case`'s mask."""
    mask = _bench_case(size).primals["mask"]
    gaps, filler = _reference_encode(mask, bits=4)
    return Case({"gaps": gaps, "filler": filler}, {"shape": mask.shape})


DECODE = register(Op(
    forward=relative_index_decode,
    primals=(Primal("gaps", dtype="int64"), Primal("filler", dtype="bool")),
    outputs=(Output("out", dtype="bool"),),
    cases=_decode_cases,
    reference=_reference_decode,
    properties=(
        Property("encodes back", _encodes_back,
                 "refimpl's relative_index_encode of the mask gives the gaps and fillers"),
    ),
    tolerance=EXACT,
    convention="The mask of the given shape with True at the positions of the entries that are "
               "not fillers; positions are cumulative sums of gap + 1 (gap, with 'difference').",
    section="9.4",
    references=REFERENCES,
    bench_case=_decode_bench_case, bench_sizes=((10**5,), (10**6,)),
    bench_anchor=Anchor("definition"),
))
