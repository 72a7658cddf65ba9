"""Records of :mod:`refimpl.flows.householder_flows` (docs/conventions.rst, section 3.6).

``householder_flow`` (data ``x``) and ``householder_flow_inverse`` (data
``z``, round trip), primals ``(x, V)`` with ``V`` shared ``(K, d)`` or per
sample ``(n, K, d)``. Ground truth multiplies the reflectors
``I - 2 v v^T / ||v||^2`` densely (the linalg records' definition),
``H_1`` acting first; the log-determinant 0 is also checked against
``slogdet`` of the Jacobian, one sample at a time. Invariant: the flow is
orthogonal (inner products between samples kept for a shared ``V``, each
sample's norm for per-sample reflectors).
"""

from __future__ import annotations

import functools

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.flows import householder_flows as hf

from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, get_op, register
from ...strategies import rng, rows_with_norms
from ._common import LOGDET, householder_reference, per_sample_points

REFERENCES = (
    "Tomczak and Welling 2016, Improving variational auto-encoders using Householder flow "
    "(arXiv:1611.09630)",
    "Mathiasen et al. 2020, Faster orthogonal parameterization with Householder matrices (FastH)",
)
TOL = {"float64": 1e-12, "float32": 2e-5}


@st.composite
def _cases(draw, data="x"):
    gen = draw(rng())
    d = draw(st.integers(1, 5))
    n = draw(st.integers(1, 3))
    k = draw(st.integers(1, d + 1))
    per_sample = draw(st.booleans())
    V = rows_with_norms(gen, (n, k, d) if per_sample else (k, d))
    return Case({data: gen.standard_normal((n, d)), "V": V})


def _orthogonal(name):
    """``<z_i, z_j> = <x_i, x_j>`` for a shared ``V``; ``||z_n|| = ||x_n||`` for per-sample ``V``."""
    def check(impl, case, ctx):
        op = get_op(name)
        first = op.outputs[0].name
        x = ctx.rounded(case.primals[op.data])
        z = run_outputs(op, impl, case, ctx, [first])[first]
        if case.primals["V"].ndim == 2:
            return rel_error(z @ z.T, x @ x.T)
        return rel_error(np.linalg.norm(z, axis=1), np.linalg.norm(x, axis=1))

    return Property("orthogonal", check,
                    "Gram matrix of the samples kept (shared V), each sample's norm kept "
                    "(per-sample V)")


def _bench_case(size, data="x"):
    """``size = (n, d, k)``: ``n`` samples of ``d`` features, ``k`` shared reflectors."""
    n, d, k = size
    gen = np.random.default_rng(0)
    return Case({data: gen.standard_normal((n, d)), "V": gen.standard_normal((k, d))})


def _record(forward, vjp, inverse_of=None):
    data = "z" if inverse_of else "x"
    inverse = inverse_of is not None
    numpy_reference = functools.partial(householder_reference, np, inverse=inverse)
    return register(Op(
        forward=forward, vjp=vjp, primals=(Primal(data), Primal("V")),
        outputs=(Output("x" if inverse else "z"), LOGDET),
        cases=functools.partial(_cases, data),
        reference=numpy_reference,
        naive=functools.partial(householder_reference, anp, inverse=inverse),
        properties=(_orthogonal(forward.__name__),),
        tolerance=TOL, data=data, inverse_of=inverse_of,
        slogdet_of=forward.__name__, jacobian_points=per_sample_points(data, ("V",)),
        convention=("x_n = H_1 ... H_K z_n (U z_n), V as householder_flow; logdet = 0."
                    if inverse else
                    "z_n = H_K ... H_1 x_n = U^T x_n for x (n, d), H_k = I - 2 v_k v_k^T / ||v_k||^2 "
                    "with v_k row k of V (K, d), or of V[n] (n, K, d) per sample; U = "
                    "householder_product's; logdet = 0."),
        section="3.6", references=REFERENCES,
        bench_case=functools.partial(_bench_case, data=data),
        bench_sizes=((256, 256, 16), (256, 1024, 16)), bench_anchor=Anchor("definition"),
    ))


FORWARD = _record(hf.householder_flow, hf.householder_flow_vjp)
INVERSE = _record(hf.householder_flow_inverse, hf.householder_flow_inverse_vjp,
                  inverse_of="householder_flow")
