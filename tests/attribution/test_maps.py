"""Upsampling and refinement: registered properties, PyTorch's index arithmetic, bad input."""

import numpy as np
import pytest

from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("attribution.maps"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
