"""Distillation loss: registered properties on every backend, conventions, planted bugs, bad input."""

import numpy as np
import pytest

from refimpl.nn import distillation_loss, distillation_loss_vjp
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("nn.distillation"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
