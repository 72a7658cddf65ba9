"""LRP with EpsilonGammaBox against one forward pass of the same network (float64, one thread).

Networks: a small CNN (conv 3->16 3x3 pad 1, ReLU, 2x2 average pool, conv 16->32 3x3 pad 1,
ReLU, flatten, linear -> 10) on a batch of 32 images 3x32x32, and an MLP 784-512-512-10 on
a batch of 256. Target: LRP (gradient method, forward pass included) <= 3x the forward pass
(refimpl.nn.sequential). Single-layer rules (lrp_epsilon, lrp_gamma, lrp_zbox) on the CNN's
second convolution.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.attribution.relevance import EpsilonGammaBox, lrp, lrp_epsilon, lrp_gamma, lrp_zbox
from refimpl.nn import AvgPool2d, Conv2d, Flatten, Linear, ReLU
from refimpl.nn.network import sequential, sequential_vjp


def _cnn(gen):
    return [Conv2d(gen.standard_normal((16, 3, 3, 3)) / np.sqrt(27), gen.standard_normal(16) * 0.1,
                   padding=1),
            ReLU(), AvgPool2d(2),
            Conv2d(gen.standard_normal((32, 16, 3, 3)) / 12, gen.standard_normal(32) * 0.1, padding=1),
            ReLU(), Flatten(),
            Linear(gen.standard_normal((10, 32 * 16 * 16)) / 90, gen.standard_normal(10) * 0.1)]


def _mlp(gen):
    sizes = [784, 512, 512, 10]
    layers = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [Linear(gen.standard_normal((o, i)) / np.sqrt(i), gen.standard_normal(o) * 0.1),
                   ReLU()]
    return layers[:-1]


def network(name):
    """``(layers, x)`` of the benchmark network ``"cnn"`` or ``"mlp"``."""
    gen = np.random.default_rng(0)
    if name == "cnn":
        return _cnn(gen), gen.uniform(-1, 1, (32, 3, 32, 32))
    return _mlp(gen), gen.uniform(-1, 1, (256, 784))


class LRP:
    params = [["cnn", "mlp"]]
    param_names = ["network"]
    timeout = 300

    def setup(self, name):
        self.layers, self.x = network(name)
        y = sequential(self.layers, self.x)
        self.R = np.where(np.arange(y.shape[1]) == np.argmax(y, axis=1)[:, None], y, 0.0)
        self.rules = EpsilonGammaBox(low=-1.0, high=1.0)(self.layers)

    def time_forward(self, name):
        sequential(self.layers, self.x)

    def time_lrp(self, name):
        lrp(self.layers, self.x, self.R, self.rules)

    def time_gradient_times_input(self, name):
        self.x * sequential_vjp(self.layers, self.x, self.R).x

    def track_lrp_over_forward(self, name):
        return common.ratio(lambda: lrp(self.layers, self.x, self.R, self.rules),
                            lambda: sequential(self.layers, self.x))

    def track_gradient_times_input_over_forward(self, name):
        return common.ratio(lambda: self.x * sequential_vjp(self.layers, self.x, self.R).x,
                            lambda: sequential(self.layers, self.x))

    track_lrp_over_forward.unit = "ratio"
    track_gradient_times_input_over_forward.unit = "ratio"


class OneLayer:
    """One rule on the CNN's second convolution (16 -> 32 channels, 16x16, batch 32)."""

    params = [["lrp_epsilon", "lrp_gamma", "lrp_zbox"]]
    param_names = ["rule"]

    def setup(self, rule):
        layers, x = network("cnn")
        acts = [x]
        for layer in layers[:4]:
            acts.append(layer.forward(acts[-1]))
        self.conv, self.a = layers[3], acts[3]
        self.R = np.random.default_rng(2).standard_normal(acts[4].shape)
        self.rule = {"lrp_epsilon": lrp_epsilon, "lrp_gamma": lrp_gamma, "lrp_zbox": lrp_zbox}[rule]

    def time_rule(self, rule):
        self.rule(self.a, self.conv.weight, self.R, bias=self.conv.bias, padding=1)

    def time_layer_forward(self, rule):
        self.conv.forward(self.a)
