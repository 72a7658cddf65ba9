"""Softmax and log-softmax on 1000 x 1000 logits (float64): forward and VJP, SciPy as baseline."""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np
import scipy.special

from refimpl.nn.categorical import log_softmax, log_softmax_vjp, softmax, softmax_vjp

FUNCTIONS = {"softmax": (softmax, softmax_vjp, scipy.special.softmax),
             "log_softmax": (log_softmax, log_softmax_vjp, scipy.special.log_softmax)}


class Softmax:
    params = [list(FUNCTIONS)]
    param_names = ["function"]

    def setup(self, function):
        gen = np.random.default_rng(0)
        self.x, self.G = gen.standard_normal((1000, 1000)), gen.standard_normal((1000, 1000))
        self.forward, self.vjp, self.scipy = FUNCTIONS[function]

    def time_forward(self, function):
        self.forward(self.x)

    def time_vjp(self, function):
        self.vjp(self.x, self.G)

    def track_forward_over_scipy(self, function):
        return common.ratio(lambda: self.forward(self.x), lambda: self.scipy(self.x, axis=-1))

    track_forward_over_scipy.unit = "ratio"
