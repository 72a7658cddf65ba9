"""maximization: registered properties."""

import numpy as np
import pytest

from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("attribution.maximization"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
