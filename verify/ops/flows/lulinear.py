"""Records of :mod:`refimpl.flows.lulinear` (docs/conventions.rst, section 3.5).

``lu_linear`` (data ``x``) and ``lu_linear_inverse`` (data ``z``, round trip
divided by ``cond W``), primals ``(x, lower, upper, unconstrained_diag,
bias=None)``. Ground truth forms nflows' ``W`` from the definition
(``np.tril``, ``np.triu``, ``np.diag(log(1 + exp(u)) + 1e-3)``), applies it in
``nn.Linear``'s row layout or solves with it, and takes the log-determinant
from ``numpy.linalg.slogdet(W)``; the log-determinant is also checked against
``slogdet`` of the Jacobian, one sample at a time. Invariants: nflows'
parameter vectors (``lower_entries`` on ``numpy.tril_indices(d, -1)``, ...)
give the same layer, and the layer is Glow's LU weight (refimpl's
``glow_lu_weight`` on NumPy) with ``s = softplus(u) + 1e-3``.
"""

from __future__ import annotations

import functools

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.flows import glow_lu_weight, lulinear

from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng
from ._common import LOGDET, lu_reference, lu_weight, per_sample_points

REFERENCES = ("nflows, nflows/transforms/lu.py (LULinear)",
              "Kingma and Dhariwal 2018, Glow (the LU parametrisation, arXiv:1807.03039)")
TOL = {"float64": 1e-12, "float32": 5e-5}


@st.composite
def _cases(draw, data="x"):
    gen = draw(rng())
    d = draw(st.integers(1, 5))
    primals = {data: gen.standard_normal((draw(st.integers(1, 3)), d)),
               "lower": 0.5 * gen.standard_normal((d, d)), "upper": 0.5 * gen.standard_normal((d, d)),
               "unconstrained_diag": gen.uniform(-1.5, 1.5, d)}
    if draw(st.booleans()):
        primals["bias"] = gen.standard_normal(d)
    return Case(primals)


def _nflows_vectors(d):
    """Row-major order of nflows' ``lower_entries`` and ``upper_entries``."""
    return np.tril_indices(d, k=-1), np.triu_indices(d, k=1)


def _from_nflows_entries(impl, case, ctx):
    """Only the entries nflows stores matter: the others of ``lower`` and ``upper`` are zeroed."""
    p = case.primals
    d = p["lower"].shape[0]
    (li, lj), (ui, uj) = _nflows_vectors(d)
    lower, upper = np.zeros((d, d)), np.zeros((d, d))
    lower[li, lj], upper[ui, uj] = p["lower"][li, lj], p["upper"][ui, uj]
    expected = run_outputs(FORWARD, impl, case, ctx)
    got = run_outputs(FORWARD, impl, Case({**p, "lower": lower, "upper": upper}, case.params), ctx)
    return max(rel_error(got[k], expected[k]) for k in got)


def _is_glow_weight(impl, case, ctx):
    """``z = x W^T + b`` with ``W = glow_lu_weight(L, U, softplus(u) + 1e-3)`` (refimpl on NumPy)."""
    p = {k: ctx.rounded(v) for k, v in case.primals.items()}
    s = np.logaddexp(0.0, p["unconstrained_diag"]) + lulinear.NFLOWS_LU_EPS
    W = glow_lu_weight(ctx.local(p["lower"]), ctx.local(p["upper"]), ctx.local(s))
    expected = p["x"] @ np.asarray(W, np.float64).T + p.get("bias", 0.0)
    return rel_error(run_outputs(FORWARD, impl, case, ctx, ["z"])["z"], expected)


def _condition(case):
    p = case.primals
    return float(np.linalg.cond(lu_weight(np, p["lower"], p["upper"], p["unconstrained_diag"])))


def _bench_case(size, data="x"):
    """``size = (n, d)``: ``n`` samples and a well-conditioned LU weight (off-diagonals 0.1 N(0, 1))."""
    n, d = size
    gen = np.random.default_rng(0)
    return Case({data: gen.standard_normal((n, d)), "lower": 0.1 * gen.standard_normal((d, d)),
                 "upper": 0.1 * gen.standard_normal((d, d)), "unconstrained_diag": gen.uniform(-1, 1, d),
                 "bias": gen.standard_normal(d)})


def _reference(np_, inverse):
    def fn(x, lower, upper, unconstrained_diag, bias=None, eps=lulinear.NFLOWS_LU_EPS):
        return lu_reference(np_, x, lower, upper, unconstrained_diag, bias, eps, inverse)

    return fn


def _record(forward, vjp, properties=(), inverse_of=None):
    data = "z" if inverse_of else "x"
    inverse = inverse_of is not None
    numpy_reference = _reference(np, inverse)
    return register(Op(
        forward=forward, vjp=vjp,
        primals=(Primal(data), Primal("lower"), Primal("upper"), Primal("unconstrained_diag"),
                 Primal("bias", optional=True)),
        outputs=(Output("x" if inverse else "z"), LOGDET),
        cases=functools.partial(_cases, data),
        reference=numpy_reference, naive=_reference(anp, inverse),
        properties=tuple(properties), tolerance=TOL, data=data, inverse_of=inverse_of,
        condition=_condition if inverse else None,
        slogdet_of=forward.__name__, jacobian_points=per_sample_points(data),
        convention=("x = (z - bias) W^{-T} (a solve), W as lu_linear; logdet = -sum log s."
                    if inverse else
                    "z = x W^T + bias (nn.Linear rows), W = (tril(lower, -1) + I)(triu(upper, 1) + "
                    "diag(s)), s = softplus(unconstrained_diag) + eps, eps = 1e-3 (nflows' "
                    "LULinear); logdet = sum log s per sample."),
        section="3.5", references=REFERENCES,
        bench_case=functools.partial(_bench_case, data=data), bench_sizes=((256, 256),),
        bench_anchor=Anchor("definition"),
    ))


FORWARD = _record(lulinear.lu_linear, lulinear.lu_linear_vjp, [
    Property("nflows' parameter vectors", _from_nflows_entries,
             "lower and upper reduced to the entries nflows stores (tril_indices(d, -1), "
             "triu_indices(d, 1)) give the same outputs"),
    Property("Glow's LU weight in nn.Linear rows", _is_glow_weight,
             "z = x glow_lu_weight(lower, upper, softplus(u) + 1e-3)^T + bias (refimpl on NumPy)"),
])
INVERSE = _record(lulinear.lu_linear_inverse, lulinear.lu_linear_inverse_vjp,
                  inverse_of="lu_linear")
