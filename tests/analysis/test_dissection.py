"""Network dissection and IBD: registered properties, bad input, documented edge cases, planted bugs."""

import numpy as np
import pytest

import refimpl.analysis.dissection as di
from verify.ops.analysis.dissection import greedy_nnls, upsample
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("analysis.dissection"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


@pytest.fixture
def activations():
    return np.random.default_rng(0).standard_normal((3, 2, 4, 5))


@pytest.fixture
def masks():
    return np.random.default_rng(1).uniform(size=(3, 2, 8, 13)) < 0.3


def test_upsampling_is_half_pixel_bilinear(activations):
    """The interpolation matrices reproduce numpy.interp at (o + 1/2) in/out - 1/2, clamped."""
    Rh = di._interpolation_matrix(np, 8, 4, np.float64, "cpu")
    Rw = di._interpolation_matrix(np, 13, 5, np.float64, "cpu")
    np.testing.assert_allclose(Rh @ activations @ Rw.T, upsample(activations, 8, 13), atol=1e-14)


def test_empty_masks_and_constant_units_score_zero(activations, masks):
    """An empty union, a concept absent from every image with a unit that never fires (a
    constant unit: nothing lies above its threshold), scores 0; so does anything against an
    absent concept."""
    activations = activations.copy()
    activations[:, 1] = 2.0
    masks = masks.copy()
    masks[:, 0] = False
    iou, threshold = di.dissection_iou(activations, masks, quantile=0.1)
    assert threshold[1] == 2.0
    assert np.all(iou[1] == 0) and np.all(iou[:, 0] == 0)


def test_zero_weights_and_duplicate_concepts_break_ties_by_index():
    Q = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    fit = di.ibd(np.zeros(2), Q, k=2)
    np.testing.assert_array_equal(fit.concepts, [0, 1])
    np.testing.assert_array_equal(fit.residuals, [0.0, 0.0])
    fit = di.ibd(np.array([2.0, 0.0]), Q, k=2)
    np.testing.assert_array_equal(fit.concepts, [0, 1])  # the duplicate adds nothing
    np.testing.assert_allclose(fit.residuals, [0.0, 0.0], atol=1e-15)


def test_ibd_with_every_concept_matches_scipy():
    gen = np.random.default_rng(2)
    Q, w = gen.standard_normal((6, 9)), gen.standard_normal(9)
    concepts, coef, residuals, _ = greedy_nnls(w, Q, 6)
    fit = di.ibd(w, Q, k=6)
    np.testing.assert_array_equal(fit.concepts, concepts)
    np.testing.assert_allclose(fit.coef, coef, atol=1e-12)
    np.testing.assert_allclose(fit.residuals, residuals, rtol=1e-12)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(activations=np.ones((3, 2, 4))), ValueError, r"activations must have shape \(N, U, h, w\)"),
    (dict(masks=np.ones((3, 2, 8, 13))), TypeError, "masks must be a boolean array"),
    (dict(masks=np.ones((3, 2, 3, 13), dtype=bool)), ValueError, "upsampling only"),
    (dict(masks=np.ones((2, 2, 8, 13), dtype=bool)), ValueError, "must have N = 3"),
    (dict(quantile=1.0), ValueError, r"quantile must be in \(0, 1\)"),
    (dict(activations=np.full((3, 2, 4, 5), np.inf)), ValueError, "activations must not contain"),
    (dict(activations=np.ones((3, 2, 4, 5), dtype=int)), TypeError, "real floating dtype"),
])
def test_dissection_bad_input(activations, masks, kwargs, error, match):
    args = dict(activations=activations, masks=masks)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        di.dissection_iou(args.pop("activations"), args.pop("masks"), **args)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(k=0), ValueError, r"k must be an integer in \[1, 3\]"),
    (dict(k=4), ValueError, "k must be an integer in"),
    (dict(w=np.ones(3)), ValueError, r"w must have shape \(C,\) and Q \(K, C\)"),
    (dict(w=np.ones(2, dtype=np.float32)), TypeError, "share one dtype"),
    (dict(Q=np.full((3, 2), np.nan)), ValueError, "Q must not contain"),
])
def test_ibd_bad_input(kwargs, error, match):
    args = dict(w=np.ones(2), Q=np.eye(3, 2), k=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        di.ibd(args.pop("w"), args.pop("Q"), **args)


def test_corner_aligned_upsampling_is_caught(monkeypatch):
    def corners(xp, out_size, in_size, dtype, device):
        x = xp.linspace(0.0, in_size - 1.0, out_size, dtype=dtype, device=device)
        i = xp.arange(in_size, dtype=dtype, device=device)
        return xp.clip(1.0 - xp.abs(x[:, None] - i[None, :]), min=0.0)

    monkeypatch.setattr(di, "_interpolation_matrix", corners)
    assert "matches ground truth" in failing_properties("dissection_iou")
