"""activation_norm: registered properties on every backend."""

import pytest

from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("flows.activation_norm"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
