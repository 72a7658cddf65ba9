"""The bijector layers against the ops they wrap (the cost of the flow protocol), same run.

Each layer's forward is its op plus the per-sample log-determinant (an
``O(c)`` or FFT-sized computation shared by the batch).
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.conv import periodic_conv
from refimpl.flows import Glow1x1, PeriodicConv, glow_conv1x1


class Bijectors:
    params = [[8, 32]]
    param_names = ["c"]

    def setup(self, c):
        gen = np.random.default_rng(0)
        self.x = gen.standard_normal((8, c, 16, 16))
        self.L, self.U = 0.3 * gen.standard_normal((2, c, c))
        self.s = gen.uniform(0.5, 2.0, c)
        self.glow = Glow1x1(self.L, self.U, self.s)
        K = 0.01 * gen.standard_normal((c, c, 16, 16))
        K[:, :, 0, 0] += np.eye(c)
        self.K, self.periodic = K, PeriodicConv(K)

    def time_glow1x1_forward(self, c):
        self.glow.forward(self.x)

    def time_periodic_forward(self, c):
        self.periodic.forward(self.x)

    def track_glow1x1_over_op(self, c):
        return common.ratio(lambda: self.glow.forward(self.x),
                            lambda: glow_conv1x1(self.x, self.L, self.U, self.s))

    def track_periodic_over_op(self, c):
        return common.ratio(lambda: self.periodic.forward(self.x),
                            lambda: periodic_conv(self.x, self.K))

    for _name in ("glow1x1_over_op", "periodic_over_op"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name
