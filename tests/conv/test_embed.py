"""Kernel embedding: registered properties on every backend, layouts, bad input, planted bugs."""

from types import SimpleNamespace

import numpy as np
import pytest

from refimpl.conv import embed as em
from verify import get_op
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("conv.embed"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def test_layouts_agree():
    """TensorFlow's ``hwio`` kernel is PyTorch's ``oihw`` one transposed; both embed alike."""
    w = np.random.default_rng(0).standard_normal((4, 2, 3, 5))
    hwio = np.transpose(w, (2, 3, 1, 0))
    np.testing.assert_array_equal(em.embed_kernel(hwio, (6, 7), "hwio"), em.embed_kernel(w, (6, 7)))
    G = np.random.default_rng(1).standard_normal((4, 2, 6, 7))
    np.testing.assert_array_equal(em.embed_kernel_vjp(hwio, G, (6, 7), "hwio").w,
                                  np.transpose(em.embed_kernel_vjp(w, G, (6, 7)).w, (2, 3, 1, 0)))


def test_centre_tap_lands_at_the_origin():
    w = np.zeros((1, 1, 3, 5))
    w[0, 0, 1, 2] = 1.0
    K = em.embed_kernel(w, (4, 6))
    assert K[0, 0, 0, 0] == 1.0 and K.sum() == 1.0


@pytest.mark.parametrize("call, error, match", [
    (lambda: em.embed_kernel(np.ones((1, 1, 2, 3)), (4, 4)), ValueError, "kernel sizes must be odd"),
    (lambda: em.embed_kernel(np.ones((1, 1, 5, 3)), (4, 4)), ValueError, "does not fit the grid"),
    (lambda: em.embed_kernel(np.ones((3, 3, 1)), (4, 4)), ValueError, "w must have 4 axes"),
    (lambda: em.embed_kernel(np.ones((1, 1, 3, 3)), (4, 4), layout="nchw"), ValueError,
     "layout must be one of"),
    (lambda: em.embed_kernel(np.ones((1, 1, 3, 3)), 4), TypeError, "shape must be a pair"),
    (lambda: em.embed_kernel(np.ones((1, 1, 3, 3), dtype=int), (4, 4)), TypeError, "real floating"),
    (lambda: em.embed_kernel_vjp(np.ones((1, 1, 3, 3)), np.ones((1, 1, 4, 5)), (4, 4)),
     ValueError, "G must have the output's shape"),
    (lambda: em.embed_kernel_vjp(np.ones((1, 1, 3, 3)), np.ones((1, 1, 4, 4), np.float32), (4, 4)),
     TypeError, "share one dtype"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- planted bugs: the right properties fail -------------------------------------------------


def _candidate(forward=None, vjp=None):
    op = get_op("embed_kernel")
    return SimpleNamespace(forward=forward or op.forward, vjp=vjp or op.vjp)


def _assert_fail(expected, impl):
    assert failing_properties("embed_kernel", impl=impl, among=set(expected)) == set(expected)


def test_wrong_shift_is_caught():
    shifted = _candidate(forward=lambda w, shape, layout="oihw": np.roll(
        em.embed_kernel(w, shape, layout), -1, axis=(2, 3)))
    _assert_fail({"matches ground truth", "layer matches scipy.ndimage.correlate (wrap)",
                  "layer matches circular padding + cross-correlation"}, shifted)


def test_shifted_gather_is_caught():
    bad_vjp = _candidate(vjp=lambda w, G, shape, layout="oihw": em.embed_kernel_vjp(
        w, np.roll(G, 1, axis=(2, 3)), shape, layout))
    _assert_fail({"adjoint test in w", "vjp: dot-product test", "vjp: autograd"}, bad_vjp)
