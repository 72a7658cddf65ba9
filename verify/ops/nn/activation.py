"""Records of :mod:`refimpl.nn.activation` (docs/conventions.rst, section 4.4).

Ground truth: ``numpy.maximum(x, 0)``, ``numpy.tanh`` and
``scipy.special.expit``; naive forwards ``maximum``, ``tanh`` and
``expit`` of autograd. The sigmoid's cases mix in
entries of magnitude up to 1000 (where ``exp(-x)`` overflows). ReLU's
subgradient at 0 (PyTorch's 0) is its own property, on cases with exact zeros
(the generic gradient checks need a point where ReLU is differentiable).
"""

from __future__ import annotations

import autograd.numpy as anp
import autograd.scipy.special as aspecial
import numpy as np
import scipy.special
from hypothesis import strategies as st

from refimpl.nn.activation import relu, relu_vjp, sigmoid, sigmoid_vjp, tanh, tanh_vjp

from ...checks import rel_error, run_vjp
from ...registry import Anchor, Case, Op, Primal, Property, register
from ...strategies import rng

TOL = {"float64": 1e-12, "float32": 2e-5}
REFERENCES = ("PyTorch documentation, torch.nn.ReLU, torch.nn.Tanh and torch.nn.Sigmoid",)


@st.composite
def _cases(draw, large=False, zeros=False):
    """Gaussian ``x`` of 1 to 4 axes; ``large`` scales some entries up to 1000, ``zeros`` zeroes some."""
    gen = draw(rng())
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    x = gen.standard_normal(shape)
    if large:
        x = x * np.where(gen.uniform(size=shape) < 0.3, 10.0 ** gen.uniform(1, 3, shape), 1.0)
    if zeros:
        x = np.where(gen.uniform(size=shape) < 0.5, 0.0, x)
    return Case({"x": x})


def _relu_subgradient_at_zero(impl, case, ctx):
    """The cotangent of ReLU is ``G [x > 0]``: 0 where ``x = 0`` (PyTorch), at every entry."""
    x = case.primals["x"]
    G = np.random.default_rng(2).standard_normal(x.shape)
    (dx,) = run_vjp(RELU, impl, case, ctx, [G])["x"]
    return rel_error(dx, np.where(x > 0, ctx.rounded(G), 0.0))


def bench_case(size):
    """A Gaussian ``x`` of shape ``size`` (the elementwise, row-wise and reshaping nn ops)."""
    return Case({"x": np.random.default_rng(0).standard_normal(size)})


BENCH_SIZES = ((256, 256), (1000, 1000))


def _record(forward, vjp, reference, naive, convention, anchor, cases=_cases, properties=()):
    """``anchor``: ``(name, f)``, the NumPy or SciPy function a user calls for the same values."""
    name, baseline = anchor
    return register(Op(
        forward=forward, vjp=vjp, primals=(Primal("x"),), cases=cases, reference=reference,
        naive=naive, properties=properties, tolerance=TOL, convention=convention, section="4.4",
        references=REFERENCES, bench_case=bench_case, bench_sizes=BENCH_SIZES,
        bench_anchor=Anchor(name, lambda case: lambda: baseline(case.primals["x"])),
    ))


RELU = _record(
    relu, relu_vjp, lambda x: np.maximum(x, 0.0), lambda x: anp.maximum(x, 0.0),
    "max(x, 0) elementwise; the cotangent is G [x > 0], 0 at x = 0 (PyTorch).",
    ("maximum", lambda x: np.maximum(x, 0.0)),
    properties=(Property("subgradient 0 at x = 0", _relu_subgradient_at_zero,
                         "the cotangent is G [x > 0] on inputs with exact zeros (PyTorch's "
                         "subgradient)", cases=lambda: _cases(zeros=True)),),
)
_record(tanh, tanh_vjp, np.tanh, anp.tanh,
        "tanh(x) elementwise; the cotangent is G (1 - tanh(x)^2).", ("tanh", np.tanh))
_record(sigmoid, sigmoid_vjp, scipy.special.expit, aspecial.expit,
        "The logistic 1 / (1 + exp(-x)) elementwise, finite for every finite x (no overflow); "
        "the cotangent is G sigmoid(x) (1 - sigmoid(x)).", ("expit", scipy.special.expit),
        cases=lambda: _cases(large=True))
