"""Huffman coding: optimal canonical codes, encoding and decoding of bit arrays."""

import numpy as np
import pytest

import array_api_compat.numpy as np_xp
from refimpl.backend import available_backends, backend_namespace, from_numpy, to_numpy
from refimpl.compression import huffman, huffman_code, huffman_decode, huffman_encode
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("compression.huffman"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


# -- the conventions -----------------------------------------------------------------------------


def test_canonical_codes_of_rfc_1951():
    """RFC 1951, section 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) give the codes
    010 011 100 101 110 00 1110 1111."""
    lengths = np.array([3, 3, 3, 3, 3, 2, 4, 4])
    codes = huffman._canonical_codes(np_xp, lengths, np.ones(8, dtype=np.int64), "symbol")
    words = [format(int(c), f"0{n}b") for c, n in zip(codes, lengths)]
    assert words == ["010", "011", "100", "101", "110", "00", "1110", "1111"]


def test_tie_rules_give_different_optimal_lengths():
    """Weights 1, 1, 2, 2: both codes cost 12 bits; leaves first keeps every length at 2."""
    f = np.array([1, 1, 2, 2])
    assert huffman_code(f).lengths.tolist() == [2, 2, 2, 2]
    assert huffman_code(f, ties="merged_first").lengths.tolist() == [3, 3, 2, 1]


def test_order_among_equal_lengths():
    f = np.array([1, 5, 2, 2])  # lengths 3, 1, 3, 2
    by_symbol, by_frequency = huffman_code(f), huffman_code(f, order="frequency")
    assert by_symbol.lengths.tolist() == by_frequency.lengths.tolist() == [3, 1, 3, 2]
    assert by_symbol.codes.tolist() == [6, 0, 7, 2]
    assert by_frequency.codes.tolist() == [7, 0, 6, 2]  # symbol 2 (count 2) before symbol 0


def test_degenerate_alphabets():
    assert huffman_code(np.array([0, 7, 0])).lengths.tolist() == [0, 1, 0]  # one bit, code 0
    assert huffman_code(np.zeros(3, dtype=np.int64)).lengths.tolist() == [0, 0, 0]
    assert huffman_code(np.zeros(0, dtype=np.int64)).lengths.shape == (0,)


def test_codes_longer_than_62_bits_are_refused():
    fib = [1, 1]
    while len(fib) < 70:
        fib.append(fib[-1] + fib[-2])
    with pytest.raises(ValueError, match="more than the 62 an int64 code holds"):
        huffman_code(np.array(fib, dtype=np.int64))


def test_round_trip_of_a_long_message_and_its_size():
    gen = np.random.default_rng(0)
    message = np.minimum(gen.geometric(0.3, 20_000) - 1, 15)
    code = huffman_code(np.bincount(message, minlength=16))
    bits = huffman_encode(message, *code)
    assert bits.dtype == np.uint8 and set(np.unique(bits)) <= {0, 1}
    assert bits.size == int(np.sum(np.bincount(message, minlength=16) * code.lengths))
    np.testing.assert_array_equal(huffman_decode(bits, *code), message)
    np.testing.assert_array_equal(huffman_decode(bits.astype(bool), *code), message)


def test_symbols_of_any_shape_are_read_in_c_order():
    code = huffman_code(np.array([1, 1, 2]))
    grid = np.array([[0, 2], [1, 2]])
    np.testing.assert_array_equal(huffman_encode(grid, *code), huffman_encode(grid.ravel(), *code))


@pytest.mark.parametrize("backend", [b for b in available_backends(devices=True) if b != "numpy"])
def test_runs_on_every_backend(backend):
    be = backend_namespace(backend)
    f = np.array([5, 0, 1, 1, 2, 9])
    code = huffman_code(from_numpy(f, be))
    np.testing.assert_array_equal(to_numpy(code.codes), huffman_code(f).codes)
    message = from_numpy(np.array([5, 0, 4, 4, 2, 3, 5]), be)
    bits = huffman_encode(message, *code)
    np.testing.assert_array_equal(to_numpy(huffman_decode(bits, *code)), to_numpy(message))


# -- bad input -----------------------------------------------------------------------------------

CODE = (np.array([1, 2, 2]), np.array([0, 2, 3]))


@pytest.mark.parametrize("call, error, match", [
    (lambda: huffman_code(np.array([1.0, 2.0])), TypeError, "frequencies must have an integer"),
    (lambda: huffman_code(np.array([[1, 2]])), ValueError, r"frequencies must have shape \(n,\)"),
    (lambda: huffman_code(np.array([1, -2])), ValueError, "frequencies must be non-negative"),
    (lambda: huffman_code(np.array([1, 2]), ties="random"), ValueError, "ties must be one of"),
    (lambda: huffman_code(np.array([1, 2]), order="length"), ValueError, "order must be one of"),
    (lambda: huffman_encode(np.array([3]), *CODE), ValueError, r"symbols must lie in \[0, 3\)"),
    (lambda: huffman_encode(np.array([1]), np.array([1, 0]), np.array([0, 0])), ValueError,
     "symbols must lie in .* and have a code"),
    (lambda: huffman_encode(np.array([0]), np.array([1, 1]), np.array([2, 0])), ValueError,
     "codes must be non-negative and fit"),
    (lambda: huffman_encode(np.array([0]), np.array([0, 0]), np.array([0, 0])), ValueError,
     "at least one symbol a code"),
    (lambda: huffman_encode(np.array([0]), np.array([1, 2]), np.array([0])), ValueError,
     "lengths and codes must have one shape"),
    (lambda: huffman_decode(np.array([1, 1, 1]), *CODE), ValueError, "no complete code at position 2"),
    (lambda: huffman_decode(np.array([1]), np.array([1]), np.array([0])), ValueError,
     "no complete code at position 0"),
    (lambda: huffman_decode(np.array([0, 1]), np.array([1, 2]), np.array([0, 1])), ValueError,
     "not a prefix code"),
    (lambda: huffman_decode(np.array([0, 2]), *CODE), ValueError, "bits must hold only 0 and 1"),
    (lambda: huffman_decode(np.array([0.0]), *CODE), TypeError, "bits must have an integer"),
    (lambda: huffman_decode(np.zeros((2, 2), dtype=np.uint8), *CODE), ValueError,
     r"bits must have shape \(n_bits,\)"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- planted bugs --------------------------------------------------------------------------------


def test_tree_order_lengths_are_caught(monkeypatch):
    """Depths given to the symbols in index order instead of frequency order: not optimal."""
    original = huffman._leaf_depths
    monkeypatch.setattr(huffman, "_leaf_depths", lambda w, leaves_first: original(w, leaves_first)[::-1])
    assert {"matches ground truth", "optimal total length"} <= failing_properties(
        "huffman_code", profile="ci")


def test_unshifted_canonical_codes_are_caught(monkeypatch):
    monkeypatch.setattr(huffman, "_canonical_codes", lambda xp, lengths, f, order: xp.cumulative_sum(
        xp.astype(lengths > 0, xp.int64)) - 1)
    assert {"matches ground truth", "prefix-free"} <= failing_properties("huffman_code", profile="ci")
