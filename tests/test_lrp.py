"""LRP: registered properties on every backend, composites, bad input, and teeth."""

import numpy as np
import pytest

from refimpl import lrp as L
from refimpl import lrp_layers as F
from verify import get_op, run_property
from verify.engine import properties_of
from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases(module="lrp"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
