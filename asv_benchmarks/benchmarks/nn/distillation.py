"""Distillation loss on a batch of 256 x 1000 logits: forward and VJP over the textbook NumPy loss.

The baseline is ``T^2 sum q (log q - log p) / N`` plus the cross entropy from
SciPy's ``log_softmax``: the centred ``log1p``/``expm1`` form of refimpl's KL
costs a few more passes over the logits.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np
from scipy.special import log_softmax

from refimpl.nn.distillation import distillation_loss, distillation_loss_vjp

T, ALPHA = 4.0, 0.7


def textbook(s, t, y):
    n = s.shape[0]
    log_p, log_q = log_softmax(s / T, axis=1), log_softmax(t / T, axis=1)
    soft = T * T * np.sum(np.exp(log_q) * (log_q - log_p)) / n
    return ALPHA * soft - (1 - ALPHA) * np.sum(log_softmax(s, axis=1)[np.arange(n), y]) / n


class Distillation:
    def setup(self):
        gen = np.random.default_rng(0)
        self.s, self.t = 3 * gen.standard_normal((256, 1000)), 3 * gen.standard_normal((256, 1000))
        self.y = gen.integers(0, 1000, 256)

    def loss(self):
        return distillation_loss(self.s, self.t, T, labels=self.y, alpha=ALPHA)

    def vjp(self):
        return distillation_loss_vjp(self.s, self.t, np.array(1.0), T, labels=self.y, alpha=ALPHA)

    def time_forward(self):
        self.loss()

    def time_vjp(self):
        self.vjp()

    def track_forward_over_textbook(self):
        return common.ratio(self.loss, lambda: textbook(self.s, self.t, self.y))

    def track_vjp_over_forward(self):
        return common.ratio(self.vjp, self.loss)

    track_forward_over_textbook.unit = "ratio"
    track_vjp_over_forward.unit = "ratio"
