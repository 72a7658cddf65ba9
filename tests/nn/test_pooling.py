"""Pooling: registered properties on every backend, PyTorch's conventions, bad input."""

import numpy as np
import pytest

from refimpl.nn import MaxPool2d, adaptive_avg_pool2d, max_pool2d, max_pool2d_vjp
from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("nn.pooling"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_max_pool_cotangent_goes_to_the_first_maximum():
    x = np.array([[[[1.0, 3.0], [3.0, 0.0]]]])
    assert max_pool2d(x, 2).item() == 3.0
    np.testing.assert_array_equal(max_pool2d_vjp(x, np.ones((1, 1, 1, 1)), 2).x,
                                  [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_adaptive_bins_overlap_when_the_output_is_larger():
    x = np.arange(3.0).reshape(1, 1, 1, 3)
    # PyTorch: bins [0, 1), [0, 2), [1, 2), [1, 3), [2, 3) of 3 columns for 5 outputs
    np.testing.assert_allclose(adaptive_avg_pool2d(x, (1, 5))[0, 0, 0], [0.0, 0.5, 1.0, 1.5, 2.0])


@pytest.mark.parametrize("make, match", [
    (lambda: MaxPool2d(0), "kernel_size must be positive"),
    (lambda: MaxPool2d((2, 2, 2)), "kernel_size must be an int or a pair of ints"),
    (lambda: max_pool2d(np.ones((1, 1, 1, 4)), 2), r"padded input \(1 \+ 2\*0\) is smaller"),
    (lambda: max_pool2d(np.ones((1, 4, 4)), 2), r"x must have shape \(N, C, H, W\)"),
    (lambda: adaptive_avg_pool2d(np.ones((1, 1, 4, 4)), 0), "output_size must be positive"),
])
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()
