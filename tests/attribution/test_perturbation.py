"""Occlusion and feature ablation: registered properties, captum's windows, bad input, bugs."""

import numpy as np
import pytest

from refimpl.attribution import feature_ablation, occlusion
from refimpl.attribution import perturbation as P
from refimpl.nn import Linear, ReLU
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("attribution.perturbation"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _linear(w):
    return [Linear(np.array([w], dtype=float))]


def test_window_corners_are_captums():
    # ceil((D - k) / s) + 1 corners 0, s, 2s, ...; the last may pass D - k (cut at the border)
    assert P._window_starts(5, 2, 2) == [0, 2, 4]
    assert P._window_starts(6, 2, 2) == [0, 2, 4]
    assert P._window_starts(4, 4, 3) == [0]
    assert P._window_starts(7, 3, 1) == [0, 1, 2, 3, 4]


def test_border_window_is_cut_and_features_averaged():
    """D = 5, window 2, stride 2: windows {0,1}, {2,3}, {4} (cut); w = (1, 2, 3, 4, 5), x = 1."""
    got = occlusion(_linear([1, 2, 3, 4, 5]), np.ones((1, 5)), np.array([0]), 2, 2)
    assert got.tolist() == [[3.0, 3.0, 7.0, 7.0, 5.0]]
    # stride 1: every feature inside two windows but the ends, averaged
    got = occlusion(_linear([1, 2, 3]), np.ones((1, 3)), np.array([0]), 2, 1)
    assert got.tolist() == [[3.0, 4.0, 5.0]]


def test_float32_average_rounds_as_captum():
    x = np.array([[0.1, 0.2, 0.3]])
    exact = occlusion(_linear([1, 1, 1]), x, np.array([0]), 2)
    rounded = occlusion(_linear([1, 1, 1]), x, np.array([0]), 2, float32_average=True)
    assert rounded.dtype == np.float64 and np.array_equal(rounded, np.float32(rounded))
    assert not np.array_equal(rounded, exact) and np.allclose(rounded, exact, rtol=1e-7)


def test_chunking_does_not_change_the_result():
    gen = np.random.default_rng(0)
    layers = [Linear(gen.standard_normal((4, 6))), ReLU(), Linear(gen.standard_normal((2, 4)))]
    x, t = gen.standard_normal((3, 6)), np.array([0, 1, 1])
    runs = [occlusion(layers, x, t, 2, 1, perturbations_per_eval=p) for p in (1, 2, 7)]
    assert all(np.allclose(r, runs[0], rtol=1e-14) for r in runs)


def test_feature_ablation_groups():
    got = feature_ablation(_linear([1, 2, 3]), np.ones((1, 3)), np.array([0]),
                           np.array([5, 0, 5]), baseline=0.5)
    assert got.tolist() == [[2.0, 1.0, 2.0]]


@pytest.mark.parametrize("call, error, match", [
    (lambda: occlusion(_linear([1, 2]), np.ones((1, 2)), np.array([0]), 3), ValueError,
     r"window\[0\] = 3 exceeds the input's length 2"),
    (lambda: occlusion(_linear([1, 2, 3]), np.ones((1, 3)), np.array([0]), 1, 2), ValueError,
     r"strides\[0\] = 2 must not exceed window\[0\] = 1"),
    (lambda: occlusion(_linear([1, 2]), np.ones((1, 2)), np.array([0]), (1, 1)), ValueError,
     "window must be an int or a tuple of 1 ints"),
    (lambda: occlusion(_linear([1, 2]), np.ones((1, 2)), np.array([0]), 1, baseline="zero"),
     TypeError, "baseline must be a finite real number"),
    (lambda: occlusion(_linear([1, 2]), np.ones((1, 2)), np.array([0]), 1,
                       perturbations_per_eval=0), ValueError,
     "perturbations_per_eval must be an integer >= 1"),
    (lambda: feature_ablation(_linear([1, 2]), np.ones((1, 2)), np.array([0]), np.array([0, -1])),
     ValueError, "feature_mask must hold non-negative group ids"),
    (lambda: feature_ablation(_linear([1, 2]), np.ones((1, 2)), np.array([0]), np.array([0])),
     ValueError, r"feature_mask must have the shape of one sample \(2,\)"),
    (lambda: feature_ablation(_linear([1, 2]), np.ones((1, 2)), np.array([0]), np.zeros(2)),
     TypeError, "feature_mask must have an integer dtype"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # uncovered features
def test_planted_bug_dropping_border_windows_is_caught(monkeypatch):
    full_windows = lambda n, k, s: list(range(0, n - k + 1, s))  # noqa: E731
    monkeypatch.setattr(P, "_window_starts", full_windows)
    assert failing_properties("occlusion", among={"matches ground truth"}) == {
        "matches ground truth"}
