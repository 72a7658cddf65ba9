"""torch.linalg.householder_product passes refimpl's checks under the documented mapping.

Mapping (docs/conventions.rst, section 1): row i of V is column i of tril(A, -1) + I and tau
is LAPACK's. torch only represents reflectors in that form, so its candidate is
checked on such inputs, and the one invariant whose inputs leave the form
(reversing the rows) is left out. Skipped when PyTorch is not installed.
"""

import numpy as np
import pytest
from hypothesis import strategies as st

import verify
from refimpl.linalg import householder_product_vjp
from verify.strategies import batch_shapes, rng

torch = pytest.importorskip("torch")


def torch_householder_product(V, X, tau=None, *, transpose=False):
    """refimpl's householder_product (explicit tau) through torch.linalg.householder_product."""
    n, d = V.shape[-2], V.shape[-1]
    A = V.mT  # (..., d, n): column i is reflector i
    unit = torch.eye(d, n, dtype=A.dtype)
    if not torch.equal(A, torch.tril(A, -1) + unit):  # torch reads only tril(A, -1)
        raise ValueError("V is not in LAPACK form (row i = e_i + entries after i)")
    # Pad to d reflectors with tau = 0 (identities): torch then returns all of U, d x d.
    A = torch.cat([A, torch.zeros(A.shape[:-1] + (d - n,), dtype=A.dtype)], dim=-1)
    tau = torch.cat([tau, torch.zeros(tau.shape[:-1] + (d - n,), dtype=tau.dtype)], dim=-1)
    U = torch.linalg.householder_product(A, tau)
    return (U.mT if transpose else U) @ X


@st.composite
def lapack_form(draw):
    """Reflectors e_i + (entries after i), tau = 2/||v||^2 or 0, batched as the op's cases."""
    gen = draw(rng())
    d = draw(st.integers(1, 8))
    n = draw(st.integers(1, d))
    batch_v, batch_x = draw(batch_shapes())
    V = np.tril(gen.standard_normal(batch_v + (d, n)), -1) + np.eye(d, n)
    V = np.swapaxes(V, -1, -2).copy()
    tau = np.where(gen.uniform(size=V.shape[:-1]) < 0.8, 2.0 / np.sum(V * V, axis=-1), 0.0)
    X = gen.standard_normal(batch_x + (d, draw(st.integers(1, 4))))
    return verify.Case({"V": V, "X": X, "tau": tau}, {"transpose": draw(st.booleans())})


FORWARD_CHECKS = [
    "matches ground truth", "matches refimpl forward", "orthogonality",
    "single reflector is an involution", "determinant parity", "agrees with LAPACK dormqr/dorgqr",
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_householder_product_passes(dtype):
    report = verify.check(torch_householder_product, "householder_product", dtype=dtype,
                          from_numpy="torch", cases=lapack_form, properties=FORWARD_CHECKS)
    assert report.passed, str(report)
    assert [r.property for r in report.results] == FORWARD_CHECKS
    assert all(r.examples >= 25 for r in report.results)


def test_rows_outside_lapack_form_are_reported_not_crashed():
    report = verify.check(torch_householder_product, "householder_product",
                          from_numpy="torch", cases=lapack_form, max_examples=5,
                          properties=["transpose is the reversed product"])
    (r,) = report.results
    assert r.verdict == "FAIL" and "not in LAPACK form" in r.message


def test_torch_mistake_is_caught():
    """Forgetting the padding (n < d) returns only n columns of U: a shape failure."""
    def unpadded(V, X, tau=None, *, transpose=False):
        U = torch.linalg.householder_product(V.mT, tau)
        return (U.mT if transpose else U) @ X

    report = verify.check(unpadded, "householder_product", from_numpy="torch",
                          cases=lapack_form, properties=["matches ground truth"])
    assert not report.passed
    assert "shape" in report.failures[0].message or "Error" in report.failures[0].message


@pytest.mark.parametrize("explicit_tau", [True, False])
def test_torch_gradient_is_the_strict_lower_part_of_ours(explicit_tau):
    """torch.autograd's A.grad equals tril(dV^T, -1); dX and dtau agree outright.

    With tau = 2 / (1 + colsum(tril(A, -1)^2)) computed from A inside the graph,
    torch differentiates our default-tau op (householder_product).
    """
    gen = np.random.default_rng(0)
    d, m = 6, 3
    A0, X0, G = gen.standard_normal((d, d)), gen.standard_normal((d, m)), gen.standard_normal((d, m))
    A = torch.tensor(A0, requires_grad=True)
    X = torch.tensor(X0, requires_grad=True)
    below = torch.tril(A, -1)
    tau_np = 2.0 / (1.0 + np.sum(np.tril(A0, -1) ** 2, axis=0))
    tau = torch.tensor(tau_np, requires_grad=True) if explicit_tau else 2.0 / (1.0 + (below**2).sum(0))
    Y = torch.linalg.householder_product(A, tau) @ X
    (Y * torch.tensor(G)).sum().backward()

    V = (np.tril(A0, -1) + np.eye(d)).T
    if explicit_tau:
        dV, dX, dtau = householder_product_vjp(V, X0, G, tau=tau_np)
        np.testing.assert_allclose(tau.grad.numpy(), dtau, rtol=1e-12, atol=1e-12)
    else:
        dV, dX, _ = householder_product_vjp(V, X0, G)
    np.testing.assert_allclose(A.grad.numpy(), np.tril(dV.T, -1), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(X.grad.numpy(), dX, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c_in, c_out, H, W, k", [(1, 1, 1, 1, 1), (2, 3, 5, 4, 3), (3, 2, 6, 7, 5),
                                                   (4, 4, 3, 8, 3)])
def test_circular_conv2d_is_periodic_conv_of_the_embedded_kernel(c_in, c_out, H, W, k):
    """docs/conventions.rst, section 3: a PyTorch layer with circular padding p = k // 2 is
    periodic_conv with embed_kernel(w, (H, W), "oihw"), forward and both cotangents."""
    from refimpl.conv import embed_kernel, embed_kernel_vjp, periodic_conv, periodic_conv_vjp

    gen = np.random.default_rng(c_in * 100 + H * 10 + k)
    x, w = gen.standard_normal((2, c_in, H, W)), gen.standard_normal((c_out, c_in, k, k))
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    p = k // 2
    padded = torch.nn.functional.pad(tx, (p, p, p, p), mode="circular") if p else tx
    z = torch.nn.functional.conv2d(padded, tw)
    G = gen.standard_normal(z.shape)
    z.backward(torch.tensor(G))

    K = embed_kernel(w, (H, W), layout="oihw")
    np.testing.assert_allclose(periodic_conv(x, K), z.detach().numpy(), rtol=1e-12, atol=1e-12)
    dx, dK = periodic_conv_vjp(x, K, G)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    (dw,) = embed_kernel_vjp(w, dK, (H, W), layout="oihw")
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-12, atol=1e-12)
