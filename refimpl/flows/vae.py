r"""The Householder-flow VAE bound (Tomczak and Welling 2016) for given encoder outputs, noise and decoder.

Convention (docs/conventions.rst, section 3.10). For one data point the
encoder gives ``mu``, ``omega`` (``sigma = exp(omega)`` or ``softplus(omega)``,
as ADVI, section 6.3) and the reflectors ``V (K, D)``; with the noise
``eps (S, D)`` (an input), ``z_0 = mu + sigma * eps`` and
``z_K = H_K ... H_1 z_0`` (:func:`refimpl.flows.householder_flow`,
``log|det| = 0``). With the standard normal prior and the decoder's
log-likelihood ``log_lik(z) = log p(x | z)``:

.. math::  \mathcal L = \frac1S \sum_s \big[\log p(x \mid z_K^s) + \log\mathcal N(z_K^s; 0, I)
           - \log q_0(z_0^s)\big] + \log|\det|,

``log q_0(z_0^s) = log N(eps_s; 0, I) - sum log sigma``. ``entropy="sample"``
(default, the estimator of Tomczak and Welling's code) uses it as written;
``entropy="exact"`` replaces ``-mean_s log q_0`` by the entropy of ``q_0``,
``sum log sigma + D/2 (1 + log 2 pi)``, as :func:`refimpl.vi.advi_elbo`. At
the exact posterior the ``"sample"`` bound equals ``log p(x)`` for any noise.
"""

from __future__ import annotations

from .._results import cotangent_type
from .._special import LOG_2PI
from ..vi.advi import _advi_inputs, _dsigma_domega, _evaluate, _log_sigma, _target
from ._bijector import standard_normal_logpdf
from .householder_flows import householder_flow, householder_flow_vjp

__all__ = ["ENTROPIES", "householder_vae_bound", "householder_vae_bound_vjp"]

ENTROPIES = ("sample", "exact")
_NAMES = ("log_lik", "grad_log_lik")

VAECotangents = cotangent_type("VAECotangents", "mu omega V eps")


def _vae_inputs(mu, omega, V, eps, parametrization, entropy, others=()):
    """Validate the encoder outputs and noise; return ``(xp, sigma, z_0, z_K)``."""
    xp, sigma = _advi_inputs(mu, omega, eps, parametrization, (("V", V),) + tuple(others))
    if V.ndim != 2 or V.shape[1] != mu.shape[0]:
        raise ValueError(f"V must have shape (K, D) with D = {mu.shape[0]}, got {tuple(V.shape)}")
    if entropy not in ENTROPIES:
        raise ValueError(f"entropy must be one of {ENTROPIES}, got {entropy!r}")
    z0 = mu + sigma * eps
    return xp, sigma, z0, householder_flow(z0, V).z


def householder_vae_bound(mu, omega, V, eps, *, log_lik, grad_log_lik=None,
                          parametrization="exp", entropy="sample"):
    r"""The Householder-flow VAE bound of one data point, a 0-d array.

    .. math::  \mathcal L = \frac1S\sum_s \Big[\log p(x \mid z_K^s) - \tfrac12\lVert z_K^s\rVert^2
               + \tfrac12\lVert\varepsilon_s\rVert^2\Big] + \sum_d \log\sigma_d

    for ``entropy="sample"`` (the ``log 2 pi`` terms cancel), and with
    ``1/2 ||eps_s||^2`` replaced by ``D/2`` for ``"exact"``.

    Parameters
    ----------
    mu, omega : (D,) arrays
        Encoder outputs: mean and scale parameter of ``q_0``.
    V : (K, D) array
        Encoder output: the Householder reflectors, ``H_1`` (row 0) acting first.
    eps : (S, D) array
        Standard normal draws.
    log_lik : callable
        ``log_lik(z)``: the ``(S,)`` decoder log-likelihoods ``log p(x | z_s)``.
    grad_log_lik : callable, optional
        Its gradient ``(S, D)``; not used here, accepted so that the bound and
        its VJP take the same arguments.
    parametrization : {"exp", "softplus"}
        ``sigma`` from ``omega``, as :func:`refimpl.vi.advi_elbo`.
    entropy : {"sample", "exact"}
        The estimator of ``-E log q_0`` (module docstring).

    Examples
    --------
    With a flat decoder the ``"sample"`` bound is ``mean_s (||eps_s||^2 - ||z_K^s||^2) / 2 + sum log sigma``:

    >>> import numpy as np
    >>> from refimpl.flows import householder_vae_bound
    >>> flat = lambda z: np.zeros(z.shape[0])
    >>> mu, omega, V, eps = np.zeros(2), np.zeros(2), np.array([[1.0, 1.0]]), np.ones((3, 2))
    >>> float(householder_vae_bound(mu, omega, V, eps, log_lik=flat))
    0.0
    """
    _target(log_lik, grad_log_lik, "log_lik", _NAMES)
    xp, sigma, _, zK = _vae_inputs(mu, omega, V, eps, parametrization, entropy)
    S, D = eps.shape
    decoder = _evaluate(log_lik, zK, (S,), "log_lik")
    prior = standard_normal_logpdf(xp, zK)
    if entropy == "sample":
        minus_log_q0 = -standard_normal_logpdf(xp, eps)
    else:
        minus_log_q0 = xp.full((S,), 0.5 * D * (1.0 + LOG_2PI), dtype=eps.dtype, device=eps.device)
    log_sigma = xp.sum(_log_sigma(xp, omega, sigma, parametrization))
    return xp.mean(decoder + prior + minus_log_q0) + log_sigma


def householder_vae_bound_vjp(mu, omega, V, eps, cotangent, *, grad_log_lik, log_lik=None,
                              parametrization="exp", entropy="sample"):
    r"""Cotangents ``(mu, omega, V, eps)`` of :func:`householder_vae_bound` for the 0-d ``cotangent`` ``c``.

    With ``g_s = grad log_lik(z_K^s)``, the cotangent of ``z_K^s`` is
    ``c (g_s - z_K^s) / S``; the Householder flow's backward gives those of
    ``z_0`` (``w_s``) and ``V``; then

    .. math::  \bar\mu = \sum_s w_s,\qquad
               \bar\omega = \Big(\sum_s w_s\odot\varepsilon_s + \frac c\sigma\Big)\frac{d\sigma}{d\omega},
               \qquad \bar\varepsilon_s = \sigma\odot w_s + \frac cS\varepsilon_s\ [\text{"sample"}].
    """
    _target(log_lik, grad_log_lik, "grad_log_lik", _NAMES)
    xp, sigma, z0, zK = _vae_inputs(mu, omega, V, eps, parametrization, entropy,
                                    (("cotangent", cotangent),))
    if cotangent.ndim != 0:
        raise ValueError(f"cotangent must be a 0-d array (the bound is a scalar), "
                         f"got shape {tuple(cotangent.shape)}")
    S = eps.shape[0]
    g = _evaluate(grad_log_lik, zK, tuple(eps.shape), "grad_log_lik")
    no_logdet = xp.zeros((S,), dtype=eps.dtype, device=eps.device)
    w, dV = householder_flow_vjp(z0, V, (cotangent / S) * (g - zK), no_logdet)
    d_sigma = xp.sum(w * eps, axis=0) + cotangent / sigma
    d_eps = sigma * w
    if entropy == "sample":
        d_eps = d_eps + (cotangent / S) * eps
    return VAECotangents(xp.sum(w, axis=0), d_sigma * _dsigma_domega(xp, omega, sigma, parametrization),
                         dV, d_eps)
