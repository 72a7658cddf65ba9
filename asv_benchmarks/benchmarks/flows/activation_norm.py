"""ActNorm and its initialisation against plain NumPy broadcasting and ``numpy.std``, same run."""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.flows.activation_norm import actnorm, actnorm_init, actnorm_vjp

SHAPES = [(256, 64), (32, 16, 32, 32)]


class ActNorm:
    params = [SHAPES]
    param_names = ["x.shape"]

    def setup(self, shape):
        gen = np.random.default_rng(0)
        self.x = gen.standard_normal(shape)
        c = shape[1]
        self.a, self.b = 0.1 * gen.standard_normal(c), gen.standard_normal(c)
        view = (1, c) + (1,) * (len(shape) - 2)
        self.scale, self.shift = np.exp(self.a).reshape(view), self.b.reshape(view)

    def _forward(self):
        return actnorm(self.x, self.a, self.b)

    def _broadcast(self):
        return self.scale * self.x + self.shift

    def time_forward(self, shape):
        self._forward()

    def time_vjp(self, shape):
        actnorm_vjp(self.x, self.a, self.b, self.x, np.ones(self.x.shape[0]))

    def time_init(self, shape):
        actnorm_init(self.x)

    def track_forward_over_broadcast(self, shape):
        return common.ratio(self._forward, self._broadcast)

    track_forward_over_broadcast.unit = "ratio"
