"""Sequential networks: registered properties on every backend, the reference tables, bad input."""

import numpy as np
import pytest

import refimpl.nn
from refimpl.nn import (
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Flatten,
    Linear,
    ReLU,
    sequential,
    sequential_vjp,
)
from refimpl.nn._layer import Layer
from verify.ops.nn.network import LAYER_REFERENCES
from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("nn.network"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_every_layer_class_has_a_reference():
    layers = {v for v in vars(refimpl.nn).values()
              if isinstance(v, type) and issubclass(v, Layer) and v is not Layer}
    assert layers == set(LAYER_REFERENCES)


def _cnn(seed=0):
    gen = np.random.default_rng(seed)
    return [Conv2d(gen.standard_normal((3, 2, 3, 3)), gen.standard_normal(3), padding=1),
            BatchNorm(*[gen.uniform(0.5, 2, 3) for _ in range(4)]), ReLU(), AvgPool2d(2),
            Flatten(), Linear(gen.standard_normal((2, 27)), None)]


def test_vjp_returns_layers_of_cotangents():
    layers = _cnn()
    x = np.random.default_rng(1).standard_normal((2, 2, 6, 6))
    dlayers, dx = sequential_vjp(layers, x, np.ones((2, 2)))
    assert [type(d) for d in dlayers] == [type(layer) for layer in layers]
    assert dlayers[0].padding == (1, 1) and dlayers[5].bias is None and dx.shape == x.shape
    assert dlayers[1].running_var.shape == (3,)


@pytest.mark.parametrize("x, match", [
    (np.ones((2, 3, 6, 6)), r"layer 0 \(Conv2d\): x must have 2 channels"),
    (np.ones((2, 2, 5, 6)), r"layer 5 \(Linear\): x must have shape \(\.\.\., in\)"),
    (np.ones((2, 2, 6, 6), np.float32), r"layer 0 \(Conv2d\): .*share one dtype"),
])
def test_errors_name_the_layer(x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sequential(_cnn(), x)


def test_bad_layers_and_cotangent():
    with pytest.raises(TypeError, match="layer 1 must be a refimpl.nn layer, got str"):
        sequential([ReLU(), "relu"], np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"cotangent must have the output's shape \(2, 2\)"):
        sequential_vjp(_cnn(), np.ones((2, 2, 6, 6)), np.ones((2, 3)))


def test_golden_vectors_describe_the_layers(tmp_path):
    """Exported networks come back as ``{"type": class name, field: value}`` per layer."""
    import verify

    verify.export_vectors(tmp_path, ["sequential"], examples=3, seed=2)
    for v in verify.load_vectors(tmp_path):
        if v.dtype != "float64":  # float32 files: inputs rounded, outputs from the rounded inputs
            continue
        layers = [getattr(refimpl.nn, d.pop("type"))(**d) for d in v.inputs["layers"]]
        np.testing.assert_allclose(sequential(layers, v.inputs["x"]), v.output, rtol=1e-13)
        dlayers, dx = sequential_vjp(layers, v.inputs["x"], v.cotangent)
        np.testing.assert_allclose(dx, v.vjp["x"], rtol=1e-13)
        assert len(v.vjp["layers"]) == len(layers)
