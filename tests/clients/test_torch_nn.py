"""PyTorch as a client of verify: torch.nn.functional layers and captum attributions.

Written as a PyTorch developer checks their own code: each candidate is the
natural torch call (``F.linear``, ``F.conv2d``, ``F.max_pool2d``, ...,
``F.scaled_dot_product_attention``) or captum's class, taking the torch
tensors ``verify`` hands it (``from_numpy="torch"``), and the VJP is
``torch.autograd.grad`` of that forward, for every op at once
(:func:`autograd_vjp`). A network is the list of :mod:`refimpl.nn` layers
verify draws, their arrays torch tensors: :func:`torch_module` turns it into
an ``nn.Sequential`` (captum needs modules), :func:`torch_network` into plain
functional calls (whose parameters autograd differentiates).

Conventions mapped, by the records' named options:

* BatchNorm's running statistics are differentiable primals, and PyTorch's
  ``native_batch_norm`` does not differentiate them: the candidate is the
  frozen form ``x * w / sqrt(v + eps) + (b - m w / sqrt(v + eps))``
  (torchvision's ``FrozenBatchNorm2d``), which autograd does.
* captum's LRP rules run their own hooks on one ``nn.Linear`` / ``nn.Conv2d``
  with the backward pass seeded by ``R``; captum's stabiliser is
  ``z + eps sgn(z)``, ``sgn(0) = +1`` (the record's ``stabilizer="sign"``),
  with ``eps`` its ``STABILITY_FACTOR`` (1e-9 by default: set to the record's
  ``epsilon``); ``GammaRule`` and ``Alpha1_Beta0_Rule`` change the weights
  only (the records' ``weights_only=True``); ``set_bias_to_zero`` is
  ``zero_bias``. The other rules (alpha-beta with beta > 0, z^B, w^2, flat)
  are zennit's, which needs torchvision: not run here.
* captum's ``IntegratedGradients`` with ``method="gausslegendre"`` is the
  record's default; the zero baseline is the record's ``baseline=None``.

Bugs a framework could ship are planted at the end, each caught with the
failing property named. Skipped without torch (captum's checks without captum).
"""

import dataclasses

import numpy as np
import pytest

from _nn_frameworks import Call, failed_properties, map_layer_arrays, timed_check

torch = pytest.importorskip("torch")
F = torch.nn.functional


# -- autograd as the VJP, for every record -------------------------------------------------


def _leaf(value):
    """``value`` (a tensor or a layer list) detached, its float tensors requiring grad."""
    if isinstance(value, list):
        return map_layer_arrays(_leaf, value)
    return value.detach().requires_grad_() if value.is_floating_point() else value


def _tensors(value) -> list:
    """The tensors of ``value`` that autograd differentiates."""
    tensors = [t for layer in value for t in layer.arrays().values()] \
        if isinstance(value, list) else [value]
    return [t for t in tensors if t.requires_grad]


def _rebuild(value, grads):
    """The cotangent of ``value`` from ``grads`` (consumed in :func:`_tensors`' order);
    None for a boolean mask."""
    if isinstance(value, list):
        return map_layer_arrays(lambda t: grads.pop(0) if t.requires_grad else None, value)
    return grads.pop(0) if value.requires_grad else None


def autograd_vjp(op_name, forward):
    """``vjp(*primals, *cotangents, **optional primals, **params)`` of ``forward``: autograd's."""
    call = Call.of(op_name)

    def vjp(*args, **kwargs):
        primals, cotangents, params = call.split(args, kwargs)
        primals = {k: (_leaf(v) if k in call.differentiable else v) for k, v in primals.items()}
        with torch.enable_grad():
            outs = call.forward(forward, primals, params)
            inputs = [t for k in call.differentiable if k in primals for t in _tensors(primals[k])]
            grads = torch.autograd.grad(outs, inputs, cotangents, allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs)]
        # In the record's order of the primals given (some properties read them by position).
        return tuple(_rebuild(primals[k], grads) if k in call.differentiable else None
                     for k in call.given(primals))

    return vjp


# -- layers ---------------------------------------------------------------------------------


def frozen_batch_norm(x, weight, bias, running_mean, running_var, eps=1e-5):
    """torchvision's FrozenBatchNorm2d, any number of trailing axes after the channels."""
    scale = weight * torch.rsqrt(running_var + eps)
    shape = (-1,) + (1,) * (x.ndim - 2)
    return x * scale.reshape(shape) + (bias - running_mean * scale).reshape(shape)


def _pool_args(layer):
    return layer.kernel_size, layer.stride


TORCH_LAYERS = {
    "Linear": lambda l, x: F.linear(x, l.weight, l.bias),
    "Conv2d": lambda l, x: F.conv2d(x, l.weight, l.bias, l.stride, l.padding),
    "AvgPool2d": lambda l, x: F.avg_pool2d(x, *_pool_args(l)),
    "MaxPool2d": lambda l, x: F.max_pool2d(x, *_pool_args(l)),
    "AdaptiveAvgPool2d": lambda l, x: F.adaptive_avg_pool2d(x, l.output_size),
    "ReLU": lambda l, x: F.relu(x),
    "Tanh": lambda l, x: torch.tanh(x),
    "Sigmoid": lambda l, x: torch.sigmoid(x),
    "BatchNorm": lambda l, x: frozen_batch_norm(x, l.weight, l.bias, l.running_mean,
                                                l.running_var, l.eps),
    "Flatten": lambda l, x: torch.flatten(x, 1),
}


def torch_network(layers, x):
    """The layers applied in order by torch.nn.functional (autograd reaches every parameter)."""
    for layer in layers:
        x = TORCH_LAYERS[type(layer).__name__](layer, x)
    return x


def _module(layer):
    """One refimpl layer as the torch.nn module holding its tensors (eval mode)."""
    name = type(layer).__name__
    if name == "Linear":
        module = torch.nn.Linear(*layer.weight.shape[::-1], bias=layer.bias is not None)
    elif name == "Conv2d":
        o, i, kh, kw = layer.weight.shape
        module = torch.nn.Conv2d(i, o, (kh, kw), layer.stride, layer.padding,
                                 bias=layer.bias is not None)
    elif name in ("AvgPool2d", "MaxPool2d"):
        return getattr(torch.nn, name)(*_pool_args(layer))
    elif name == "AdaptiveAvgPool2d":
        return torch.nn.AdaptiveAvgPool2d(layer.output_size)
    elif name == "BatchNorm":
        module = torch.nn.BatchNorm1d(layer.weight.shape[0], eps=layer.eps)
        module._check_input_dim = lambda x: None  # one class for (N, C) and (N, C, H, W)
    else:
        return getattr(torch.nn, name)()
    module = module.to(next(iter(layer.arrays().values())).dtype)
    with torch.no_grad():
        for field, value in layer.arrays().items():
            getattr(module, field).copy_(value)
    return module.eval()


def torch_module(layers):
    """The network as an ``nn.Sequential`` of fresh modules (captum hooks modules)."""
    return torch.nn.Sequential(*(_module(layer) for layer in layers)).eval()


def torch_squash(s):
    """Capsule squash with the norm scaled by the largest component (no overflow, 0 at 0)."""
    big = s.abs().amax(dim=-1, keepdim=True)
    unit = s / torch.where(big > 0, big, torch.ones_like(big))
    n = big * torch.linalg.vector_norm(unit, dim=-1, keepdim=True)
    # |s|^2 / (1 + |s|^2) s / |s| = s n / (1 + n^2), without forming n^2 (finite to the maximum).
    factor = torch.where(n > 1, 1 / (1 / torch.where(n > 1, n, 1) + n), n / (1 + n * n))
    return factor * s


def torch_dynamic_routing(u_hat, n_iter=3):
    """Procedure 1 of Sabour et al.: couplings softmax over parents, logits from 0."""
    b = torch.zeros(u_hat.shape[:-1], dtype=u_hat.dtype)
    for _ in range(n_iter):
        c = torch.softmax(b, dim=-1)
        v = torch_squash((c[..., None] * u_hat).sum(dim=-3))
        b = b + (u_hat * v[..., None, :, :]).sum(dim=-1)
    return v


def torch_distillation(student_logits, teacher_logits, labels=None, *, temperature, alpha=0.5):
    """Hinton's loss: T^2 KL(batchmean) of the softened distributions, plus cross-entropy."""
    soft = temperature ** 2 * F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                                       F.log_softmax(teacher_logits / temperature, dim=1),
                                       reduction="batchmean", log_target=True)
    if labels is None:
        return soft
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def torch_memory_readout(u, q):
    """Soft memory read: attention of one query over the memory rows, unscaled."""
    return F.scaled_dot_product_attention(q[..., None, :], u, u, scale=1.0)[..., 0, :]


LAYER_CANDIDATES = {
    "linear": F.linear,
    "conv2d": F.conv2d,
    "batch_norm": frozen_batch_norm,
    "avg_pool2d": F.avg_pool2d,
    "max_pool2d": F.max_pool2d,
    "adaptive_avg_pool2d": F.adaptive_avg_pool2d,
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "flatten": lambda x: x.reshape(x.shape[0], -1),  # nn.Flatten refuses (N,); refimpl: (N, 1)
    "softmax": lambda x, axis=-1: torch.softmax(x, dim=axis),
    "log_softmax": lambda x, axis=-1: torch.log_softmax(x, dim=axis),
    "sequential": torch_network,
    "scaled_dot_product_attention": F.scaled_dot_product_attention,
    "memory_readout": torch_memory_readout,
    "squash": torch_squash,
    "dynamic_routing": torch_dynamic_routing,
    "distillation_loss": torch_distillation,
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op_name", sorted(LAYER_CANDIDATES))
def test_torch_layer_passes(op_name, dtype):
    forward = LAYER_CANDIDATES[op_name]
    report, seconds = timed_check(forward, op_name, vjp=autograd_vjp(op_name, forward),
                                  from_numpy="torch", dtype=dtype)
    assert report.passed, str(report)
    assert not any(r.skipped for r in report.results), str(report)
    print(f"{op_name} {dtype}: {seconds:.1f} s")
