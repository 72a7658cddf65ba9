"""Record of :mod:`refimpl.nn.network` (docs/conventions.rst, section 4.7).

``sequential(layers, x)`` with the layer list as a differentiable tree primal:
the dot-product test perturbs ``x`` and every parameter of every layer at
once (running statistics of BatchNorm included), autograd checks the
cotangent of ``x``. Ground truth runs the network through the per-layer
references of the other nn records, chosen by layer class
(:data:`LAYER_REFERENCES`) and reading only the layers' fields. Cases are
:func:`verify.strategies.networks` (MLPs and CNNs with every activation and
pooling, some BatchNorm). ``merge_batchnorm`` is checked here: the network
with every BatchNorm merged into the layer before it has the outputs of the
reference network with the BatchNorms.
"""

from __future__ import annotations

import functools

import autograd.numpy as anp
import numpy as np

from refimpl.nn import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
    merge_batchnorm,
)
from refimpl.nn.network import sequential, sequential_vjp

from ...checks import rel_error, run_outputs
from ...registry import Anchor, Case, Op, Primal, Property, register
from ...strategies import networks
from .convolution import conv2d_reference
from .dense import linear_reference
from .normalization import batch_norm_reference
from .pooling import adaptive_reference, avg_pool_reference, max_pool_reference

TOL = {"float64": 1e-12, "float32": 2e-5}


def _sigmoid(np_, x):
    return 0.5 * (1.0 + np_.tanh(0.5 * x))


#: One layer's forward from its definition, by layer class: ``f(np_, layer, x)``.
LAYER_REFERENCES = {
    Linear: lambda np_, l, x: linear_reference(np_, x, l.weight, l.bias),
    Conv2d: lambda np_, l, x: conv2d_reference(np_, x, l.weight, l.bias, l.stride, l.padding),
    AvgPool2d: lambda np_, l, x: avg_pool_reference(np_, x, l.kernel_size, l.stride),
    MaxPool2d: lambda np_, l, x: max_pool_reference(np_, x, l.kernel_size, l.stride),
    AdaptiveAvgPool2d: lambda np_, l, x: adaptive_reference(np_, x, l.output_size),
    ReLU: lambda np_, l, x: np_.maximum(x, 0.0),
    Tanh: lambda np_, l, x: np_.tanh(x),
    Sigmoid: lambda np_, l, x: _sigmoid(np_, x),
    BatchNorm: lambda np_, l, x: batch_norm_reference(
        np_, x, l.weight, l.bias, l.running_mean, l.running_var, l.eps),
    Flatten: lambda np_, l, x: np_.reshape(x, (x.shape[0], -1)),
}


def network_activations(np_, layers, x) -> list:
    """``[x, f_0(x), f_1(f_0(x)), ...]`` from the per-layer references."""
    out = [x]
    for layer in layers:
        out.append(LAYER_REFERENCES[type(layer)](np_, layer, out[-1]))
    return out


def network_reference(np_, layers, x):
    """The network's output from the per-layer references (``np_``: NumPy or autograd.numpy)."""
    return network_activations(np_, layers, x)[-1]


def _case(net):
    return Case({"layers": net[0], "x": net[1]})


def _cases():
    return networks(batchnorm=None).map(_case)


def _merge_preserves_outputs(impl, case, ctx):
    """``sequential(merge_batchnorm(layers), x)`` equals the reference network with its BatchNorms."""
    merged = merge_batchnorm(case.primals["layers"])  # refimpl on the case's NumPy layers
    got = run_outputs(OP, impl, case, ctx, primals={**case.primals, "layers": merged})["out"]
    rounded = {k: ctx.rounded(v) for k, v in case.primals.items()}
    return rel_error(got, network_reference(np, rounded["layers"], rounded["x"]))


def _merge_cases():
    return networks(batchnorm=True).map(_case)


def _bench_case(size):
    """``size = (n, d)``: ``n`` inputs through Linear(d, d), ReLU, Linear(d, d), Tanh,
    Linear(d, 10)."""
    n, d = size
    gen = np.random.default_rng(0)

    def linear(fan_in, fan_out):
        return Linear(gen.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in),
                      gen.standard_normal(fan_out))

    layers = [linear(d, d), ReLU(), linear(d, d), Tanh(), linear(d, 10)]
    return Case({"layers": layers, "x": gen.standard_normal((n, d))})


_NUMPY = functools.partial(network_reference, np)

OP = register(Op(
    forward=sequential,
    vjp=sequential_vjp,
    primals=(Primal("layers", dtype="tree", differentiable=True), Primal("x")),
    cases=_cases,
    reference=_NUMPY,
    naive=lambda layers, x: network_reference(anp, layers, x),
    properties=(Property(
        "merge_batchnorm preserves outputs", _merge_preserves_outputs,
        "a BatchNorm after every weighted layer, merged by refimpl.nn.merge_batchnorm: the "
        "forward of the merged network equals the reference network with the BatchNorms",
        cases=_merge_cases),),
    tolerance=TOL,
    convention="A network is a list of refimpl.nn layers (frozen dataclasses; a candidate reads "
               "each layer's class name and fields: Linear(weight, bias), Conv2d(weight, bias, "
               "stride, padding), AvgPool2d/MaxPool2d(kernel_size, stride), "
               "AdaptiveAvgPool2d(output_size), ReLU, Tanh, Sigmoid, BatchNorm(weight, bias, "
               "running_mean, running_var, eps), Flatten) applied in order; the VJP returns "
               "(layers, x) cotangents, the layers' as one structure per layer holding its array "
               "fields' cotangents in field order (refimpl: layers of the same type).",
    section="4.7",
    references=("PyTorch documentation, torch.nn.Sequential",),
    bench_case=_bench_case, bench_sizes=((64, 256), (256, 1024)),
    bench_anchor=Anchor("definition"),
))
