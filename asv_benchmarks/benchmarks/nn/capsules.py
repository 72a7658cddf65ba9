"""Dynamic routing at CapsNet's size (1152 primary capsules to 10 digit capsules of 16): VJP over forward.

The VJP replays the forward (keeping every iteration) and runs back through
the three iterations; squash forward and VJP on the same capsules.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.nn.capsules import dynamic_routing, dynamic_routing_vjp, squash, squash_vjp


class Routing:
    params = [[1, 3]]
    param_names = ["n_iter"]

    def setup(self, n_iter):
        gen = np.random.default_rng(0)
        self.u_hat = 0.05 * gen.standard_normal((4, 1152, 10, 16))
        self.G = gen.standard_normal((4, 10, 16))

    def time_forward(self, n_iter):
        dynamic_routing(self.u_hat, n_iter=n_iter)

    def time_vjp(self, n_iter):
        dynamic_routing_vjp(self.u_hat, self.G, n_iter=n_iter)

    def track_vjp_over_forward(self, n_iter):
        return common.ratio(lambda: dynamic_routing_vjp(self.u_hat, self.G, n_iter=n_iter),
                            lambda: dynamic_routing(self.u_hat, n_iter=n_iter))

    track_vjp_over_forward.unit = "ratio"


class Squash:
    def setup(self):
        gen = np.random.default_rng(0)
        self.s, self.G = gen.standard_normal((4 * 1152, 16)), gen.standard_normal((4 * 1152, 16))

    def time_forward(self):
        squash(self.s)

    def time_vjp(self):
        squash_vjp(self.s, self.G)
