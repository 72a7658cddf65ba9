"""Permutations: registered properties, nflows' convention, layers, bad input, a planted bug."""

from types import SimpleNamespace

import numpy as np
import pytest

from refimpl.flows import permutations as pm
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("flows.permutations"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_index_select_convention_on_images():
    x = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    z, logdet = pm.permutation(x, perm=(2, 0, 1))
    np.testing.assert_array_equal(z, x[:, [2, 0, 1]])  # torch.index_select(x, 1, perm)
    np.testing.assert_array_equal(logdet, np.zeros(2))
    np.testing.assert_array_equal(pm.permutation_inverse(z, perm=(2, 0, 1)).x, x)


def test_layers():
    x = np.arange(8.0).reshape(2, 4)
    z, _ = pm.Reverse().forward(x)
    np.testing.assert_array_equal(z, x[:, ::-1])
    layer = pm.Permutation([1, 3, 0, 2])
    assert layer.perm == (1, 3, 0, 2)
    dx, dlayer = layer.forward_vjp(x, x, np.zeros(2))
    np.testing.assert_array_equal(dx, pm.permutation_inverse(x, perm=layer.perm).x)
    assert dlayer is layer
    np.testing.assert_array_equal(layer.inverse(layer.forward(x).z).x, x)


@pytest.mark.parametrize("call, error, match", [
    (lambda: pm.permutation(np.ones((2, 3)), perm=(0, 0, 1)), ValueError, "perm must be a permutation"),
    (lambda: pm.permutation(np.ones((2, 3)), perm=None), TypeError, "perm must be a sequence"),
    (lambda: pm.permutation(np.ones(3), perm=(0, 1, 2)), ValueError, r"x must have shape \(n, d, ...\)"),
    (lambda: pm.permutation_vjp(np.ones((2, 3)), np.ones((2, 2)), np.ones(2), perm=(0, 1, 2)),
     ValueError, "gz must have the output's shape"),
    (lambda: pm.Permutation(5), TypeError, "perm must be a sequence of ints"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_gathering_with_the_inverse_is_caught():
    def backwards(x, perm):
        return pm.permutation_inverse(x, perm=perm)

    impl = SimpleNamespace(forward=backwards, vjp=pm.permutation_vjp)
    assert {"matches ground truth", "dense permutation matrix"} <= failing_properties(
        "permutation", impl=impl)
