"""Attention: registered properties on every backend, conventions, planted bugs, bad input."""

import numpy as np
import pytest

from refimpl.nn import (
    memory_readout,
    multi_head_attention,
    multi_head_attention_vjp,
    scaled_dot_product_attention,
    scaled_dot_product_attention_vjp,
)
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("nn.attention"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
