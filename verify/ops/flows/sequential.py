"""Records of :mod:`refimpl.flows.sequential` (docs/conventions.rst, section 3.8).

``flow_forward`` (data ``x``), ``flow_inverse`` (data ``z``, round trip) and
``log_prob``, ``sample`` over any flow: the ``flow`` primal is a
differentiable tree, a single layer or a ``Sequential`` of up to three layers
of every kind (:func:`verify.strategies.flows`: couplings with every scale
convention, permutations, ActNorm, LULinear, Householder, the SVD layer and
circular convolutions on vectors; ActNorm, permutations, Glow's 1x1, periodic
and circular convolutions on images). A candidate reads each layer's class
name and fields.

Ground truth: every layer from its definition (:mod:`._common`), the
log-determinants of linear layers by ``slogdet`` of their dense matrices,
and the base density ``scipy.stats.norm.logpdf``. The ``logdet`` outputs
are checked against ``slogdet`` of the Jacobian, one sample at a time;
the cotangent of every parameter array of every layer against autograd.
Invariants: log-determinants add over the layers (each run alone);
the inverse's log-determinant is minus the forward's at the image; a single
ActNorm's density is a Gaussian's (``scipy.stats.norm`` with the implied
mean and scale); a sample's ``log_prob`` equals ``log_prob`` at the sample.
"""

from __future__ import annotations

import functools

import autograd.numpy as anp
import numpy as np
import scipy.stats

from refimpl import flows as fl
from refimpl.flows import sequential as sq

from ...checks import rel_error, run_outputs, worst
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import conditioner, flows
from ._common import LOGDET, flow_reference, gaussian_logpdf, per_sample_points, tree_autograd

REFERENCES = (
    "Papamakarios et al. 2021, Normalizing flows for probabilistic modeling and inference (JMLR 22)",
    "nflows, nflows/flows/base.py (Flow.log_prob, Flow.sample)",
)
TOL = {"float64": 1e-11, "float32": 1e-4}
FLOW = Primal("flow", dtype="tree", differentiable=True)


def _cases(data="x", **options):
    return flows(**options).map(lambda fx: Case({"flow": fx[0], data: fx[1]}))


def _base_logpdf(z):
    """``log N(z_n; 0, I)`` per sample by ``scipy.stats.norm``."""
    return scipy.stats.norm.logpdf(z).reshape(z.shape[0], -1).sum(axis=1)


def _reference_log_prob(flow, x):
    z, logdet = flow_reference(np, flow, x)
    return _base_logpdf(z) + logdet


def _naive_log_prob(flow, x):
    z, logdet = flow_reference(anp, flow, x)
    return gaussian_logpdf(anp, z) + logdet


def _reference_sample(flow, z):
    x, logdet = flow_reference(np, flow, z, inverse=True)
    return x, _base_logpdf(z) - logdet


def _naive_sample(flow, z):
    x, logdet = flow_reference(anp, flow, z, inverse=True)
    return x, gaussian_logpdf(anp, z) - logdet


# -- invariants ---------------------------------------------------------------------------------


def _layers(flow):
    return list(flow.layers) if type(flow).__name__ == "Sequential" else [flow]


def _logdets_add(impl, case, ctx):
    """The flow's output and log-determinant against its layers run one at a time (each alone)."""
    whole = run_outputs(FORWARD, impl, case, ctx)
    x, total = case.primals["x"], 0.0
    for layer in _layers(case.primals["flow"]):
        part = run_outputs(FORWARD, impl, Case({"flow": layer, "x": x}), ctx)
        x, total = part["z"], total + part["logdet"]
    return worst({"z": rel_error(whole["z"], x), "logdet": rel_error(whole["logdet"], total, scale=1.0)})


def _minus_forward_logdet(impl, case, ctx):
    """``flow_inverse(f(y)).logdet = -flow_forward(y).logdet``, ``f(y)`` from the definition."""
    flow, y = ctx.rounded(case.primals["flow"]), ctx.rounded(case.primals["z"])
    image, logdet = flow_reference(np, flow, y)
    got = run_outputs(INVERSE, impl, Case({"flow": case.primals["flow"], "z": image}), ctx)
    return rel_error(got["logdet"], -logdet, scale=1.0)


def _actnorm_is_gaussian(impl, case, ctx):
    """``log p`` of one ActNorm is ``sum_j norm.logpdf(x_j, -b_j e^{-a_j}, e^{-a_j})``."""
    flow = ctx.rounded(case.primals["flow"])
    (layer,) = _layers(flow)
    x = ctx.rounded(case.primals["x"])
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = np.exp(-np.reshape(layer.log_scale, shape))
    mean = -np.reshape(layer.shift, shape) * scale
    expected = scipy.stats.norm.logpdf(x, loc=mean, scale=scale).reshape(x.shape[0], -1).sum(axis=1)
    return rel_error(run_outputs(LOG_PROB, impl, case, ctx)["out"], expected, scale=1.0)


def _sample_density(impl, case, ctx):
    """``sample(z).log_prob`` equals refimpl's ``log_prob`` (on NumPy) at the sample."""
    got = run_outputs(SAMPLE, impl, case, ctx)
    flow = ctx.local(case.primals["flow"])
    expected = np.asarray(sq.log_prob(flow, ctx.local(got["x"])), np.float64)
    return rel_error(got["log_prob"], expected, scale=1.0)


def _single_actnorm_cases():
    return flows(kinds=("actnorm",), max_layers=1, sequential=False).map(
        lambda fx: Case({"flow": fx[0], "x": fx[1]}))


# -- records ------------------------------------------------------------------------------------


def bench_flow(gen, d):
    """A RealNVP-style flow on ``d`` features: two affine couplings (width ``d`` conditioners)
    with a reversal between them, ActNorm and LULinear."""
    mask = tuple(np.arange(d) >= d // 2)
    m = sum(mask)

    def coupling():
        return fl.AffineCoupling(mask, conditioner(gen, d - m, 2 * m, d))

    return sq.Sequential([
        coupling(), fl.Reverse(), fl.ActNorm(0.1 * gen.standard_normal(d), gen.standard_normal(d)),
        coupling(), fl.LULinear(0.1 * gen.standard_normal((d, d)), 0.1 * gen.standard_normal((d, d)),
                                gen.uniform(-1, 1, d), gen.standard_normal(d))])


def _bench_case(size, data="x"):
    """``size = (n, d)``: :func:`bench_flow` on ``d`` features and ``n`` samples."""
    n, d = size
    gen = np.random.default_rng(0)
    return Case({"flow": bench_flow(gen, d), data: gen.standard_normal((n, d))})


BENCH_SIZES = ((256, 64), (256, 1024))


def _bench(data="x"):
    """The bench fields of a record: :func:`bench_flow` cases, the definition as the anchor."""
    return {"bench_case": functools.partial(_bench_case, data=data), "bench_sizes": BENCH_SIZES,
            "bench_anchor": Anchor("definition")}


def _record(forward, vjp, reference, naive, outputs, data="x", properties=(), **fields):
    return register(Op(
        forward=forward, vjp=vjp, primals=(FLOW, Primal(data)), outputs=outputs,
        cases=functools.partial(_cases, data), reference=reference, naive=naive,
        properties=(*properties, tree_autograd(forward.__name__, "flow")),
        tolerance=TOL, data=data, section="3.8", references=REFERENCES, **fields,
    ))


_NUMPY_FORWARD = functools.partial(flow_reference, np)
_NUMPY_INVERSE = functools.partial(flow_reference, np, inverse=True)

FORWARD = _record(
    sq.flow_forward, sq.flow_forward_vjp, _NUMPY_FORWARD,
    lambda flow, x: flow_reference(anp, flow, x), (Output("z"), LOGDET),
    properties=[Property("log-dets add under composition", _logdets_add,
                         "z and logdet of a Sequential equal its layers' run one at a time, "
                         "the log-determinants summed",
                         cases=lambda: _cases(min_layers=2, sequential=True))],
    data="x", slogdet_of="flow_forward", jacobian_points=per_sample_points("x"),
    convention="Any flow layer or Sequential (layers[0] first) on x (n, ...): z = f(x), logdet = "
               "sum of the layers' log|det dz_n/dx_n| (the normalizing direction, nflows' "
               "transform; normflows' and TFP's forward is the inverse).",
    **_bench(),
)
INVERSE = _record(
    sq.flow_inverse, sq.flow_inverse_vjp,
    _NUMPY_INVERSE,
    lambda flow, z: flow_reference(anp, flow, z, inverse=True), (Output("x"), LOGDET),
    properties=[Property("minus the forward's log-det at the image", _minus_forward_logdet,
                         "flow_inverse(f(y)).logdet = -log|det J_f(y)| (f(y) from the definition)")],
    data="z", inverse_of="flow_forward", slogdet_of="flow_inverse",
    jacobian_points=per_sample_points("z"),
    convention="x = f^{-1}(z) (the layers' inverses, last layer first), logdet = log|det dx_n/dz_n| "
               "= -flow_forward's logdet at x.",
    **_bench(data="z"),
)
LOG_PROB = _record(
    sq.log_prob, sq.log_prob_vjp, _reference_log_prob, _naive_log_prob, (Output("out", scale=1.0),),
    properties=[Property("single ActNorm is a Gaussian", _actnorm_is_gaussian,
                         "log_prob(ActNorm(a, b), x) = sum_j scipy.stats.norm.logpdf(x_j, "
                         "-b_j e^{-a_j}, e^{-a_j})", cases=_single_actnorm_cases)],
    convention="log p(x_n) = log N(f(x_n); 0, I) + log|det J_f(x_n)| (standard normal base on the "
               "normalizing direction), shape (n,); the VJP takes g (n,) (g = 1: the gradient of "
               "sum log p).",
    **_bench(),
)
SAMPLE = _record(
    sq.sample, sq.sample_vjp, _reference_sample, _naive_sample,
    (Output("x"), Output("log_prob", scale=1.0)), data="z",
    properties=[Property("log_prob of the sample", _sample_density,
                         "sample(flow, z).log_prob equals refimpl's log_prob at the sample "
                         "(on NumPy)")],
    convention="x = f^{-1}(z) for base draws z (an input), with log p(x_n) = log N(z_n; 0, I) - "
               "log|det dx_n/dz_n|; FlowSample(x, log_prob).",
    **_bench(data="z"),
)
