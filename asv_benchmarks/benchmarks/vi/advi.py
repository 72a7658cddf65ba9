"""The ADVI estimator, its gradient and VJP, and the fit, with same-run baselines.

Beyond the user's target the estimator does a few elementwise passes over
``(S, D)`` plus argument checks, so ``advi_elbo_grad`` is reported against
one call of ``grad_log_p`` on the samples (measured: about 2x at S = 1024,
D = 100, where the passes dominate; more at small sizes, where the checks'
fixed cost does).
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.vi.advi import advi_elbo, advi_elbo_grad, advi_elbo_vjp, advi_fit
from verify.ops.vi.advi import gaussian_target, target_params

SIZES = [(256, 10), (1024, 100)]


def _advi_inputs(samples, d):
    gen = np.random.default_rng(0)
    target = target_params(gaussian_target(gen, d))
    return target, gen.standard_normal(d), np.zeros(d), gen.standard_normal((samples, d))


class ADVI:
    params = [SIZES]
    param_names = ["(S, D)"]

    def setup(self, size):
        self.target, self.mu, self.omega, self.eps = _advi_inputs(*size)

    def time_elbo(self, size):
        advi_elbo(self.mu, self.omega, self.eps, **self.target)

    def time_grad(self, size):
        advi_elbo_grad(self.mu, self.omega, self.eps, **self.target)

    def time_vjp(self, size):
        advi_elbo_vjp(self.mu, self.omega, self.eps, np.ones(()), **self.target)

    def time_fit_ten_steps(self, size):
        advi_fit(self.mu, self.omega, self.eps, step_size=0.01, n_steps=10, **self.target)


class Ratios:
    """The estimator's gradient over the target's gradient, same run (unit: ratio)."""

    params = [SIZES]
    param_names = ["(S, D)"]

    def setup(self, size):
        self.target, self.mu, self.omega, self.eps = _advi_inputs(*size)
        self.z = self.mu + np.exp(self.omega) * self.eps

    def track_grad_over_target_gradient(self, size):
        return common.ratio(
            lambda: advi_elbo_grad(self.mu, self.omega, self.eps, **self.target),
            lambda: self.target["grad_log_p"](self.z))

    track_grad_over_target_gradient.unit = "ratio"
