"""Record of :mod:`refimpl.nn.reshape` (docs/conventions.rst, section 4.6).

Ground truth is ``numpy.reshape(x, (N, -1))`` (row-major); flattening is
linear in ``x`` (adjoint test).
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.nn.reshape import flatten, flatten_vjp

from ...registry import Anchor, Case, Op, Primal, register
from ...strategies import rng
from .activation import bench_case


@st.composite
def _cases(draw):
    gen = draw(rng())
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    return Case({"x": gen.standard_normal(shape)})


OP = register(Op(
    forward=flatten,
    vjp=flatten_vjp,
    primals=(Primal("x"),),
    cases=_cases,
    reference=lambda x: np.reshape(x, (x.shape[0], -1)),
    naive=lambda x: anp.reshape(x, (x.shape[0], -1)),
    linear_in=("x",),
    tolerance={"float64": 1e-12, "float32": 2e-5},
    convention="(N, ...) -> (N, prod(...)) in row-major (C) order, the batch axis kept "
               "(PyTorch nn.Flatten()); the cotangent is reshaped back.",
    section="4.6",
    references=("PyTorch documentation, torch.nn.Flatten",),
    # A view either way: the ratio is the op's fixed cost (checks, namespace) over NumPy's.
    bench_case=bench_case,
    bench_sizes=((32, 16, 16, 16),),
    bench_anchor=Anchor("reshape", lambda case: lambda: np.reshape(
        case.primals["x"], (case.primals["x"].shape[0], -1))),
))
