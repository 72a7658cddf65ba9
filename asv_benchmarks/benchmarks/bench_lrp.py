"""LRP with epsilon_gamma_box against one forward pass of the same network (float64, one thread).

Networks: a small CNN (conv 3->16 3x3 pad 1, ReLU, 2x2 average pool, conv 16->32 3x3 pad 1,
ReLU, flatten, linear -> 10) on a batch of 32 images 3x32x32, and an MLP 784-512-512-10 on
a batch of 256. Target: LRP (gradient method, forward pass included) <= 3x the forward pass.
"""

from . import common

import numpy as np

from refimpl import lrp as L
from refimpl import lrp_layers


def _cnn(gen):
    return [L.Conv2d(gen.standard_normal((16, 3, 3, 3)) / np.sqrt(27), gen.standard_normal(16) * 0.1,
                     padding=1),
            L.ReLU(), L.AvgPool2d(2),
            L.Conv2d(gen.standard_normal((32, 16, 3, 3)) / 12, gen.standard_normal(32) * 0.1, padding=1),
            L.ReLU(), L.Flatten(),
            L.Linear(gen.standard_normal((10, 32 * 16 * 16)) / 90, gen.standard_normal(10) * 0.1)]


def _mlp(gen):
    sizes = [784, 512, 512, 10]
    layers = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [L.Linear(gen.standard_normal((o, i)) / np.sqrt(i), gen.standard_normal(o) * 0.1),
                   L.ReLU()]
    return layers[:-1]


def _network(name):
    gen = np.random.default_rng(0)
    if name == "cnn":
        return _cnn(gen), gen.uniform(-1, 1, (32, 3, 32, 32))
    return _mlp(gen), gen.uniform(-1, 1, (256, 784))


class LRP:
    params = [["cnn", "mlp"]]
    param_names = ["network"]
    timeout = 300

    def setup(self, network):
        self.layers, self.x = _network(network)
        y = lrp_layers.forward(self.layers, self.x)
        self.R = np.where(np.arange(y.shape[1]) == np.argmax(y, axis=1)[:, None], y, 0.0)
        self.rules = L.epsilon_gamma_box(-1.0, 1.0)(self.layers)

    def time_forward(self, network):
        lrp_layers.forward(self.layers, self.x)

    def time_lrp(self, network):
        L.lrp(self.layers, self.x, self.R, self.rules)

    def time_gradient_times_input(self, network):
        self.x * lrp_layers.forward_vjp(self.layers, self.x, self.R)[0]

    def track_lrp_over_forward(self, network):
        return common.ratio(lambda: L.lrp(self.layers, self.x, self.R, self.rules),
                            lambda: lrp_layers.forward(self.layers, self.x))

    def track_gradient_times_input_over_forward(self, network):
        return common.ratio(lambda: self.x * lrp_layers.forward_vjp(self.layers, self.x, self.R)[0],
                            lambda: lrp_layers.forward(self.layers, self.x))

    track_lrp_over_forward.unit = "ratio"
    track_gradient_times_input_over_forward.unit = "ratio"
