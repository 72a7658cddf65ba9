"""Normal-model CAVI and its ELBO: registered properties on every backend, bad input, planted bugs."""

import numpy as np
import pytest

from refimpl.vi import normal
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("vi.normal"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


@pytest.fixture
def data():
    return np.random.default_rng(0).normal(2.0, 3.0, 37)


def test_lecture_fixed_point(data):
    """Flat priors: E[lambda] = (n+1)/(n s2), Var q(mu) = s2/(n+1), a = n/2 + 1."""
    res = normal.normal_cavi(data)
    n, s2 = data.size, data.var()
    assert res.converged and res.elbo.shape == (2 * res.n_iter,)
    np.testing.assert_allclose([res.shape / res.rate, res.var, res.shape, res.mean],
                               [(n + 1) / (n * s2), s2 / (n + 1), n / 2 + 1, data.mean()], rtol=1e-13)


def test_tol_zero_runs_every_sweep(data):
    res = normal.normal_cavi(data, tol=0.0, max_iter=40)
    assert res.n_iter == 40 and not res.converged


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(a0=0.0), ValueError, "a0 must be positive"),
    (dict(kappa0=-1.0), ValueError, "kappa0 must be >= 0"),
    (dict(b0=-0.1), ValueError, "b0 must be >= 0"),
    (dict(mu0=float("nan")), TypeError, "mu0 must be a finite real number"),
    (dict(x=np.array([1.0, np.inf])), ValueError, "x must not contain infs or NaNs"),
    (dict(x=np.ones(5)), ValueError, "zero variance"),
    (dict(x=np.ones((2, 3))), ValueError, r"x must have shape \(n,\)"),
    (dict(x=np.arange(4)), TypeError, "x must have a real floating dtype"),
    (dict(e_lambda=-1.0), ValueError, "e_lambda must be positive"),
    (dict(tol=-1.0), ValueError, "tol must be a non-negative number"),
    (dict(max_iter=0), ValueError, "max_iter must be a positive integer"),
])
def test_normal_cavi_bad_input(data, kwargs, error, match):
    x = kwargs.pop("x", data)
    with pytest.raises(error, match=match):
        normal.normal_cavi(x, **kwargs)


def test_normal_elbo_bad_input(data):
    q = [np.asarray(v) for v in (1.0, 0.1, 3.0, 2.0)]
    with pytest.raises(ValueError, match="var must be a 0-d array"):
        normal.normal_elbo(data, q[0], np.ones(2), q[2], q[3])
    with pytest.raises(ValueError, match="a0 must be positive"):
        normal.normal_elbo(data, *q, a0=0.0)
    with pytest.raises(ValueError, match=r"x must have shape \(n,\)"):
        normal.normal_elbo(data[None], *q)


# -- planted bugs: the records' checks catch them ---------------------------------------------


def test_rate_update_without_the_variance_is_caught(monkeypatch):
    monkeypatch.setattr(normal, "_q_lambda_rate", lambda b0, scatter, kappa_n, var: b0 + 0.5 * scatter)
    assert "matches ground truth" in failing_properties("normal_cavi", among={"matches ground truth"})


def test_rate_update_without_the_half_is_caught(monkeypatch):
    monkeypatch.setattr(normal, "_q_lambda_rate",
                        lambda b0, scatter, kappa_n, var: b0 + scatter + kappa_n * var)
    among = {"matches ground truth", "ELBO never decreases"}
    assert failing_properties("normal_cavi", among=among) == among


def test_wrong_entropy_sign_is_caught(monkeypatch):
    original = normal.gamma_entropy
    monkeypatch.setattr(normal, "gamma_entropy", lambda xp, a, b: -original(xp, a, b))
    assert "matches ground truth" in failing_properties("normal_elbo")
    assert "last ELBO is the ELBO of q" in failing_properties(
        "normal_cavi", among={"last ELBO is the ELBO of q"})


def test_digamma_off_by_a_constant_is_caught(monkeypatch):
    original = normal.digamma
    monkeypatch.setattr(normal, "digamma", lambda xp, x: original(xp, x) + 1e-3)
    assert "matches ground truth" in failing_properties("normal_elbo")
