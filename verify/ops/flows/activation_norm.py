"""Records of :mod:`refimpl.flows.activation_norm` (docs/conventions.rst, section 3.4).

``actnorm`` (data ``x``) and ``actnorm_inverse`` (data ``z``, round trip),
primals ``(x, log_scale, shift)`` on vectors ``(n, c)`` or images
``(n, c, H, W)``; the log-determinant against ``slogdet`` of the Jacobian,
one sample at a time. ``actnorm_init`` (outputs ``log_scale``, ``shift``;
params ``ddof``, ``eps`` drawn from nflows', normflows' and Glow's choices).

Ground truth: the layer from its definition, and for the initialisation
``numpy.std(..., ddof=ddof)`` and ``numpy.mean`` over the samples and the
positions. Invariant: ``actnorm`` with the initialised parameters has zero
mean and variance ``(std / (std + eps))^2`` (1 for ``eps = 0``) on the batch,
measured with the same ``ddof``.
"""

from __future__ import annotations

import functools

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.flows import activation_norm as an

from ...checks import Err, rel_error, run_outputs, worst
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng
from ._common import LOGDET, actnorm_reference, per_sample_points

REFERENCES = (
    "Kingma and Dhariwal 2018, Glow: generative flow with invertible 1x1 convolutions "
    "(NeurIPS, arXiv:1807.03039)",
    "nflows, nflows/transforms/normalization.py (ActNorm)",
)
TOL = {"float64": 1e-12, "float32": 2e-5}
#: (ddof, eps) of nflows, normflows and Glow.
INIT_CHOICES = ((1, 0.0), (1, 1e-6), (0, 1e-6))


def _shape(draw, min_samples=1):
    c = draw(st.integers(1, 4))
    spatial = draw(st.sampled_from([(), (2, 2), (1, 3)]))
    return (draw(st.integers(min_samples, 3)), c) + spatial


@st.composite
def _cases(draw, data="x"):
    gen = draw(rng())
    shape = _shape(draw)
    c = shape[1]
    return Case({data: gen.standard_normal(shape), "log_scale": gen.uniform(-1.0, 1.0, c),
                 "shift": gen.standard_normal(c)})


@st.composite
def _init_cases(draw):
    """Per-channel location and scale drawn (``x = m + e^r N(0, 1)``), at least two values per channel."""
    gen = draw(rng())
    shape = _shape(draw, min_samples=2)
    c = shape[1]
    centre = np.reshape(gen.uniform(-3, 3, c), (1, c) + (1,) * (len(shape) - 2))
    spread = np.reshape(np.exp(gen.uniform(-1, 1, c)), (1, c) + (1,) * (len(shape) - 2))
    ddof, eps = draw(st.sampled_from(INIT_CHOICES))
    return Case({"x": centre + spread * gen.standard_normal(shape)}, {"ddof": ddof, "eps": eps})


def _channels_last(x):
    """``(n * positions, c)``: every value of a channel in one column."""
    return np.reshape(np.moveaxis(x, 1, -1), (-1, x.shape[1]))


def _reference_init(x, ddof=1, eps=0.0):
    values = _channels_last(x)
    r = np.std(values, axis=0, ddof=ddof) + eps
    return -np.log(r), -np.mean(values, axis=0) / r


def _naive_init(x, ddof=1, eps=0.0):
    values = anp.reshape(anp.moveaxis(x, 1, -1), (-1, x.shape[1]))
    mean = anp.mean(values, axis=0)
    r = anp.sqrt(anp.sum((values - mean) ** 2, axis=0) / (values.shape[0] - ddof)) + eps
    return -anp.log(r), -mean / r


def _normalises_its_batch(impl, case, ctx):
    """``actnorm(x, *actnorm_init(x))`` has mean 0 and variance ``(std / (std + eps))^2`` per channel."""
    params = run_outputs(INIT, impl, case, ctx)
    x = ctx.rounded(case.primals["x"])
    values = _channels_last(x)
    z = values * np.exp(params["log_scale"]) + params["shift"]
    ddof, eps = case.params["ddof"], case.params["eps"]
    std = np.std(values, axis=0, ddof=ddof)
    return worst({"mean": Err(np.max(np.abs(np.mean(z, axis=0)))),
                  "variance": rel_error(np.var(z, axis=0, ddof=ddof), (std / (std + eps)) ** 2)})


def _bench_case(size, data="x"):
    """``size = (n, c)``: ``n`` samples of ``c`` channels and the layer's parameters."""
    n, c = size
    gen = np.random.default_rng(0)
    return Case({data: gen.standard_normal((n, c)), "log_scale": gen.uniform(-1, 1, c),
                 "shift": gen.standard_normal(c)})


def _init_bench_case(size):
    return Case({"x": _bench_case(size).primals["x"]})


def _record(forward, vjp, inverse_of=None):
    data = "z" if inverse_of else "x"
    inverse = inverse_of is not None
    numpy_reference = functools.partial(actnorm_reference, np, inverse=inverse)
    return register(Op(
        forward=forward, vjp=vjp, primals=(Primal(data), Primal("log_scale"), Primal("shift")),
        outputs=(Output("x" if inverse else "z"), LOGDET),
        cases=functools.partial(_cases, data),
        reference=numpy_reference,
        naive=functools.partial(actnorm_reference, anp, inverse=inverse),
        tolerance=TOL, data=data, inverse_of=inverse_of,
        slogdet_of=forward.__name__, jacobian_points=per_sample_points(data),
        convention=("x = (z - shift) exp(-log_scale) per channel; logdet = -P sum log_scale."
                    if inverse else
                    "z = exp(log_scale) x + shift per channel (axis 1 of x (n, c, ...), nflows' "
                    "ActNorm; Glow's bias b' is shift exp(-log_scale)); logdet = P sum log_scale, "
                    "P the positions per channel (H W)."),
        section="3.4", references=REFERENCES,
        bench_case=functools.partial(_bench_case, data=data), bench_sizes=((256, 1024),),
        bench_anchor=Anchor("definition"),
    ))


ACTNORM = _record(an.actnorm, an.actnorm_vjp)
ACTNORM_INVERSE = _record(an.actnorm_inverse, an.actnorm_inverse_vjp, inverse_of="actnorm")
INIT = register(Op(
    forward=an.actnorm_init, vjp=an.actnorm_init_vjp, primals=(Primal("x"),),
    outputs=(Output("log_scale", scale=1.0), Output("shift")),
    cases=_init_cases, reference=_reference_init, naive=_naive_init,
    properties=(Property("zero mean, unit variance on its batch", _normalises_its_batch,
                         "actnorm(x, *actnorm_init(x)) has per-channel mean 0 and variance "
                         "(std / (std + eps))^2 (numpy.var with the same ddof)"),),
    tolerance=TOL,
    convention="log_scale = -log(std + eps), shift = -mean exp(log_scale) per channel over the "
               "samples and positions, std with ddof (defaults nflows': ddof=1, eps=0; normflows "
               "eps=1e-6; Glow ddof=0, eps=1e-6).",
    section="3.4", references=REFERENCES,
    bench_case=_init_bench_case, bench_sizes=((256, 1024),),
    bench_anchor=Anchor("definition"),
))
