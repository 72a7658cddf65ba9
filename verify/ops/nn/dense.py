"""Record of :mod:`refimpl.nn.dense` (docs/conventions.rst, section 4.1).

Ground truth is ``x W^T + b`` written out with NumPy (autograd.numpy for the
naive forward); cases draw leading batch axes and the optional bias.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.nn.dense import linear, linear_vjp

from ... import anchors
from ...registry import Anchor, Case, Op, Primal, register
from ...strategies import rng

TOL = {"float64": 1e-12, "float32": 2e-5}
REFERENCES = ("PyTorch documentation, torch.nn.Linear (weight layout (out, in))",)


def linear_reference(np_, x, weight, bias=None):
    """``y_{..j} = sum_i x_{..i} W_{ji} + b_j`` (``np_``: NumPy or autograd.numpy)."""
    y = np_.matmul(x, np_.transpose(weight))
    return y if bias is None else y + bias


@st.composite
def _cases(draw):
    gen = draw(rng())
    batch = draw(st.sampled_from([(), (3,), (2, 3)]))
    i, o = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    primals = {"x": gen.standard_normal(batch + (i,)), "weight": gen.standard_normal((o, i))}
    if draw(st.booleans()):
        primals["bias"] = gen.standard_normal(o)
    return Case(primals)


def _bench_case(size):
    """``size = (n, in, out)``: a batch of ``n`` inputs, a weight and a bias."""
    n, i, o = size
    gen = np.random.default_rng(0)
    return Case({"x": gen.standard_normal((n, i)), "weight": gen.standard_normal((o, i)),
                 "bias": gen.standard_normal(o)})


OP = register(Op(
    forward=linear,
    vjp=linear_vjp,
    primals=(Primal("x"), Primal("weight"), Primal("bias", optional=True)),
    cases=_cases,
    reference=lambda x, weight, bias=None: linear_reference(np, x, weight, bias),
    naive=lambda x, weight, bias=None: linear_reference(anp, x, weight, bias),
    tolerance=TOL,
    convention="y = x W^T + b with W of shape (out, in) (PyTorch nn.Linear), bias optional, "
               "leading axes of x are batch axes; the VJP sums the weight and bias cotangents "
               "over them.",
    section="4.1",
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((64, 256, 256), (256, 1024, 1024)),
    bench_anchor=Anchor("gemm", lambda case: anchors.gemm(case.primals["x"].shape,
                                                          case.primals["weight"].T.shape)),
))
