"""FFT convolutions: registered properties on every backend, plus bad input and teeth."""

import pytest

from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases(module="fftconv"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)
