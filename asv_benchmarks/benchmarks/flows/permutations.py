"""Permutations against NumPy's fancy indexing ``x[:, perm]`` (the same gather), same run."""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.flows import permutation, permutation_vjp

FEATURES = [64, 1024]
BATCH = 256


class Permutations:
    params = [FEATURES]
    param_names = ["d"]

    def setup(self, d):
        gen = np.random.default_rng(0)
        self.x, self.perm = gen.standard_normal((BATCH, d)), tuple(gen.permutation(d).tolist())
        self.index = np.asarray(self.perm)

    def _forward(self):
        return permutation(self.x, perm=self.perm)

    def _gather(self):
        return self.x[:, self.index]

    def time_forward(self, d):
        self._forward()

    def time_vjp(self, d):
        permutation_vjp(self.x, self.x, np.ones(BATCH), perm=self.perm)

    def track_forward_over_fancy_indexing(self, d):
        return common.ratio(self._forward, self._gather)

    track_forward_over_fancy_indexing.unit = "ratio"
