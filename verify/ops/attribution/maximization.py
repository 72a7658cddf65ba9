"""Record of :mod:`refimpl.attribution.maximization` (docs/conventions.rst, section 5.8).

Ground truth runs the same ascent with autograd's gradients of the naive
network. On an affine network the gradient is a constant ``w``, and the
iteration ``x_{k+1} = r x_k + lr w`` (``r = 1 - 2 l2 lr``) has the closed form
``x_n = r^n x_0 + lr w (1 - r^n) / (1 - r)`` (``n lr w`` when ``r = 1``): the
property "closed form on an affine network" holds an implementation to it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from refimpl.attribution import activation_maximization

from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ._networks import (
    SMALL_BENCH_SIZES,
    affine,
    bench_case,
    naive_gradient,
    naive_score,
    network_cases,
)

TOL = {"float64": 1e-10, "float32": 1e-4}


def _reference(layers, x0, unit, *, l2, lr, n_steps):
    x = x0
    for _ in range(n_steps):
        x = x + lr * (naive_gradient(layers, x, unit) - 2.0 * l2 * x)
    squares = (x * x).reshape(x.shape[0], -1).sum(axis=1)
    return {"x": x, "objective": naive_score(np, layers, x, unit) - l2 * squares}


@st.composite
def _cases(draw):
    primals = draw(network_cases(batchnorm=None, max_batch=2))
    return Case({"layers": primals["layers"], "x0": primals["x"], "unit": primals["target"]},
                {"l2": draw(st.sampled_from([0.0, 0.01, 0.5])),
                 "lr": draw(st.sampled_from([0.01, 0.1, 0.3])),
                 "n_steps": draw(st.integers(0, 5))})


def _affine_cases():
    return _cases().map(lambda c: Case({**c.primals, "layers": affine(c.primals["layers"])},
                                       c.params))


def _closed_form(impl, case, ctx):
    """Affine network: ``x_n = r^n x_0 + lr w (1 + r + ... + r^(n-1))``, ``w`` its gradient."""
    got = run_outputs(OP, impl, case, ctx, ["x"])["x"]
    p = {k: ctx.rounded(v) for k, v in case.primals.items()}
    l2, lr, n = case.params["l2"], case.params["lr"], case.params["n_steps"]
    w = naive_gradient(p["layers"], p["x0"], p["unit"])
    r = 1.0 - 2.0 * l2 * lr
    return rel_error(got, r ** n * p["x0"] + lr * w * sum(r ** j for j in range(n)))


def _bench_case(size):
    """The benchmarks' CNN (:func:`._networks.bench_case`), 8 steps from its inputs."""
    case = bench_case(size)
    return Case({"layers": case.primals["layers"], "x0": case.primals["x"],
                 "unit": case.primals["target"]}, {"l2": 0.01, "lr": 0.1, "n_steps": 8})


OP = register(Op(
    forward=activation_maximization,
    primals=(Primal("layers", dtype="tree", differentiable=False), Primal("x0"),
             Primal("unit", dtype="int64")),
    outputs=(Output("x"), Output("objective")),
    cases=_cases,
    reference=_reference,
    properties=(Property("closed form on an affine network", _closed_form,
                         "activations removed: x_n = r^n x0 + lr w sum_{j<n} r^j, r = 1 - 2 l2 lr, "
                         "w the network's constant gradient (autograd)", cases=_affine_cases),),
    tolerance=TOL,
    convention="activation_maximization(layers, x0, unit, l2=0.01, lr=0.1, n_steps=100): "
               "x_{k+1} = x_k + lr (grad f_u(x_k) - 2 l2 x_k) for n_steps steps from x0 (plain "
               "gradient ascent, no momentum or clipping); returns x (the end) and objective "
               "f_u(x) - l2 ||x||^2 per sample.",
    section="5.8",
    references=("Erhan et al. 2009, Visualizing higher-layer features of a deep network "
                "(technical report 1341, Universite de Montreal)",),
    bench_case=_bench_case, bench_sizes=SMALL_BENCH_SIZES, bench_anchor=Anchor("autograd"),
))
