"""Flatten: forward and VJP (reshapes; a floor for the layer overhead)."""

from .. import common  # noqa: F401  (one BLAS thread)
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.nn.reshape import flatten, flatten_vjp


class Flatten:
    def setup(self):
        gen = np.random.default_rng(0)
        self.x = gen.standard_normal((32, 32, 16, 16))
        self.G = gen.standard_normal((32, 32 * 16 * 16))

    def time_forward(self):
        flatten(self.x)

    def time_vjp(self):
        flatten_vjp(self.x, self.G)
