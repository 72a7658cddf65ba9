"""The Householder-flow VAE bound and its VJP against one call of the decoder's gradient, same run."""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.flows import householder_vae_bound, householder_vae_bound_vjp
from verify.ops.vi.advi import gaussian_target

SIZES = [(64, 32, 8), (256, 256, 16)]


class HouseholderVAE:
    params = [SIZES]
    param_names = ["(S, D, K)"]

    def setup(self, size):
        samples, d, k = size
        gen = np.random.default_rng(0)
        target = gaussian_target(gen, d)
        self.decoder = {"log_lik": target.log_p, "grad_log_lik": target.grad_log_p}
        self.args = (gen.standard_normal(d), np.zeros(d), gen.standard_normal((k, d)),
                     gen.standard_normal((samples, d)))

    def _vjp(self):
        return householder_vae_bound_vjp(*self.args, np.ones(()), **self.decoder)

    def _decoder_gradient(self):
        return self.decoder["grad_log_lik"](self.args[3])

    def time_bound(self, size):
        householder_vae_bound(*self.args, **self.decoder)

    def time_vjp(self, size):
        self._vjp()

    def track_vjp_over_decoder_gradient(self, size):
        return common.ratio(self._vjp, self._decoder_gradient)

    track_vjp_over_decoder_gradient.unit = "ratio"
