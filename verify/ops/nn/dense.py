"""Record of :mod:`refimpl.nn.dense` (docs/conventions.rst, section 4.1).

Ground truth is ``x W^T + b`` written out with NumPy (autograd.numpy for the
naive forward); cases draw leading batch axes and the optional bias.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.nn.dense import linear, linear_vjp

from ...registry import Case, Op, Primal, register
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
))
