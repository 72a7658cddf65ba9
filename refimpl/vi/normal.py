r"""CAVI for the normal model with unknown mean and precision, and its ELBO.

Convention (docs/conventions.rst, section 6.1). ``x_i ~ N(mu, 1/lambda)`` with
the conjugate Normal-Gamma prior

.. math::  \mu \mid \lambda \sim N(\mu_0, (\kappa_0 \lambda)^{-1}),\qquad
           \lambda \sim \operatorname{Gamma}(a_0, \text{rate } b_0),

and the mean-field family ``q(mu) q(lambda)``. The flat priors of the lecture
example, ``p(mu, lambda) ∝ 1``, are the limit ``kappa0 = 0, a0 = 1/2,
b0 = 0`` (the defaults); there ``q(mu) = N(xbar, (n E[lambda])^{-1})``,
``q(lambda) = Gamma(n/2 + 1, (n s2 + 1/E[lambda]) / 2)`` and the fixed point is
``E[lambda] = (n + 1) / (n s2)``, ``Var q(mu) = s2 / (n + 1)``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .._special import LOG_2PI, digamma, gamma_entropy
from .._validation import require_finite, require_ndim, require_real_floating
from ..backend import get_namespace

__all__ = ["NormalCAVIResult", "normal_cavi", "normal_elbo"]


class NormalCAVIResult(NamedTuple):
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
    require_real_floating("x", x)
    if x.ndim != 1:
        raise ValueError(f"x must have shape (n,), got shape {tuple(x.shape)}")
    _check_prior(mu0=mu0, kappa0=kappa0, a0=a0, b0=b0)
    xp, _ = get_namespace(x, mean, var, shape, rate)
    for name, value in (("mean", mean), ("var", var), ("shape", shape), ("rate", rate)):
        if value.ndim != 0:
            raise ValueError(f"{name} must be a 0-d array, got shape {tuple(value.shape)}")
    n = x.shape[0]
    e_lam = shape / rate
    e_log_lam = digamma(xp, shape) - xp.log(rate)
    sq = xp.sum((x - mean) ** 2) + n * var  # E_q sum_i (x_i - mu)^2
    elbo = 0.5 * n * (e_log_lam - LOG_2PI) - 0.5 * e_lam * sq
    elbo = elbo + 0.5 * e_log_lam - 0.5 * kappa0 * e_lam * ((mean - mu0) ** 2 + var)
    if kappa0 > 0:
        elbo = elbo + 0.5 * (math.log(kappa0) - LOG_2PI)
    elbo = elbo + (a0 - 1.0) * e_log_lam - b0 * e_lam
    if b0 > 0:
        elbo = elbo + a0 * math.log(b0) - math.lgamma(a0)
    entropy_mu = 0.5 * (xp.log(var) + LOG_2PI + 1.0)
    return elbo + entropy_mu + gamma_entropy(xp, shape, rate)


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
        Stop when a sweep changes ``E[lambda]`` by less than ``tol * E[lambda]``
        (the parameters, not the ELBO, which is flat at its maximum); default
        ``100 * eps`` of the dtype (the fixed point to rounding); ``tol = 0``
        runs ``max_iter`` sweeps.
    max_iter : int
        Maximum number of sweeps.
    check_finite : bool
        Reject NaN and infinity in ``x``.

    Returns
    -------
    NormalCAVIResult
        Variational parameters, the ELBO after every update, sweeps done, convergence.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.vi import normal_cavi
    >>> x = np.random.default_rng(0).normal(2.0, 3.0, 50)
    >>> res = normal_cavi(x)
    >>> n, s2 = x.size, x.var()
    >>> bool(np.isclose(res.shape / res.rate, (n + 1) / (n * s2), rtol=1e-12))
    True
    >>> bool(res.converged and np.all(np.diff(res.elbo) >= -1e-12 * np.abs(res.elbo).max()))
    True
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
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0):
        raise ValueError(f"tol must be a non-negative number, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
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
        if bool(xp.abs(shape / rate - e_lam) < tol * e_lam):
            converged = True
            break
    return NormalCAVIResult(mean, var, shape, rate, xp.stack(trace), sweep, converged)
