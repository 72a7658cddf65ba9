"""LIME: registered properties, scikit-learn's Ridge and the kernels, bad input, planted bugs."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from refimpl.attribution import lime
from refimpl.attribution import surrogate as S
from refimpl.nn import Linear, ReLU, sequential
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("attribution.surrogate"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _case():
    gen = np.random.default_rng(0)
    layers = [Linear(gen.standard_normal((4, 6))), ReLU(), Linear(gen.standard_normal((3, 4)))]
    return layers, gen.uniform(-1, 1, (2, 6)), np.array([0, 2]), gen.random((20, 3)) < 0.5


def test_matches_ridge_with_sample_weight_and_its_intercept():
    layers, x, t, Z = _case()
    mask = np.array([0, 0, 1, 1, 2, 2])
    res = lime(layers, x, t, Z, mask, alpha=0.3, baseline=0.25)
    for n in range(2):
        inputs = np.where(Z[:, mask], x[n], 0.25)
        y = sequential(layers, inputs)[:, t[n]]
        model = Ridge(alpha=0.3).fit(Z.astype(float), y, sample_weight=res.weights[n])
        np.testing.assert_allclose(res.coefficients[n], model.coef_, rtol=1e-10, atol=1e-12)
        assert np.isclose(res.intercept[n], model.intercept_, rtol=1e-10)
        np.testing.assert_allclose(res.attribution[n], model.coef_[mask], rtol=1e-10, atol=1e-12)


def test_interpretable_kernel_is_the_lime_packages():
    """lime's kernel sqrt(exp(-d^2 / w^2)) of the cosine distance of z to the all-ones vector."""
    layers, x, t, Z = _case()
    res = lime(layers, x, t, Z, np.array([0, 0, 1, 1, 2, 2]), kernel_width=0.25,
               space="interpretable")
    ones = Z.sum(axis=1)
    d = 1 - np.where(ones > 0, ones / np.sqrt(np.maximum(ones, 1) * 3), 0.0)
    np.testing.assert_allclose(res.weights, np.broadcast_to(np.sqrt(np.exp(-d ** 2 / 0.25 ** 2)),
                                                            (2, 20)), rtol=1e-12)


def test_float32_distance_as_captum():
    layers, x, t, Z = _case()
    mask = np.array([0, 0, 1, 1, 2, 2])
    exact = lime(layers, x, t, Z, mask).weights
    rounded = lime(layers, x, t, Z, mask, float32_distance=True).weights
    assert np.allclose(rounded, exact, rtol=1e-6) and not np.array_equal(rounded, exact)


def test_scores_of_huge_inputs_do_not_overflow_the_distance():
    layers, x, t, Z = _case()
    res = lime(layers, 1e200 * x, t, Z, np.array([0, 0, 1, 1, 2, 2]), alpha=1.0)
    assert np.all(np.isfinite(res.weights))


@pytest.mark.parametrize("change, error, match", [
    ({"samples": np.ones((4, 3))}, TypeError, "samples must have dtype bool"),
    ({"samples": np.ones((4, 2), dtype=bool)}, ValueError, r"feature_mask must hold feature ids in"),
    ({"samples": np.ones((0, 3), dtype=bool)}, ValueError, "n_samples >= 1"),
    ({"kernel_width": 0.0}, ValueError, "kernel_width must be > 0"),
    ({"alpha": -1.0}, ValueError, "alpha must be > 0"),
    ({"distance": "manhattan"}, ValueError, "distance must be one of"),
    ({"space": "latent"}, ValueError, "space must be one of"),
    ({"feature_mask": None}, ValueError, "without feature_mask every element of a sample"),
])
def test_bad_input_names_the_argument(change, error, match):
    layers, x, t, Z = _case()
    args = {"samples": Z, "feature_mask": np.array([0, 0, 1, 1, 2, 2]), **change}
    with pytest.raises(error, match=match):
        lime(layers, x, t, args.pop("samples"), args.pop("feature_mask"), **args)


def test_planted_bug_doubling_the_penalty_is_caught(monkeypatch):
    right = S._ridge
    monkeypatch.setattr(S, "_ridge", lambda xp, Z, y, w, alpha: right(xp, Z, y, w, 2 * alpha))
    among = {"matches scikit-learn's Ridge", "equals the dense weighted least-squares solution"}
    assert failing_properties("lime", among=among) == among
