"""Capsules: registered properties on every backend, the squash's range, planted bugs, bad input."""

import numpy as np
import pytest

from refimpl.nn import dynamic_routing, dynamic_routing_vjp, squash, squash_vjp
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("nn.capsules"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
