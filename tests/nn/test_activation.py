"""Activations: registered properties on every backend, PyTorch's subgradient, no overflow."""

import numpy as np
import pytest

from refimpl.nn import relu_vjp, sigmoid, sigmoid_vjp
from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("nn.activation"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_relu_subgradient_at_zero_is_zero():
    np.testing.assert_array_equal(relu_vjp(np.array([-1.0, 0.0, 2.0]), np.ones(3)).x, [0, 0, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_has_no_overflow(dtype):
    x = np.array([-1e4, -800.0, -90.0, 0.0, 90.0, 800.0, 1e4], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = sigmoid(x)
        ds = sigmoid_vjp(x, np.ones_like(x)).x
    assert s.dtype == dtype and np.all(np.isfinite(ds))
    np.testing.assert_array_equal(s[[0, -1]], [0.0, 1.0])
    assert s[3] == 0.5


def test_bad_input():
    with pytest.raises(TypeError, match="x must have a real floating dtype"):
        sigmoid(np.arange(3))
    with pytest.raises(ValueError, match="cotangent must have the output's shape"):
        relu_vjp(np.ones(3), np.ones(2))
