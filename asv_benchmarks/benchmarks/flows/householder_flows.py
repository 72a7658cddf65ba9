"""The Householder flow on compact WY blocks against a GEMM with the dense ``U`` prebuilt, same run.

``K = 16`` reflectors shared by a batch of 256: ``householder_flow`` costs
``O(n d K)`` (never forming ``U``), the baseline ``O(n d^2)`` once ``U`` exists.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.flows.householder_flows import householder_flow, householder_flow_vjp
from refimpl.linalg import householder_matrix

FEATURES = [64, 256, 1024]
BATCH, REFLECTORS = 256, 16


class HouseholderFlow:
    params = [FEATURES]
    param_names = ["d"]

    def setup(self, d):
        gen = np.random.default_rng(0)
        self.V, self.x = gen.standard_normal((REFLECTORS, d)), gen.standard_normal((BATCH, d))
        self.U = householder_matrix(self.V)

    def _forward(self):
        return householder_flow(self.x, self.V)

    def _gemm(self):
        return self.x @ self.U

    def time_forward(self, d):
        self._forward()

    def time_vjp(self, d):
        householder_flow_vjp(self.x, self.V, self.x, np.ones(BATCH))

    def track_forward_over_dense_gemm(self, d):
        return common.ratio(self._forward, self._gemm)

    track_forward_over_dense_gemm.unit = "ratio"
