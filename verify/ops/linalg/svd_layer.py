"""Records of :mod:`refimpl.linalg.svd_layer` (docs/conventions.rst, section 1.2).

Ground truth is the dense ``W = U diag(s) V^T`` built from the definition
(products of dense ``I - 2 v v^T / ||v||^2``, verify's Householder helper) and
then handed to NumPy/SciPy: ``W @ X``, ``numpy.linalg.solve``,
``numpy.linalg.slogdet``, ``numpy.linalg.svd``, ``scipy.linalg.expm``. The
autograd naive forwards use the same dense construction, with ``inv`` for
solves, ``eigh`` of ``W^T W`` for singular values and a Taylor series for the
exponential. The inverse's round trip (``inverse_of``), the log-determinant
against the Jacobian of ``svd_linear`` (``slogdet_of``) and the adjoint tests
(``linear_in``) come from the relations.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import scipy.linalg
from hypothesis import strategies as st

from refimpl.linalg import svd_layer as svd

from ... import anchors
from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, get_op, register
from ...strategies import batch_shapes, rng, rows_with_norms
from .householder import _default_tau, _dense_product

CONVENTION = (
    "W = U diag(s) V^T with U = H(u_1)...H(u_{n_u}) and V = H(v_1)...H(v_{n_v}) from the rows of "
    "Vu and Vv (default tau = 2 / norm(v)^2, conventions section 1.1); s signed, W's singular values abs(s). "
    "sign det W = (-1)^(n_u + n_v) prod sign(s_i). Symmetric ops use W = U diag(s) U^T."
)
REFERENCES = (
    "Mathiasen et al. 2020, What if neural networks had SVDs? (FastH, NeurIPS, arXiv:2009.13977)",
    "Zhang et al. 2018, Stabilizing gradients for deep neural networks via efficient SVD "
    "parameterization (ICML)",
)
TOL = {"float64": 1e-12, "float32": 2e-5}
# c = (1 - s) / (1 + s) magnifies the rounding of s by up to 2 / |1 + s|^2 ~ 12 here.
CAYLEY_TOL = {"float64": 1e-11, "float32": 2e-4}


# -- the definition, in NumPy and in autograd.numpy ---------------------------------------


def _orthogonal(np_, V):
    return _dense_product(np_, V, _default_tau(np_, V), False)


def _dense(np_, Vu, s, Vv=None):
    """``U diag(s) V^T`` (``V = U`` when ``Vv`` is None) from dense reflectors."""
    U = _orthogonal(np_, Vu)
    V = U if Vv is None else _orthogonal(np_, Vv)
    return np_.matmul(U * s[..., None, :], np_.swapaxes(V, -1, -2))


def _svdvals(W):
    """Singular values of a batch of matrices (LAPACK ``gesdd``).

    ``numpy.linalg.svd`` batches in every NumPy; ``scipy.linalg.svdvals``
    only from SciPy 1.16 on (earlier: "expected matrix").
    """
    return np.linalg.svd(W, compute_uv=False)


def _sv_extremes(np_, W):
    """Largest and smallest singular values from ``eigh(W^T W)`` (autograd-differentiable)."""
    w = np_.linalg.eigh(np_.matmul(np_.swapaxes(W, -1, -2), W))[0]
    return np_.sqrt(np_.max(w, axis=-1)), np_.sqrt(np_.min(w, axis=-1))


def _taylor_expm(W, terms=20, squarings=2):
    """``(sum_k (W / 4)^k / k!)^4``: the cases keep ``||W / 4|| <= 1/2``, where 20 terms are exact."""
    W = W / 2.0**squarings
    total = term = anp.broadcast_to(anp.eye(W.shape[-1]), W.shape)
    for k in range(1, terms):
        term = anp.matmul(term, W) / k
        total = total + term
    for _ in range(squarings):
        total = anp.matmul(total, total)
    return total


def _ref_forward(Vu, s, Vv, X, **_):
    return _dense(np, Vu, s, Vv) @ X


def _naive_forward(Vu, s, Vv, X, **_):
    return anp.matmul(_dense(anp, Vu, s, Vv), X)


def _ref_inverse(Vu, s, Vv, Y, **_):
    W = _dense(np, Vu, s, Vv)
    batch = np.broadcast_shapes(W.shape[:-2], Y.shape[:-2])
    return np.linalg.solve(np.broadcast_to(W, batch + W.shape[-2:]),
                           np.broadcast_to(Y, batch + Y.shape[-2:]))


def _naive_inverse(Vu, s, Vv, Y, **_):
    return anp.matmul(anp.linalg.inv(_dense(anp, Vu, s, Vv)), Y)


def _ref_slogdet(Vu, s, Vv, **_):
    return tuple(np.linalg.slogdet(_dense(np, Vu, s, Vv)))


def _naive_logabsdet(Vu, s, Vv, **_):
    return anp.linalg.slogdet(_dense(anp, Vu, s, Vv))[1]


def _ref_matrix(Vu, s, Vv, **_):
    return _dense(np, Vu, s, Vv)


def _naive_matrix(Vu, s, Vv, **_):
    return _dense(anp, Vu, s, Vv)


def _ref_spectral_norm(Vu, s, Vv, **_):
    return np.max(_svdvals(_dense(np, Vu, s, Vv)), axis=-1)


def _naive_spectral_norm(Vu, s, Vv, **_):
    return _sv_extremes(anp, _dense(anp, Vu, s, Vv))[0]


def _ref_condition_number(Vu, s, Vv, **_):
    sv = _svdvals(_dense(np, Vu, s, Vv))
    return np.max(sv, axis=-1) / np.min(sv, axis=-1)


def _naive_condition_number(Vu, s, Vv, **_):
    big, small = _sv_extremes(anp, _dense(anp, Vu, s, Vv))
    return big / small


def _ref_normalize(Vu, s, Vv, X, **_):
    W = _dense(np, Vu, s, Vv)
    return W @ X / np.max(_svdvals(W), axis=-1)[..., None, None]


def _naive_normalize(Vu, s, Vv, X, **_):
    W = _dense(anp, Vu, s, Vv)
    return anp.matmul(W / _sv_extremes(anp, W)[0][..., None, None], X)


def _ref_expm(Vu, s, X, **_):
    return scipy.linalg.expm(_dense(np, Vu, s)) @ X


def _naive_expm(Vu, s, X, **_):
    return anp.matmul(_taylor_expm(_dense(anp, Vu, s)), X)


def _ref_cayley(Vu, s, X, **_):
    W = _dense(np, Vu, s)
    eye = np.eye(W.shape[-1])
    rhs = (eye - W) @ X
    batch = np.broadcast_shapes(W.shape[:-2], rhs.shape[:-2])
    return np.linalg.solve(np.broadcast_to(eye + W, batch + W.shape[-2:]),
                           np.broadcast_to(rhs, batch + rhs.shape[-2:]))


def _naive_cayley(Vu, s, X, **_):
    W = _dense(anp, Vu, s)
    eye = anp.eye(W.shape[-1])
    return anp.matmul(anp.matmul(eye - W, anp.linalg.inv(eye + W)), X)


# -- inputs -------------------------------------------------------------------------------


def _signed(gen, magnitudes):
    return magnitudes * gen.choice([-1.0, 1.0], size=magnitudes.shape)


def _singular_values(gen, shape, kind):
    """Signed values for each family of ops, away from where the op is undefined."""
    if kind == "logdet":
        # All |s| > 1 or all < 1: log|det W| stays away from 0, so relative errors mean something.
        mags = gen.uniform(1.2, 3.0, size=shape)
        return _signed(gen, mags if gen.uniform() < 0.5 else 1.0 / mags)
    if kind == "cayley":
        # Away from s = -1 (I + W singular) and s = 1 (I - W singular, for C(-W) = C(W)^-1).
        mags = np.where(gen.uniform(size=shape) < 0.5,
                        gen.uniform(0.0, 0.6, size=shape), gen.uniform(1.4, 3.0, size=shape))
        return _signed(gen, mags)
    return _signed(gen, gen.uniform(0.5, 2.0, size=shape))


@st.composite
def _cases(draw, data=True, symmetric=False, kind="layer", min_d=1):
    """Reflector counts vary independently (odd and even), as do the batch shapes."""
    gen = draw(rng())
    d = draw(st.integers(min_d, 6))
    n_u, n_v = draw(st.integers(1, d + 2)), draw(st.integers(1, d + 2))
    m = draw(st.integers(1, 3))
    batch_a, batch_b = draw(batch_shapes())
    primals = {"Vu": rows_with_norms(gen, batch_a + (n_u, d)),
               "s": _singular_values(gen, batch_b + (d,), kind)}
    if not symmetric:
        primals["Vv"] = rows_with_norms(gen, batch_b + (n_v, d))
    if data:
        name = "Y" if kind == "inverse" else "X"
        primals[name] = gen.standard_normal(draw(st.sampled_from([(), batch_a])) + (d, m))
    block = draw(st.one_of(st.none(), st.integers(1, d + 2)))
    return Case(primals, {} if not data else {"block_size": block})


# -- invariants ----------------------------------------------------------------------------


def _condition(s):
    return float(np.max(np.max(np.abs(s), axis=-1) / np.min(np.abs(s), axis=-1)))


def _slogdet_points(case):
    """``svd_linear`` at the first batch element, ``X = 0`` of one column: its Jacobian is ``W``."""
    p = case.primals

    def first(a, core):
        return a.reshape((-1,) + a.shape[a.ndim - core:])[0]

    batch = np.broadcast_shapes(p["Vu"].shape[:-2], p["s"].shape[:-1], p["Vv"].shape[:-2])
    point = Case({"Vu": first(p["Vu"], 2), "s": first(p["s"], 1), "Vv": first(p["Vv"], 2),
                  "X": np.zeros((p["s"].shape[-1], 1))})
    return [(point, (0,) * len(batch))]


def _cond_of_case(case):
    return _condition(case.primals["s"])


def _singular_values_are_abs_s(impl, case, ctx):
    p = case.primals
    W = run_outputs(MATRIX, impl, case, ctx)["out"]
    expected = np.sort(np.abs(ctx.rounded(p["s"])), axis=-1)[..., ::-1]
    return rel_error(_svdvals(W), np.broadcast_to(expected, W.shape[:-1]))


def _normalized_norm_is_one(impl, case, ctx):
    d = case.primals["s"].shape[-1]
    W = run_outputs(NORMALIZE, impl, Case({**case.primals, "X": np.eye(d)}, case.params), ctx)["out"]
    return float(np.max(np.abs(np.max(_svdvals(W), axis=-1) - 1.0)))


def _sym_inverse_pair(op_name):
    """``f(-s)`` undoes ``f(s)``: expm(-W) expm(W) = I and C(-W) C(W) = I."""

    def check(impl, case, ctx):
        op = get_op(op_name)
        once = run_outputs(op, impl, case, ctx)["out"]
        back = run_outputs(op, impl, Case({**case.primals, "s": -ctx.rounded(case.primals["s"]),
                                           "X": once}, case.params), ctx)["out"]
        return rel_error(back, np.broadcast_to(ctx.rounded(case.primals["X"]), back.shape))

    return check


# -- records -------------------------------------------------------------------------------


def _bench_case(size):
    """``Vu, s, Vv`` of order ``d``; for ``size = (d, m)`` also ``m`` columns of data.

    The data is both ``X`` and ``Y`` (the inverse's name); ``s`` in [0.5, 2],
    so every op of the member (inverse, Cayley, log-determinant) is defined.
    """
    d = size[0]
    gen = np.random.default_rng(0)
    primals = {"Vu": gen.standard_normal((d, d)), "s": gen.uniform(0.5, 2.0, d),
               "Vv": gen.standard_normal((d, d))}
    if len(size) == 2:
        primals["X"] = primals["Y"] = gen.standard_normal((d, size[1]))
    return Case(primals)


def _square(case):
    d = case.primals["s"].shape[-1]
    return (d, d)


def _on_data(case):
    """Shapes ``(W, X)``: a dense layer applied to the case's data."""
    return _square(case), case.primals["X"].shape


def _dense_2_norm(case):
    """``numpy.linalg.norm(W, 2)``: the largest singular value from a dense SVD."""
    W = anchors.operand(_square(case))
    return lambda: np.linalg.norm(W, 2)


def _dense_cond(case):
    """``numpy.linalg.cond(W)``: both extreme singular values from a dense SVD."""
    W = anchors.operand(_square(case))
    return lambda: np.linalg.cond(W)


def _dense_expm(case):
    """``scipy.linalg.expm(W) @ X`` for a symmetric ``W`` with spectrum in about [-1, 1]."""
    d = _square(case)[0]
    A = anchors.operand((d, d))
    W, X = (A + A.T) / np.sqrt(8 * d), case.primals["X"]
    return lambda: scipy.linalg.expm(W) @ X


GEMM = Anchor("gemm", lambda case: anchors.gemm(*_on_data(case)))
SOLVE = Anchor("solve", lambda case: anchors.solve(*_on_data(case)))
# Sizes: the anchors' cost grows as d^2 m (GEMM, solve's triangular part) or d^3 (LU, SVD,
# expm, a d x d product), and one ratio should take about a second.
ORDER_AND_COLUMNS = ((256, 32), (1024, 32))
ORDER = ((256,), (1024,))
PRODUCT_ORDER = ((128,), (512,))
DENSE_ORDER = ((64,), (256,))


def _primals(names):
    return tuple(Primal(n) for n in names.split())


def _record(forward, vjp, primals, cases, reference, naive, properties=(), tol=TOL,
            convention="", *, anchor, bench_sizes, **relations):
    return register(Op(
        forward=forward, vjp=vjp, primals=_primals(primals), cases=cases, reference=reference,
        naive=naive, properties=tuple(properties), tolerance=tol,
        convention=CONVENTION + (" " + convention if convention else ""), section="1.2",
        references=REFERENCES, bench_case=_bench_case, bench_sizes=bench_sizes,
        bench_anchor=anchor, options=("block_size",), **relations,
    ))


_record(
    svd.svd_linear, svd.svd_linear_vjp, "Vu s Vv X", _cases, _ref_forward, _naive_forward,
    convention="Forward Y = U (s * (V^T X)).", data="X", linear_in=("X",),
    anchor=GEMM, bench_sizes=ORDER_AND_COLUMNS,
)
_record(
    svd.svd_linear_inverse, svd.svd_linear_inverse_vjp, "Vu s Vv Y",
    lambda: _cases(kind="inverse"), _ref_inverse, _naive_inverse,
    convention="Inverse X = V ((U^T Y) / s); reference numpy.linalg.solve(W, Y).",
    data="Y", inverse_of="svd_linear", condition=_cond_of_case, linear_in=("Y",),
    anchor=SOLVE, bench_sizes=ORDER_AND_COLUMNS,
)
_record(
    svd.svd_linear_slogdet, svd.svd_linear_slogdet_vjp, "Vu s Vv",
    lambda: _cases(data=False, kind="logdet"), _ref_slogdet, _naive_logabsdet,
    convention="SlogdetResult(sign, logabsdet): logabsdet = sum log abs(s_i), sign = "
               "(-1)^(n_u + n_v) prod sign(s_i); the VJP takes the cotangent of logabsdet.",
    slogdet_of="svd_linear", jacobian_points=_slogdet_points,
    outputs=(Output("sign", differentiable=False), Output("logabsdet")),
    anchor=Anchor("slogdet", lambda case: anchors.slogdet(_square(case))), bench_sizes=ORDER,
)
MATRIX = _record(
    svd.svd_linear_matrix, svd.svd_linear_matrix_vjp, "Vu s Vv",
    lambda: _cases(data=False), _ref_matrix, _naive_matrix,
    [Property("singular values are abs(s)", _singular_values_are_abs_s,
              "singular values of W (LAPACK) == sorted abs(s) (U and V orthogonal)")],
    anchor=Anchor("gemm", lambda case: anchors.gemm(_square(case), _square(case))),
    bench_sizes=PRODUCT_ORDER,
)
_record(
    svd.spectral_norm, svd.spectral_norm_vjp, "Vu s Vv",
    lambda: _cases(data=False), _ref_spectral_norm, _naive_spectral_norm,
    convention="norm2(W) = max abs(s); reference the largest singular value of W (LAPACK).",
    anchor=Anchor("norm2", _dense_2_norm), bench_sizes=DENSE_ORDER,
)
_record(
    svd.condition_number, svd.condition_number_vjp, "Vu s Vv",
    # d = 1 has kappa = 1 identically: autograd's gradient of M / m is then pure rounding
    # noise against an exact zero (tests/test_svd_layer.py checks that zero directly).
    lambda: _cases(data=False, min_d=2), _ref_condition_number, _naive_condition_number,
    convention="kappa2(W) = max abs(s) / min abs(s); reference from the singular values of W "
               "(LAPACK).",
    anchor=Anchor("cond", _dense_cond), bench_sizes=DENSE_ORDER,
)
NORMALIZE = _record(
    svd.spectral_normalize, svd.spectral_normalize_vjp, "Vu s Vv X", _cases, _ref_normalize,
    _naive_normalize,
    [Property("normalised layer has spectral norm 1", _normalized_norm_is_one,
              "largest singular value of W / norm2(W) (LAPACK) == 1")],
    convention="(W / norm2(W)) X = U ((s / max abs(s)) * (V^T X)).", linear_in=("X",),
    anchor=GEMM, bench_sizes=ORDER_AND_COLUMNS,
)
_record(
    svd.sym_expm_apply, svd.sym_expm_apply_vjp, "Vu s X",
    lambda: _cases(symmetric=True), _ref_expm, _naive_expm,
    [Property("expm(-W) undoes expm(W)", _sym_inverse_pair("sym_expm_apply"),
              "sym_expm_apply(Vu, -s, sym_expm_apply(Vu, s, X)) == X")],
    convention="expm(W) X = U (exp(s) * (U^T X)); reference scipy.linalg.expm(W) @ X.",
    linear_in=("X",), anchor=Anchor("expm", _dense_expm), bench_sizes=((64, 32), (256, 32)),
)
_record(
    svd.sym_cayley_apply, svd.sym_cayley_apply_vjp, "Vu s X",
    lambda: _cases(symmetric=True, kind="cayley"), _ref_cayley, _naive_cayley,
    [Property("C(-W) undoes C(W)", _sym_inverse_pair("sym_cayley_apply"),
              "(I + W)(I - W)^-1 (I - W)(I + W)^-1 X == X")],
    tol=CAYLEY_TOL,
    convention="(I - W)(I + W)^-1 X = U (((1 - s) / (1 + s)) * (U^T X)); reference "
               "numpy.linalg.solve(I + W, (I - W) X).",
    linear_in=("X",), anchor=SOLVE, bench_sizes=ORDER_AND_COLUMNS,
)
