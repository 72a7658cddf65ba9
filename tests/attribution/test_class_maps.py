"""CAM, Grad-CAM, guided Grad-CAM: registered properties, hand-computed maps, bad input, bugs."""

import numpy as np
import pytest

from refimpl.attribution import cam, cam_vjp, grad_cam, guided_grad_cam
from refimpl.attribution import class_maps as C
from refimpl.nn import AdaptiveAvgPool2d, AvgPool2d, Conv2d, Flatten, Linear, ReLU
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("attribution.class_maps"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _cam_net(pool=None):
    gen = np.random.default_rng(0)
    return [Conv2d(gen.standard_normal((3, 2, 3, 3)), gen.standard_normal(3), padding=1), ReLU(),
            pool or AdaptiveAvgPool2d((1, 1)), Flatten(),
            Linear(gen.standard_normal((4, 3)), gen.standard_normal(4))]


def _x():
    return np.random.default_rng(1).uniform(-1, 1, (2, 2, 5, 4))


def test_grad_cam_at_the_pooled_features_is_cam_over_the_area():
    x, t = _x(), np.array([1, 3])
    np.testing.assert_allclose(grad_cam(_cam_net(), x, t, 1), cam(_cam_net(), x, t) / 20,
                               rtol=1e-13)


def test_average_pooling_over_the_whole_map_is_global():
    x, t = _x(), np.array([0, 2])
    np.testing.assert_allclose(cam(_cam_net(AvgPool2d((5, 4))), x, t), cam(_cam_net(), x, t))


def test_guided_grad_cam_is_guided_backprop_times_the_upsampled_map():
    from refimpl.attribution import guided_backprop, upsample

    x, t = _x(), np.array([1, 3])
    heat = grad_cam(_cam_net(), x, t, 0, relu=True)
    for mode in ("nearest", "bilinear"):
        expected = guided_backprop(_cam_net(), x, t) * upsample(heat, (5, 4), mode)
        np.testing.assert_allclose(guided_grad_cam(_cam_net(), x, t, 0, mode=mode), expected)


def test_cam_vjp_against_differences():
    x, t = _x(), np.array([1, 3])
    G = np.random.default_rng(2).standard_normal((2, 1, 5, 4))
    _, dx, _ = cam_vjp(_cam_net(), x, t, G)
    e = np.random.default_rng(3).standard_normal(x.shape)
    h = 1e-6
    slope = np.sum(G * (cam(_cam_net(), x + h * e, t) - cam(_cam_net(), x - h * e, t))) / (2 * h)
    assert np.isclose(np.sum(dx * e), slope, rtol=1e-6)


@pytest.mark.parametrize("call, error, match", [
    (lambda: cam(_cam_net()[:2] + [Flatten(), Linear(np.ones((4, 60)))], _x(), np.array([0, 0])),
     ValueError, "cam needs a network ending in a global average pooling"),
    (lambda: cam(_cam_net()[:2] + [AvgPool2d((5, 2)), Flatten(), Linear(np.ones((4, 6)))], _x(),
                 np.array([0, 0])), ValueError,
     "cam needs a network ending in a global average pooling"),
    (lambda: grad_cam(_cam_net(), _x(), np.array([0, 0]), 4), ValueError,
     r"layer must index a layer whose output has shape \(N, K, H, W\)"),
    (lambda: grad_cam(_cam_net(), _x(), np.array([0, 0]), 9), ValueError, "layer must index"),
    (lambda: grad_cam(_cam_net(), _x(), np.array([0, 0]), -1), ValueError,
     "layer must be an integer >= 0"),
    (lambda: guided_grad_cam(_cam_net(), _x(), np.array([0, 0]), 0, mode="area"), ValueError,
     "mode must be one of"),
    (lambda: cam_vjp(_cam_net(), _x(), np.array([0, 0]), np.ones((2, 3, 5, 4))), ValueError,
     r"cotangent must have the map's shape \(2, 1, 5, 4\)"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_planted_bug_in_the_class_weights_is_caught(monkeypatch):
    """Weights of the wrong class (t + 1 mod C) fail CAM's ground truth and its score property."""
    right = C._target_weights

    def shifted(xp, seed, weight):
        return right(xp, xp.roll(seed, 1, axis=1), weight)

    monkeypatch.setattr(C, "_target_weights", shifted)
    failed = failing_properties("cam", among={"matches ground truth",
                                              "the map's mean plus the bias is the target score"})
    assert failed == {"matches ground truth", "the map's mean plus the bias is the target score"}
