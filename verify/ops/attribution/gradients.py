"""Records of :mod:`refimpl.attribution.gradients` (docs/conventions.rst, section 5.2).

Ground truth for every method is autograd's gradient of the target score of an
independent naive forward (:mod:`verify.ops.attribution._networks`: the per-layer
references of :mod:`verify.ops.nn`, ReLUs differentiated by the method's rule,
max pooling routed to the first maximum). Cases are
:func:`verify.strategies.networks` (MLPs and CNNs, every activation and pooling,
some BatchNorm) with one drawn target unit per sample; SmoothGrad and VarGrad
draw 1 to 4 noise samples. None has a VJP: differentiating an attribution needs
second derivatives, which the layers do not provide.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from hypothesis import strategies as st

from refimpl.attribution import (
    Epsilon,
    deconvnet,
    guided_backprop,
    input_x_gradient,
    saliency,
    sensitivity,
    smoothgrad,
    vargrad,
)
from refimpl.nn import Conv2d, Linear

from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Output, Primal, Property, register
from ...strategies import rng
from ._formulas import reference_lrp
from ._networks import BENCH_SIZES, bench_case, naive_gradient, naive_output, network_cases
from .relevance import uniform_rules

TOL = {"float64": 1e-10, "float32": 1e-4}
REFERENCES = (
    "Simonyan et al. 2014, Deep inside convolutional networks: visualising image classification "
    "models and saliency maps (ICLR workshop)",
    "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise (arXiv:1706.03825)",
    "Adebayo et al. 2018, Local explanation methods for deep neural networks lack sensitivity to "
    "parameter values (arXiv:1810.03307), VarGrad",
    "Springenberg et al. 2015, Striving for simplicity: the all convolutional net (ICLR "
    "workshop), guided backpropagation",
    "Zeiler and Fergus 2014, Visualizing and understanding convolutional networks (ECCV), "
    "deconvnet",
    "captum: Saliency, InputXGradient, NoiseTunnel, GuidedBackprop, Deconvolution",
)
PRIMALS = (Primal("layers", dtype="tree", differentiable=False), Primal("x"),
           Primal("target", dtype="int64"))
NOISY_PRIMALS = PRIMALS + (Primal("noise"),)
TARGET = ("the score f_t = y[n, target[n]] of sequential(layers, x) (output (N, C)), its gradient "
          "g by one backward pass through the layers' VJPs")


@st.composite
def _cases(draw, signed=False, noisy=False, **network_options):
    primals = draw(network_cases(**{"batchnorm": None, **network_options}))
    params = {"abs": draw(st.booleans())} if signed else {}
    if noisy:
        gen, x = draw(rng()), primals["x"]
        scale = draw(st.sampled_from([0.05, 0.3]))
        primals["noise"] = scale * gen.standard_normal((draw(st.integers(1, 4)),) + x.shape)
    return Case(primals, params)


def _saliency(layers, x, target, abs=True):
    g = naive_gradient(layers, x, target)
    return np.abs(g) if abs else g


def _noisy(layers, x, target, noise, abs):
    return np.stack([_saliency(layers, x + e, target, abs) for e in noise])


def _rounded(case, ctx):
    return {k: ctx.rounded(v) for k, v in case.primals.items()}


# -- properties (each takes the record it checks) -----------------------------------------


def _sums_to_squared_norm(op):
    def check(impl, case, ctx):
        """Per sample, ``sum_i R_i = ||grad f_t||^2`` (the reference gradient)."""
        got = run_outputs(op, impl, case, ctx)["out"]
        p = _rounded(case, ctx)
        g = naive_gradient(p["layers"], p["x"], p["target"])
        n = g.shape[0]
        return rel_error(got.reshape(n, -1).sum(axis=1), (g.reshape(n, -1) ** 2).sum(axis=1))
    return check


def _bias_free_relu_cases():
    return _cases(activations=("relu",), bias=False, batchnorm=False)


def _is_lrp0(op):
    def check(impl, case, ctx):
        """Input times gradient equals the LRP-0 formulas (epsilon 1e-13, ``R_out = e_t y_t``)."""
        got = run_outputs(op, impl, case, ctx)["out"]
        p = _rounded(case, ctx)
        layers, x = p["layers"], p["x"]
        y = naive_output(np, layers, x)
        R_out = y * (np.arange(y.shape[1]) == p["target"][:, None])
        rules = uniform_rules(layers, Epsilon(epsilon=1e-13), pool_epsilon=1e-13)
        return rel_error(got, reference_lrp(layers, x, R_out, rules)[0][0])
    return check


def _zero_noise(expected):
    def factory(op):
        def check(impl, case, ctx):
            primals = {**case.primals, "noise": np.zeros_like(case.primals["noise"])}
            got = run_outputs(op, impl, case, ctx, primals=primals)["out"]
            p = _rounded(case, ctx)
            sal = _saliency(p["layers"], p["x"], p["target"], case.params["abs"])
            return rel_error(got, expected(sal), scale=np.linalg.norm(sal))
        return check
    return factory


def _positive(layers):
    """Every weight and bias made positive: with positive inputs, every ReLU input and every
    cotangent of the target score is positive."""
    def fix(layer):
        if isinstance(layer, (Linear, Conv2d)):
            return dataclasses.replace(layer, weight=np.abs(layer.weight),
                                       bias=None if layer.bias is None else np.abs(layer.bias))
        return layer
    return [fix(layer) for layer in layers]


def _positive_cases():
    return _cases(activations=("relu",), batchnorm=False).map(
        lambda c: Case({**c.primals, "layers": _positive(c.primals["layers"]),
                        "x": np.abs(c.primals["x"])}, c.params))


def _equals_gradient(op):
    def check(impl, case, ctx):
        got = run_outputs(op, impl, case, ctx)["out"]
        p = _rounded(case, ctx)
        return rel_error(got, naive_gradient(p["layers"], p["x"], p["target"]))
    return check


# -- records ------------------------------------------------------------------------------


def _record(forward, reference, convention, primals=PRIMALS, cases=_cases, properties=(),
            tolerance=TOL, outputs=(Output("out"),)):
    """Register ``forward``'s record; ``properties`` are ``(name, check factory, description,
    extra Property fields)``, each factory called with the record. Benchmarked on
    :func:`~verify.ops.attribution._networks.bench_case` against the reference (autograd's
    gradient through the naive network)."""
    noise_samples = 4 if primals is NOISY_PRIMALS else 0
    op = Op(forward=forward, primals=primals, outputs=outputs, cases=cases, reference=reference,
            tolerance=tolerance,
            convention=convention, section="5.2", references=REFERENCES,
            bench_case=functools.partial(bench_case, noise_samples=noise_samples),
            bench_sizes=BENCH_SIZES, bench_anchor=Anchor("autograd"))
    return register(dataclasses.replace(op, properties=tuple(
        Property(name, factory(op), description, **extra)
        for name, factory, description, extra in properties)))


_POSITIVE = ("equals the gradient on a positive ReLU network", _equals_gradient,
             "positive weights, biases and inputs (every ReLU input and cotangent positive): the "
             "modified backward pass is the gradient (autograd)", {"cases": _positive_cases})

_record(saliency, _saliency,
        f"saliency(layers, x, target, abs=True): |g| (captum) or g, with g {TARGET}; ReLU "
        "gradient 0 at 0, max pooling to the first maximum.",
        cases=lambda: _cases(signed=True))

_record(sensitivity, lambda layers, x, target: naive_gradient(layers, x, target) ** 2,
        f"sensitivity(layers, x, target) = g**2 elementwise, g {TARGET}.",
        # squaring doubles the gradient's relative rounding error
        tolerance={"float64": 2 * TOL["float64"], "float32": 2 * TOL["float32"]},
        properties=[("sums to the squared gradient norm", _sums_to_squared_norm,
                     "per sample, the sum of the relevance is ||grad f_t||^2 (autograd)", {})])

_record(input_x_gradient, lambda layers, x, target: x * naive_gradient(layers, x, target),
        f"input_x_gradient(layers, x, target) = x * g, g {TARGET}.",
        properties=[("equals LRP-0 on a bias-free ReLU network", _is_lrp0,
                     "x * g equals the epsilon rule's formulas (epsilon 1e-13, R_out = e_t y_t) "
                     "on dense matrices", {"tolerance": {"float64": 1e-7, "float32": 2e-3},
                                           "cases": _bias_free_relu_cases})])

_record(smoothgrad,
        lambda layers, x, target, noise, abs=True: _noisy(layers, x, target, noise, abs).mean(0),
        "smoothgrad(layers, x, target, noise, abs=True) = mean over s of saliency(x + noise[s], "
        "abs) (noise given, shape (S, *x.shape)); captum's NoiseTunnel over Saliency.",
        primals=NOISY_PRIMALS, cases=lambda: _cases(signed=True, noisy=True),
        properties=[("zero noise gives the saliency", _zero_noise(lambda sal: sal),
                     "noise = 0: SmoothGrad equals the saliency (autograd)", {})])

_record(vargrad,
        lambda layers, x, target, noise, abs=True: _noisy(layers, x, target, noise, abs).var(0),
        "vargrad(layers, x, target, noise, abs=True) = population variance (divisor S) over s "
        "of saliency(x + noise[s], abs); captum's NoiseTunnel(nt_type='vargrad').",
        primals=NOISY_PRIMALS, cases=lambda: _cases(signed=True, noisy=True),
        # a variance of nearly equal saliencies: float32 loses eps |S| / std(S) of it; an
        # exactly constant saliency (a linear network) has variance 0 and float32 rounding
        # noise of eps S^2: held to an absolute floor below the cases' S^2 (0.01 to 1)
        tolerance={"float64": 1e-9, "float32": 1e-2}, outputs=(Output("out", scale=1e-4),),
        properties=[("zero noise gives zero", _zero_noise(np.zeros_like),
                     "noise = 0: VarGrad is 0 (relative to the saliency's size)", {})])

_record(guided_backprop, lambda layers, x, target: naive_gradient(layers, x, target, "guided"),
        f"guided_backprop(layers, x, target): as the gradient ({TARGET}) but every ReLU with "
        "input a passes [a > 0] max(g, 0); other layers keep their VJPs (captum).",
        properties=[_POSITIVE])

_record(deconvnet, lambda layers, x, target: naive_gradient(layers, x, target, "deconvnet"),
        f"deconvnet(layers, x, target): as the gradient ({TARGET}) but every ReLU passes "
        "max(g, 0) whatever its input's sign; other layers keep their VJPs (captum).",
        properties=[_POSITIVE])
