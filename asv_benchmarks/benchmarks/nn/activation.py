"""ReLU, tanh and sigmoid: forward and VJP on 10^6 entries (float64)."""

from .. import common  # noqa: F401  (one BLAS thread)
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.nn.activation import relu, relu_vjp, sigmoid, sigmoid_vjp, tanh, tanh_vjp

FUNCTIONS = {"relu": (relu, relu_vjp), "tanh": (tanh, tanh_vjp), "sigmoid": (sigmoid, sigmoid_vjp)}


class Activation:
    params = [list(FUNCTIONS)]
    param_names = ["activation"]

    def setup(self, activation):
        gen = np.random.default_rng(0)
        self.x, self.G = gen.standard_normal((1000, 1000)), gen.standard_normal((1000, 1000))
        self.forward, self.vjp = FUNCTIONS[activation]

    def time_forward(self, activation):
        self.forward(self.x)

    def time_vjp(self, activation):
        self.vjp(self.x, self.G)
