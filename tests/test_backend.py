import numpy as np
import pytest

import array_api_strict as xps
from refimpl import backend


def test_namespace_of_numpy_inputs():
    xp, device = backend.get_namespace(np.ones(2), None, np.zeros(3))
    assert xp.__name__ == "array_api_compat.numpy" and device == "cpu"


def test_mixed_namespaces_name_both_libraries():
    with pytest.raises(TypeError, match="different array libraries .*numpy.ndarray.*array_api_strict"):
        backend.get_namespace(np.ones(2), xps.ones(2))


def test_named_arguments_are_named_in_errors():
    with pytest.raises(TypeError, match="V and X come from different array libraries"):
        backend.get_namespace(V=np.ones(2), X=xps.ones(2))
    with pytest.raises(TypeError, match="V and X live on different devices"):
        backend.get_namespace(V=xps.ones(2), X=xps.ones(2, device=xps.Device("device1")))
    with pytest.raises(TypeError, match="X must be an array .* got list"):
        backend.get_namespace(V=np.ones(2), X=[1.0, 2.0])


def test_mixed_devices_name_both_devices():
    a = xps.ones(2)
    b = xps.ones(2, device=xps.Device("device1"))
    with pytest.raises(TypeError, match="CPU_DEVICE.*device1|device1.*CPU_DEVICE"):
        backend.get_namespace(a, b)


def test_no_array_argument():
    with pytest.raises(TypeError, match="at least one array"):
        backend.get_namespace(None)


def test_default_backend_precedence(monkeypatch):
    monkeypatch.setenv("REFIMPL_BACKEND", "array_api_strict")
    assert backend.get_backend().name == "array_api_strict"
    with backend.use_backend("numpy") as be:
        assert be.name == "numpy" and backend.get_backend().name == "numpy"
    assert backend.get_backend().name == "array_api_strict"
    backend.set_backend("numpy")
    try:
        assert backend.get_backend().name == "numpy"
    finally:
        backend.set_backend(None)
    monkeypatch.delenv("REFIMPL_BACKEND")
    assert backend.get_backend().name == "numpy"


@pytest.mark.parametrize("name, error", [("torch", ValueError), ("numpy:gpu", ValueError),
                                         ("array_api_strict:nowhere", ValueError), (3, TypeError)])
def test_bad_backend_names(name, error):
    with pytest.raises(error):
        backend.set_backend(name)


def test_available_backends():
    names = backend.available_backends(devices=True)
    assert names[:3] == ["numpy", "array_api_strict", "array_api_strict:device1"]


@pytest.mark.parametrize("name", backend.available_backends(devices=True))
def test_round_trip_through_backend(name):
    x = np.arange(6.0).reshape(2, 3)
    on_backend = backend.from_numpy(x, name, dtype="float32")
    xp, device = backend.get_namespace(on_backend)
    assert xp is backend.backend_namespace(name).xp
    assert device == backend.backend_namespace(name).device
    back = backend.to_numpy(on_backend)
    assert back.dtype == np.float32 and np.array_equal(back, x)
    assert backend.device(on_backend) == device  # the portable spelling of x.device


def test_second_device_refuses_hidden_host_conversion():
    a = backend.from_numpy(np.ones(3), "array_api_strict:device1")
    with pytest.raises(RuntimeError):
        np.asarray(a)


# -- kernels the standard lacks: the fast paths agree with the plain expressions ------------


def _operands(order_c, trans_a, trans_b, dtype, seed=0):
    """``C (5 x 3)``, ``A (5 x 4)``, ``B (4 x 3)`` in the given memory layouts."""
    gen = np.random.default_rng(seed)
    C = np.asarray(gen.standard_normal((5, 3)), dtype=dtype, order=order_c)
    A = gen.standard_normal((5, 4)).astype(dtype)
    B = gen.standard_normal((4, 3)).astype(dtype)
    A = np.asfortranarray(A) if trans_a else A
    B = np.asfortranarray(B) if trans_b else B
    return C, A, B


@pytest.mark.parametrize("order_c", ["C", "F"])
@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("alpha, beta", [(-1.0, 1.0), (1.0, 0.0), (0.5, 2.0)])
def test_matmul_update_writes_blas_gemm_into_c(order_c, trans_a, trans_b, dtype, alpha, beta):
    C, A, B = _operands(order_c, trans_a, trans_b, dtype)
    expected = beta * C.astype(np.float64) + alpha * (A.astype(np.float64) @ B)
    address = C.__array_interface__["data"][0]
    out = backend.matmul_update(C, A, B, alpha=alpha, beta=beta)
    assert out is C and C.__array_interface__["data"][0] == address
    np.testing.assert_allclose(C, expected, rtol=1e-5 if dtype == np.float32 else 1e-13)


def test_matmul_update_into_a_block_of_rows_leaves_the_rest():
    _, A, B = _operands("C", 0, 0, np.float64)
    for big in (np.zeros((9, 3)), np.zeros((9, 3), order="F")):
        rows = big[2:7]
        assert backend.matmul_update(rows, A, B, alpha=1.0, beta=0.0) is rows
        np.testing.assert_allclose(big[2:7], A @ B, rtol=1e-13)
        assert not big[:2].any() and not big[7:].any()


def test_matmul_update_with_beta_zero_ignores_nan_in_c():
    C, A, B = _operands("C", 0, 0, np.float64)
    C[...] = np.nan
    np.testing.assert_allclose(backend.matmul_update(C, A, B, alpha=1.0, beta=0.0), A @ B)


@pytest.mark.parametrize("name", backend.available_backends(devices=True))
def test_matmul_update_batched_and_on_every_backend(name):
    gen = np.random.default_rng(1)
    C, A = gen.standard_normal((2, 5, 3)), gen.standard_normal((2, 5, 4))
    B = gen.standard_normal((4, 3))
    expected = C - A @ B
    be = backend.backend_namespace(name)
    args = [backend.from_numpy(x, be) for x in (C, A, B)]
    out = backend.matmul_update(*args)
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-13)
    if name == "numpy":
        assert out is args[0]


def _triangle(M, lower, unit):
    part = np.tril(M, -1 if unit else 0) if lower else np.triu(M, 1 if unit else 0)
    return part + np.eye(M.shape[-1]) if unit else part


@pytest.mark.parametrize("name", backend.available_backends(devices=True))
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("unit", [False, True])
@pytest.mark.parametrize("shape, order", [((6, 6), "C"), ((6, 6), "F"), ((3, 6, 6), "C")])
def test_inv_triangular_reads_one_triangle(name, lower, unit, shape, order):
    M = np.asarray(np.random.default_rng(2).standard_normal(shape) + 4 * np.eye(6), order=order)
    inv = backend.to_numpy(backend.inv_triangular(backend.from_numpy(M, name), lower=lower,
                                                  unit_diagonal=unit))
    tri = _triangle(M, lower, unit)
    np.testing.assert_allclose(inv @ tri, np.broadcast_to(np.eye(6), shape), atol=1e-12)
    np.testing.assert_array_equal(inv, _triangle(inv, lower, False))  # zeros off the triangle


def test_inv_triangular_singular():
    with pytest.raises(np.linalg.LinAlgError, match="zero pivot at index 2"):
        backend.inv_triangular(np.triu(np.ones((4, 4))) - np.diag([0, 0, 1, 0]))


def test_fft_namespace():
    import scipy.fft

    assert backend.fft_namespace(backend.backend_namespace("numpy").xp) is scipy.fft
    assert backend.fft_namespace(xps) is xps.fft
