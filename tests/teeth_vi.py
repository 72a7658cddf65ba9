"""Teeth for the reparameterised ELBO: an independent NumPy implementation and planted bugs.

Read by tests/test_verify_teeth.py. The correct candidate evaluates, for the
registered Gaussian target ``log p(z) = c - 1/2 (z - m)^T Lambda (z - m)``
(``Lambda`` symmetric), ``z_s = mu + sigma * eps_s`` and::

    L = mean_s log p(z_s) + sum_i log sigma_i + D/2 (1 + log 2 pi),

with ``sigma = exp(omega)`` (``dsigma/domega = sigma``) or
``sigma = softplus(omega)`` (``dsigma/domega = 1 / (1 + exp(-omega))``), and with
``g_s = -Lambda (z_s - m)`` and cotangent ``c``::

    dmu = c mean_s g_s,   domega = c (mean_s g_s * eps_s + 1 / sigma) dsigma/domega,
    deps_s = c sigma * g_s / S.

Each mutant changes one of these lines.
"""

from __future__ import annotations

import math

import numpy as np

from verify import Candidate
from verify.testing import Teeth


class Elbo:
    """Forward and VJP of the ELBO estimate; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _sigma(self, omega, parametrization):
        """``sigma`` and ``dsigma/domega``."""
        if parametrization == "exp" or self.bug == "parametrization ignored (always exp)":
            sigma = np.exp(omega)
            return sigma, sigma
        return np.logaddexp(0.0, omega), 1.0 / (1.0 + np.exp(-omega))

    def _weight(self, samples):
        """Of each sample in the average over samples."""
        return 1.0 if self.bug == "sum over samples, not mean" else 1.0 / samples

    def _average(self, values):
        """Over the samples (axis 0)."""
        return np.sum(values, axis=0) * self._weight(values.shape[0])

    def _target(self, target, dtype):
        return (np.asarray(target.m, dtype=dtype), np.asarray(target.precision, dtype=dtype),
                target.c)

    def forward(self, mu, omega, eps, *, target, parametrization):
        m, lam, c = self._target(target, mu.dtype)
        sigma, _ = self._sigma(omega, parametrization)
        r = mu + sigma * eps - m
        log_p = c - 0.5 * np.einsum("si,ij,sj->s", r, lam, r)
        d = mu.shape[0]
        constant = 0.5 * d * (math.log(2 * math.pi) if self.bug == "constant D/2 log 2 pi"
                              else 1.0 + math.log(2 * math.pi))
        return self._average(log_p) + np.sum(np.log(sigma)) + np.asarray(constant, mu.dtype)

    def vjp(self, mu, omega, eps, cotangent, *, target, parametrization):
        m, lam, _ = self._target(target, mu.dtype)
        sigma, dsigma = self._sigma(omega, parametrization)
        g = -(mu + sigma * eps - m) @ lam
        entropy = 0.0 if self.bug == "entropy term missing from domega" else 1.0 / sigma
        d_mu = cotangent * self._average(g)
        d_omega = cotangent * (self._average(g * eps) + entropy) * dsigma
        d_eps = cotangent * sigma * g * self._weight(eps.shape[0])
        return d_mu, d_omega, d_eps


def _candidate(bug=None):
    e = Elbo(bug)
    return Candidate(e.forward, vjp=e.vjp)


_BUGS = ("entropy term missing from domega", "constant D/2 log 2 pi",
         "sum over samples, not mean", "parametrization ignored (always exp)")

TEETH = {
    "advi_elbo": Teeth(
        correct=_candidate(),
        mutants={b: _candidate(b) for b in _BUGS},
        caught_by={
            "entropy term missing from domega": {
                "vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl",
                "fixed point sigma^2 = 1/diag(Lambda)"},
            "constant D/2 log 2 pi": {"matches ground truth", "entropy equals scipy"},
            "parametrization ignored (always exp)": {"parametrizations agree"},
        },
    ),
}
