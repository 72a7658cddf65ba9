"""Gradient, path, class-map, perturbation, LIME and maximisation attributions (float64, one
thread), each against one forward-plus-backward pass of the same network.

Networks: the CNN (on 8 inputs of 3x32x32) and the MLP (on 64 of 784) of the LRP benchmarks
(relevance.py), whose batches (32, 256) are cut to a quarter here: 28 method ratios on the full
batches were a fifth of the suite's run time, and a ratio to one pass hardly depends on the batch. The baseline is one forward pass and one backward pass of the target score
to the input (the layers' ``input_vjp``), what ``saliency`` costs; a method that needs ``k``
passes should cost about ``k``: SmoothGrad and VarGrad 10 noise samples, integrated gradients
50 steps (plus two forward passes for ``delta``), activation maximisation 10 steps.
Perturbation methods count forward passes of the batch: occlusion and feature ablation one per
window or group (CNN: 3x8x8 windows with stride 8, 16 of them; MLP: 16 groups of 49 pixels),
LIME one per sample (50). Members: refimpl.attribution.gradients, .integrated, .class_maps
(with .maps' upsample), .perturbation, .surrogate and .maximization.

When torch and captum are importable, the same networks built in torch run captum's methods,
timed against torch's own forward-plus-backward pass (``track_captum_over_forward_backward``);
absent, those benchmarks are skipped.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.attribution.class_maps import grad_cam, guided_grad_cam
from refimpl.attribution.gradients import (
    deconvnet,
    guided_backprop,
    input_x_gradient,
    saliency,
    sensitivity,
    smoothgrad,
    vargrad,
)
from refimpl.attribution.integrated import integrated_gradients
from refimpl.attribution.maximization import activation_maximization
from refimpl.attribution.perturbation import feature_ablation, occlusion
from refimpl.attribution.surrogate import lime
from refimpl.nn import Conv2d, Flatten, Linear, ReLU, AvgPool2d, activations

from .relevance import network

#: The layer whose output Grad-CAM explains on the CNN: the ReLU after the second convolution.
CNN_FEATURES = 4


def forward_backward(layers, x, target):
    """One forward pass and one backward pass of the target score to the input."""
    acts = activations(layers, x)
    g = np.zeros_like(acts[-1])
    g[np.arange(len(g)), target] = 1.0
    for layer, a in zip(reversed(layers), reversed(acts[:-1])):
        g = layer.input_vjp(a, g)
    return g


def _patches(shape, size):
    """Feature ids of ``size`` x ``size`` patches over the last two axes of ``shape``."""
    rows, cols = np.indices(shape[-2:])
    ids = (rows // size) * (shape[-1] // size) + cols // size
    return np.broadcast_to(ids, shape).astype(np.int64)


def methods(name, layers, x, target):
    """``{method: callable}`` on the network ``name`` (``"cnn"`` or ``"mlp"``)."""
    gen = np.random.default_rng(1)
    noise = 0.1 * gen.standard_normal((10,) + x.shape)
    if name == "cnn":
        mask, window = _patches(x.shape[1:], 8), (3, 8, 8)
    else:
        mask, window = _patches((28, 28), 7).reshape(-1), (49,)
    samples = gen.random((50, int(mask.max()) + 1)) < 0.5
    out = {
        "saliency": lambda: saliency(layers, x, target),
        "sensitivity": lambda: sensitivity(layers, x, target),
        "input_x_gradient": lambda: input_x_gradient(layers, x, target),
        "smoothgrad": lambda: smoothgrad(layers, x, target, noise),
        "vargrad": lambda: vargrad(layers, x, target, noise),
        "guided_backprop": lambda: guided_backprop(layers, x, target),
        "deconvnet": lambda: deconvnet(layers, x, target),
        "integrated_gradients": lambda: integrated_gradients(layers, x, target),
        "occlusion": lambda: occlusion(layers, x, target, window, window),
        "feature_ablation": lambda: feature_ablation(layers, x, target, mask),
        "lime": lambda: lime(layers, x, target, samples, mask),
        "activation_maximization": lambda: activation_maximization(layers, x, target, n_steps=10),
    }
    if name == "cnn":
        out["grad_cam"] = lambda: grad_cam(layers, x, target, CNN_FEATURES)
        out["guided_grad_cam"] = lambda: guided_grad_cam(layers, x, target, CNN_FEATURES)
    return out


_METHODS = ["saliency", "sensitivity", "input_x_gradient", "smoothgrad", "vargrad",
            "guided_backprop", "deconvnet", "integrated_gradients", "grad_cam", "guided_grad_cam",
            "occlusion", "feature_ablation", "lime", "activation_maximization"]


#: Inputs per network: a quarter of the LRP benchmarks' batches.
BATCH = {"cnn": 8, "mlp": 64}


def attribution_network(name):
    """``(layers, x)``: the LRP benchmark network ``name`` on its first ``BATCH[name]`` inputs."""
    layers, x = network(name)
    return layers, x[:BATCH[name]]


def _setup(self, name, method):
    self.layers, self.x = attribution_network(name)
    self.target = np.argmax(activations(self.layers, self.x)[-1], axis=1)
    table = methods(name, self.layers, self.x, self.target)
    if method not in table:
        raise NotImplementedError(f"{method} needs a convolutional network")
    self.run = table[method]


class Attribution:
    params = [["cnn", "mlp"], _METHODS]
    param_names = ["network", "method"]
    timeout = 900

    setup = _setup

    # No time_ benchmark: the ratio carries the same timing, normalised by the pass it counts in.
    def track_over_forward_backward(self, name, method):
        return common.ratio(self.run, lambda: forward_backward(self.layers, self.x, self.target),
                            min_seconds=0.02, repeat=3)

    track_over_forward_backward.unit = "ratio"


# -- captum on the same networks (optional: torch and captum) -------------------------------

_CAPTUM = {
    "saliency": lambda c, m: c.Saliency(m),
    "input_x_gradient": lambda c, m: c.InputXGradient(m),
    "guided_backprop": lambda c, m: c.GuidedBackprop(m),
    "deconvnet": lambda c, m: c.Deconvolution(m),
    "integrated_gradients": lambda c, m: c.IntegratedGradients(m),
}


def _torch_model(torch, layers):
    """The refimpl network as a torch.nn.Sequential with the same parameters (float64)."""
    def convert(layer):
        if isinstance(layer, Linear):
            module = torch.nn.Linear(layer.weight.shape[1], layer.weight.shape[0])
        elif isinstance(layer, Conv2d):
            module = torch.nn.Conv2d(layer.weight.shape[1], layer.weight.shape[0],
                                     layer.weight.shape[2:], layer.stride, layer.padding)
        elif isinstance(layer, AvgPool2d):
            return torch.nn.AvgPool2d(layer.kernel_size, layer.stride)
        elif isinstance(layer, ReLU):
            return torch.nn.ReLU()
        elif isinstance(layer, Flatten):
            return torch.nn.Flatten()
        else:
            raise NotImplementedError(type(layer).__name__)
        module.weight.data = torch.from_numpy(layer.weight.copy())
        module.bias.data = torch.from_numpy(layer.bias.copy())
        return module
    return torch.nn.Sequential(*[convert(layer) for layer in layers]).double()


class Captum:
    """captum's method over torch's forward-plus-backward pass, on the same networks."""

    params = [["cnn", "mlp"], list(_CAPTUM)]
    param_names = ["network", "method"]
    timeout = 900

    def setup(self, name, method):
        try:
            import captum.attr as attr
            import torch
        except ImportError:
            raise NotImplementedError("torch and captum are not installed") from None
        torch.set_num_threads(1)
        layers, x = attribution_network(name)
        model = _torch_model(torch, layers)
        self.x = torch.from_numpy(x).requires_grad_()
        self.target = model(self.x).argmax(dim=1)
        explainer = _CAPTUM[method](attr, model)
        self.run = lambda: explainer.attribute(self.x, target=self.target)

        def baseline():
            self.x.grad = None
            model(self.x).gather(1, self.target[:, None]).sum().backward()
        self.baseline = baseline

    def track_captum_over_forward_backward(self, name, method):
        return common.ratio(self.run, self.baseline, min_seconds=0.02, repeat=3)

    track_captum_over_forward_backward.unit = "ratio"
