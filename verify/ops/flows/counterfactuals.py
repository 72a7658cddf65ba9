"""Record of :mod:`refimpl.flows.counterfactuals` (docs/conventions.rst, section 3.9).

``counterfactual(flow, beta, x)``: the flow is a differentiable tree
(:func:`verify.strategies.flows`), ``beta`` of the shape of one
representation. Ground truth runs the flow from its definition
(:mod:`._common`), removes ``beta``'s component from each representation
and runs the inverse from its definition. Invariants, with the
representation of the candidate's output computed from the definition: the
logit ``beta^T f(x')`` is 0, and ``f(x') - f(x)`` is parallel to ``beta``.
"""

from __future__ import annotations

import functools

import autograd.numpy as anp
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refimpl.flows import counterfactuals as cf

from ...checks import Err, run_outputs
from ...registry import Anchor, Case, Op, Primal, Property, register
from ...strategies import flows, rng
from ._common import flow_reference, tree_autograd
from .sequential import bench_flow

REFERENCES = ("Course material: counterfactual explanations through invertible networks, "
              "f(x) = sigmoid(beta^T NN(x)) with NN invertible",)
TOL = {"float64": 1e-11, "float32": 1e-4}


@st.composite
def _cases(draw):
    """A flow, and ``beta`` at least 18 degrees from every representation (of size two or more).

    The counterfactual's representation ``P f(x)`` then keeps a part of size
    ``>= 0.3 ||f(x)||``: near zero, the error relative to it would measure
    rounding against nothing.
    """
    flow, x = draw(flows())
    assume(x[0].size >= 2)
    beta = draw(rng()).standard_normal(x.shape[1:])
    z = np.reshape(flow_reference(np, flow, x)[0], (x.shape[0], -1))
    cosines = z @ np.ravel(beta) / (np.linalg.norm(z, axis=1) * np.linalg.norm(beta))
    assume(np.all(np.abs(cosines) < 0.95))
    return Case({"flow": flow, "beta": beta, "x": x})


def _remove_beta(np_, z, beta):
    axes = tuple(range(1, z.ndim))
    return z - np_.sum(z * beta, axis=axes, keepdims=True) / np_.sum(beta * beta) * beta


def _counterfactual(np_, flow, beta, x):
    z, _ = flow_reference(np_, flow, x)
    return flow_reference(np_, flow, _remove_beta(np_, z, beta), inverse=True)[0]


_NUMPY = functools.partial(_counterfactual, np)


def _bench_case(size):
    """``size = (n, d)``: :func:`~verify.ops.flows.sequential.bench_flow` on ``d`` features, a
    Gaussian ``beta`` and ``n`` samples."""
    n, d = size
    gen = np.random.default_rng(0)
    return Case({"flow": bench_flow(gen, d), "beta": gen.standard_normal(d),
                 "x": gen.standard_normal((n, d))})


def _representations(impl, case, ctx):
    """``(beta, f(x), f(x'))`` from the definition, ``x'`` the candidate's counterfactual."""
    p = {k: ctx.rounded(v) for k, v in case.primals.items()}
    x_cf = run_outputs(OP, impl, case, ctx)["out"]
    return p["beta"], flow_reference(np, p["flow"], p["x"])[0], flow_reference(np, p["flow"], x_cf)[0]


def _per_sample(a):
    return np.reshape(a, (a.shape[0], -1))


def _logit_is_zero(impl, case, ctx):
    """``|beta^T f(x'_n)| / (||beta|| ||f(x_n)||)`` for every sample."""
    beta, z, z_cf = _representations(impl, case, ctx)
    logits = _per_sample(z_cf) @ np.ravel(beta)
    scale = np.linalg.norm(beta) * np.maximum(np.linalg.norm(_per_sample(z), axis=1), 1.0)
    return Err(np.max(np.abs(logits) / scale), "logit")


def _moves_along_beta(impl, case, ctx):
    """The part of ``f(x') - f(x)`` orthogonal to ``beta``, relative to ``||f(x)||``."""
    beta, z, z_cf = _representations(impl, case, ctx)
    move = _per_sample(z_cf - z)
    b = np.ravel(beta) / np.linalg.norm(beta)
    across = move - np.outer(move @ b, b)
    scale = np.maximum(np.linalg.norm(_per_sample(z), axis=1), 1.0)
    return Err(np.max(np.linalg.norm(across, axis=1) / scale), "orthogonal part of the move")


OP = register(Op(
    forward=cf.counterfactual, vjp=cf.counterfactual_vjp,
    primals=(Primal("flow", dtype="tree", differentiable=True), Primal("beta"), Primal("x")),
    cases=_cases,
    reference=_NUMPY,
    naive=lambda flow, beta, x: _counterfactual(anp, flow, beta, x),
    properties=(
        Property("logit at the counterfactual is 0", _logit_is_zero,
                 "beta^T f(x') = 0 for every sample (f from its definition), relative to "
                 "||beta|| ||f(x)||"),
        Property("representation moves only along beta", _moves_along_beta,
                 "f(x') - f(x) has no component orthogonal to beta (f from its definition)"),
        tree_autograd("counterfactual", "flow"),
    ),
    tolerance=TOL, section="3.9", references=REFERENCES,
    bench_case=_bench_case, bench_sizes=((256, 64), (256, 1024)),
    bench_anchor=Anchor("definition"),
    convention="x' = f^{-1}(f(x) - (beta^T f(x) / ||beta||^2) beta) per sample for the classifier "
               "sigmoid(beta^T f(x)) with f an invertible flow; beta has the shape of one f(x)[n].",
))
