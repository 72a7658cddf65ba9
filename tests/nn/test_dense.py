"""Dense layer: registered properties on every backend, bad input, the layer class."""

import numpy as np
import pytest

from refimpl.nn import Linear, linear, linear_vjp
from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("nn.dense"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_cotangents_are_named_and_bias_is_none_without_bias():
    gen = np.random.default_rng(0)
    x, W, G = gen.standard_normal((2, 4, 3)), gen.standard_normal((5, 3)), gen.standard_normal((2, 4, 5))
    c = linear_vjp(x, W, G)
    assert c.bias is None and c.x.shape == x.shape and c.weight.shape == W.shape
    np.testing.assert_allclose(c.weight, np.einsum("bno,bni->oi", G, x), rtol=1e-13)


def test_layer_vjp_returns_a_layer_of_cotangents():
    gen = np.random.default_rng(1)
    layer = Linear(gen.standard_normal((2, 3)), gen.standard_normal(2))
    x, G = gen.standard_normal((4, 3)), gen.standard_normal((4, 2))
    dx, dlayer = layer.vjp(x, G)
    assert isinstance(dlayer, Linear)
    np.testing.assert_allclose(dlayer.bias, G.sum(axis=0), rtol=1e-14)
    np.testing.assert_array_equal(layer.input_vjp(x, G), dx)


@pytest.mark.parametrize("args, error, match", [
    ((np.ones((2, 4)), np.ones((3, 3))), ValueError, r"x must have shape \(\.\.\., in\)"),
    ((np.ones((2, 3)), np.ones((2, 3, 1))), ValueError, r"weight must have shape \(out, in\)"),
    ((np.ones((2, 3)), np.ones((2, 3)), np.ones(3)), ValueError, r"bias must have shape \(out,\)"),
    ((np.ones((2, 3), np.float32), np.ones((2, 3))), TypeError, "share one dtype"),
    ((np.ones((2, 3), int), np.ones((2, 3))), TypeError, "x must have a real floating dtype"),
])
def test_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        linear(*args[:2], *(args[2:] and [args[2]]))


def test_bad_construction():
    with pytest.raises(ValueError, match=r"bias must have shape \(out,\) = \(2,\)"):
        Linear(np.ones((2, 3)), np.ones(3))
