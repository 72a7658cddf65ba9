"""Channel correspondence: bipartite matching against scipy, correlation and regression.

``bipartite_matching`` runs the shortest augmenting path method in array-API calls, one
Dijkstra step (a handful of vector operations and one transfer of the next column's index)
at a time; ``scipy.optimize.linear_sum_assignment`` runs the same method in C++. The
``track_*`` ratios are measured in the same run.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.linear_model import Lasso

from refimpl.analysis.correspondence import (
    bipartite_matching,
    channel_correlation,
    channel_regression,
    semi_matching,
)
from verify.ops.analysis.correspondence import standardised


class Matching:
    params = [[64, 256]]
    param_names = ["C"]
    timeout = 300

    def setup(self, c):
        self.rho = np.random.default_rng(0).uniform(-1, 1, (c, c))

    def time_bipartite_matching(self, c):
        bipartite_matching(self.rho)

    def time_semi_matching(self, c):
        semi_matching(self.rho)

    def track_bipartite_over_scipy(self, c):
        return common.ratio(lambda: bipartite_matching(self.rho),
                            lambda: linear_sum_assignment(self.rho, maximize=True), repeat=3)

    track_bipartite_over_scipy.unit = "ratio"


class Correlation:
    """Activations of two networks, N = 256 images of 8 x 8 positions, C = 64 channels each."""

    timeout = 300

    def setup(self):
        gen = np.random.default_rng(0)
        self.A = gen.standard_normal((256, 64, 8, 8))
        self.B = self.A[:, ::-1] + gen.standard_normal((256, 64, 8, 8))

    def _corrcoef(self):
        flat = [np.moveaxis(a, 1, -1).reshape(-1, 64) for a in (self.A, self.B)]
        return np.corrcoef(flat[0].T, flat[1].T)[:64, 64:]

    def time_channel_correlation(self):
        channel_correlation(self.A, self.B)

    def track_correlation_over_corrcoef(self):
        return common.ratio(lambda: channel_correlation(self.A, self.B), self._corrcoef)

    def track_lasso_over_sklearn(self):
        ZA, ZB = standardised(self.A[:, :16]), standardised(self.B[:, :16])
        return common.ratio(
            lambda: channel_regression(self.A[:, :16], self.B[:, :16], l1=0.05, tol=1e-10),
            lambda: Lasso(alpha=0.05, fit_intercept=False, tol=1e-10).fit(ZA, ZB), repeat=3)

    track_correlation_over_corrcoef.unit = "ratio"
    track_lasso_over_sklearn.unit = "ratio"
