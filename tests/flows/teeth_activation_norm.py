"""Teeth for ActNorm and its initialisation: NumPy per channel (tests/_teeth_flows.py) and planted bugs.

The candidate broadcasts ``exp(a)`` and ``b`` along axis 1, sums the
parameters' cotangents over the samples and positions
(``da = e^a sum g x + P sum glogdet``, ``db = sum g``; the inverse
``-sum g x_out - P sum glogdet``, ``-e^{-a} sum g``), and initialises from
the per-channel mean and ``std`` with ``ddof`` (its VJP through ``r = std + eps``
and the mean).
"""

from __future__ import annotations

from _teeth_flows import Flows
from _teeth_numpy import GRADIENT_CHECKS, class_teeth

JACOBIAN = "log-determinant of the Jacobian"


class ActNorms(Flows):
    def forward(self, x, log_scale, shift):
        return self.actnorm(x, log_scale, shift)

    def vjp(self, x, log_scale, shift, gz, glogdet):
        return self.actnorm_vjp(x, log_scale, shift, gz, glogdet)

    def inverse(self, z, log_scale, shift):
        return self.actnorm(z, log_scale, shift, inverse=True)

    def inverse_vjp(self, z, log_scale, shift, gx, glogdet):
        return self.actnorm_vjp(z, log_scale, shift, gx, glogdet, inverse=True)


_BUGS = {
    "scale exp(-a)": {"matches ground truth", "matches refimpl forward"},
    "logdet without the positions": {"matches ground truth", JACOBIAN},
    "d log_scale misses the logdet": {"vjp: dot-product test", "vjp: autograd",
                                      "vjp: matches refimpl"},
    "shift cotangent negated": GRADIENT_CHECKS,
}
_INIT_BUGS = {
    "ddof ignored": {"matches ground truth", "zero mean, unit variance on its batch"},
    "eps added to the variance": {"matches ground truth", "matches refimpl forward"},
    "the mean's cotangent dropped": GRADIENT_CHECKS,
}

TEETH = {
    "actnorm": class_teeth(ActNorms, "forward", "vjp", list(_BUGS), _BUGS),
    "actnorm_inverse": class_teeth(
        ActNorms, "inverse", "inverse_vjp",
        ["scale exp(-a)", "inverse logdet not negated", "d log_scale misses the logdet"],
        {"scale exp(-a)": {"matches ground truth", "round trip with actnorm"},
         "inverse logdet not negated": {"matches ground truth", JACOBIAN},
         "d log_scale misses the logdet": GRADIENT_CHECKS}),
    "actnorm_init": class_teeth(ActNorms, "actnorm_init", "actnorm_init_vjp", list(_INIT_BUGS),
                                _INIT_BUGS),
}
