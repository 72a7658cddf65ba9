"""ActNorm: registered properties, the libraries' initialisations, layers, bad input, a planted bug."""

from types import SimpleNamespace

import numpy as np
import pytest

from refimpl.flows import activation_norm as an
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("flows.activation_norm"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _batch():
    return np.random.default_rng(0).normal(2.0, 3.0, size=(5, 3, 2, 2))


@pytest.mark.parametrize("ddof, eps", [(1, 0.0), (1, 1e-6), (0, 1e-6)])
def test_initialisation_of_nflows_normflows_and_glow(ddof, eps):
    x = _batch()
    per_channel = np.moveaxis(x, 1, -1).reshape(-1, 3)
    std = per_channel.std(axis=0, ddof=ddof)
    log_scale, shift = an.actnorm_init(x, ddof=ddof, eps=eps)
    np.testing.assert_allclose(log_scale, -np.log(std + eps), rtol=1e-14)
    # Glow's bias b' = -mean (added before scaling) is shift exp(-log_scale) here.
    np.testing.assert_allclose(shift * np.exp(-log_scale), -per_channel.mean(axis=0), rtol=1e-13)
    z = an.actnorm(x, log_scale, shift).z
    np.testing.assert_allclose(np.moveaxis(z, 1, -1).reshape(-1, 3).mean(axis=0), 0, atol=1e-14)


def test_layer_and_image_logdet():
    x = _batch()
    layer = an.ActNorm(*an.actnorm_init(x))
    z, logdet = layer.forward(x)
    np.testing.assert_allclose(logdet, 4 * layer.log_scale.sum() * np.ones(5))  # H W = 4
    np.testing.assert_allclose(layer.inverse(z).x, x, atol=1e-14)
    dx, dlayer = layer.inverse_vjp(z, x, np.ones(5))
    assert isinstance(dlayer, an.ActNorm) and dlayer.log_scale.shape == (3,)


@pytest.mark.parametrize("call, error, match", [
    (lambda: an.actnorm(np.ones((2, 3)), np.ones(2), np.ones(3)), ValueError,
     r"log_scale must have shape \(c,\) = \(3,\)"),
    (lambda: an.actnorm(np.ones(3), np.ones(3), np.ones(3)), ValueError, r"x must have shape"),
    (lambda: an.actnorm_init(np.ones((4, 2))), ValueError, "channel 0 of x is constant"),
    (lambda: an.actnorm_init(np.ones((1, 2))), ValueError, "more than ddof = 1 values"),
    (lambda: an.actnorm_init(_batch(), ddof=-1), ValueError, "ddof must be"),
    (lambda: an.actnorm_init(_batch(), eps=-1.0), ValueError, "eps must be"),
    (lambda: an.actnorm_init_vjp(_batch(), np.ones(2), np.ones(3)), ValueError,
     r"g_log_scale must have shape \(c,\)"),
    (lambda: an.ActNorm(np.ones((2, 2)), np.ones(2)), ValueError, "log_scale must have shape"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_population_variance_is_caught():
    def glow_always(x, ddof=1, eps=0.0):  # ddof ignored: Glow's population variance
        return an.actnorm_init(x, ddof=0, eps=eps)

    impl = SimpleNamespace(forward=glow_always, vjp=an.actnorm_init_vjp)
    assert {"matches ground truth", "zero mean, unit variance on its batch"} <= failing_properties(
        "actnorm_init", impl=impl)
