"""2-D convolution (unfold and one GEMM): forward and VJP (float64, one thread)."""

from .. import common  # noqa: F401  (one BLAS thread)
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.nn.convolution import conv2d, conv2d_vjp


class Conv2d:
    params = [[(32, 3, 32, 16, 3, 1), (32, 16, 16, 32, 3, 1), (8, 64, 16, 64, 3, 2)]]
    param_names = ["batch, in_c, side, out_c, kernel, stride"]

    def setup(self, size):
        n, c, h, o, k, s = size
        gen = np.random.default_rng(0)
        self.x = gen.standard_normal((n, c, h, h))
        self.w, self.b = gen.standard_normal((o, c, k, k)), gen.standard_normal(o)
        self.kw = {"stride": s, "padding": k // 2}
        self.G = gen.standard_normal(conv2d(self.x, self.w, self.b, **self.kw).shape)

    def time_forward(self, size):
        conv2d(self.x, self.w, self.b, **self.kw)

    def time_vjp(self, size):
        conv2d_vjp(self.x, self.w, self.G, self.b, **self.kw)
