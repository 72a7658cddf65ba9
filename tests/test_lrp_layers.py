"""The layers of refimpl.lrp_layers as ops: forward and hand-written VJP on every backend.

Each layer (linear, conv2d, the pools, ReLU) is a registered op whose
forward is checked against SciPy or explicit loops and whose VJP passes the
dot-product test and autograd; LRP itself is tested in test_lrp.py.
"""

import pytest

from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases(module="lrp_layers"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
