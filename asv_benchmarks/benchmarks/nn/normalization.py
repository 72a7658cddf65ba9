"""Batch norm in inference mode: forward, VJP (all five cotangents) and merging into a Linear."""

from .. import common  # noqa: F401  (one BLAS thread)
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.nn import BatchNorm, Linear
from refimpl.nn.normalization import batch_norm, batch_norm_vjp, merge_batchnorm


class BatchNormalization:
    params = [[(32, 64, 16), (256, 512, 1)]]
    param_names = ["batch, channels, side"]

    def setup(self, size):
        n, c, h = size
        gen = np.random.default_rng(0)
        shape = (n, c, h, h) if h > 1 else (n, c)
        self.x, self.G = gen.standard_normal(shape), gen.standard_normal(shape)
        self.stats = (gen.uniform(0.5, 2, c), gen.standard_normal(c), gen.standard_normal(c),
                      gen.uniform(0.5, 2, c))
        self.layers = [Linear(gen.standard_normal((c, c)), gen.standard_normal(c)),
                       BatchNorm(*self.stats)]

    def time_forward(self, size):
        batch_norm(self.x, *self.stats)

    def time_vjp(self, size):
        batch_norm_vjp(self.x, *self.stats, self.G)

    def time_merge_batchnorm(self, size):
        merge_batchnorm(self.layers)
