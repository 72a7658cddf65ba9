"""Sequential networks: forward and VJP (input and every parameter) of a CNN and an MLP.

The networks are those of the attribution benchmarks
(:mod:`benchmarks.attribution.relevance`); the ratio of the VJP to the forward
pass is the cost of backpropagation through the hand-written layer VJPs.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.nn.network import sequential, sequential_vjp

from ..attribution.relevance import network


class Sequential:
    params = [["cnn", "mlp"]]
    param_names = ["network"]
    timeout = 300

    def setup(self, name):
        self.layers, self.x = network(name)
        self.G = np.random.default_rng(1).standard_normal(sequential(self.layers, self.x).shape)

    def time_forward(self, name):
        sequential(self.layers, self.x)

    def time_vjp(self, name):
        sequential_vjp(self.layers, self.x, self.G)

    def track_vjp_over_forward(self, name):
        return common.ratio(lambda: sequential_vjp(self.layers, self.x, self.G),
                            lambda: sequential(self.layers, self.x))

    track_vjp_over_forward.unit = "ratio"
