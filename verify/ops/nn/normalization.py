"""Record of :mod:`refimpl.nn.normalization` (docs/conventions.rst, section 4.5).

Ground truth is ``(x - mu) / sqrt(var + eps) * gamma + beta`` per channel
(axis 1), written out in NumPy (autograd.numpy for the naive forward); the
dot-product test and autograd check the cotangents of all five primals,
running statistics included. Cases draw inputs of 2 to 4 axes and ``eps``;
``merge_batchnorm`` is checked through networks (record ``sequential``).
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.nn.normalization import batch_norm, batch_norm_vjp

from ...registry import Anchor, Case, Op, Primal, register
from ...strategies import rng

TOL = {"float64": 1e-12, "float32": 2e-5}
REFERENCES = (
    "Ioffe and Szegedy 2015, Batch normalization (ICML, arXiv:1502.03167)",
    "PyTorch documentation, torch.nn.BatchNorm1d/2d in eval mode",
)


def batch_norm_reference(np_, x, weight, bias, running_mean, running_var, eps=1e-5):
    """Inference-mode batch norm over axis 1 from its definition."""
    shape = (-1,) + (1,) * (x.ndim - 2)

    def channels(v):
        return np_.reshape(v, shape)

    return (x - channels(running_mean)) / np_.sqrt(channels(running_var) + eps) \
        * channels(weight) + channels(bias)


@st.composite
def _cases(draw):
    gen = draw(rng())
    c = draw(st.integers(1, 4))
    spatial = draw(st.sampled_from([(), (3,), (2, 3)]))
    primals = {
        "x": gen.standard_normal((draw(st.integers(1, 3)), c) + spatial),
        "weight": gen.uniform(0.5, 2.0, c) * gen.choice([-1.0, 1.0], c),
        "bias": gen.standard_normal(c),
        "running_mean": gen.standard_normal(c),
        "running_var": gen.uniform(0.5, 2.0, c),
    }
    return Case(primals, {"eps": draw(st.sampled_from([1e-5, 1e-3, 0.1]))})


def _bench_case(size):
    """``size = (n, c, side)``: a batch of ``n`` images of ``c`` channels, ``side x side``."""
    n, c, side = size
    gen = np.random.default_rng(0)
    return Case({"x": gen.standard_normal((n, c, side, side)), "weight": gen.uniform(0.5, 2.0, c),
                 "bias": gen.standard_normal(c), "running_mean": gen.standard_normal(c),
                 "running_var": gen.uniform(0.5, 2.0, c)})


OP = register(Op(
    forward=batch_norm,
    vjp=batch_norm_vjp,
    primals=tuple(Primal(n) for n in ("x", "weight", "bias", "running_mean", "running_var")),
    cases=_cases,
    reference=lambda *args, eps=1e-5: batch_norm_reference(np, *args, eps=eps),
    naive=lambda *args, eps=1e-5: batch_norm_reference(anp, *args, eps=eps),
    tolerance=TOL,
    convention="Inference mode over axis 1: y = (x - running_mean) / sqrt(running_var + eps) "
               "* weight + bias per channel (PyTorch BatchNorm1d/2d in eval mode), eps = 1e-5 by "
               "default; every primal, running statistics included, gets a cotangent.",
    section="4.5",
    references=REFERENCES,
    bench_case=_bench_case,
    bench_sizes=((32, 16, 16), (32, 64, 32)),
    # The definition broadcast over the channels: what a NumPy user writes.
    bench_anchor=Anchor("numpy", lambda case: lambda: batch_norm_reference(np, **case.primals)),
))
