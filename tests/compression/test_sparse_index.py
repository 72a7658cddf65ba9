"""The relative index: registered properties, the paper's Figure 2, fillers, bad input, planted bugs."""

import numpy as np
import pytest

from refimpl.backend import available_backends, backend_namespace, from_numpy, to_numpy
from refimpl.compression import relative_index_decode, relative_index_encode, sparse_index
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("compression.sparse_index"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _mask(size, positions):
    mask = np.zeros(size, dtype=bool)
    mask[positions] = True
    return mask


def test_figure_2_of_the_paper():
    """Entries at 1, 4, 15 with 3-bit indices: differences 1, 3, then 11 > 8 needs a filler at 12."""
    mask = _mask(16, [1, 4, 15])
    gaps, filler = relative_index_encode(mask, bits=3, offset="difference")
    assert gaps.tolist() == [1, 3, 8, 3] and filler.tolist() == [False, False, True, False]
    gaps, filler = relative_index_encode(mask, bits=3)
    assert gaps.tolist() == [1, 2, 7, 2] and filler.tolist() == [False, False, True, False]
    for offset in ("zeros_skipped", "difference"):
        index = relative_index_encode(mask, bits=3, offset=offset)
        np.testing.assert_array_equal(relative_index_decode(*index, shape=(16,), offset=offset), mask)


def test_runs_of_fillers_and_the_first_position():
    """1-bit gaps: a run of 9 zeros takes 4 fillers (each skips one zero and sits on the next)."""
    mask = _mask(12, [0, 10, 11])
    gaps, filler = relative_index_encode(mask, bits=1)
    assert gaps.tolist() == [0, 1, 1, 1, 1, 1, 0] and filler.sum() == 4
    gaps, filler = relative_index_encode(mask, bits=1, offset="difference")
    assert gaps.tolist() == [0, 2, 2, 2, 2, 2, 1] and filler.sum() == 4


def test_empty_full_and_multidimensional_masks():
    for mask in (np.zeros((3, 4), dtype=bool), np.ones((3, 4), dtype=bool),
                 np.random.default_rng(0).uniform(size=(3, 4, 5)) < 0.1):
        for offset in ("zeros_skipped", "difference"):
            index = relative_index_encode(mask, bits=2, offset=offset)
            assert index.gaps.dtype == np.int64 and index.filler.dtype == bool
            np.testing.assert_array_equal(
                relative_index_decode(*index, shape=mask.shape, offset=offset), mask)


@pytest.mark.parametrize("backend", [b for b in available_backends(devices=True) if b != "numpy"])
def test_runs_on_every_backend(backend):
    be = backend_namespace(backend)
    mask = np.random.default_rng(1).uniform(size=(6, 7)) < 0.2
    index = relative_index_encode(from_numpy(mask, be), bits=2)
    np.testing.assert_array_equal(to_numpy(index.gaps), relative_index_encode(mask, bits=2).gaps)
    np.testing.assert_array_equal(to_numpy(relative_index_decode(*index, shape=(6, 7))), mask)


@pytest.mark.parametrize("call, error, match", [
    (lambda: relative_index_encode(np.ones(3), bits=2), TypeError, "mask must have dtype bool"),
    (lambda: relative_index_encode(np.ones(3, dtype=bool), bits=0), ValueError, "bits must be"),
    (lambda: relative_index_encode(np.ones(3, dtype=bool), bits=2, offset="absolute"), ValueError,
     "offset must be one of"),
    (lambda: relative_index_decode(np.array([1, 5]), np.zeros(2, dtype=bool), shape=(6,)),
     ValueError, "gaps reach position 7, outside shape"),
    (lambda: relative_index_decode(np.array([1, -1]), np.zeros(2, dtype=bool), shape=(6,)),
     ValueError, "gaps must be non-negative"),
    (lambda: relative_index_decode(np.array([1, 0]), np.zeros(2, dtype=bool), shape=(6,),
                                   offset="difference"), ValueError, "positive after the first"),
    (lambda: relative_index_decode(np.array([1]), np.zeros(2, dtype=bool), shape=(6,)),
     ValueError, "gaps and filler must have one shape"),
    (lambda: relative_index_decode(np.array([1]), np.zeros(1, dtype=bool), shape=6), ValueError,
     "shape must be a tuple"),
    (lambda: relative_index_decode(np.array([1.0]), np.zeros(1, dtype=bool), shape=(6,)),
     TypeError, "gaps must have an integer dtype"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_off_by_one_filler_threshold_is_caught(monkeypatch):
    monkeypatch.setattr(sparse_index, "_exclusive_cumsum",
                        lambda xp, a: xp.cumulative_sum(a, include_initial=True)[1:])
    assert {"matches ground truth", "decodes back"} <= failing_properties(
        "relative_index_encode", profile="ci")
