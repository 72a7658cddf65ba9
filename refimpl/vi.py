r"""Mean-field variational inference: CAVI for the normal model and reparameterised Gaussian VI.

Convention (CONVENTIONS.md section 4). Two building blocks live here; the
Bayesian Gaussian mixture (scikit-learn's model, fitted by CAVI) is in
:mod:`refimpl.vi_bgmm`.

**Normal model with unknown mean and precision.** ``x_i ~ N(mu, 1/lambda)``
with the conjugate Normal-Gamma prior

.. math::  \mu \mid \lambda \sim N(\mu_0, (\kappa_0 \lambda)^{-1}),\qquad
           \lambda \sim \operatorname{Gamma}(a_0, \text{rate } b_0),

and the mean-field family ``q(mu) q(lambda)``. The flat priors of the lecture
example, ``p(mu, lambda) ∝ 1``, are the limit ``kappa0 = 0, a0 = 1/2,
b0 = 0`` (the defaults); there ``q(mu) = N(xbar, (n E[lambda])^{-1})``,
``q(lambda) = Gamma(n/2 + 1, (n s2 + 1/E[lambda]) / 2)`` and the fixed point is
``E[lambda] = (n + 1) / (n s2)``, ``Var q(mu) = s2 / (n + 1)``.

**ADVI.** ``q = N(mu, diag(sigma^2))`` with ``sigma = exp(omega)`` (or
``softplus(omega)``), samples ``z_s = mu + sigma * eps_s`` for a given
``eps`` of shape ``(S, D)``:

.. math::  \widehat{\mathrm{ELBO}} = \frac1S \sum_s \log p(z_s) + \sum_d \log\sigma_d
           + \frac D2 (1 + \log 2\pi).

The gradient is explicit: with ``g_s = grad log p(z_s)``,
``d/dmu = mean_s g_s`` and ``d/domega = (mean_s g_s * eps_s + 1/sigma) dsigma/domega``.

The gamma-function helpers :func:`_digamma` and :func:`_lgamma` use only
array-API operations (the standard has no special functions): a shift by ten
recurrence steps, then the asymptotic (Stirling) series; for positive
arguments the error is below ``1e-14 max(1, |f(x)|)`` in float64 (tested
against ``scipy.special`` on ``[1e-3, 1e5]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ._validation import (
    require_finite,
    require_ndim,
    require_real_floating,
    require_same_dtype,
)
from .backend import get_namespace

__all__ = [
    "ADVIResult",
    "NormalCAVIResult",
    "PARAMETRIZATIONS",
    "advi_elbo",
    "advi_elbo_grad",
    "advi_elbo_vjp",
    "advi_fit",
    "normal_cavi",
    "normal_elbo",
]

PARAMETRIZATIONS = ("exp", "softplus")
_LOG_2PI = math.log(2.0 * math.pi)

# ---------------------------------------------------------------------------
# Special functions from array-API operations (positive arguments)
# ---------------------------------------------------------------------------

_SHIFT = 10  # recurrence steps: the asymptotic series is then used at y >= 10
# Bernoulli terms B_2k / (2k) of the digamma series, in powers y^-2, y^-4, ..., y^-14.
_DIGAMMA_SERIES = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12)
# B_2k / (2k (2k - 1)) of Stirling's series, in powers y^-1, y^-3, ..., y^-13.
_STIRLING_SERIES = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)


def _horner(coefficients, t):
    """``sum_k c_k t^k`` for ``k = 0, 1, ...`` by Horner's rule."""
    acc = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        acc = acc * t + c
    return acc


def _shifted(xp, x):
    """``x + j`` for ``j = 0 .. 9`` along a new last axis."""
    _, device = get_namespace(x)
    return x[..., None] + xp.arange(_SHIFT, dtype=x.dtype, device=device)


def _digamma(xp, x):
    """``psi(x)`` for ``x > 0``: ``psi(x) = psi(x + 10) - sum_{j<10} 1/(x + j)``, then the series."""
    shift = xp.sum(1.0 / _shifted(xp, x), axis=-1)
    y = x + _SHIFT
    t = 1.0 / (y * y)
    return xp.log(y) - 0.5 / y - t * _horner(_DIGAMMA_SERIES, t) - shift


def _lgamma(xp, x):
    """``log Gamma(x)`` for ``x > 0``, by the same shift and Stirling's series."""
    shift = xp.sum(xp.log(_shifted(xp, x)), axis=-1)
    y = x + _SHIFT
    series = _horner(_STIRLING_SERIES, 1.0 / (y * y)) / y
    return (y - 0.5) * xp.log(y) - y + 0.5 * _LOG_2PI + series - shift


def _gamma_entropy(xp, a, b):
    """Entropy of ``Gamma(a, rate b)``: ``a - log b + lgamma(a) + (1 - a) psi(a)``."""
    return a - xp.log(b) + _lgamma(xp, a) + (1.0 - a) * _digamma(xp, a)


# ---------------------------------------------------------------------------
# CAVI for the normal model
# ---------------------------------------------------------------------------


@dataclass
class NormalCAVIResult:
    """Fitted ``q(mu) = N(mean, var)`` and ``q(lambda) = Gamma(shape, rate)``.

    ``elbo`` holds the ELBO after every single update (two per sweep: first
    ``q(mu)``, then ``q(lambda)``); ``n_iter`` counts sweeps.
    """

    mean: Any
    var: Any
    shape: Any
    rate: Any
    elbo: Any
    n_iter: int
    converged: bool


def _check_prior(**values) -> None:
    """Prior parameters: ``a0 > 0``; ``kappa0, b0 >= 0`` (0 means the flat limit)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"{name} must be a finite real number, got {value!r}")
    if not values["a0"] > 0:
        raise ValueError(f"a0 must be positive (the Gamma shape of the prior), got {values['a0']}")
    for name in ("kappa0", "b0"):
        if values[name] < 0:
            raise ValueError(f"{name} must be >= 0 (0 gives the flat limit), got {values[name]}")


def normal_elbo(x, mean, var, shape, rate, *, mu0=0.0, kappa0=0.0, a0=0.5, b0=0.0):
    r"""ELBO of ``q(mu) = N(mean, var) q(lambda) = Gamma(shape, rate)`` for the normal model.

    .. math::
        \mathcal L = E_q[\log p(x \mid \mu, \lambda)] + E_q[\log p(\mu \mid \lambda)]
        + E_q[\log p(\lambda)] + H[q(\mu)] + H[q(\lambda)]

    with ``E[lambda] = shape / rate``, ``E[log lambda] = psi(shape) - log(rate)``.
    Normalising constants of improper prior factors (``kappa0 = 0``: the
    ``1/2 log(kappa0 / 2 pi)`` of ``p(mu | lambda)``; ``b0 = 0``: the
    ``a0 log b0 - lgamma(a0)`` of ``p(lambda)``) are dropped, so that the
    flat defaults give the lecture's ELBO with ``p(mu, lambda) = 1``.

    Parameters
    ----------
    x : (n,) array
        Data.
    mean, var, shape, rate : 0-d arrays
        Variational parameters (same library and device as ``x``).
    mu0, kappa0, a0, b0 : float
        Normal-Gamma prior (defaults: the flat limit).

    Returns
    -------
    elbo : 0-d array
    """
    xp, _ = get_namespace(x)
    n = x.shape[0]
    e_lam = shape / rate
    e_log_lam = _digamma(xp, shape) - xp.log(rate)
    sq = xp.sum((x - mean) ** 2) + n * var  # E_q sum_i (x_i - mu)^2
    elbo = 0.5 * n * (e_log_lam - _LOG_2PI) - 0.5 * e_lam * sq
    elbo = elbo + 0.5 * e_log_lam - 0.5 * kappa0 * e_lam * ((mean - mu0) ** 2 + var)
    if kappa0 > 0:
        elbo = elbo + 0.5 * (math.log(kappa0) - _LOG_2PI)
    elbo = elbo + (a0 - 1.0) * e_log_lam - b0 * e_lam
    if b0 > 0:
        elbo = elbo + a0 * math.log(b0) - math.lgamma(a0)
    entropy_mu = 0.5 * (xp.log(var) + _LOG_2PI + 1.0)
    return elbo + entropy_mu + _gamma_entropy(xp, shape, rate)


def _q_lambda_rate(b0, scatter, kappa_n, var):
    """``b = b0 + 1/2 E_q(mu)[sum (x_i - mu)^2 + kappa0 (mu - mu0)^2]``.

    ``scatter = sum (x_i - m)^2 + kappa0 (m - mu0)^2`` at the mean ``m`` of
    ``q(mu)``; the variance adds ``(n + kappa0) var``.
    """
    return b0 + 0.5 * (scatter + kappa_n * var)


def normal_cavi(
    x, *, mu0=0.0, kappa0=0.0, a0=0.5, b0=0.0, e_lambda=None, tol=None, max_iter=100,
    check_finite=True,
):
    r"""Coordinate-ascent VI for ``x_i ~ N(mu, 1/lambda)`` with a Normal-Gamma prior.

    One sweep updates ``q(mu)`` then ``q(lambda)``:

    .. math::
        q(\mu) &= N\Big(\frac{\kappa_0\mu_0 + n\bar x}{\kappa_0 + n},
                 \frac{1}{(\kappa_0 + n) E[\lambda]}\Big), \\
        q(\lambda) &= \operatorname{Gamma}\Big(a_0 + \frac{n+1}{2},\;
                 b_0 + \tfrac12 E_{q(\mu)}\big[\textstyle\sum_i (x_i - \mu)^2
                 + \kappa_0 (\mu - \mu_0)^2\big]\Big).

    The defaults ``kappa0 = 0, a0 = 1/2, b0 = 0`` are the flat priors of the
    lecture example, with the fixed point ``E[lambda] = (n + 1) / (n s2)``,
    ``s2 = mean((x - xbar)^2)``.

    Parameters
    ----------
    x : (n,) array
        Data (float32 or float64).
    mu0, kappa0, a0, b0 : float
        Prior: ``mu | lambda ~ N(mu0, 1/(kappa0 lambda))``, ``lambda ~ Gamma(a0, rate b0)``.
    e_lambda : float, optional
        Starting ``E[lambda]``; default ``1 / s2`` (``1`` when ``s2 = 0``).
    tol : float, optional
        Stop when a sweep changes ``E[lambda]`` by at most ``tol * E[lambda]``
        (the parameters, not the ELBO, which is flat at its maximum); default
        ``100 * eps`` of the dtype (the fixed point to rounding).
    max_iter : int
        Maximum number of sweeps.
    check_finite : bool
        Reject NaN and infinity in ``x``.

    Returns
    -------
    NormalCAVIResult
        Variational parameters, the ELBO after every update, sweeps done, convergence.
    """
    require_real_floating("x", x)
    require_ndim("x", x, 1, "(n,)")
    if x.ndim != 1 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (n,) with n >= 1, got shape {tuple(x.shape)}")
    _check_prior(mu0=mu0, kappa0=kappa0, a0=a0, b0=b0)
    if check_finite:
        require_finite("x", x)
    xp, device = get_namespace(x)
    n = x.shape[0]
    xbar = xp.mean(x)
    s2 = xp.mean((x - xbar) ** 2)
    if kappa0 == 0 and b0 == 0 and not bool(s2 > 0):
        raise ValueError("x has zero variance: with kappa0 = 0 and b0 = 0 the posterior of "
                         "lambda is improper (pass b0 > 0 or data that vary)")
    if e_lambda is None:
        e_lam = 1.0 / s2 if bool(s2 > 0) else xp.ones((), dtype=x.dtype, device=device)
    elif not e_lambda > 0:
        raise ValueError(f"e_lambda must be positive, got {e_lambda}")
    else:
        e_lam = xp.asarray(e_lambda, dtype=x.dtype, device=device)
    tol = 100 * xp.finfo(x.dtype).eps if tol is None else tol
    prior = dict(mu0=mu0, kappa0=kappa0, a0=a0, b0=b0)
    kappa_n = kappa0 + n
    mean = (kappa0 * mu0 + n * xbar) / kappa_n
    shape = xp.asarray(a0 + 0.5 * (n + 1), dtype=x.dtype, device=device)
    rate = shape / e_lam
    scatter = n * s2 + n * (xbar - mean) ** 2 + kappa0 * (mean - mu0) ** 2
    trace, converged, sweep = [], False, 0
    for sweep in range(1, max_iter + 1):
        e_lam = shape / rate
        var = 1.0 / (kappa_n * e_lam)  # q(mu) update (its mean never changes)
        trace.append(normal_elbo(x, mean, var, shape, rate, **prior))
        rate = _q_lambda_rate(b0, scatter, kappa_n, var)
        trace.append(normal_elbo(x, mean, var, shape, rate, **prior))
        if bool(xp.abs(shape / rate - e_lam) <= tol * e_lam):
            converged = True
            break
    return NormalCAVIResult(mean, var, shape, rate, xp.stack(trace), sweep, converged)


# ---------------------------------------------------------------------------
# Reparameterised mean-field Gaussian VI (ADVI)
# ---------------------------------------------------------------------------


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


def advi_elbo(log_p: Callable, mu, omega, eps, *, parametrization="exp"):
    r"""Reparameterised ELBO estimate of ``q = N(mu, diag(sigma^2))``.

    .. math::  \widehat{\mathrm{ELBO}} = \frac1S\sum_{s=1}^S \log p(\mu + \sigma\odot\varepsilon_s)
               + \sum_d \log\sigma_d + \frac D2(1 + \log 2\pi)

    The entropy is exact; only the expected log density is estimated.

    Parameters
    ----------
    log_p : callable
        ``log_p(z)`` maps ``z`` of shape ``(S, D)`` to the ``(S,)`` log densities
        (unnormalised is fine: the ELBO then shifts by the constant).
    mu, omega : (D,) arrays
        Mean and scale parameter: ``sigma = exp(omega)`` or ``softplus(omega)``.
    eps : (S, D) array
        Standard normal draws (an input: no hidden randomness).
    parametrization : {"exp", "softplus"}
        Map from ``omega`` to ``sigma``.

    Returns
    -------
    elbo : 0-d array
    """
    xp, sigma = _advi_inputs(mu, omega, eps, parametrization)
    z = mu + sigma * eps
    lp = _evaluate(log_p, z, (eps.shape[0],), "log_p")
    entropy = xp.sum(_log_sigma(xp, omega, sigma, parametrization)) + 0.5 * mu.shape[0] * (1.0 + _LOG_2PI)
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


def advi_elbo_grad(grad_log_p: Callable, mu, omega, eps, *, parametrization="exp"):
    r"""Gradient of :func:`advi_elbo` with respect to ``mu`` and ``omega`` (same ``eps``).

    .. math::
        \frac{\partial}{\partial\mu} = \frac1S\sum_s g_s,\qquad
        \frac{\partial}{\partial\omega} = \Big(\frac1S\sum_s g_s\odot\varepsilon_s
        + \frac1\sigma\Big)\odot\frac{d\sigma}{d\omega},

    ``g_s = grad log p(z_s)``; ``dsigma/domega = sigma`` for ``exp`` (so
    ``d/domega = mean_s g_s eps_s sigma + 1``) and ``sigmoid(omega)`` for softplus.

    Parameters
    ----------
    grad_log_p : callable
        ``grad_log_p(z)`` maps ``(S, D)`` to the ``(S, D)`` gradients of ``log p``.
    mu, omega, eps, parametrization
        As in :func:`advi_elbo`.

    Returns
    -------
    d_mu, d_omega : (D,) arrays
    """
    xp, sigma, g = _advi_partials(grad_log_p, mu, omega, eps, parametrization)
    return _grad_from(xp, omega, sigma, eps, g, parametrization)


def advi_elbo_vjp(grad_log_p: Callable, mu, omega, eps, cotangent, *, parametrization="exp"):
    r"""VJP of :func:`advi_elbo` with respect to ``(mu, omega, eps)``.

    With ``c`` the (scalar) cotangent: ``(c d_mu, c d_omega, c g_s sigma / S)``,
    where the last is ``d/deps_s`` of ``log p(mu + sigma eps_s) / S``.

    Parameters
    ----------
    grad_log_p : callable
        As in :func:`advi_elbo_grad`.
    mu, omega, eps, parametrization
        As in :func:`advi_elbo`.
    cotangent : 0-d array
        ``dL/dELBO``.

    Returns
    -------
    d_mu, d_omega, d_eps : arrays shaped like ``mu``, ``omega``, ``eps``
    """
    xp, sigma, g = _advi_partials(grad_log_p, mu, omega, eps, parametrization,
                                  (("cotangent", cotangent),))
    if cotangent.ndim != 0:
        raise ValueError(f"cotangent must be a 0-d array (the ELBO is a scalar), "
                         f"got shape {tuple(cotangent.shape)}")
    d_mu, d_omega = _grad_from(xp, omega, sigma, eps, g, parametrization)
    return cotangent * d_mu, cotangent * d_omega, cotangent * (g * sigma) / eps.shape[0]


@dataclass
class ADVIResult:
    """Final ``mu``, ``omega`` (and ``sigma``), and the ELBO estimate before each step."""

    mu: Any
    omega: Any
    sigma: Any
    elbo: Any


def advi_fit(log_p: Callable, grad_log_p: Callable, mu, omega, eps, *, step_size=0.1,
             n_steps=None, parametrization="exp"):
    r"""Plain gradient ascent on the ADVI objective (a demonstration loop).

    ``eps`` of shape ``(S, D)`` is reused at every step (a deterministic
    sample-average objective); shape ``(T, S, D)`` gives fresh draws
    ``eps[t]`` at step ``t``. Each step is
    ``(mu, omega) += step_size * advi_elbo_grad(...)``.

    Parameters
    ----------
    log_p, grad_log_p : callable
        Target log density and its gradient, as in :func:`advi_elbo` and :func:`advi_elbo_grad`.
    mu, omega : (D,) arrays
        Starting point.
    eps : (S, D) or (T, S, D) array
        Noise, fixed or per step.
    step_size : float
        Learning rate.
    n_steps : int, optional
        Number of steps; required for fixed ``eps``, ``T`` by default otherwise.
    parametrization : {"exp", "softplus"}
        Map from ``omega`` to ``sigma``.

    Returns
    -------
    ADVIResult
    """
    require_real_floating("eps", eps)
    xp, _ = get_namespace(mu, omega, eps)
    per_step = eps.ndim == 3
    if n_steps is None:
        if not per_step:
            raise ValueError("n_steps is required when eps has shape (S, D)")
        n_steps = eps.shape[0]
    if per_step and n_steps > eps.shape[0]:
        raise ValueError(f"eps has {eps.shape[0]} steps of noise, n_steps = {n_steps} needs more")
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    trace = []
    for t in range(n_steps):
        e = eps[t, ...] if per_step else eps
        trace.append(advi_elbo(log_p, mu, omega, e, parametrization=parametrization))
        d_mu, d_omega = advi_elbo_grad(grad_log_p, mu, omega, e, parametrization=parametrization)
        mu, omega = mu + step_size * d_mu, omega + step_size * d_omega
    sigma = _sigma(xp, omega, parametrization)
    elbo = xp.stack(trace) if trace else xp.zeros((0,), dtype=mu.dtype, device=mu.device)
    return ADVIResult(mu, omega, sigma, elbo)

