"""Pruning masks: registered properties, the conventions pinned down, bad input, planted bugs."""

import numpy as np
import pytest

from refimpl.backend import available_backends, backend_namespace, from_numpy, to_numpy
from refimpl.compression import dsd_masks, prune_magnitude, prune_threshold, pruning
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("compression.pruning"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


# -- the conventions, on inputs small enough to read ---------------------------------------


@pytest.mark.parametrize("n, sparsity, pruned, kept_rounding", [
    (10, 0.25, 2, 2),   # 2.5: half to even gives 2; kept round(7.5) = 8 gives 2 as well
    (10, 0.35, 4, 4),   # 3.5 -> 4 both ways
    (5, 0.3, 2, 1),     # 1.5 -> 2, but kept round(3.5) = 4 leaves 1 pruned (TF-MOT)
    (7, 0.5, 4, 3),     # 3.5 -> 4; kept round(3.5) = 4 leaves 3
])
def test_count_rounds_half_to_even(n, sparsity, pruned, kept_rounding):
    w = np.arange(1.0, n + 1)
    assert np.count_nonzero(~prune_magnitude(w, sparsity)) == pruned
    assert np.count_nonzero(~prune_magnitude(w, sparsity, count="kept")) == kept_rounding


def test_ties_at_the_threshold_follow_the_flat_index():
    w = np.array([[0.5, -0.2], [0.2, 0.2]])  # three magnitudes 0.2 tie; prune two of them
    assert prune_magnitude(w, 0.5).tolist() == [[True, False], [False, True]]
    assert prune_magnitude(w, 0.5, ties="high_index").tolist() == [[True, True], [False, False]]


def test_sparsity_zero_and_one():
    w = np.random.default_rng(0).standard_normal((3, 4))
    assert prune_magnitude(w, 0.0).all() and not prune_magnitude(w, 1.0).any()


def test_dsd_rule_prunes_every_tie_at_lambda():
    w = np.array([0.1, -0.1, 0.1, 0.7, 0.9])  # k = round(0.2 * 5) = 1, but three magnitudes 0.1
    dsd, = dsd_masks(w[None], (0.2,))
    assert dsd.tolist() == [False, False, False, True, True]
    exact, = dsd_masks(w[None], (0.2,), ties="low_index")
    np.testing.assert_array_equal(exact, prune_magnitude(w, 0.2))


def test_threshold_ties():
    w = np.array([0.25, -0.25, 0.5])
    assert prune_threshold(w, 0.25).tolist() == [False, False, True]
    assert prune_threshold(w, 0.25, at_threshold="keep").tolist() == [True, True, True]


@pytest.mark.parametrize("backend", [b for b in available_backends(devices=True) if b != "numpy"])
def test_runs_on_every_backend(backend):
    be = backend_namespace(backend)
    w = np.random.default_rng(1).standard_normal((4, 5))
    got = prune_magnitude(from_numpy(w, be), 0.45, ties="high_index")
    np.testing.assert_array_equal(to_numpy(got), prune_magnitude(w, 0.45, ties="high_index"))
    masks = dsd_masks(from_numpy(np.stack([w, w]), be), (0.0, 0.6))
    np.testing.assert_array_equal(to_numpy(masks), dsd_masks(np.stack([w, w]), (0.0, 0.6)))


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, match", [
    (lambda: prune_magnitude(np.arange(4), 0.5), TypeError, "w must have a real floating dtype"),
    (lambda: prune_magnitude(np.ones(4), 1.5), ValueError, r"sparsity must be in \[0, 1\]"),
    (lambda: prune_magnitude(np.ones(4), float("nan")), TypeError, "sparsity must be a finite real"),
    (lambda: prune_magnitude(np.ones(4), 0.5, ties="random"), ValueError, "ties must be one of"),
    (lambda: prune_magnitude(np.ones(4), 0.5, count="both"), ValueError, "count must be one of"),
    (lambda: prune_magnitude(np.array([1.0, np.nan]), 0.5), ValueError, "w must not contain"),
    (lambda: prune_magnitude([1.0, 2.0], 0.5), TypeError, "w must be an array"),
    (lambda: prune_threshold(np.ones(4), -1.0), ValueError, "threshold must be >= 0"),
    (lambda: prune_threshold(np.ones(4), 0.5, at_threshold="drop"), ValueError, "at_threshold"),
    (lambda: dsd_masks(np.ones((2, 3)), (0.0,)), ValueError, "one sparsity per phase"),
    (lambda: dsd_masks(np.ones((2, 3)), (0.0, 2.0)), ValueError, r"sparsities\[1\] must be"),
    (lambda: dsd_masks(np.array(1.0), ()), ValueError, "snapshots must have shape"),
    (lambda: dsd_masks(np.ones((1, 3)), (0.5,), ties="keep_all"), ValueError, "ties must be one of"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- planted bugs ------------------------------------------------------------------------------


def test_round_half_up_is_caught(monkeypatch):
    monkeypatch.setattr(pruning, "_pruned_count", lambda n, s, count: int(np.floor(s * n + 0.5)))
    assert {"matches ground truth", "prunes exactly the stated count"} <= failing_properties(
        "prune_magnitude", profile="ci")


def test_ties_kept_in_the_dsd_rule_is_caught(monkeypatch):
    original = pruning._magnitude_mask

    def keeps_ties(xp, w, k, ties):
        if ties == "prune_all" and k:
            return xp.abs(w) >= xp.sort(xp.reshape(xp.abs(w), (-1,)))[k - 1]
        return original(xp, w, k, ties)

    monkeypatch.setattr(pruning, "_magnitude_mask", keeps_ties)
    assert {"matches ground truth", "each phase prunes the smallest"} <= failing_properties(
        "dsd_masks", profile="ci")
