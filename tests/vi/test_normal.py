"""Normal-model CAVI and its ELBO: registered properties on every backend, bad input, planted bugs."""

import pytest

from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("vi.normal"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
