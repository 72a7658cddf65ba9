"""CAVI for the normal model, with a same-run baseline.

A fit is ``O(n)`` statistics plus a few scalar sweeps, each with two ELBO
evaluations; it is reported against one ``numpy.var`` of the data.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.vi.normal import normal_cavi, normal_elbo


class NormalCAVI:
    params = [[100, 100000]]
    param_names = ["n"]

    def setup(self, n):
        self.x = np.random.default_rng(0).normal(2.0, 3.0, n)
        self.q = normal_cavi(self.x)

    def time_fit(self, n):
        normal_cavi(self.x)

    def time_elbo(self, n):
        normal_elbo(self.x, self.q.mean, self.q.var, self.q.shape, self.q.rate)

    def track_fit_over_variance(self, n):
        return common.ratio(lambda: normal_cavi(self.x), lambda: np.var(self.x))

    track_fit_over_variance.unit = "ratio"
