"""permutations: registered properties on every backend."""

import pytest

from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("flows.permutations"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
