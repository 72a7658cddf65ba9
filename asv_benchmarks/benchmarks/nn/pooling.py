"""Average, max and adaptive average pooling: forward and VJP (float64, one thread)."""

from .. import common  # noqa: F401  (one BLAS thread)
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.nn.pooling import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_vjp,
    avg_pool2d,
    avg_pool2d_vjp,
    max_pool2d,
    max_pool2d_vjp,
)

SHAPE = (32, 16, 32, 32)


class Pooling:
    params = [["avg_pool2d", "max_pool2d", "adaptive_avg_pool2d"]]
    param_names = ["pooling"]

    def setup(self, pooling):
        gen = np.random.default_rng(0)
        self.x = gen.standard_normal(SHAPE)
        self.forward, self.vjp, self.kw = {
            "avg_pool2d": (avg_pool2d, avg_pool2d_vjp, {"kernel_size": 2}),
            "max_pool2d": (max_pool2d, max_pool2d_vjp, {"kernel_size": 2}),
            "adaptive_avg_pool2d": (adaptive_avg_pool2d, adaptive_avg_pool2d_vjp,
                                    {"output_size": (7, 7)}),
        }[pooling]
        self.G = gen.standard_normal(self.forward(self.x, **self.kw).shape)

    def time_forward(self, pooling):
        self.forward(self.x, **self.kw)

    def time_vjp(self, pooling):
        self.vjp(self.x, self.G, **self.kw)
