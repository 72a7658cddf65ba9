"""Dense layer: forward and VJP, with the GEMM ``x @ W.T`` as baseline (float64, one thread)."""

from .. import common  # noqa: F401  (one BLAS thread)
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.nn.dense import linear, linear_vjp


class Linear:
    params = [[(256, 784, 512), (32, 4096, 4096)]]
    param_names = ["batch, in, out"]

    def setup(self, size):
        n, i, o = size
        gen = np.random.default_rng(0)
        self.x, self.W, self.b = gen.standard_normal((n, i)), gen.standard_normal((o, i)), gen.standard_normal(o)
        self.G = gen.standard_normal((n, o))

    def time_forward(self, size):
        linear(self.x, self.W, bias=self.b)

    def time_vjp(self, size):
        linear_vjp(self.x, self.W, self.G, bias=self.b)

    def time_gemm(self, size):
        self.x @ self.W.T
