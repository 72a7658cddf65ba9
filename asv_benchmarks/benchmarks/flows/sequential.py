"""A RealNVP-style flow: ``log_prob`` and its VJP over the flow's forward, and ``sample``, same run.

The flow of the ``log_prob`` record's benchmark case
(:func:`verify.ops.flows.sequential.bench_flow`: two affine couplings with
a reversal between them, ActNorm, LULinear), ``d`` features, batch 256.
``track_log_prob_over_forward`` is the cost of the base density on top of
the forward; ``track_log_prob_vjp_over_forward`` the cost of the gradient
of ``sum log p`` with respect to ``x`` and every parameter, which repeats
the forward (the layers keep no residuals) and runs each layer's backward.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.flows import flow_forward, log_prob, log_prob_vjp, sample
from verify.ops.flows.sequential import bench_flow

FEATURES = [64, 256, 1024]
BATCH = 256


class Flow:
    params = [FEATURES]
    param_names = ["d"]
    timeout = 300

    def setup(self, d):
        gen = np.random.default_rng(0)
        self.flow, self.x = bench_flow(gen, d), gen.standard_normal((BATCH, d))
        self.g = np.ones(BATCH)

    def _forward(self):
        return flow_forward(self.flow, self.x)

    def _log_prob(self):
        return log_prob(self.flow, self.x)

    def _log_prob_vjp(self):
        return log_prob_vjp(self.flow, self.x, self.g)

    def time_log_prob(self, d):
        self._log_prob()

    def time_log_prob_vjp(self, d):
        self._log_prob_vjp()

    def time_sample(self, d):
        sample(self.flow, self.x)

    def track_log_prob_over_forward(self, d):
        return common.ratio(self._log_prob, self._forward)

    def track_log_prob_vjp_over_forward(self, d):
        return common.ratio(self._log_prob_vjp, self._forward)

    for _name in ("log_prob_over_forward", "log_prob_vjp_over_forward"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name
