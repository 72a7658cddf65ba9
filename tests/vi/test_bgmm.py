"""Bayesian Gaussian mixture by CAVI: registered properties, private pieces against scipy, bad input."""

import pytest

from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("vi.bgmm"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
