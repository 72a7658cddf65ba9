"""Records of :mod:`refimpl.nn.capsules` (docs/conventions.rst, section 4.10).

Ground truth: ``squash`` from its definition ``|s|^2 / (1 + |s|^2) s / |s|``
and Sabour et al.'s Procedure 1 written as a loop over the iterations with
that squash and a softmax from its definition (autograd.numpy for the naive
forwards, so autograd differentiates through the unrolled iterations).
Squash cases mix capsule lengths from 1e-3 to 1e3; its own properties take
lengths near the float maximum (where ``|s|^2`` overflows) and exact zeros
(where the definition divides 0 by 0).
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.nn.capsules import dynamic_routing, dynamic_routing_vjp, squash, squash_vjp

from ...checks import rel_error, run_outputs, run_vjp, worst
from ...registry import Anchor, Case, Op, Primal, Property, register
from ...strategies import rng
from .categorical import softmax_definition

TOL = {"float64": 1e-11, "float32": 5e-5}
REFERENCES = ("Sabour, Frosst and Hinton 2017, Dynamic routing between capsules (NeurIPS, "
              "arXiv:1710.09829), eq. 1 and Procedure 1",)


def squash_reference(np_, s):
    """``|s|^2 / (1 + |s|^2) * s / |s|`` over the last axis (``s != 0``)."""
    sq = np_.sum(s * s, axis=-1, keepdims=True)
    return sq / (1.0 + sq) * s / np_.sqrt(sq)


def routing_reference(np_, u_hat, n_iter=3):
    """Procedure 1: ``b = 0``; ``n_iter`` times ``c = softmax_j(b)``, ``s_j = sum_i c_ij u_j|i``,
    ``v = squash(s)``, ``b += <u_j|i, v_j>``; return ``v``."""
    b = np.zeros(u_hat.shape[:-1])
    for _ in range(n_iter):
        c = softmax_definition(np_, b, axis=-1)
        v = squash_reference(np_, np_.sum(c[..., None] * u_hat, axis=-3))
        b = b + np_.sum(u_hat * v[..., None, :, :], axis=-1)
    return v


@st.composite
def _squash_cases(draw, zeros=False):
    """Gaussian capsules of 1 to 4 components, lengths ``10^U(-3, 3)``; ``zeros``: some are 0."""
    gen = draw(rng())
    batch = draw(st.sampled_from([(), (3,), (2, 2)]))
    s = gen.standard_normal(batch + (draw(st.integers(1, 4)),))
    lengths = 10.0 ** gen.uniform(-3, 3, batch + (1,))
    s = s / np.linalg.norm(s, axis=-1, keepdims=True) * lengths
    if zeros:
        s = np.where(gen.uniform(size=batch + (1,)) < 0.5, 0.0, s)
    return Case({"s": s})


def _huge(impl, case, ctx):
    """Capsules scaled to the float maximum: ``squash(s) = s / |s|`` to rounding (no overflow)."""
    s = case.primals["s"]
    big = s / np.max(np.abs(s)) * 0.5 * float(np.finfo(ctx.dtype).max)
    got = run_outputs(SQUASH, impl, case, ctx, primals={"s": big})["out"]
    rounded = ctx.rounded(big)
    unit = rounded / np.linalg.norm(rounded / np.max(np.abs(rounded)), axis=-1, keepdims=True) \
        / np.max(np.abs(rounded))
    return rel_error(got, unit)


def _at_zero(impl, case, ctx):
    """``squash(0) = 0`` and its cotangent there is 0 (the Jacobian at 0 vanishes)."""
    s = case.primals["s"]
    zero = np.all(s == 0, axis=-1, keepdims=True)
    got = run_outputs(SQUASH, impl, case, ctx)["out"]
    G = np.random.default_rng(3).standard_normal(s.shape)
    (ds,) = run_vjp(SQUASH, impl, case, ctx, [G])["s"]
    expected = squash_reference(np, np.where(zero, 1.0, ctx.rounded(s)))
    return worst({"output": rel_error(np.where(zero, got, 0.0), 0 * got, scale=1.0),
                  "output off zero": rel_error(np.where(zero, 0.0, got),
                                               np.where(zero, 0.0, expected)),
                  "cotangent at zero": rel_error(np.where(zero, ds, 0.0), 0 * ds, scale=1.0)})


def _squash_numpy(s):
    return squash_reference(np, s)


def _routing_numpy(u_hat, n_iter=3):
    return routing_reference(np, u_hat, n_iter)


def _bench_case(shape):
    """A Gaussian array of ``shape``: capsules ``(n, d)`` to squash, or predictions
    ``(batch, n_in, n_out, d)`` to route (CapsNet's primary to digit capsules: 1152, 10, 16)."""
    name = "s" if len(shape) == 2 else "u_hat"
    return Case({name: np.random.default_rng(0).standard_normal(shape)})


SQUASH = register(Op(
    forward=squash,
    vjp=squash_vjp,
    primals=(Primal("s"),),
    cases=_squash_cases,
    reference=_squash_numpy,
    naive=lambda s: squash_reference(anp, s),
    properties=(
        Property("no overflow at the float maximum", _huge,
                 "capsules of length near the float maximum squash to their unit vectors "
                 "(|s|^2 is never formed)"),
        Property("zero capsules", _at_zero,
                 "squash(0) = 0 with cotangent 0, other capsules as the definition",
                 cases=lambda: _squash_cases(zeros=True)),
    ),
    tolerance=TOL,
    convention="v = |s|^2 / (1 + |s|^2) s / |s| over the last axis, no epsilon, v(0) = 0 with a "
               "zero Jacobian; finite for every finite s.",
    section="4.10",
    references=REFERENCES,
    bench_case=_bench_case, bench_sizes=((4096, 16), (65536, 16)),
    bench_anchor=Anchor("definition"),
))


@st.composite
def _routing_cases(draw, n_iter=None, batch=None):
    """Predictions ``(batch, n_in, n_out, d)`` of moderate size; ``n_iter`` in 1..3 unless given.

    Two or three parents: with one, every coupling is 1 and routing is a plain sum.
    """
    gen = draw(rng())
    shape = draw(st.sampled_from([(), (2,)])) if batch is None else batch
    n_in, n_out, d = draw(st.integers(1, 4)), draw(st.integers(2, 3)), draw(st.integers(1, 3))
    u_hat = gen.standard_normal(shape + (n_in, n_out, d)) * gen.uniform(0.3, 1.5)
    return Case({"u_hat": u_hat}, {"n_iter": draw(st.integers(1, 3)) if n_iter is None else n_iter})


def _one_iteration(impl, case, ctx):
    """With one iteration the couplings are ``1 / n_out``: ``v_j = squash(sum_i u_j|i / n_out)``."""
    u_hat = ctx.rounded(case.primals["u_hat"])
    got = run_outputs(ROUTING, impl, case, ctx)["out"]
    return rel_error(got, squash_reference(np, np.sum(u_hat, axis=-3) / u_hat.shape[-2]))


def _permuted_inputs(impl, case, ctx):
    """Procedure 1 treats the input capsules alike: permuting them leaves ``v`` unchanged."""
    u_hat = case.primals["u_hat"]
    perm = np.random.default_rng(u_hat.shape[-3]).permutation(u_hat.shape[-3])
    moved = run_outputs(ROUTING, impl, case, ctx, primals={"u_hat": u_hat[..., perm, :, :]})
    return rel_error(moved["out"], run_outputs(ROUTING, impl, case, ctx)["out"])


ROUTING = register(Op(
    forward=dynamic_routing,
    vjp=dynamic_routing_vjp,
    primals=(Primal("u_hat"),),
    cases=_routing_cases,
    reference=_routing_numpy,
    naive=lambda u_hat, n_iter=3: routing_reference(anp, u_hat, n_iter),
    properties=(
        Property("one iteration is the squash of the uniform average", _one_iteration,
                 "n_iter = 1: c_ij = 1 / n_out, so v_j = squash(sum_i u_j|i / n_out)",
                 cases=lambda: _routing_cases(n_iter=1)),
        Property("permuting the input capsules", _permuted_inputs,
                 "permuting the input capsules i leaves the parents' v unchanged"),
    ),
    tolerance=TOL,
    convention="Sabour et al.'s Procedure 1 on u_hat (..., n_in, n_out, d): logits b = 0, "
               "n_iter times c = softmax over the parents j, s_j = sum_i c_ij u_j|i, v = squash(s), "
               "b += <u_j|i, v_j>; returns v (..., n_out, d); the VJP runs back through every "
               "iteration (the couplings are not detached).",
    section="4.10",
    references=REFERENCES,
    bench_case=_bench_case, bench_sizes=((4, 1152, 10, 16), (32, 1152, 10, 16)),
    bench_anchor=Anchor("definition"),
))
