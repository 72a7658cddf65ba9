"""Counterfactuals against the flow's forward and inverse they consist of, same run."""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.flows import counterfactual, counterfactual_vjp, flow_forward, flow_inverse
from verify.ops.flows.sequential import bench_flow

BATCH = 256


class Counterfactual:
    params = [[64, 256]]
    param_names = ["d"]
    timeout = 300

    def setup(self, d):
        gen = np.random.default_rng(0)
        self.flow, self.x = bench_flow(gen, d), gen.standard_normal((BATCH, d))
        self.beta = gen.standard_normal(d)

    def _counterfactual(self):
        return counterfactual(self.flow, self.beta, self.x)

    def _both_passes(self):
        return flow_inverse(self.flow, flow_forward(self.flow, self.x).z)

    def time_counterfactual(self, d):
        self._counterfactual()

    def time_vjp(self, d):
        counterfactual_vjp(self.flow, self.beta, self.x, self.x)

    def track_over_forward_and_inverse(self, d):
        return common.ratio(self._counterfactual, self._both_passes)

    track_over_forward_and_inverse.unit = "ratio"
