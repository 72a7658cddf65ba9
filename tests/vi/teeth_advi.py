"""Teeth for the ADVI ops: an independent NumPy ELBO, gradient and fit, and planted bugs.

Read by tests/verify/test_teeth.py. The candidates call the target's
``log_p`` and ``grad_log_p`` as given, and evaluate ``z_s = mu + sigma * eps_s``,
``sigma = exp(omega)`` (``dsigma/domega = sigma``) or ``softplus(omega)``
(``dsigma/domega = 1 / (1 + exp(-omega))``), and::

    L = mean_s log p(z_s) + sum_i log sigma_i + D/2 (1 + log 2 pi),

with ``g_s = grad log p(z_s)`` and cotangent ``c``::

    dmu = c mean_s g_s,   domega = c (mean_s g_s * eps_s + 1 / sigma) dsigma/domega,
    deps_s = c sigma * g_s / S.

The fit takes ``n_steps`` steps ``(mu, omega) += step_size (dmu, domega)`` at ``c = 1``,
recording ``L`` before each. Each mutant changes one of these lines.
"""

from __future__ import annotations

import math

import numpy as np

from verify import Candidate
from verify.testing import Teeth


class Elbo:
    """Forward, VJP, gradient and fit of the ELBO estimate; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _sigma(self, omega, parametrization):
        """``sigma`` and ``dsigma/domega``."""
        if parametrization == "exp" or self.bug == "parametrization ignored (always exp)":
            sigma = np.exp(omega)
            return sigma, sigma
        sigma = np.logaddexp(0.0, omega)
        if self.bug == "softplus derivative taken as sigma":
            return sigma, sigma
        return sigma, 1.0 / (1.0 + np.exp(-omega))

    def _weight(self, samples):
        """Of each sample in the average over samples."""
        return 1.0 if self.bug == "sum over samples, not mean" else 1.0 / samples

    def _average(self, values):
        """Over the samples (axis 0)."""
        return np.sum(values, axis=0) * self._weight(values.shape[0])

    def forward(self, mu, omega, eps, *, log_p, grad_log_p=None, parametrization="exp"):
        sigma, _ = self._sigma(omega, parametrization)
        d = mu.shape[0]
        constant = 0.5 * d * (math.log(2 * math.pi) if self.bug == "constant D/2 log 2 pi"
                              else 1.0 + math.log(2 * math.pi))
        return (self._average(log_p(mu + sigma * eps)) + np.sum(np.log(sigma))
                + np.asarray(constant, mu.dtype))

    def _partials(self, mu, omega, eps, grad_log_p, parametrization):
        sigma, dsigma = self._sigma(omega, parametrization)
        g = grad_log_p(mu + sigma * eps)
        entropy = 0.0 if self.bug == "entropy term missing from domega" else 1.0 / sigma
        return g, sigma, self._average(g), (self._average(g * eps) + entropy) * dsigma

    def grad(self, mu, omega, eps, *, grad_log_p, log_p=None, parametrization="exp"):
        _, _, d_mu, d_omega = self._partials(mu, omega, eps, grad_log_p, parametrization)
        return d_mu, d_omega

    def vjp(self, mu, omega, eps, cotangent, *, grad_log_p, log_p=None, parametrization="exp"):
        g, sigma, d_mu, d_omega = self._partials(mu, omega, eps, grad_log_p, parametrization)
        return cotangent * d_mu, cotangent * d_omega, cotangent * sigma * g * self._weight(eps.shape[0])

    def fit(self, mu, omega, eps, *, log_p, grad_log_p, step_size=0.1, n_steps=None,
            parametrization="exp"):
        target = dict(log_p=log_p, grad_log_p=grad_log_p, parametrization=parametrization)
        per_step = eps.ndim == 3
        if n_steps is None:
            n_steps = 1 if self.bug == "one step for fresh noise" else eps.shape[0]
        sign = -1.0 if self.bug == "descends" else 1.0
        trace = []
        with np.errstate(all="ignore" if self.bug == "descends" else "warn"):  # it diverges
            return self._steps(mu, omega, eps, per_step, n_steps, sign * step_size, trace, target)

    def _steps(self, mu, omega, eps, per_step, n_steps, step_size, trace, target):
        for t in range(n_steps):
            e = eps[t] if per_step else eps
            if self.bug != "ELBO recorded after each step":
                trace.append(self.forward(mu, omega, e, **target))
            d_mu, d_omega = self.grad(mu, omega, e, **target)
            mu, omega = mu + step_size * d_mu, omega + step_size * d_omega
            if self.bug == "ELBO recorded after each step":
                trace.append(self.forward(mu, omega, e, **target))
        sigma = self._sigma(omega, target["parametrization"])[0]
        return mu, omega, sigma, np.asarray(trace, mu.dtype)


def _elbo(bug=None):
    e = Elbo(bug)
    return Candidate(e.forward, vjp=e.vjp)


_ELBO_BUGS = ("entropy term missing from domega", "constant D/2 log 2 pi",
              "sum over samples, not mean", "parametrization ignored (always exp)")
_GRAD_BUGS = ("entropy term missing from domega", "softplus derivative taken as sigma",
              "sum over samples, not mean")
_FIT_BUGS = ("descends", "entropy term missing from domega", "one step for fresh noise",
             "ELBO recorded after each step")

TEETH = {
    "advi_elbo": Teeth(
        correct=_elbo(),
        mutants={b: _elbo(b) for b in _ELBO_BUGS},
        caught_by={
            "entropy term missing from domega": {
                "vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl",
                "fixed point sigma^2 = 1/diag(Lambda)"},
            "constant D/2 log 2 pi": {"matches ground truth", "entropy equals scipy"},
            "parametrization ignored (always exp)": {"parametrizations agree"},
        },
    ),
    "advi_elbo_grad": Teeth(
        correct=Candidate(Elbo().grad),
        mutants={b: Candidate(Elbo(b).grad) for b in _GRAD_BUGS},
        caught_by={
            "entropy term missing from domega": {
                "matches ground truth", "fixed point sigma^2 = 1/diag(Lambda)",
                "moment-matched eps gives the exact gradient"},
            "softplus derivative taken as sigma": {
                "gradient in sigma agrees across parametrizations"},
        },
    ),
    "advi_fit": Teeth(
        correct=Candidate(Elbo().fit),
        mutants={b: Candidate(Elbo(b).fit) for b in _FIT_BUGS},
        caught_by={
            "descends": {"ELBO never decreases with small steps", "matches ground truth"},
            "entropy term missing from domega": {"optimum is a fixed point"},
            "one step for fresh noise": {"fresh noise of equal draws is fixed noise"},
            "ELBO recorded after each step": {"matches refimpl forward"},
        },
    ),
}
