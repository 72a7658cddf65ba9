r"""Huffman coding: optimal code lengths, canonical codes, encoding and decoding of bit arrays.

A *code* is two int64 arrays over the alphabet ``0, ..., n - 1``: ``lengths``
(0 for a symbol without a code) and ``codes``, the code of symbol ``s``
being the ``lengths[s]`` low bits of ``codes[s]``, most significant bit
first. A *bit array* is a 1-D ``uint8`` array of 0s and 1s, one bit per
entry, in the order they are written (no packing into bytes).
Convention: docs/conventions.rst, section 9.3.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._validation import dtype_name, require_choice, require_integer_array
from ..backend import get_namespace
from ._groups import row_blocks

__all__ = ["HuffmanCode", "huffman_code", "huffman_decode", "huffman_encode"]

TIES = ("leaves_first", "merged_first")
ORDERS = ("symbol", "frequency")
MAX_LENGTH = 62  # codes and their left-justified values are int64


class HuffmanCode(NamedTuple):
    """Result of :func:`huffman_code`: ``lengths`` and ``codes``, int64 arrays of the alphabet's size."""

    lengths: Any
    codes: Any


# -- code lengths --------------------------------------------------------------------------------


def _leaf_depths(weights: list[int], leaves_first: bool) -> list[int]:
    """Depths of the leaves of weights ``weights`` (increasing) in the Huffman tree.

    The two-queue algorithm (van Leeuwen 1976): the leaves in increasing
    weight, the merged nodes in the order they are made (their weights never
    decrease); each step merges the two lightest fronts. On equal weights a
    leaf goes first (``leaves_first``) or a merged node does. Node ``v``'s
    parent is made after ``v``, so one backward pass gives every depth.
    """
    n = len(weights)
    if n == 1:
        return [1]  # one symbol still takes one bit per occurrence
    merged: list[int] = []
    parent = [0] * (2 * n - 1)
    leaf = node = 0
    for step in range(n - 1):
        picked = []
        for _ in range(2):
            if node < len(merged) and (leaf == n or merged[node] < weights[leaf]
                                       or (merged[node] == weights[leaf] and not leaves_first)):
                picked.append((n + node, merged[node]))
                node += 1
            else:
                picked.append((leaf, weights[leaf]))
                leaf += 1
        (a, wa), (b, wb) = picked
        parent[a] = parent[b] = n + step
        merged.append(wa + wb)
    depth = [0] * (2 * n - 1)
    for v in range(2 * n - 3, -1, -1):
        depth[v] = depth[parent[v]] + 1
    return depth[:n]


def _code_lengths(xp, frequencies, ties):
    """Huffman code lengths of ``frequencies``, 0 for the symbols of frequency 0."""
    n = frequencies.shape[0]
    by_weight = xp.argsort(frequencies, stable=True)  # leaves by (frequency, symbol)
    used = int(xp.count_nonzero(frequencies))
    weights = xp.take(frequencies, by_weight[n - used:])
    depths = _leaf_depths([int(weights[i]) for i in range(used)], ties == "leaves_first") \
        if used else []
    if depths and max(depths) > MAX_LENGTH:
        raise ValueError(f"frequencies give a code of {max(depths)} bits, more than the "
                         f"{MAX_LENGTH} an int64 code holds")
    sorted_lengths = xp.asarray([0] * (n - used) + depths, dtype=xp.int64, device=frequencies.device)
    return xp.take(sorted_lengths, xp.argsort(by_weight))  # back to symbol order


# -- canonical codes -----------------------------------------------------------------------------


def _canonical_codes(xp, lengths, frequencies, order):
    """Canonical codes: consecutive integers in the order (length, key), shifted at each longer length.

    In that order the left-justified code of each symbol (``code << (L - l)``,
    ``L`` the longest length) is the sum of ``2**(L - l)`` over the symbols
    before it: the Kraft sum so far. ``key`` is the symbol (``order="symbol"``,
    DEFLATE) or the decreasing frequency, then the symbol.
    """
    if order == "symbol":
        ranked = xp.argsort(lengths, stable=True)
    else:
        by_frequency = xp.argsort(frequencies, descending=True, stable=True)
        ranked = xp.take(by_frequency, xp.argsort(xp.take(lengths, by_frequency), stable=True))
    ranked_lengths = xp.take(lengths, ranked)
    longest = int(xp.max(lengths)) if lengths.shape[0] else 0
    room = xp.where(ranked_lengths > 0, xp.bitwise_left_shift(1, longest - ranked_lengths), 0)
    starts = xp.cumulative_sum(room, include_initial=True)[:-1]
    ranked_codes = xp.where(ranked_lengths > 0,
                            xp.bitwise_right_shift(starts, longest - ranked_lengths), 0)
    return xp.take(ranked_codes, xp.argsort(ranked))


def huffman_code(frequencies, *, ties="leaves_first", order="symbol"):
    r"""Optimal prefix-code lengths of ``frequencies`` and their canonical codes.

    The lengths :math:`l_s` minimise :math:`\sum_s f_s l_s` over prefix codes
    (Huffman 1952) and fill the Kraft inequality,
    :math:`\sum_{f_s > 0} 2^{-l_s} = 1`; a symbol of frequency 0 gets no code
    (length 0), a lone used symbol one bit. The codes are canonical: in the
    order of increasing length, then increasing symbol, each code is the
    previous one plus one, shifted left by the increase in length, the first
    being all zeros (DEFLATE, RFC 1951 section 3.2.2).

    Conventions (docs/conventions.rst, section 9.3): optimal lengths are not
    unique. Leaves enter the merging in increasing (frequency, symbol), and
    on equal weights a leaf is merged before a merged node
    (``ties="leaves_first"``, the shortest longest code, as ``heapq`` with
    ``(weight, insertion count)``) or after (``"merged_first"``). Among
    equal lengths codes follow the symbol (``order="symbol"``) or the
    decreasing frequency (``order="frequency"``).

    Parameters
    ----------
    frequencies : (n,) integer array
        Non-negative counts.

    Returns
    -------
    HuffmanCode
        ``(lengths, codes)``, int64 ``(n,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import huffman_code
    >>> code = huffman_code(np.array([5, 0, 1, 1, 2]))
    >>> code.lengths.tolist(), code.codes.tolist()
    ([1, 0, 3, 3, 2], [0, 0, 6, 7, 2])
    >>> [format(int(c), f"0{int(l)}b") for c, l in zip(code.codes, code.lengths) if l]
    ['0', '110', '111', '10']
    """
    require_integer_array("frequencies", frequencies)
    if frequencies.ndim != 1:
        raise ValueError(f"frequencies must have shape (n,), got {tuple(frequencies.shape)}")
    require_choice("ties", ties, TIES)
    require_choice("order", order, ORDERS)
    xp, _ = get_namespace(frequencies)
    if frequencies.shape[0] and int(xp.min(frequencies)) < 0:
        raise ValueError("frequencies must be non-negative")
    frequencies = xp.astype(frequencies, xp.int64)
    lengths = _code_lengths(xp, frequencies, ties)
    return HuffmanCode(lengths, _canonical_codes(xp, lengths, frequencies, order))


# -- encoding and decoding ------------------------------------------------------------------------


def _check_table(lengths, codes):
    """``lengths`` and ``codes`` are int arrays of one alphabet, each code fitting its length."""
    for name, arr in (("lengths", lengths), ("codes", codes)):
        require_integer_array(name, arr)
        if arr.ndim != 1:
            raise ValueError(f"{name} must have shape (n,), got {tuple(arr.shape)}")
    if lengths.shape != codes.shape:
        raise ValueError(f"lengths and codes must have one shape, got {tuple(lengths.shape)} "
                         f"and {tuple(codes.shape)}")
    xp, _ = get_namespace(lengths, codes)
    lengths, codes = xp.astype(lengths, xp.int64), xp.astype(codes, xp.int64)
    if lengths.shape[0] == 0 or int(xp.max(lengths)) == 0:
        raise ValueError("lengths must give at least one symbol a code (a positive length)")
    if int(xp.min(lengths)) < 0 or int(xp.max(lengths)) > MAX_LENGTH:
        raise ValueError(f"lengths must lie in [0, {MAX_LENGTH}]")
    if not bool(xp.all((codes >= 0) & (xp.bitwise_right_shift(codes, lengths) == 0))):
        raise ValueError("codes must be non-negative and fit in their lengths (codes < 2**lengths)")
    return xp, lengths, codes


def huffman_encode(symbols, lengths, codes):
    r"""The bit array of ``symbols`` written with the code ``(lengths, codes)``.

    .. math::  \text{bits} = \operatorname{code}(s_1) \,\|\, \operatorname{code}(s_2) \,\|\, \cdots,
               \qquad |\text{bits}| = \sum_i l_{s_i}

    ``symbols`` of any shape are read in C order; each code is written most
    significant bit first (docs/conventions.rst, section 9.3). Any code
    table works, canonical or not; a symbol without a code is an error.

    Returns
    -------
    bits : 1-D uint8 array of 0s and 1s

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import huffman_encode
    >>> lengths, codes = np.array([1, 2, 2]), np.array([0, 2, 3])
    >>> huffman_encode(np.array([2, 0, 1]), lengths, codes).tolist()
    [1, 1, 0, 1, 0]
    """
    require_integer_array("symbols", symbols)
    get_namespace(symbols, lengths, codes)
    xp, lengths, codes = _check_table(lengths, codes)
    s = xp.astype(xp.reshape(symbols, (-1,)), xp.int64)
    if s.shape[0] and (int(xp.min(s)) < 0 or int(xp.max(s)) >= lengths.shape[0]
                       or not bool(xp.all(xp.take(lengths, s) > 0))):
        raise ValueError(f"symbols must lie in [0, {lengths.shape[0]}) and have a code "
                         "(a positive length)")
    longest = int(xp.max(lengths))
    bit = xp.arange(longest, dtype=xp.int64, device=s.device)
    pieces = []
    for rows in row_blocks(s.shape[0], longest):
        n_bits = xp.take(lengths, s[rows])[:, None]
        shift = n_bits - 1 - bit  # bit b of an l-bit code is bit l - 1 - b of its integer
        value = xp.bitwise_and(xp.bitwise_right_shift(xp.take(codes, s[rows])[:, None],
                                                      xp.clip(shift, min=0)), 1)
        pieces.append(value[shift >= 0])
    if not pieces:
        return xp.zeros(0, dtype=xp.uint8, device=s.device)
    return xp.astype(xp.concat(pieces), xp.uint8)


def _windows(xp, bits, width):
    """At each position ``p``, the integer of ``bits[p : p + width]`` (zeros past the end)."""
    n = bits.shape[0]
    padded = xp.concat([xp.astype(bits, xp.int64), xp.zeros(width, dtype=xp.int64, device=bits.device)])
    value = xp.zeros(n, dtype=xp.int64, device=bits.device)
    for b in range(width):
        value = 2 * value + padded[b:b + n]
    return value


def _chain(xp, step, n):
    """Positions ``0, step[0], step[step[0]], ...`` up to ``n``, by pointer doubling.

    ``step`` (length ``n + 2``) maps each position to the next, ``n`` (the end)
    and ``n + 1`` (an error) to themselves. After ``r`` rounds ``reached``
    holds the first ``2**r`` positions of the chain.
    """
    reached = xp.zeros(1, dtype=xp.int64, device=step.device)
    jump = step
    while not bool(xp.any(reached >= n)):
        reached = xp.unique_values(xp.concat([reached, xp.take(jump, reached)]))
        jump = xp.take(jump, jump)
    return xp.sort(reached)


def huffman_decode(bits, lengths, codes):
    r"""The symbols whose codes ``(lengths, codes)`` concatenate to ``bits``: the inverse of
    :func:`huffman_encode`.

    Any prefix code decodes (docs/conventions.rst, section 9.3). Every
    position's next code is read at once, from the ``L`` bits starting there
    (``L`` the longest length) against the codes' left-justified intervals;
    the symbol boundaries are then the chain of positions from 0, found by
    pointer doubling in ``O(|bits| log(symbols))`` without a sequential loop.

    Parameters
    ----------
    bits : 1-D integer or bool array of 0s and 1s
    lengths, codes : (n,) integer arrays
        A prefix code.

    Returns
    -------
    symbols : 1-D int64 array

    Raises
    ------
    ValueError
        When the code is not a prefix code, or ``bits`` does not end at the end
        of a code, or holds a bit pattern that is no code.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import huffman_decode
    >>> lengths, codes = np.array([1, 2, 2]), np.array([0, 2, 3])
    >>> huffman_decode(np.array([1, 1, 0, 1, 0], dtype=np.uint8), lengths, codes).tolist()
    [2, 0, 1]
    """
    if not (hasattr(bits, "dtype") and dtype_name(bits) == "bool"):
        require_integer_array("bits", bits)
    if bits.ndim != 1:
        raise ValueError(f"bits must have shape (n_bits,), got {tuple(bits.shape)}")
    get_namespace(bits, lengths, codes)
    xp, lengths, codes = _check_table(lengths, codes)
    bits = xp.astype(bits, xp.int64)
    if not bool(xp.all((bits == 0) | (bits == 1))):
        raise ValueError("bits must hold only 0 and 1")
    longest = int(xp.max(lengths))
    symbols = xp.nonzero(lengths > 0)[0]
    shift = longest - xp.take(lengths, symbols)
    starts = xp.bitwise_left_shift(xp.take(codes, symbols), shift)
    by_start = xp.argsort(starts)
    starts, symbols = xp.take(starts, by_start), xp.take(symbols, by_start)
    ends = starts + xp.bitwise_left_shift(1, xp.take(shift, by_start))
    if not bool(xp.all(starts[1:] >= ends[:-1])):
        raise ValueError("lengths and codes are not a prefix code: a code begins another")
    n = bits.shape[0]
    window = _windows(xp, bits, longest)
    slot = xp.clip(xp.searchsorted(starts, window, side="right") - 1, min=0)
    matched = (window >= xp.take(starts, slot)) & (window < xp.take(ends, slot))
    found = xp.take(symbols, slot)
    ahead = xp.arange(n, dtype=xp.int64, device=bits.device) + xp.take(lengths, found)
    step = xp.concat([xp.where(matched & (ahead <= n), ahead, n + 1),
                      xp.asarray([n, n + 1], dtype=xp.int64, device=bits.device)])
    boundaries = _chain(xp, step, n)
    if int(boundaries[-1]) > n:
        last = int(boundaries[-2])
        raise ValueError(f"bits hold no complete code at position {last} "
                         "(a pattern that is no code, or the stream ends inside a code)")
    return xp.take(found, boundaries[:-1])
