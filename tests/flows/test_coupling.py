"""Coupling layers: registered properties, conventions, layer classes, bad input, planted bugs."""

from types import SimpleNamespace

import numpy as np
import pytest

from refimpl.flows import coupling as cp
from refimpl.nn import Linear, ReLU, Tanh
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("flows.coupling"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _net(gen, d_in, d_out):
    return [Linear(gen.standard_normal((3, d_in)), gen.standard_normal(3)), Tanh(),
            Linear(gen.standard_normal((d_out, 3)), gen.standard_normal(d_out))]


def test_nflows_mask_and_halves():
    # nflows: mask > 0 is transformed; shift = first half, unconstrained scale = second half.
    mask = np.array([True, False, True])
    h = np.array([[0.5, -1.0, 2.0, 0.3]])  # t = (0.5, -1.0), u = (2.0, 0.3)
    net = [Linear(np.zeros((4, 1)), h[0])]
    x = np.array([[1.0, 2.0, 3.0]])
    z, logdet = cp.affine_coupling(x, mask, net)
    s = 1.0 / (1.0 + np.exp(-(h[0, 2:] + 2.0))) + 1e-3
    np.testing.assert_allclose(z, [[1.0 * s[0] + 0.5, 2.0, 3.0 * s[1] - 1.0]], rtol=1e-15)
    np.testing.assert_allclose(logdet, [np.log(s).sum()], rtol=1e-15)


@pytest.mark.parametrize("scale, expected", [
    ("glow", lambda u: 1 / (1 + np.exp(-(u + 2)))),
    ("exp", np.exp),
    ("tanh", lambda u: np.exp(2.0 * np.tanh(u))),
    ("atan", lambda u: np.exp(2.0 * 0.636 * np.arctan(u))),  # FrEIA's default clamp 2
])
def test_scale_conventions(scale, expected):
    u = np.array([[-3.0, 0.2, 4.0]])
    net = [Linear(np.zeros((6, 1)), np.concatenate([np.zeros(3), u[0]]))]
    x, mask = np.array([[0.0, 1.0, 1.0, 1.0]]), np.array([False, True, True, True])
    z, logdet = cp.affine_coupling(x, mask, net, scale=scale)
    np.testing.assert_allclose(z[:, 1:], expected(u), rtol=1e-14)
    np.testing.assert_allclose(logdet, np.log(expected(u)).sum(axis=1), rtol=1e-14)


@pytest.mark.parametrize("split, t, u", [
    ("scale_first", [3.0, 4.0], [1.0, 2.0]),  # FrEIA: s, t = a[:, :m], a[:, m:]
    ("interleaved", [1.0, 3.0], [2.0, 4.0]),  # Glow: shift = h[..., 0::2]
])
def test_splits(split, t, u):
    net = [Linear(np.zeros((4, 1)), np.array([1.0, 2.0, 3.0, 4.0]))]
    z, _ = cp.affine_coupling(np.array([[5.0, 1.0, 1.0]]), np.array([False, True, True]), net,
                              scale="exp", split=split)
    np.testing.assert_allclose(z[0, 1:], np.exp(u) + np.array(t), rtol=1e-15)


def test_saturated_scales_stay_finite():
    # u = -800: nflows' scale is its floor 1e-3; Glow's log sigmoid(u + 2) is u + 2, not log(0).
    net = [Linear(np.zeros((2, 1)), np.array([0.0, -800.0]))]
    x, mask = np.ones((1, 2)), np.array([False, True])
    assert cp.affine_coupling(x, mask, net).logdet[0] == pytest.approx(np.log(1e-3), rel=1e-12)
    assert cp.affine_coupling(x, mask, net, scale="glow").logdet[0] == pytest.approx(-798.0)


def test_layer_classes_call_the_ops():
    gen = np.random.default_rng(0)
    mask, net = (True, False, True, False), _net(gen, 2, 4)
    layer = cp.AffineCoupling(mask, net, scale="atan", split="interleaved", clamp=1.0)
    x, g, gl = gen.standard_normal((3, 4)), gen.standard_normal((3, 4)), gen.standard_normal(3)
    options = {"scale": "atan", "split": "interleaved", "clamp": 1.0}
    mask_array = np.array(mask)
    z, logdet = layer.forward(x)
    np.testing.assert_array_equal(z, cp.affine_coupling(x, mask_array, net, **options).z)
    np.testing.assert_allclose(layer.inverse(z).x, x, atol=1e-14)
    dx, dlayer = layer.forward_vjp(x, g, gl)
    expected = cp.affine_coupling_vjp(x, mask_array, net, g, gl, **options)
    np.testing.assert_array_equal(dx, expected.x)
    assert isinstance(dlayer, cp.AffineCoupling) and dlayer.scale == "atan" and dlayer.mask == mask
    np.testing.assert_array_equal(dlayer.conditioner[0].weight, expected.conditioner[0].weight)
    additive = cp.AdditiveCoupling(mask, _net(gen, 2, 2))
    dz, dlayer = additive.inverse_vjp(x, g, gl)
    assert isinstance(dlayer, cp.AdditiveCoupling) and dz.shape == x.shape


def test_cotangents_are_named():
    gen = np.random.default_rng(1)
    x, g = gen.standard_normal((2, 3)), gen.standard_normal((2, 3))
    c = cp.additive_coupling_vjp(x, np.array([True, False, False]), _net(gen, 2, 1), g, np.ones(2))
    assert c._fields == ("x", "mask", "conditioner") and c.mask is None


_X, _MASK = np.ones((2, 3)), np.array([True, False, True])
_NET = [Linear(np.ones((4, 1))), ReLU()]


@pytest.mark.parametrize("call, error, match", [
    (lambda: cp.affine_coupling(_X, _MASK.astype(int), _NET), TypeError, "mask must be a boolean"),
    (lambda: cp.affine_coupling(_X, np.ones(3, bool), _NET), ValueError, "at least one transformed"),
    (lambda: cp.affine_coupling(_X, _MASK[:2], _NET), ValueError, r"mask must have shape \(d,\)"),
    (lambda: cp.affine_coupling(_X[0], _MASK, _NET), ValueError, r"x must have shape \(n, d\)"),
    (lambda: cp.affine_coupling(_X, _MASK, Linear(np.ones((4, 1)))), TypeError,
     "conditioner must be a list"),
    (lambda: cp.affine_coupling(_X, _MASK, [np.ones(3)]), TypeError, r"conditioner\[0\]"),
    (lambda: cp.additive_coupling(_X, _MASK, _NET), ValueError,
     r"map \(n, 1\) identity features to \(n, 2\)"),
    (lambda: cp.affine_coupling(_X, _MASK, _NET, scale="sigmoid"), ValueError, "scale must be one of"),
    (lambda: cp.affine_coupling(_X, _MASK, _NET, split="halves"), ValueError, "split must be one of"),
    (lambda: cp.affine_coupling(_X, _MASK, _NET, scale="tanh", clamp=0), ValueError, "clamp"),
    (lambda: cp.affine_coupling_vjp(_X, _MASK, _NET, np.ones((2, 2)), np.ones(2)), ValueError,
     "gz must have the output's shape"),
    (lambda: cp.affine_coupling_inverse_vjp(_X, _MASK, _NET, _X, np.ones(3)), ValueError,
     r"glogdet must have shape \(n,\)"),
    (lambda: cp.affine_coupling(_X.astype(np.float32), _MASK, _NET), TypeError, "share one dtype"),
    (lambda: cp.AffineCoupling((True, True), _NET), ValueError, "at least one transformed"),
    (lambda: cp.AdditiveCoupling(3, _NET), TypeError, "mask must be a sequence of bools"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_scale_without_nflows_floor_is_caught(monkeypatch):
    real = cp._squash

    def no_floor(xp, u, scale, clamp):
        s, log_s, dlog = real(xp, u, "glow" if scale == "nflows" else scale, clamp)
        return s, log_s, dlog

    monkeypatch.setattr(cp, "_squash", no_floor)
    assert "matches ground truth" in failing_properties(
        "affine_coupling", among={"matches ground truth", "log-determinant of the Jacobian"})


def test_a_dropped_logdet_cotangent_is_caught():
    def without_logdet(x, mask, conditioner, gz, glogdet, **options):
        return cp.affine_coupling_vjp(x, mask, conditioner, gz, 0 * glogdet, **options)

    checks = {"vjp: dot-product test", "vjp: autograd", "vjp: autograd of every array of conditioner"}
    impl = SimpleNamespace(forward=cp.affine_coupling, vjp=without_logdet)
    assert failing_properties("affine_coupling", impl=impl, among=checks) == checks
