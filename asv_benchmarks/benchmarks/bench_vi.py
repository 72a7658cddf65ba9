"""Normal-model CAVI and the ADVI estimator, with same-run baselines.

ADVI: beyond the user's target the estimator does a few elementwise passes
over ``(S, D)`` plus argument checks, so ``advi_elbo_grad`` is reported
against one call of ``grad_log_p`` on the samples (measured: about 2x at
S = 1024, D = 100, where the passes dominate; more at small sizes, where the
checks' fixed cost does). CAVI for the normal model: a fit is ``O(n)``
statistics plus a few scalar sweeps, each with two ELBO evaluations; it is
reported against one ``numpy.var`` of the data.
"""

from . import common

import numpy as np

from refimpl.vi import advi_elbo, advi_elbo_grad, advi_elbo_vjp, normal_cavi
from verify.ops.vi import gaussian_target

SIZES = [(256, 10), (1024, 100)]


def _advi_inputs(samples, d):
    gen = np.random.default_rng(0)
    target = gaussian_target(gen, d)
    return target, gen.standard_normal(d), np.zeros(d), gen.standard_normal((samples, d))


class ADVI:
    params = [SIZES]
    param_names = ["(S, D)"]

    def setup(self, size):
        self.target, self.mu, self.omega, self.eps = _advi_inputs(*size)

    def time_elbo(self, size):
        advi_elbo(self.target.log_p, self.mu, self.omega, self.eps)

    def time_grad(self, size):
        advi_elbo_grad(self.target.grad_log_p, self.mu, self.omega, self.eps)

    def time_vjp(self, size):
        advi_elbo_vjp(self.target.grad_log_p, self.mu, self.omega, self.eps, np.ones(()))


class NormalCAVI:
    params = [[100, 100000]]
    param_names = ["n"]

    def setup(self, n):
        self.x = np.random.default_rng(0).normal(2.0, 3.0, n)

    def time_fit(self, n):
        normal_cavi(self.x)

    def track_fit_over_variance(self, n):
        return common.ratio(lambda: normal_cavi(self.x), lambda: np.var(self.x))

    track_fit_over_variance.unit = "ratio"


class Ratios:
    """The estimator's gradient over the target's gradient, same run (unit: ratio)."""

    params = [SIZES]
    param_names = ["(S, D)"]

    def setup(self, size):
        self.target, self.mu, self.omega, self.eps = _advi_inputs(*size)
        self.z = self.mu + np.exp(self.omega) * self.eps

    def track_grad_over_target_gradient(self, size):
        return common.ratio(
            lambda: advi_elbo_grad(self.target.grad_log_p, self.mu, self.omega, self.eps),
            lambda: self.target.grad_log_p(self.z))

    track_grad_over_target_gradient.unit = "ratio"
