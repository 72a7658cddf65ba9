"""Householder products: registered properties on every backend, plus bad input and teeth."""

import dataclasses

import numpy as np
import pytest

import array_api_strict as xps
from refimpl.linalg import householder as hh
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("linalg.householder"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


@pytest.fixture
def V():
    return np.random.default_rng(0).standard_normal((4, 5))


@pytest.fixture
def X():
    return np.random.default_rng(1).standard_normal((5, 3))


def test_matrix_matches_product_of_reflectors(V):
    U = np.eye(5)
    for v in V:
        U = U @ (np.eye(5) - 2 * np.outer(v, v) / (v @ v))
    np.testing.assert_allclose(hh.householder_matrix(V), U, atol=1e-14)


def test_lapack_tau_zero_is_identity(V, X):
    tau = np.zeros(4)
    np.testing.assert_array_equal(hh.householder_product(V, X, tau=tau), X)
    dV, dX, dtau = hh.householder_product_vjp(V, X, np.ones((5, 3)), tau=tau)
    np.testing.assert_array_equal(dV, 0)
    # dL/dtau_i at tau = 0 is -<G, v_i v_i^T X>: well defined, no 1/tau anywhere.
    np.testing.assert_allclose(dtau, [-np.sum(np.outer(v, v) @ X) for v in V], rtol=1e-12)


@pytest.mark.parametrize("method", ["wy", "sequential", "dense"])
def test_no_reflectors_is_the_identity(X, method):
    # The empty product U = I (the WY build has no block to make), with explicit tau too.
    V, G = np.zeros((0, 5)), np.random.default_rng(3).standard_normal((5, 3))
    np.testing.assert_array_equal(hh.householder_product(V, X, method=method), X)
    dV, dX, dtau = hh.householder_product_vjp(V, X, G, tau=np.zeros(0), method=method)
    assert dV.shape == (0, 5) and dtau.shape == (0,)
    np.testing.assert_array_equal(dX, G)
    np.testing.assert_array_equal(hh.householder_matrix(V), np.eye(5))


def test_batch_axes_broadcast_and_cotangents_unbroadcast(V, X):
    Vb = np.stack([V, 2 * V])
    Xb = np.stack([X, X, X])[:, None]  # (3, 1, 5, 3) against (2, 4, 5)
    Y = hh.householder_product(Vb, Xb)
    assert Y.shape == (3, 2, 5, 3)
    np.testing.assert_allclose(Y[2, 1], hh.householder_product(V, X), atol=1e-14)
    dV, dX, dtau = hh.householder_product_vjp(Vb, Xb, np.ones(Y.shape))
    assert dtau is None
    assert dV.shape == Vb.shape and dX.shape == Xb.shape


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(V=np.zeros((2, 3))), ValueError, "zero row"),
    (dict(X=np.ones((4, 2))), ValueError, "d = V.shape"),
    (dict(V=np.ones((2, 3), dtype=int)), TypeError, "V must have a real floating dtype"),
    (dict(X=np.ones((3, 2), dtype=np.float32)), TypeError, "share one dtype"),
    (dict(V=np.array([[1.0, np.nan, 0.0]])), ValueError, "V must not contain infs or NaNs"),
    (dict(X=np.full((3, 2), np.inf)), ValueError, "X must not contain"),
    (dict(tau=np.ones(3)), ValueError, "tau must have shape"),
    (dict(V=np.ones(3)), ValueError, r"V must have shape \(\.\.\., n, d\)"),
    (dict(method="qr"), ValueError, "method must be one of"),
    (dict(block_size=0), ValueError, "block_size must be a positive integer"),
    (dict(X=[[1.0]]), TypeError, "X must be an array"),
    (dict(X=xps.ones((3, 2), dtype=xps.float64)), TypeError, "different array libraries"),
    (dict(V=np.ones((2, 2, 3)), X=np.ones((3, 3, 2))), ValueError, "do not broadcast"),
])
def test_bad_input(kwargs, error, match):
    args = dict(V=np.ones((2, 3)) + np.eye(2, 3), X=np.ones((3, 2)))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        hh.householder_product(args.pop("V"), args.pop("X"), **args)


def test_prebuilt_wy_blocks_match_the_product(V, X):
    wy = hh.householder_wy(V, block_size=3)
    assert wy.block_size == 3
    for transpose in (False, True):
        np.testing.assert_allclose(hh.householder_wy_apply(wy, X, transpose=transpose),
                                   hh.householder_product(V, X, transpose=transpose, method="sequential"),
                                   atol=1e-14)


def test_fwd_bwd_split_matches_one_shot_vjp(V, X):
    G = np.random.default_rng(2).standard_normal((5, 3))
    tau = 2 / np.sum(V * V, axis=1)
    tau[1] = 0.0
    Y, res = hh.householder_product_fwd(V, X, tau=tau, transpose=True, block_size=3)
    np.testing.assert_allclose(Y, hh.householder_product(V, X, tau=tau, transpose=True), atol=1e-14)
    for got, expected in zip(hh.householder_product_bwd(res, G),
                             hh.householder_product_vjp(V, X, G, tau=tau, transpose=True,
                                                        method="sequential")):
        np.testing.assert_allclose(got, expected, atol=1e-13)


def test_split_api_rejects_foreign_objects(V, X):
    with pytest.raises(TypeError, match="wy must come from householder_wy"):
        hh.householder_wy_apply(V, X)
    with pytest.raises(TypeError, match="res must come from householder_product_fwd"):
        hh.householder_product_bwd(V, X)
    with pytest.raises(ValueError, match="sequential reference VJP"):
        hh.householder_product_fwd(V, X, method="sequential")
    _, res = hh.householder_product_fwd(V, X)
    with pytest.raises(ValueError, match="G must have the output's shape"):
        hh.householder_product_bwd(res, np.ones((5, 4)))
    with pytest.raises(TypeError, match="share one dtype"):
        hh.householder_product_bwd(res, np.ones((5, 3), dtype=np.float32))


@pytest.mark.parametrize("c", [1e200, 1e300, 1e-200, 1e-300])
def test_reflectors_at_extreme_scales_give_the_same_product(V, X, c):
    # H(c v) = H(v): squared norms that overflow or underflow must not change the result,
    # and the cotangent of c v is that of v divided by c.
    G = np.random.default_rng(4).standard_normal((5, 3))
    np.testing.assert_allclose(hh.householder_product(c * V, X), hh.householder_product(V, X),
                               rtol=1e-12, atol=1e-12)
    scaled, plain = hh.householder_product_vjp(c * V, X, G), hh.householder_product_vjp(V, X, G)
    np.testing.assert_allclose(scaled.V * c, plain.V, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scaled.X, plain.X, rtol=1e-12, atol=1e-12)


def test_explicit_tau_with_tiny_reflectors(V, X):
    # tau / c^2 with c v: the same reflectors, though ||c v||^2 underflows.
    tau, c = 2.0 / np.sum(V * V, axis=-1), 1e-150
    np.testing.assert_allclose(hh.householder_product(c * V, X, tau=tau / c**2),
                               hh.householder_product(V, X, tau=tau), rtol=1e-12, atol=1e-12)


def test_unrepresentable_reflector_is_refused():
    with pytest.raises(ValueError, match="tau \\* \\|\\|v\\|\\|\\^2 overflows"):
        hh.householder_product(np.full((1, 2), 1e200), np.ones((2, 1)), tau=np.ones(1))


def test_bad_cotangent_shape(V, X):
    with pytest.raises(ValueError, match="G must have the output's shape"):
        hh.householder_product_vjp(V, X, np.ones((5, 2)))


def test_non_finite_allowed_when_unchecked(V, X):
    X = X.copy()
    X[0, 0] = np.nan
    assert np.isnan(hh.householder_product(V, X, check_finite=False)).any()


# -- the checks have teeth: a planted bug in the WY code must make the suite fail ----------


@pytest.fixture
def wrong_sign_in_T(monkeypatch):
    """Plant a bug in the WY build: the off-diagonal of T with the wrong sign."""
    original = hh._wy_blocks

    def wrong_sign(xp, *args, **kwargs):
        blocks = original(xp, *args, **kwargs)
        return tuple(dataclasses.replace(b, T=b.T - 2 * xp.triu(b.T, k=1)) for b in blocks)

    monkeypatch.setattr(hh, "_wy_blocks", wrong_sign)


def test_wrong_sign_in_T_is_caught(wrong_sign_in_T):
    failed = failing_properties("householder_product")
    assert {"matches ground truth", "orthogonality", "methods agree"} <= failed


def test_stale_gradient_term_is_caught(monkeypatch):
    original = hh._block_backward

    def stale_term(xp, blk, *args):
        F, first, second, dtau = original(xp, blk, *args)
        return F + 0.1 * xp.triu(blk.gram, k=1), first, second, dtau  # a spurious term in dV

    monkeypatch.setattr(hh, "_block_backward", stale_term)
    failed = failing_properties("householder_product")
    assert {"vjp: dot-product test", "vjp: autograd", "methods agree"} <= failed


def test_planted_bug_fails_the_main_job(wrong_sign_in_T, capsys):
    from verify.cli import main

    status = main(["--op", "householder_product", "--profile", "quick", "--no-progress"])
    report = capsys.readouterr().out
    assert status == 1
    assert "FAIL householder_product / orthogonality on numpy float64" in report
    assert "smallest failing input: V: shape" in report
