"""Teeth for the Householder-flow VAE bound: NumPy with dense reflectors (tests/_teeth_flows.py), bugs.

``z_0 = mu + sigma eps``, ``z_K = z_0 U`` (rows; ``U = H(v_1) ... H(v_K)``),
the bound ``mean_s [log_lik(z_K) + log N(z_K) + 1/2 ||eps||^2 + D/2 log 2 pi]
+ sum log sigma`` (``"exact"``: ``D/2 (1 + log 2 pi)`` for the sample terms of
``q_0``). VJP: ``g_K = c (grad_log_lik(z_K) - z_K) / S``, ``dz_0 = g_K U^T``,
``dU = z_0^T g_K`` through the reflectors, then ``mu``, ``omega`` (``exp`` or
``softplus``) and ``eps``.
"""

from __future__ import annotations

import math

import numpy as np
from _teeth_flows import Flows, gaussian_logpdf, sigmoid
from _teeth_numpy import GRADIENT_CHECKS, class_teeth


def _sigma(omega, parametrization):
    if parametrization == "exp":
        return np.exp(omega), np.exp(omega)
    return np.logaddexp(0.0, omega), sigmoid(omega)


class HouseholderVAE(Flows):
    def _latents(self, mu, omega, V, eps, parametrization):
        sigma, slope = _sigma(omega, parametrization)
        z0 = mu + sigma * eps
        U = self.householder(V)[0]
        return sigma, slope, z0, z0 @ U, U

    def bound(self, mu, omega, V, eps, *, log_lik, grad_log_lik=None, parametrization="exp",
              entropy="sample"):
        sigma, _, z0, zK, _ = self._latents(mu, omega, V, eps, parametrization)
        d = mu.shape[0]
        decoder = log_lik(z0 if self.bug == "decoder at z_0" else zK)
        if entropy == "sample":
            half = 1.0 if self.bug == "||eps||^2 without its 1/2" else 0.5
            minus_log_q0 = half * np.sum(eps * eps, axis=1) + 0.5 * d * math.log(2 * math.pi)
        else:
            minus_log_q0 = 0.5 * d * ((0.0 if self.bug == "exact entropy without D/2" else 1.0)
                                      + math.log(2 * math.pi))
        total = np.mean(decoder + gaussian_logpdf(zK) + minus_log_q0) + np.sum(np.log(sigma))
        return np.asarray(total, dtype=mu.dtype)

    def bound_vjp(self, mu, omega, V, eps, cotangent, *, grad_log_lik, log_lik=None,
                  parametrization="exp", entropy="sample"):
        sigma, slope, z0, zK, U = self._latents(mu, omega, V, eps, parametrization)
        S = eps.shape[0]
        gK = cotangent * (grad_log_lik(zK) - zK) / S
        dz0 = gK @ U.T
        dV = self.householder_vjp(V, z0.T @ gK)
        d_eps = sigma * dz0
        if entropy == "sample" and self.bug != "eps misses the entropy's term":
            d_eps = d_eps + cotangent * eps / S
        d_omega = (np.sum(dz0 * eps, axis=0) + cotangent / sigma) * slope
        return tuple(a.astype(mu.dtype) for a in (np.sum(dz0, axis=0), d_omega, dV, d_eps))


TEETH = {
    "householder_vae_bound": class_teeth(
        HouseholderVAE, "bound", "bound_vjp",
        ["decoder at z_0", "||eps||^2 without its 1/2", "exact entropy without D/2",
         "eps misses the entropy's term", "reflector cotangent negated"],
        {"decoder at z_0": {"matches ground truth", "exact posterior gives log p(x)"},
         "||eps||^2 without its 1/2": {"matches ground truth", "exact posterior gives log p(x)"},
         "exact entropy without D/2": {"matches ground truth", "matches refimpl forward"},
         "eps misses the entropy's term": GRADIENT_CHECKS,
         "reflector cotangent negated": GRADIENT_CHECKS},
    ),
}
