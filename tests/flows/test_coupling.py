"""Coupling layers: registered properties on every backend, bad input, layer classes, planted bugs."""

import pytest

from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("flows.coupling"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
