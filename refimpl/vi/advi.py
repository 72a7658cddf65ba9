r"""Reparameterised mean-field Gaussian VI (ADVI): the ELBO estimate, its gradient and VJP, a fit.

Convention (docs/conventions.rst, section 6.3). ``q = N(mu, diag(sigma^2))``
with ``sigma = exp(omega)`` (or ``softplus(omega)``), samples
``z_s = mu + sigma * eps_s`` for a given ``eps`` of shape ``(S, D)``:

.. math::  \widehat{\mathrm{ELBO}} = \frac1S \sum_s \log p(z_s) + \sum_d \log\sigma_d
           + \frac D2 (1 + \log 2\pi).

The gradient is explicit: with ``g_s = grad log p(z_s)``,
``d/dmu = mean_s g_s`` and ``d/domega = (mean_s g_s * eps_s + 1/sigma) dsigma/domega``.
The target is given as ``log_p`` (for the ELBO) and ``grad_log_p`` (for its
gradient and VJP): every function here takes both, by keyword.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from .._results import cotangent_type
from .._special import LOG_2PI
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace

__all__ = ["ADVIGradient", "ADVIResult", "PARAMETRIZATIONS", "advi_elbo", "advi_elbo_grad",
           "advi_elbo_vjp", "advi_fit"]

PARAMETRIZATIONS = ("exp", "softplus")

ADVICotangents = cotangent_type("ADVICotangents", "mu omega eps")


class ADVIGradient(NamedTuple):
    """The gradient of the ELBO estimate with respect to ``mu`` and ``omega``."""

    mu: Any
    omega: Any


class ADVIResult(NamedTuple):
    """Final ``mu``, ``omega`` (and ``sigma``), and the ELBO estimate before each step."""

    mu: Any
    omega: Any
    sigma: Any
    elbo: Any


def _advi_inputs(mu, omega, eps, parametrization, others=()):
    """Validate ``mu (D,)``, ``omega (D,)``, ``eps (S, D)``; return ``(xp, sigma)``."""
    named = (("mu", mu), ("omega", omega), ("eps", eps)) + tuple(others)
    for name, arr in named:
        require_real_floating(name, arr)
    xp, _ = get_namespace(*(a for _, a in named))
    require_same_dtype(**dict(named))
    if mu.ndim != 1 or tuple(omega.shape) != tuple(mu.shape):
        raise ValueError(f"mu and omega must both have shape (D,), got {tuple(mu.shape)} "
                         f"and {tuple(omega.shape)}")
    if eps.ndim != 2 or eps.shape[1] != mu.shape[0] or eps.shape[0] < 1:
        raise ValueError(f"eps must have shape (S, D) with S >= 1 and D = {mu.shape[0]}, "
                         f"got {tuple(eps.shape)}")
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    return xp, _sigma(xp, omega, parametrization)


def _sigma(xp, omega, parametrization):
    if parametrization == "exp":
        return xp.exp(omega)
    return xp.logaddexp(xp.zeros_like(omega), omega)  # softplus, stable for large |omega|


def _log_sigma(xp, omega, sigma, parametrization):
    return omega if parametrization == "exp" else xp.log(sigma)


def _dsigma_domega(xp, omega, sigma, parametrization):
    if parametrization == "exp":
        return sigma
    return 1.0 / (1.0 + xp.exp(-omega))  # sigmoid


def _evaluate(fn, z, expected_shape, what):
    """Call the user's ``log_p``/``grad_log_p`` and check the shape of its answer."""
    out = fn(z)
    if not hasattr(out, "shape") or tuple(out.shape) != expected_shape:
        got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
        raise ValueError(f"{what} must map z of shape {tuple(z.shape)} to shape "
                         f"{expected_shape}, got {got}")
    return out


def _target(log_p, grad_log_p, need, names=("log_p", "grad_log_p")):
    """Check the target's callables; ``need`` names the one this function evaluates.

    ``names`` are the two keywords as the caller spells them (the Householder
    flow VAE of :mod:`refimpl.flows.vae` calls them ``log_lik``, ``grad_log_lik``).
    """
    for name, fn in zip(names, (log_p, grad_log_p)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a callable z -> array, got {type(fn).__name__}")
    if (log_p if need == names[0] else grad_log_p) is None:
        raise TypeError(f"{need} is required here (a callable of z of shape (S, D))")


def advi_elbo(mu, omega, eps, *, log_p: Callable, grad_log_p: Callable | None = None,
              parametrization="exp"):
    r"""Reparameterised ELBO estimate of ``q = N(mu, diag(sigma^2))``.

    .. math::  \widehat{\mathrm{ELBO}} = \frac1S\sum_{s=1}^S \log p(\mu + \sigma\odot\varepsilon_s)
               + \sum_d \log\sigma_d + \frac D2(1 + \log 2\pi)

    The entropy is exact; only the expected log density is estimated.

    Parameters
    ----------
    mu, omega : (D,) arrays
        Mean and scale parameter: ``sigma = exp(omega)`` or ``softplus(omega)``.
    eps : (S, D) array
        Standard normal draws (an input: no hidden randomness).
    log_p : callable
        ``log_p(z)`` maps ``z`` of shape ``(S, D)`` to the ``(S,)`` log densities
        (unnormalised is fine: the ELBO then shifts by the constant).
    grad_log_p : callable, optional
        ``grad_log_p(z)``: ``(S, D)`` gradients of ``log p``; not used here,
        accepted so that the ELBO, its gradient and its VJP take the same arguments.
    parametrization : {"exp", "softplus"}
        Map from ``omega`` to ``sigma``.

    Returns
    -------
    elbo : 0-d array

    Examples
    --------
    With ``log p = 0`` the estimate is the entropy of ``q``:

    >>> import math
    >>> import numpy as np
    >>> from refimpl.vi import advi_elbo
    >>> zero = lambda z: np.zeros(z.shape[0])
    >>> elbo = advi_elbo(np.zeros(3), np.log(np.full(3, 2.0)), np.ones((4, 3)), log_p=zero)
    >>> bool(np.isclose(elbo, 3 * (math.log(2.0) + 0.5 * (1 + math.log(2 * math.pi)))))
    True
    """
    _target(log_p, grad_log_p, "log_p")
    xp, sigma = _advi_inputs(mu, omega, eps, parametrization)
    z = mu + sigma * eps
    lp = _evaluate(log_p, z, (eps.shape[0],), "log_p")
    entropy = xp.sum(_log_sigma(xp, omega, sigma, parametrization)) + 0.5 * mu.shape[0] * (1.0 + LOG_2PI)
    return xp.mean(lp) + entropy


def _advi_partials(grad_log_p, mu, omega, eps, parametrization, others=()):
    """``(xp, sigma, g)``: validated inputs and ``g_s = grad log p(z_s)``."""
    xp, sigma = _advi_inputs(mu, omega, eps, parametrization, others)
    g = _evaluate(grad_log_p, mu + sigma * eps, tuple(eps.shape), "grad_log_p")
    return xp, sigma, g


def _grad_from(xp, omega, sigma, eps, g, parametrization):
    d_mu = xp.mean(g, axis=0)
    d_sigma = xp.mean(g * eps, axis=0) + 1.0 / sigma
    return d_mu, d_sigma * _dsigma_domega(xp, omega, sigma, parametrization)


def advi_elbo_grad(mu, omega, eps, *, grad_log_p: Callable, log_p: Callable | None = None,
                   parametrization="exp"):
    r"""Gradient of :func:`advi_elbo` with respect to ``mu`` and ``omega`` (same ``eps``).

    .. math::
        \frac{\partial}{\partial\mu} = \frac1S\sum_s g_s,\qquad
        \frac{\partial}{\partial\omega} = \Big(\frac1S\sum_s g_s\odot\varepsilon_s
        + \frac1\sigma\Big)\odot\frac{d\sigma}{d\omega},

    ``g_s = grad log p(z_s)``; ``dsigma/domega = sigma`` for ``exp`` (so
    ``d/domega = mean_s g_s eps_s sigma + 1``) and ``sigmoid(omega)`` for softplus.
    Arguments as :func:`advi_elbo`; ``grad_log_p`` is required.

    Returns
    -------
    ADVIGradient(mu, omega) : (D,) arrays
    """
    _target(log_p, grad_log_p, "grad_log_p")
    xp, sigma, g = _advi_partials(grad_log_p, mu, omega, eps, parametrization)
    return ADVIGradient(*_grad_from(xp, omega, sigma, eps, g, parametrization))


def advi_elbo_vjp(mu, omega, eps, cotangent, *, grad_log_p: Callable,
                  log_p: Callable | None = None, parametrization="exp"):
    r"""Cotangents ``(mu, omega, eps)`` of :func:`advi_elbo` for the scalar cotangent ``c``.

    ``(c d_mu, c d_omega, c g_s sigma / S)``, the last being ``d/deps_s`` of
    ``log p(mu + sigma eps_s) / S``. Arguments as :func:`advi_elbo` (the same
    keywords), plus ``cotangent``, a 0-d array; ``grad_log_p`` is required.
    """
    _target(log_p, grad_log_p, "grad_log_p")
    xp, sigma, g = _advi_partials(grad_log_p, mu, omega, eps, parametrization,
                                  (("cotangent", cotangent),))
    if cotangent.ndim != 0:
        raise ValueError(f"cotangent must be a 0-d array (the ELBO is a scalar), "
                         f"got shape {tuple(cotangent.shape)}")
    d_mu, d_omega = _grad_from(xp, omega, sigma, eps, g, parametrization)
    return ADVICotangents(cotangent * d_mu, cotangent * d_omega,
                          cotangent * (g * sigma) / eps.shape[0])


def advi_fit(mu, omega, eps, *, log_p: Callable, grad_log_p: Callable, step_size=0.1,
             n_steps=None, parametrization="exp"):
    r"""Plain gradient ascent on the ADVI objective (a demonstration loop).

    ``eps`` of shape ``(S, D)`` is reused at every step (a deterministic
    sample-average objective); shape ``(T, S, D)`` gives fresh draws
    ``eps[t]`` at step ``t``. Each step is
    ``(mu, omega) += step_size * advi_elbo_grad(...)``.

    Parameters
    ----------
    mu, omega : (D,) arrays
        Starting point.
    eps : (S, D) or (T, S, D) array
        Noise, fixed or per step.
    log_p, grad_log_p : callable
        Target log density and its gradient, as in :func:`advi_elbo`.
    step_size : float
        Learning rate.
    n_steps : int, optional
        Number of steps; required for fixed ``eps``, ``T`` by default otherwise.
    parametrization : {"exp", "softplus"}
        Map from ``omega`` to ``sigma``.

    Returns
    -------
    ADVIResult(mu, omega, sigma, elbo)
    """
    _target(log_p, grad_log_p, "log_p")
    _target(log_p, grad_log_p, "grad_log_p")
    require_real_floating("eps", eps)
    per_step = eps.ndim == 3
    if n_steps is None:
        if not per_step:
            raise ValueError("n_steps is required when eps has shape (S, D)")
        n_steps = eps.shape[0]
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
    if per_step and n_steps > eps.shape[0]:
        raise ValueError(f"eps has {eps.shape[0]} steps of noise, n_steps = {n_steps} needs more")
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    xp, _ = _advi_inputs(mu, omega, eps[0, ...] if per_step else eps, parametrization)
    _, device = get_namespace(mu)
    target = dict(log_p=log_p, grad_log_p=grad_log_p, parametrization=parametrization)
    trace = []
    for t in range(n_steps):
        e = eps[t, ...] if per_step else eps
        trace.append(advi_elbo(mu, omega, e, **target))
        d_mu, d_omega = advi_elbo_grad(mu, omega, e, **target)
        mu, omega = mu + step_size * d_mu, omega + step_size * d_omega
    sigma = _sigma(xp, omega, parametrization)
    elbo = xp.stack(trace) if trace else xp.zeros((0,), dtype=mu.dtype, device=device)
    return ADVIResult(mu, omega, sigma, elbo)
