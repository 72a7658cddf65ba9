"""Records of :mod:`refimpl.flows.glow` (docs/conventions.rst, section 3.1).

``glow_conv1x1`` (data ``X``, linear in ``X``), its inverse (data ``Z``,
round trip with ``glow_conv1x1`` divided by ``cond W``),
``glow_conv1x1_slogdet`` (primal ``s`` only; the log-determinant of the
Jacobian of ``glow_conv1x1`` with respect to ``X`` of shape ``(c, H, W)``,
with fixed random ``L`` and ``U``: the determinant does not depend on them)
and ``glow_lu_weight`` (the weight ``W = P L~ (U~ + diag(s))`` itself).

Ground truth forms ``W`` from the definition (``np.tril``, ``np.triu``,
``np.diag``, rows taken by ``perm``) and applies it per pixel with
``einsum`` or ``numpy.linalg.solve``; the log-determinant is
``numpy.linalg.slogdet`` of the dense ``(c HW) x (c HW)`` Jacobian
``kron(W, I_HW)``. Invariants: the ``k = 1`` case of
:func:`refimpl.conv.periodic_conv` and the factors of ``scipy.linalg.lu``.
"""

from __future__ import annotations

import functools

import autograd.numpy as anp
import numpy as np
import scipy.linalg
from hypothesis import strategies as st

from refimpl.conv import embed_kernel, periodic_conv, periodic_conv_slogdet
from refimpl.flows import glow

from ... import anchors
from ...checks import rel_error, run_outputs, worst
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng

REFERENCES = (
    "Kingma and Dhariwal 2018, Glow: generative flow with invertible 1x1 convolutions "
    "(NeurIPS, arXiv:1807.03039)",
    "Hoogeboom, van den Berg, Welling 2019, Emerging convolutions for generative normalizing flows "
    "(ICML, arXiv:1901.11137)",
)
TOL = {"float64": 1e-12, "float32": 5e-6}
INVERSE_TOL = {"float64": 1e-12, "float32": 2e-5}
SLOGDET_TOL = {"float64": 1e-12, "float32": 2e-5}
CONVENTION = (
    "W = P (tril(L, -1) + I)(triu(U, 1) + diag(s)) with (P A)[i] = A[perm[i]]; Z = W X per pixel "
    "of X (..., c, H, W) (PyTorch's column convention, the k = 1 periodic convolution)."
)


# -- the definition, in NumPy and in autograd.numpy ---------------------------------------


def _lu_weight(np_, L, U, s, perm=None):
    """``W = P (tril(L, -1) + I)(triu(U, 1) + diag(s))``, ``(P A)[i] = A[perm[i]]``."""
    c = s.shape[0]
    W = np_.dot(np_.tril(L, -1) + np.eye(c), np_.triu(U, 1) + np_.diag(s))
    return W if perm is None else W[list(perm)]


def _per_pixel(np_, W, X):
    return np_.einsum("oi,...ihw->...ohw", W, X)


def _reference(X, L, U, s, perm=None, np_=np):
    return _per_pixel(np_, _lu_weight(np_, L, U, s, perm), X)


def _reference_inverse(Z, L, U, s, perm=None, np_=np):
    W = _lu_weight(np_, L, U, s, perm)
    c, H, Wd = Z.shape[-3:]
    flat = np_.reshape(np_.moveaxis(Z, -3, -1), (-1, c))
    X = np_.transpose(np_.linalg.solve(W, np_.transpose(flat)))
    return np_.moveaxis(np_.reshape(X, Z.shape[:-3] + (H, Wd, c)), -1, -3)


def _fixed_factors(c):
    """Fixed random ``(L, U)``: the Jacobian's determinant does not depend on them."""
    L, U = np.random.default_rng(c).standard_normal((2, c, c))
    return L, U


def _slogdet_dense(s, shape, perm=None, np_=np):
    """``slogdet`` of the dense Jacobian ``kron(W, I_HW)`` of the 1x1 convolution."""
    W = _lu_weight(np_, *_fixed_factors(s.shape[0]), s, perm)
    return np_.linalg.slogdet(np_.kron(W, np.eye(shape[0] * shape[1])))


def _reference_slogdet(s, shape, perm=None):
    return tuple(_slogdet_dense(s, shape, perm))


def _naive_logabsdet(s, shape, perm=None):
    return _slogdet_dense(s, shape, perm, np_=anp)[1]


def _reference_weight(L, U, s, perm=None):
    return _lu_weight(np, L, U, s, perm)


def _naive_weight(L, U, s, perm=None):
    return _lu_weight(anp, L, U, s, perm)


# -- inputs -------------------------------------------------------------------------------


@st.composite
def _cases(draw, kind="forward"):
    """Signed ``|s|`` in ``[0.5, 2]`` and small triangular factors (``W`` well conditioned).

    ``kind`` is ``forward`` (``X``), ``inverse`` (``Z``), ``slogdet`` (``s``
    and the grid) or ``weight`` (``L``, ``U``, ``s``); ``perm`` is drawn.
    """
    gen = draw(rng())
    c = draw(st.integers(1, 4))
    s = gen.choice([-1.0, 1.0], size=c) * gen.uniform(0.5, 2.0, size=c)
    perm = draw(st.one_of(st.none(), st.permutations(range(c)).map(tuple)))
    if kind == "slogdet":
        return Case({"s": s}, {"shape": (draw(st.integers(1, 4)), draw(st.integers(1, 4))), "perm": perm})
    L, U = 0.3 * gen.standard_normal((c, c)), 0.3 * gen.standard_normal((c, c))
    if kind == "weight":
        return Case({"L": L, "U": U, "s": s}, {"perm": perm})
    shape = draw(st.sampled_from([(), (2,)])) + (c, draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    data = "Z" if kind == "inverse" else "X"
    return Case({data: gen.standard_normal(shape), "L": L, "U": U, "s": s}, {"perm": perm})


# -- invariants (impl.forward may be refimpl's or a candidate's) ----------------------------


def _rounded_weight(case, ctx):
    p = case.primals
    return _lu_weight(np, *(ctx.rounded(p[k]) for k in ("L", "U", "s")), case.params["perm"])


def _as_periodic_kernel(W, grid, ctx):
    """refimpl's ``embed_kernel(W[:, :, None, None], grid)`` on NumPy in the check's dtype."""
    return embed_kernel(ctx.local(W[:, :, None, None]), grid)


def _is_k1_periodic(impl, case, ctx):
    """The k = 1 case: refimpl's ``periodic_conv(X, embed_kernel(W[:, :, None, None]))`` on NumPy."""
    X = case.primals["X"]
    K = _as_periodic_kernel(_rounded_weight(case, ctx), X.shape[-2:], ctx)
    expected = np.asarray(periodic_conv(ctx.local(X), K), dtype=np.float64)
    return rel_error(run_outputs(CONV, impl, case, ctx)["out"], expected)


@functools.lru_cache(maxsize=8)
def _scipy_lu(c):
    """A fixed ``W0`` and its ``scipy.linalg.lu`` factors as ``(W0, L, U, s, perm)``."""
    W0 = np.random.default_rng(c + 17).standard_normal((c, c))
    P, L, U = scipy.linalg.lu(W0)
    return W0, L, U, np.diag(U).copy(), tuple(int(i) for i in P.argmax(axis=1))


def _from_scipy_lu(impl, case, ctx):
    """``P, L, U = scipy.linalg.lu(W0)`` with ``perm = P.argmax(1)``, ``s = diag U`` reproduce ``W0 X``."""
    X = case.primals["X"]
    W0, L, U, s, perm = _scipy_lu(X.shape[-3])
    factored = Case({"X": X, "L": L, "U": U, "s": s}, {**case.params, "perm": perm})
    expected = _per_pixel(np, ctx.rounded(W0), ctx.rounded(X))
    return rel_error(run_outputs(CONV, impl, factored, ctx)["out"], expected)


def _weight_from_scipy_lu(impl, case, ctx):
    """The weight of ``scipy.linalg.lu``'s factors is ``W0`` (``perm = P.argmax(1)``, ``s = diag U``)."""
    W0, L, U, s, perm = _scipy_lu(case.primals["s"].shape[0])
    factored = Case({"L": L, "U": U, "s": s}, {**case.params, "perm": perm})
    return rel_error(run_outputs(WEIGHT, impl, factored, ctx)["out"], ctx.rounded(W0))


def _permutation_sign(perm, c):
    """``det P`` from the dense permutation matrix (LAPACK, independent of any cycle count)."""
    return 1.0 if perm is None else float(np.round(np.linalg.det(np.eye(c)[list(perm)])))


def _weight_determinant(impl, case, ctx):
    """``det W = det P prod s``: ``L~`` has a unit diagonal and ``U~`` none."""
    s = ctx.rounded(case.primals["s"])
    W = run_outputs(WEIGHT, impl, case, ctx)["out"]
    expected = _permutation_sign(case.params["perm"], s.shape[0]) * np.prod(s)
    return rel_error(np.linalg.det(W), expected)


def _slogdet_is_k1_periodic(impl, case, ctx):
    """Equals refimpl's ``periodic_conv_slogdet(embed_kernel(W[:, :, None, None], (H, W)))``."""
    s, perm = ctx.rounded(case.primals["s"]), case.params["perm"]
    W = _lu_weight(np, *_fixed_factors(s.shape[0]), s, perm)
    expected = periodic_conv_slogdet(_as_periodic_kernel(W, case.params["shape"], ctx))
    got = run_outputs(SLOGDET, impl, case, ctx)
    return worst({"sign": rel_error(got["sign"], np.float64(expected.sign)),
                  "logabsdet": rel_error(got["logabsdet"], np.float64(expected.logabsdet), scale=1.0)})


# -- records -------------------------------------------------------------------------------


def _condition(case):
    p = case.primals
    return float(np.linalg.cond(_lu_weight(np, p["L"], p["U"], p["s"], case.params["perm"])))


def _slogdet_points(case):
    """``glow_conv1x1`` at ``X = 0`` of shape ``(c, H, W)``, ``L`` and ``U`` fixed."""
    s = case.primals["s"]
    L, U = _fixed_factors(s.shape[0])
    X = np.zeros((s.shape[0],) + tuple(case.params["shape"]))
    return [(Case({"X": X, "L": L, "U": U, "s": s}, {"perm": case.params["perm"]}), ())]


BENCH_GRID, BENCH_BATCH = (32, 32), 8


def _bench_case(size, kind="image"):
    """``size = (c,)``: LU factors of a ``c x c`` weight and a permutation.

    ``kind="image"`` adds a batch of 8 images of 32 x 32 pixels (``X``, also
    ``Z``); ``"slogdet"`` keeps ``s`` and the grid only.
    """
    (c,) = size
    gen = np.random.default_rng(0)
    L, U = 0.3 * gen.standard_normal((2, c, c))
    s = gen.uniform(0.5, 2.0, c) * gen.choice([-1.0, 1.0], c)
    perm = tuple(int(i) for i in gen.permutation(c))
    if kind == "slogdet":
        return Case({"s": s}, {"shape": BENCH_GRID, "perm": perm})
    primals = {"L": L, "U": U, "s": s}
    if kind == "image":
        primals["X"] = primals["Z"] = gen.standard_normal((BENCH_BATCH, c) + BENCH_GRID)
    return Case(primals, {"perm": perm})


def _weight_and_pixels(case):
    """Shapes ``(W, pixels)``: the ``c x c`` weight against every pixel of the batch at once."""
    c = case.primals["s"].shape[0]
    return (c, c), (BENCH_BATCH, c, BENCH_GRID[0] * BENCH_GRID[1])


def _square(case):
    c = case.primals["s"].shape[0]
    return (c, c)


def _record(forward, vjp, primals, cases, reference, naive, properties=(), tol=TOL,
            bench_kind="image", **fields):
    return register(Op(
        forward=forward, vjp=vjp, primals=tuple(Primal(n) for n in primals.split()), cases=cases,
        reference=reference, naive=naive, properties=tuple(properties), tolerance=tol,
        section="3.1", references=REFERENCES,
        bench_case=functools.partial(_bench_case, kind=bench_kind), bench_sizes=((16,), (64,)),
        **fields,
    ))


CONV = _record(
    glow.glow_conv1x1, glow.glow_conv1x1_vjp, "X L U s", _cases, _reference,
    functools.partial(_reference, np_=anp),
    [Property("k = 1 case of periodic_conv", _is_k1_periodic,
              "equals refimpl's periodic_conv(X, embed_kernel(W[:, :, None, None]))"),
     Property("factors of scipy.linalg.lu", _from_scipy_lu,
              "P, L, U = scipy.linalg.lu(W0) with perm = P.argmax(1), s = diag U reproduce W0 X")],
    data="X", linear_in=("X",), convention=CONVENTION,
    bench_anchor=Anchor("gemm", lambda case: anchors.gemm(*_weight_and_pixels(case))),
)
INVERSE = _record(
    glow.glow_conv1x1_inverse, glow.glow_conv1x1_inverse_vjp, "Z L U s",
    lambda: _cases(kind="inverse"), _reference_inverse,
    functools.partial(_reference_inverse, np_=anp), tol=INVERSE_TOL,
    data="Z", inverse_of="glow_conv1x1", condition=_condition, linear_in=("Z",),
    convention="X = W^{-1} Z per pixel (a solve), W as glow_conv1x1; some s_i = 0 is a ValueError.",
    bench_anchor=Anchor("solve", lambda case: anchors.solve(*_weight_and_pixels(case))),
)
SLOGDET = _record(
    glow.glow_conv1x1_slogdet, glow.glow_conv1x1_slogdet_vjp, "s",
    lambda: _cases(kind="slogdet"), _reference_slogdet, _naive_logabsdet,
    [Property("k = 1 logdet == periodic logdet", _slogdet_is_k1_periodic,
              "equals refimpl's periodic_conv_slogdet(embed_kernel(W[:, :, None, None], (H, W)))")],
    tol=SLOGDET_TOL, outputs=(Output("sign", differentiable=False), Output("logabsdet")),
    slogdet_of="glow_conv1x1", jacobian_points=_slogdet_points,
    convention="SlogdetResult(sign, logabsdet) of the 1x1 convolution on an H x W grid: "
               "logabsdet = H W sum log|s_i|, sign = (det P prod sign s_i)^(H W); the VJP takes "
               "the cotangent of logabsdet.",
    bench_kind="slogdet", bench_anchor=Anchor("slogdet", lambda case: anchors.slogdet(_square(case))),
)
WEIGHT = _record(
    glow.glow_lu_weight, glow.glow_lu_weight_vjp, "L U s",
    lambda: _cases(kind="weight"), _reference_weight, _naive_weight,
    [Property("factors of scipy.linalg.lu", _weight_from_scipy_lu,
              "P, L, U = scipy.linalg.lu(W0) with perm = P.argmax(1), s = diag U give W0"),
     Property("determinant is det P prod s", _weight_determinant,
              "det W = det P prod s_i (numpy.linalg.det of the output)")],
    convention="W = P (tril(L, -1) + I)(triu(U, 1) + diag(s)), (P A)[i] = A[perm[i]]: only the "
               "strictly lower part of L and strictly upper part of U are parameters.",
    bench_kind="weight",
    bench_anchor=Anchor("gemm", lambda case: anchors.gemm(_square(case), _square(case))),
)
