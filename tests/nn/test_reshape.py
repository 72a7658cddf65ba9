"""Flatten: registered properties on every backend and bad input."""

import numpy as np
import pytest

from refimpl.nn import flatten, flatten_vjp
from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("nn.reshape"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_bad_input():
    with pytest.raises(ValueError, match="x must have a batch axis"):
        flatten(np.float64(1.0)[()] * np.ones(()))
    with pytest.raises(ValueError, match=r"cotangent must have the output's shape \(2, 6\)"):
        flatten_vjp(np.ones((2, 2, 3)), np.ones((2, 5)))
