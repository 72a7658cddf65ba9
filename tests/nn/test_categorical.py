"""Softmax and log-softmax: registered properties, the float-maximum range, bad input."""

import numpy as np
import pytest

from refimpl.nn import log_softmax, log_softmax_vjp, softmax, softmax_vjp
from verify.testing import assert_property, property_cases


@pytest.mark.parametrize(*property_cases("nn.categorical"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_overflow_at_the_float_maximum(dtype):
    big = np.finfo(dtype).max
    x = np.array([big, big, -big, 0.0], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = softmax(x)
        lp = log_softmax(x)
        dx = softmax_vjp(x, np.ones_like(x)).x
        dlx = log_softmax_vjp(x, np.ones_like(x)).x
    assert p.dtype == dtype and np.all(np.isfinite(dx)) and np.all(np.isfinite(dlx))
    np.testing.assert_array_equal(p, [0.5, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(lp[2], -np.inf)  # -2 max is below the float range
    np.testing.assert_allclose(lp[[0, 1]], -np.log(2.0), rtol=1e-6)
    assert lp[3] == -big  # 0 - max is representable: no -inf


def test_planted_unshifted_softmax_is_caught(monkeypatch):
    """The definition without the shift overflows at large logits: the near-maximum property fails."""
    import refimpl.nn.categorical as module
    from verify.testing import failing_properties

    def unshifted(xp, x, axis=-1, allowed=None):
        e = xp.exp(x)
        return e / xp.sum(e, axis=axis, keepdims=True)

    monkeypatch.setattr(module, "probabilities", unshifted)
    with np.errstate(all="ignore"):
        failed = failing_properties("softmax", among={"logits near the float maximum",
                                                      "matches ground truth"})
    assert failed == {"logits near the float maximum"}


def test_bad_input():
    with pytest.raises(TypeError, match="x must have a real floating dtype"):
        softmax(np.arange(3))
    with pytest.raises(ValueError, match=r"axis must be an int in \[-1, 1\)"):
        softmax(np.ones(3), axis=1)
    with pytest.raises(ValueError, match="x must have at least one entry along axis"):
        log_softmax(np.ones((2, 0)))
    with pytest.raises(ValueError, match="x must not contain infs or NaNs"):
        softmax(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="cotangent must have the output's shape"):
        softmax_vjp(np.ones(3), np.ones(2))
    with pytest.raises(TypeError, match="share one dtype"):
        log_softmax_vjp(np.ones(3), np.ones(3, np.float32))
