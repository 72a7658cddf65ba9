"""Flows: registered properties of flow_forward, flow_inverse, log_prob and sample on every backend."""

import pytest

from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("flows.sequential"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
