"""Upsampling and refinement: registered properties, PyTorch's index arithmetic, bad input."""

import math

import numpy as np
import pytest

from refimpl.attribution import maps as M
from refimpl.attribution import refine, refine_vjp, upsample, upsample_vjp
from verify.ops.attribution.maps import upsample_reference
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("attribution.maps"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_known_values():
    row = np.array([[[[0.0, 4.0]]]])
    assert upsample(row, (1, 4)).tolist() == [[[[0.0, 1.0, 3.0, 4.0]]]]  # half-pixel centres
    assert upsample(row, (1, 3), mode="nearest").tolist() == [[[[0.0, 0.0, 4.0]]]]
    assert upsample(row, (1, 3), mode="nearest-exact").tolist() == [[[[0.0, 4.0, 4.0]]]]
    assert upsample(row, (1, 1)).tolist() == [[[[2.0]]]]  # shrinking: the centre, no antialias


def test_nearest_indices_are_computed_in_float32_as_pytorch():
    """(20 + 1/2) * 2/41 is 1 exactly, but float32(2/41) is below 2/41: PyTorch's floorf of
    the float32 product gives 0; exact arithmetic would give 1."""
    assert (20 + 0.5) * 2 / 41 == 1.0
    assert M._nearest_source(20, 2, 41, half_pixel=True) == 0
    maps = np.array([[[[5.0, 7.0]]]])
    assert upsample(maps, (1, 41), mode="nearest-exact")[0, 0, 0, 20] == 5.0


def test_nearest_index_arithmetic_against_numpy_float32():
    """Every (n, m, d) up to 40 against the same formula in NumPy float32 scalars."""
    for n in range(1, 41):
        for m in range(1, 41):
            scale = np.float32(n) / np.float32(m)
            for d in range(m):
                legacy = d if m == n else d // 2 if m == 2 * n else min(
                    math.floor(np.float32(d) * scale), n - 1)
                exact = min(math.floor(np.float32((d + 0.5) * np.float64(scale))), n - 1)
                assert M._nearest_source(d, n, m, False) == legacy
                assert M._nearest_source(d, n, m, True) == exact


@pytest.mark.parametrize("mode", M.UPSAMPLE_MODES)
@pytest.mark.parametrize("size", [(7, 3), (2, 9), (5, 5), (1, 2)])
def test_matches_torch_interpolate(mode, size):
    torch = pytest.importorskip("torch")
    maps = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    expected = torch.nn.functional.interpolate(torch.from_numpy(maps), size=size, mode=mode)
    np.testing.assert_allclose(upsample(maps, size, mode), expected.numpy(), rtol=1e-12, atol=1e-12)


def test_vjp_is_the_adjoint():
    gen = np.random.default_rng(1)
    maps, G = gen.standard_normal((1, 2, 3, 5)), gen.standard_normal((1, 2, 7, 4))
    for mode in M.UPSAMPLE_MODES:
        (dmaps,) = upsample_vjp(maps, G, (7, 4), mode)
        assert np.isclose(np.sum(upsample(maps, (7, 4), mode) * G), np.sum(maps * dmaps))


def test_refine_per_sample_and_per_element():
    A = np.arange(6.0).reshape(2, 3)
    assert refine(A, np.array([0.5, 1.0])).tolist() == [[0.0, 0.5, 1.0], [3.0, 4.0, 5.0]]
    assert refine(A, np.full((2, 3), 0.5)).tolist() == (A / 2).tolist()
    dA, dP = refine_vjp(A, np.array([0.5, 1.0]), np.ones((2, 3)))
    assert dP.tolist() == [3.0, 12.0] and dA.tolist() == [[0.5] * 3, [1.0] * 3]


@pytest.mark.parametrize("call, error, match", [
    (lambda: upsample(np.ones((1, 1, 2, 2)), (3, 3), mode="bicubic"), ValueError,
     "mode must be one of"),
    (lambda: upsample(np.ones((1, 2, 2)), (3, 3)), ValueError, r"maps must have shape \(N, C, H, W\)"),
    (lambda: upsample(np.ones((1, 1, 2, 2)), (0, 3)), ValueError, r"size\[0\] must be an integer >= 1"),
    (lambda: upsample(np.ones((1, 1, 2, 2)), 3), ValueError, "size must be a pair"),
    (lambda: upsample_vjp(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 2)), (3, 3)), ValueError,
     r"cotangent must have the output's shape \(1, 1, 3, 3\)"),
    (lambda: refine(np.ones((2, 3)), np.array([0.5, 1.5])), ValueError,
     r"probability must lie in \[0, 1\]"),
    (lambda: refine(np.ones((2, 3)), np.ones(3)), ValueError,
     "probability must have the attribution's shape"),
    (lambda: refine(np.ones((2, 3)), np.array([np.nan, 1.0])), ValueError,
     "probability must not contain infs or NaNs"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_independent_reference_against_known_values():
    row = np.array([[[[0.0, 4.0]]]])
    assert upsample_reference(np, row, (1, 4), "bilinear").tolist() == [[[[0.0, 1.0, 3.0, 4.0]]]]


def test_planted_bug_half_pixel_nearest_is_caught(monkeypatch):
    exact = M._nearest_source
    monkeypatch.setattr(M, "_nearest_source", lambda d, n, m, half_pixel: exact(d, n, m, True))
    assert "matches ground truth" in failing_properties("upsample",
                                                        among={"matches ground truth"})
