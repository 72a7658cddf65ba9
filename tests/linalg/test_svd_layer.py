"""SVD-parametrised linear layer: registered properties on every backend, bad input, teeth."""

import dataclasses

import numpy as np
import pytest

import array_api_strict as xps
from refimpl.backend import available_backends, from_numpy, to_numpy
from refimpl.linalg import householder_matrix
from verify.testing import assert_property, failing_properties, property_cases

from refimpl.linalg import svd_layer as svd


@pytest.mark.parametrize(*property_cases("linalg.svd_layer"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _layer(d=4, n_u=3, n_v=4, m=2, seed=0):
    gen = np.random.default_rng(seed)
    return (gen.standard_normal((n_u, d)), gen.uniform(0.5, 2.0, d) * np.array([1, -1, 1, 1])[:d],
            gen.standard_normal((n_v, d)), gen.standard_normal((d, m)))


def test_dense_layer_from_the_definition():
    Vu, s, Vv, X = _layer()
    W = householder_matrix(Vu) @ np.diag(s) @ householder_matrix(Vv).T
    np.testing.assert_allclose(svd.svd_linear_matrix(Vu, s, Vv), W, atol=1e-14)
    np.testing.assert_allclose(svd.svd_linear(Vu, s, Vv, X), W @ X, atol=1e-14)


@pytest.mark.parametrize("n_u, n_v", [(1, 1), (1, 2), (2, 2), (3, 4), (5, 5)])
def test_determinant_sign_counts_reflectors(n_u, n_v):
    Vu, s, Vv, _ = _layer(n_u=n_u, n_v=n_v)
    sign, logabsdet = svd.svd_linear_slogdet(Vu, s, Vv)
    assert sign == (-1.0) ** (n_u + n_v + 1)  # one negative singular value in _layer
    np.testing.assert_allclose(logabsdet, np.sum(np.log(np.abs(s))), rtol=1e-14)


def test_batch_axes_broadcast_and_cotangents_unbroadcast():
    Vu, s, Vv, X = _layer()
    Vub = np.stack([Vu, 2 * Vu, -Vu])[:, None]  # (3, 1, 3, 4)
    sb = np.stack([s, 2 * s])                   # (2, 4)
    Y = svd.svd_linear(Vub, sb, Vv, X)
    assert Y.shape == (3, 2, 4, 2)
    np.testing.assert_allclose(Y[2, 1], svd.svd_linear(Vu, 2 * s, Vv, X), atol=1e-14)
    cots = svd.svd_linear_vjp(Vub, sb, Vv, X, np.ones(Y.shape))
    assert [c.shape for c in cots] == [Vub.shape, sb.shape, Vv.shape, X.shape]
    sign, logabsdet = svd.svd_linear_slogdet(Vub, sb, Vv)
    assert sign.shape == logabsdet.shape == (3, 2)
    assert svd.svd_linear_slogdet_vjp(Vub, sb, Vv, np.ones((3, 2)))[1].shape == sb.shape


def test_condition_number_of_a_scalar_layer_has_zero_gradient():
    Vu, s, Vv, _ = _layer(d=1)
    assert svd.condition_number(Vu, s, Vv) == 1.0
    _, ds, _ = svd.condition_number_vjp(Vu, s, Vv, np.array(1.0))
    np.testing.assert_array_equal(ds, [0.0])


def test_spectral_norm_tie_shares_the_gradient():
    Vu, _, Vv, _ = _layer()
    s = np.array([2.0, -2.0, 1.0, 0.5])
    _, ds, _ = svd.spectral_norm_vjp(Vu, s, Vv, np.array(1.0))
    np.testing.assert_array_equal(ds, [0.5, -0.5, 0.0, 0.0])


_SINGULAR = "singular values must be finite and nonzero"


def _spectrum_ops(s):
    Vu, _, Vv, X = _layer()
    return {"inverse": lambda: svd.svd_linear_inverse(Vu, s, Vv, X),
            "slogdet": lambda: svd.svd_linear_slogdet(Vu, s, Vv),
            "condition_number": lambda: svd.condition_number(Vu, s, Vv)}


# slogdet takes the log first and tests one sum for finiteness (O(batch)), so NumPy warns
# about log(0) before the ValueError.
@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
@pytest.mark.parametrize("name", ["inverse", "slogdet", "condition_number"])
def test_zero_singular_value_is_rejected(name):
    s = _layer()[1]
    s[2] = 0.0
    with pytest.raises(ValueError, match=rf"s\[2\] = 0.0: {_SINGULAR}"):
        _spectrum_ops(s)[name]()


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("name, match", [
    ("inverse", "s must not contain infs or NaNs"),
    ("slogdet", "s must not contain infs or NaNs"),
    ("condition_number", "s must not contain infs or NaNs"),
])
def test_non_finite_singular_value_is_rejected(name, match, value):
    s = _layer()[1]
    s[1] = value
    with pytest.raises(ValueError, match=match):
        _spectrum_ops(s)[name]()


def test_zero_singular_value_is_rejected_by_inverse_even_unchecked():
    Vu, s, Vv, X = _layer()
    s[0] = 0.0
    with pytest.raises(ValueError, match=r"s\[0\] = 0.0"):
        svd.svd_linear_inverse(Vu, s, Vv, X, check_finite=False)


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
def test_batched_singular_value_names_the_full_index():
    Vu, s, Vv, X = _layer()
    sb = np.stack([s, s])
    sb[1, 3] = 0.0
    with pytest.raises(ValueError, match=r"s\[1, 3\] = 0.0"):
        svd.svd_linear_slogdet(Vu, sb, Vv)


def test_cayley_rejects_minus_one():
    Vu, s, _, X = _layer()
    s[1] = -1.0
    for fn, args in ((svd.sym_cayley_apply, (Vu, s, X)),
                     (svd.sym_cayley_apply_vjp, (Vu, s, X, np.ones(X.shape)))):
        with pytest.raises(ValueError, match=r"s\[1\] = -1.0: the Cayley map needs 1 \+ s_i != 0"):
            fn(*args)


def test_spectral_normalize_rejects_zero_layer():
    Vu, s, Vv, X = _layer()
    with pytest.raises(ValueError, match="s is zero"):
        svd.spectral_normalize(Vu, 0 * s, Vv, X)


@pytest.mark.parametrize("change, error, match", [
    (dict(s=np.ones(3)), ValueError, r"s must have shape \(\.\.\., d\) with d = Vu.shape\[-1\] = 4"),
    (dict(Vv=np.ones((2, 5))), ValueError, r"Vv must have shape \(\.\.\., n_v, d\)"),
    (dict(X=np.ones((5, 2))), ValueError, r"X must have shape \(\.\.\., d, m\)"),
    (dict(Vu=np.ones(4)), ValueError, r"Vu must have shape \(\.\.\., n_u, d\)"),
    (dict(s=np.ones(())), ValueError, r"s must have shape \(\.\.\., d\)"),
    (dict(Vu=np.zeros((2, 4))), ValueError, "Vu has a zero row"),
    (dict(Vv=np.zeros((2, 4))), ValueError, "Vv has a zero row"),
    (dict(s=np.ones((2, 4)), X=np.ones((3, 4, 2))), ValueError, "do not broadcast"),
    (dict(s=np.ones(4, dtype=np.float32)), TypeError, "share one dtype"),
    (dict(Vv=np.ones((2, 4), dtype=int)), TypeError, "Vv must have a real floating dtype"),
    (dict(X=[[1.0]]), TypeError, "X must be an array"),
    (dict(X=xps.ones((4, 2), dtype=xps.float64)), TypeError, "different array libraries"),
    (dict(block_size=0), ValueError, "block_size must be a positive integer"),
])
def test_bad_input(change, error, match):
    Vu, s, Vv, X = _layer()
    args = dict(Vu=Vu, s=s, Vv=Vv, X=X)
    args.update(change)
    with pytest.raises(error, match=match):
        svd.svd_linear(args.pop("Vu"), args.pop("s"), args.pop("Vv"), args.pop("X"), **args)


def test_bad_cotangent_shapes():
    Vu, s, Vv, X = _layer()
    with pytest.raises(ValueError, match=r"G must have the output's shape \(4, 2\)"):
        svd.svd_linear_vjp(Vu, s, Vv, X, np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"G must have the output's shape \(4, 4\)"):
        svd.svd_linear_matrix_vjp(Vu, s, Vv, np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"g must have the output's shape \(\)"):
        svd.svd_linear_slogdet_vjp(Vu, s, Vv, np.ones(4))


def test_slogdet_does_not_read_the_reflectors():
    """O(d) with check_finite=False: only the shapes of Vu and Vv enter; by default NaN
    reflectors (a NaN W) are refused."""
    Vu, s, Vv, _ = _layer()
    assert svd.svd_linear_slogdet(np.full(Vu.shape, np.nan), s, Vv, check_finite=False) == \
        svd.svd_linear_slogdet(Vu, s, Vv)
    with pytest.raises(ValueError, match="Vu must not contain infs or NaNs"):
        svd.svd_linear_slogdet(np.full(Vu.shape, np.nan), s, Vv)


# -- the prepared layer: the plain ops' results, checks and errors, on every backend -----


@pytest.mark.parametrize("name", available_backends(devices=True))
def test_prepared_layer_computes_the_plain_ops(name):
    gen = np.random.default_rng(3)
    Vu, Vv = gen.standard_normal((2, 7, 5)), gen.standard_normal((6, 5))  # Vu batched
    s, X, G = gen.uniform(0.5, 2.0, 5), gen.standard_normal((5, 3)), gen.standard_normal((2, 5, 3))
    Vu, Vv, s, X, G = (from_numpy(a, name) for a in (Vu, Vv, s, X, G))
    layer = svd.svd_linear_prepare(Vu, s, Vv, block_size=2)
    pairs = [(layer.forward(X), svd.svd_linear(Vu, s, Vv, X)),
             (layer.inverse(G), svd.svd_linear_inverse(Vu, s, Vv, G))]
    pairs += zip(layer.vjp(X, G), svd.svd_linear_vjp(Vu, s, Vv, X, G))
    pairs += zip(layer.inverse_vjp(G, G), svd.svd_linear_inverse_vjp(Vu, s, Vv, G, G))
    for prepared, plain in pairs:
        np.testing.assert_allclose(to_numpy(prepared), to_numpy(plain), rtol=1e-12, atol=1e-13)


def test_prepared_layer_checks_its_data():
    Vu, s, Vv, X = _layer()
    layer = svd.svd_linear_prepare(Vu, s, Vv)
    with pytest.raises(ValueError, match=r"X must have shape \(\.\.\., d, m\)"):
        layer.forward(np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"G must have the output's shape \(4, 2\)"):
        layer.vjp(X, np.ones((4, 3)))
    with pytest.raises(TypeError, match="share one dtype"):
        layer.inverse(X.astype(np.float32))
    with pytest.raises(ValueError, match="X must not contain infs or NaNs"):
        layer.forward(np.where(X > 0, np.nan, X))
    with pytest.raises(ValueError, match="G must not contain infs or NaNs"):
        layer.inverse_vjp(X, np.full((4, 2), np.inf))
    with pytest.raises(ValueError, match=r"s\[0\] = 0.0: singular values must be finite and nonzero"):
        svd.svd_linear_prepare(Vu, 0 * s, Vv).inverse(X)
    with pytest.raises(ValueError, match="Vv has a zero row"):
        svd.svd_linear_prepare(Vu, s, np.zeros((2, 4)))


# -- the checks have teeth: a planted bug must make the right properties fail --------------


def _failing(op_name, monkeypatch, target, replacement):
    """The properties of ``op_name`` that fail with ``svd.<target>`` replaced."""
    monkeypatch.setattr(svd, target, replacement)
    return failing_properties(op_name)


def test_untransposed_right_factor_is_caught(monkeypatch):
    original = svd._apply_blocks

    def no_transpose(wy, X, transpose, *args, **kwargs):
        return original(wy, X, False, *args, **kwargs)

    monkeypatch.setattr(svd, "_apply_blocks", no_transpose)
    assert "matches ground truth" in failing_properties("svd_linear")
    assert {"matches ground truth", "round trip with svd_linear (error / cond)"} <= \
        failing_properties("svd_linear_inverse")


def test_non_orthogonal_factor_is_caught(monkeypatch):
    original = svd._build

    def half_tau(xp, V, tau, k, check_finite):  # I - v v^T / ||v||^2 projects, does not reflect
        return original(xp, V, 1.0 / xp.vecdot(V, V), k, check_finite)

    failed = _failing("svd_linear_matrix", monkeypatch, "_build", half_tau)
    assert {"matches ground truth", "singular values are abs(s)"} <= failed


def test_forgotten_reflector_parity_is_caught(monkeypatch):
    failed = _failing("svd_linear_slogdet", monkeypatch, "_reflector_count", lambda Vu, Vv: 0)
    assert failed == {"matches ground truth", "log-determinant of the Jacobian"}


def test_wrong_transposed_backward_is_caught(monkeypatch):
    original = svd._backward

    def ignores_transpose(res, G):
        return original(dataclasses.replace(res, transpose=False), G)

    for name in ("svd_linear", "svd_linear_inverse", "sym_expm_apply"):
        failed = _failing(name, monkeypatch, "_backward", ignores_transpose)
        assert {"vjp: dot-product test", "vjp: autograd"} <= failed
        assert "matches ground truth" not in failed


def test_wrong_chain_factor_is_caught(monkeypatch):
    original = svd._sym_vjp

    def off_by_one_percent(lay, c, dc_ds, X, G):
        dVu, ds, dX = original(lay, c, dc_ds, X, G)
        return dVu, 1.01 * ds, dX

    for name in ("sym_expm_apply", "sym_cayley_apply"):
        failed = _failing(name, monkeypatch, "_sym_vjp", off_by_one_percent)
        assert failed == {"vjp: dot-product test", "vjp: autograd"}


def test_wrong_matrix_function_is_caught(monkeypatch):
    failed = _failing("sym_expm_apply", monkeypatch, "_exp", lambda xp, s: 1.1 * xp.exp(s))
    assert {"matches ground truth", "expm(-W) undoes expm(W)"} <= failed
    failed = _failing("sym_cayley_apply", monkeypatch, "_cayley",
                      lambda xp, s: (1.0 - s) / (1.0 + s) + 0.1)
    assert {"matches ground truth", "C(-W) undoes C(W)"} <= failed


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the planted bug
def test_wrong_normalisation_is_caught(monkeypatch):
    def twice_the_norm(xp, s):
        big = 2 * svd._max_abs(xp, s)
        return s / big[..., None], big

    failed = _failing("spectral_normalize", monkeypatch, "_normalized", twice_the_norm)
    assert {"matches ground truth", "normalised layer has spectral norm 1"} <= failed


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the planted bug
def test_signed_maximum_is_caught(monkeypatch):
    failed = _failing("spectral_norm", monkeypatch, "_max_abs", lambda xp, s: xp.max(s, axis=-1))
    assert {"matches ground truth"} <= failed
