"""Records of :mod:`refimpl.linalg.householder` (docs/conventions.rst, section 1.1).

``householder_product`` has primals ``V``, ``X`` and the optional ``tau``
(cases draw the default ``tau = 2 / ||v||^2`` and explicit LAPACK-style
``tau`` with zeros); ``householder_matrix`` has ``V`` and the optional
``tau``. Ground truth is the product of dense ``I - tau v v^T`` built from
the definition; LAPACK (``dgeqrf``/``dorgqr``/``dormqr``) is checked as an
invariant under the mapping of the conventions.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import scipy.linalg.lapack as lapack
from hypothesis import strategies as st

from refimpl.linalg.householder import (
    METHODS,
    householder_matrix,
    householder_matrix_vjp,
    householder_product,
    householder_product_vjp,
)

from ... import anchors
from ...checks import rel_error, run_outputs, run_vjp
from ...registry import Anchor, Case, Op, Primal, Property, register
from ...strategies import batch_shapes, lapack_reflector_cases, rng, rows_with_norms

CONVENTION = (
    "Reflectors are the rows of V (..., n, d); H(v) = I - tau v v^T, tau = 2/||v||^2 by default "
    "(explicit LAPACK tau optional, tau = 0: identity); U = H(v_1) ... H(v_n); forward returns "
    "U @ X (H(v_n) acts first), transpose=True U^T @ X. LAPACK/torch/JAX mapping: row i of V = "
    "column i of tril(A, -1) + I, same tau."
)

REFERENCES = (
    "Mhammedi et al. 2017, Efficient orthogonal parametrisation of RNNs (FastH, arXiv:1612.00188)",
    "Schreiber and Van Loan 1989, A storage-efficient WY representation (SIAM J. Sci. Stat. Comput.)",
    "Joffrain et al. 2006, Accumulating Householder transformations, revisited (ACM TOMS 32)",
)
TOL = {"float64": 1e-12, "float32": 2e-5}


# -- the definition, in NumPy and in autograd.numpy ---------------------------------------


def _dense_product(np_, V, tau, transpose):
    """``U = prod_i (I - tau_i v_i v_i^T)`` from the definition, applied as U or U^T."""
    d = V.shape[-1]
    U = np_.eye(d)
    for i in range(V.shape[-2]):
        v = V[..., i, :]
        U = U @ (np_.eye(d) - tau[..., i, None, None] * v[..., :, None] * v[..., None, :])
    return np_.swapaxes(U, -1, -2) if transpose else U


def _default_tau(np_, V):
    return 2.0 / np_.sum(V * V, axis=-1)


def _reference(V, X, tau=None, *, transpose=False, **_):
    tau = _default_tau(np, V) if tau is None else tau
    return _dense_product(np, V, tau, transpose) @ X


def _naive(V, X, tau=None, *, transpose=False, **_):
    tau = _default_tau(anp, V) if tau is None else tau
    return anp.matmul(_dense_product(anp, V, tau, transpose), X)


def _reference_matrix(V, tau=None, **_):
    return _dense_product(np, V, _default_tau(np, V) if tau is None else tau, False)


def _naive_matrix(V, tau=None, **_):
    return _dense_product(anp, V, _default_tau(anp, V) if tau is None else tau, False)


# -- inputs -------------------------------------------------------------------------------


@st.composite
def _cases(draw, explicit_tau=None, data=True):
    """Reflectors with batch axes; ``tau`` explicit (with zeros), default, or drawn (``None``)."""
    gen = draw(rng())
    d = draw(st.integers(1, 8))
    n = draw(st.integers(1, d + 2))
    m = draw(st.integers(1, 4))
    batch_v, batch_x = draw(batch_shapes())
    V = rows_with_norms(gen, batch_v + (n, d))
    primals = {"V": V}
    if data:
        primals["X"] = gen.standard_normal(batch_x + (d, m))
    if draw(st.booleans()) if explicit_tau is None else explicit_tau:
        # Orthogonal reflectors (tau = 2/||v||^2) mixed with identities (tau = 0).
        keep = gen.uniform(size=V.shape[:-1]) < 0.8
        primals["tau"] = np.where(keep, 2.0 / np.sum(V * V, axis=-1), 0.0)
    if not data:
        return Case(primals)
    params = {
        "transpose": draw(st.booleans()),
        "method": draw(st.sampled_from(METHODS)),
        "block_size": draw(st.one_of(st.none(), st.integers(1, n + 1))),
    }
    return Case(primals, params)


def _default_tau_cases():
    return _cases(explicit_tau=False)


# -- invariants (impl.forward / impl.vjp may be refimpl's or a candidate's) -----------------

_PRIMALS = ("V", "X", "tau")


def _call(impl, case, ctx, **changes):
    """The forward on ``ctx`` with primals or params replaced by ``changes``, as float64 NumPy."""
    primals = {**case.primals, **{k: v for k, v in changes.items() if k in _PRIMALS}}
    params = {**case.params, **{k: v for k, v in changes.items() if k not in _PRIMALS}}
    return run_outputs(OP, impl, Case(primals, params), ctx)["out"]


def _vjp(impl, case, ctx, **params):
    """All cotangents, concatenated, for a fixed random cotangent."""
    V, X = case.primals["V"], case.primals["X"]
    out_shape = np.broadcast_shapes(V.shape[:-2], X.shape[:-2]) + X.shape[-2:]
    G = np.random.default_rng(5).standard_normal(out_shape)
    cotangents = run_vjp(OP, impl, Case(case.primals, {**case.params, **params}), ctx, [G])
    return np.concatenate([leaf.ravel() for leaves in cotangents.values() for leaf in leaves])


def _identity_for(case):
    d = case.primals["V"].shape[-1]
    return np.broadcast_to(np.eye(d), case.primals["V"].shape[:-2] + (d, d)).copy()


def _orthogonality(impl, case, ctx):
    U = _call(impl, case, ctx, X=_identity_for(case))
    d = U.shape[-1]
    return rel_error(np.swapaxes(U, -1, -2) @ U, np.broadcast_to(np.eye(d), U.shape))


def _involution(impl, case, ctx):
    one = {k: v[..., :1, :] if k == "V" else v[..., :1] for k, v in case.primals.items() if k != "X"}
    once = _call(impl, case, ctx, **one)
    twice = _call(impl, case, ctx, **one, X=once)
    return rel_error(twice, np.broadcast_to(ctx.rounded(case.primals["X"]), twice.shape))


def _scale_invariance(impl, case, ctx):
    V = case.primals["V"]
    c = np.random.default_rng(7).uniform(0.25, 4.0, size=V.shape[:-1] + (1,))
    c[..., ::2, :] *= -1
    return rel_error(_call(impl, case, ctx, V=c * V), _call(impl, case, ctx))


def _gradient_orthogonal_to_v(impl, case, ctx):
    V, X = case.primals["V"], case.primals["X"]
    out_shape = np.broadcast_shapes(V.shape[:-2], X.shape[:-2]) + X.shape[-2:]
    G = np.random.default_rng(3).standard_normal(out_shape)
    (dV,) = run_vjp(OP, impl, case, ctx, [G])["V"]
    dots = np.sum(ctx.rounded(V) * dV, axis=-1)
    # v . dL/dv has the scale of |v| |dL/dv| ~ 2 |G| |X|: measure against that, not |dL/dv|,
    # which is itself zero (to rounding) when d = 1.
    return float(np.max(np.abs(dots)) / (np.linalg.norm(G) * np.linalg.norm(X)))


def _determinant_parity(impl, case, ctx):
    U = _call(impl, case, ctx, X=_identity_for(case))
    V = case.primals["V"]
    tau = case.primals.get("tau", np.ones(V.shape[:-1]))
    proper = np.sum(tau != 0, axis=-1)
    return float(np.max(np.abs(np.linalg.det(U) - (-1.0) ** proper)))


def _transpose_is_reversed(impl, case, ctx):
    reversed_primals = {k: np.flip(v, axis=-2 if k == "V" else -1)
                        for k, v in case.primals.items() if k != "X"}
    flipped = _call(impl, case, ctx, transpose=not case.params["transpose"], **reversed_primals)
    return rel_error(flipped, _call(impl, case, ctx))


def _block_size_invariance(impl, case, ctx):
    n = case.primals["V"].shape[-2]
    sizes = sorted({1, 3, 8, n, max(1, n - 1), n + 1})
    outs = [_call(impl, case, ctx, method="wy", block_size=k) for k in sizes]
    vjps = [_vjp(impl, case, ctx, method="wy", block_size=k) for k in sizes]
    return max(max(rel_error(o, outs[0]) for o in outs), max(rel_error(g, vjps[0]) for g in vjps))


def _methods_agree(impl, case, ctx):
    outs = [_call(impl, case, ctx, method=m) for m in METHODS]
    vjps = [_vjp(impl, case, ctx, method=m) for m in METHODS]
    return max(max(rel_error(o, outs[0]) for o in outs), max(rel_error(g, vjps[0]) for g in vjps))


def _lapack_matrix(V):
    """(a, tau) of LAPACK with ``U = dorgqr(a, tau) diag(sign(diag R))`` for dense ``U``."""
    U = _dense_product(np, V, _default_tau(np, V), False)
    qr, tau, _, info = lapack.dgeqrf(U)
    assert info == 0
    return qr, tau, np.sign(np.diag(qr))


def _agrees_with_lapack_dorgqr(impl, case, ctx):
    """U from refimpl equals dorgqr of dgeqrf(U) times the signs of diag R (unbatched)."""
    V = case.primals["V"].reshape((-1,) + case.primals["V"].shape[-2:])[0]
    d = V.shape[-1]
    qr, tau, signs = _lapack_matrix(V)
    lwork = int(lapack.dorgqr(qr, tau, lwork=-1)[1][0])
    Q, _, info = lapack.dorgqr(qr, tau, lwork=lwork)
    assert info == 0
    U = _call(impl, Case({"V": V, "X": np.eye(d)}, case.params), ctx)
    expected = Q * signs
    return rel_error(np.swapaxes(U, -1, -2) if case.params["transpose"] else U, expected)


def _agrees_with_lapack_dormqr(impl, case, ctx):
    """Reflectors and tau from dgeqrf: our product equals dormqr ('N' or 'T') and dorgqr."""
    V, X, tau = case.primals["V"], case.primals["X"], case.primals["tau"]
    d, n = V.shape[-1], V.shape[-2]
    a = np.ascontiguousarray(V.T)  # column i = reflector i, unit diagonal, zeros above
    trans = "T" if case.params["transpose"] else "N"
    lwork = int(lapack.dormqr("L", trans, a, tau, X, lwork=-1)[1][0])
    QX, _, info = lapack.dormqr("L", trans, a, tau, X, lwork=max(lwork, 1))
    assert info == 0
    errors = [rel_error(_call(impl, case, ctx), QX)]
    if n == d:
        lwork = int(lapack.dorgqr(a, tau, lwork=-1)[1][0])
        Q, _, info = lapack.dorgqr(a, tau, lwork=lwork)
        U = _call(impl, case, ctx, X=np.eye(d), transpose=False)
        errors.append(rel_error(U, Q))
    return max(errors)


PROPERTIES = (
    Property("orthogonality", _orthogonality, "U^T U = I, with U = forward(V, I)"),
    Property("single reflector is an involution", _involution, "H(v) H(v) X = X"),
    Property("determinant parity", _determinant_parity,
             "det U = (-1)^(number of proper reflectors)", tolerance=TOL),
    Property("transpose is the reversed product", _transpose_is_reversed,
             "U^T X = product of the reflectors in reverse order"),
    Property("scale invariance", _scale_invariance, "H(c v) = H(v) for c != 0 (default tau)",
             cases=_default_tau_cases),
    Property("gradient orthogonal to v", _gradient_orthogonal_to_v,
             "v_i . dL/dv_i = 0 with the default tau (relative to |G| |X|)",
             cases=_default_tau_cases),
    Property("agrees with LAPACK dormqr/dorgqr", _agrees_with_lapack_dormqr,
             "reflectors and tau from dgeqrf: U X equals dormqr, U equals dorgqr",
             cases=lapack_reflector_cases),
    Property("block-size invariance", _block_size_invariance,
             "wy forward and vjp agree for k in {1, 3, 8, n-1, n, n+1}", refimpl_only=True),
    Property("methods agree", _methods_agree,
             "sequential, dense and wy agree (forward and vjp)", refimpl_only=True),
    Property("agrees with LAPACK dorgqr", _agrees_with_lapack_dorgqr,
             "U equals dorgqr(dgeqrf(U)) diag(sign(diag R))", refimpl_only=True,
             cases=_default_tau_cases),
)


def _bench_case(size):
    d, m = size
    gen = np.random.default_rng(0)
    return Case({"V": gen.standard_normal((d, d)), "X": gen.standard_normal((d, m))})


def _gemm_with_u(case):
    """``U @ X`` with ``U`` prebuilt: what applying the product costs once it is formed."""
    d = case.primals["V"].shape[-1]
    return anchors.gemm((d, d), case.primals["X"].shape)


def _bench_matrix_case(size):
    (d,) = size
    return Case({"V": np.random.default_rng(0).standard_normal((d, d))})


def _lapack_dorgqr(case):
    """LAPACK ``dorgqr``: the orthogonal matrix formed from ``d`` reflectors of ``dgeqrf``."""
    d = case.primals["V"].shape[-1]
    qr, tau, _, _ = lapack.dgeqrf(np.random.default_rng(0).standard_normal((d, d)))
    lwork = int(lapack.dorgqr(qr, tau, lwork=-1)[1][0])
    return lambda: lapack.dorgqr(qr, tau, lwork=lwork)


OP = register(Op(
    forward=householder_product,
    vjp=householder_product_vjp,
    primals=(Primal("V"), Primal("X"), Primal("tau", optional=True)),
    cases=_cases,
    reference=_reference,
    naive=_naive,
    properties=PROPERTIES,
    linear_in=("X",),
    tolerance=TOL,
    convention=CONVENTION,
    section="1.1",
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((256, 32), (1024, 32)),
    bench_anchor=Anchor("gemm", _gemm_with_u),
    options=("method", "block_size"),
))


def _matrix_orthogonal(impl, case, ctx):
    U = run_outputs(MATRIX, impl, case, ctx)["out"]
    d = U.shape[-1]
    return rel_error(np.swapaxes(U, -1, -2) @ U, np.broadcast_to(np.eye(d), U.shape))


MATRIX = register(Op(
    forward=householder_matrix,
    vjp=householder_matrix_vjp,
    primals=(Primal("V"), Primal("tau", optional=True)),
    cases=lambda: _cases(data=False),
    reference=_reference_matrix,
    naive=_naive_matrix,
    properties=(Property("orthogonality", _matrix_orthogonal, "U^T U = I"),),
    tolerance=TOL,
    convention="U = H(v_1) ... H(v_n), the d x d matrix of householder_product (formed as one "
               "compact WY block); tau as householder_product.",
    section="1.1",
    references=REFERENCES,
    bench_case=_bench_matrix_case,
    bench_sizes=((256,), (512,)),
    bench_anchor=Anchor("dorgqr", _lapack_dorgqr),
))
