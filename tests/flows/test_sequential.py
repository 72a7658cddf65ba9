"""Flows: registered properties on every backend, composition, densities, layer errors, planted bugs."""

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.stats

from refimpl.flows import sequential as sq
from refimpl.flows import ActNorm, AffineCoupling, LULinear, Permutation, Reverse, Sequential
from refimpl.nn import Linear, Tanh
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("flows.sequential"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _flow(gen, d=4):
    net = [Linear(gen.standard_normal((3, 2)) / 2, gen.standard_normal(3)), Tanh(),
           Linear(gen.standard_normal((4, 3)) / 2, gen.standard_normal(4))]
    return Sequential([AffineCoupling((False, False, True, True), net), Reverse(),
                       ActNorm(0.2 * gen.standard_normal(d), gen.standard_normal(d)),
                       LULinear(*0.3 * gen.standard_normal((2, d, d)), gen.standard_normal(d),
                                gen.standard_normal(d))])


def test_log_prob_integrates_the_change_of_variables():
    gen = np.random.default_rng(0)
    flow, x = _flow(gen), gen.standard_normal((5, 4))
    z, logdet = sq.flow_forward(flow, x)
    expected = scipy.stats.norm.logpdf(z).sum(axis=1) + logdet
    np.testing.assert_allclose(sq.log_prob(flow, x), expected, rtol=1e-13)
    x_new, log_p = sq.sample(flow, z)
    np.testing.assert_allclose(x_new, x, atol=1e-12)
    np.testing.assert_allclose(log_p, expected, rtol=1e-12)


def test_empty_flow_is_the_base():
    x = np.random.default_rng(1).standard_normal((3, 2))
    np.testing.assert_allclose(sq.log_prob(Sequential([]), x),
                               scipy.stats.norm.logpdf(x).sum(axis=1), rtol=1e-15)


def test_gradient_of_the_training_loss_reaches_every_layer():
    gen = np.random.default_rng(2)
    flow, x = _flow(gen), gen.standard_normal((6, 4))
    dflow, dx = sq.log_prob_vjp(flow, x, np.ones(6))  # gradient of sum log p
    assert isinstance(dflow, Sequential) and len(dflow.layers) == 4
    assert isinstance(dflow.layers[3], LULinear) and dflow.layers[3].bias.shape == (4,)
    assert np.all(np.isfinite(dx))


def test_layer_errors_name_the_layer():
    flow = Sequential([Reverse(), Permutation((1, 0, 2))])
    with pytest.raises(ValueError, match=r"layer 1 \(Permutation\): perm must be a permutation"):
        sq.flow_forward(flow, np.ones((2, 4)))
    with pytest.raises(TypeError, match=r"layers\[1\] must be a refimpl.flows layer"):
        Sequential([Reverse(), Linear(np.eye(2))])
    with pytest.raises(TypeError, match="flow must be a refimpl.flows layer"):
        sq.log_prob([Reverse()], np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"g must have shape \(n,\) = \(2,\)"):
        sq.log_prob_vjp(Reverse(), np.ones((2, 2)), np.ones(3))
    with pytest.raises(ValueError, match=r"glog_prob must have shape \(n,\)"):
        sq.sample_vjp(Reverse(), np.ones((2, 2)), np.ones((2, 2)), np.ones(1))


def test_a_flow_that_drops_the_logdet_cotangent_is_caught():
    def no_logdet_gradient(flow, x, g):
        return sq.log_prob_vjp(flow, x, 0 * g)

    impl = SimpleNamespace(forward=sq.log_prob, vjp=no_logdet_gradient)
    checks = {"vjp: dot-product test", "vjp: autograd", "vjp: autograd of every array of flow"}
    assert failing_properties("log_prob", impl=impl, among=checks) == checks
