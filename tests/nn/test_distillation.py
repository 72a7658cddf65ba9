"""Distillation loss: registered properties on every backend, conventions, planted bugs, bad input."""

import numpy as np
import pytest

from refimpl.nn import distillation_loss, distillation_loss_vjp
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("nn.distillation"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _logits(seed=0, n=3, c=4):
    gen = np.random.default_rng(seed)
    return gen.standard_normal((n, c)), gen.standard_normal((n, c)), gen.integers(0, c, n)


def test_alpha_weighs_the_soft_term_and_labels_add_the_hard_one():
    s, t, y = _logits()
    soft = distillation_loss(s, t, 2.0)
    hard = distillation_loss(s, t, 2.0, labels=y, alpha=0.0)
    both = distillation_loss(s, t, 2.0, labels=y, alpha=0.25)
    np.testing.assert_allclose(both, 0.25 * soft + 0.75 * hard, rtol=1e-14)
    np.testing.assert_allclose(distillation_loss(s, t, 2.0, labels=y, alpha=1.0), soft, rtol=1e-14)
    # the hard term is the cross entropy at temperature 1, whatever T
    np.testing.assert_allclose(hard, distillation_loss(s, t, 7.0, labels=y, alpha=0.0), rtol=1e-14)


def test_kl_of_close_distributions_keeps_its_relative_accuracy():
    """Logits a hair apart: the KL is ~1e-14 and the centred form keeps ~10 digits of it."""
    s = np.array([[0.3, -1.2, 2.0]])
    t = s + np.array([[1e-7, -2e-7, 0.5e-7]])
    got = float(distillation_loss(s, t, 1.0))
    q = np.exp(t - t.max()) / np.exp(t - t.max()).sum()
    d = (s - t)[0] - q[0] @ (s - t)[0]
    second_order = 0.5 * (q[0] @ d ** 2 - (q[0] @ d) ** 2)  # KL = Var_q(delta) / 2 + O(delta^3)
    np.testing.assert_allclose(got, second_order, rtol=1e-6)


def test_planted_missing_temperature_factor_is_caught(monkeypatch):
    import refimpl.nn.distillation as module

    real = module.distillation_loss_vjp

    def one_t_short(*args, temperature, **kwargs):
        c = real(*args, temperature=temperature, **kwargs)
        return c._replace(student_logits=c.student_logits / temperature)

    from verify.registry import get_op
    from types import SimpleNamespace

    op = get_op("distillation_loss")
    impl = SimpleNamespace(forward=op.forward, vjp=one_t_short)
    failed = failing_properties(op, impl=impl, among={"high-temperature limit", "vjp: autograd"})
    assert failed == {"high-temperature limit", "vjp: autograd"}


def test_bad_input():
    s, t, y = _logits()
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        distillation_loss(s, t, 0.0)
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        distillation_loss(s, t, 1.0, labels=y, alpha=1.5)
    with pytest.raises(ValueError, match=r"teacher_logits must have student_logits' shape"):
        distillation_loss(s, t[:, :2], 1.0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        distillation_loss(s, t, 1.0, labels=np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="labels must be integer class indices"):
        distillation_loss(s, t, 1.0, labels=y.astype(float))
    with pytest.raises(ValueError, match="cotangent must be a scalar"):
        distillation_loss_vjp(s, t, np.ones(3), 1.0)
    with pytest.raises(ValueError, match="student_logits must not contain infs or NaNs"):
        distillation_loss(s * np.nan, t, 1.0)
