r"""Special functions from array-API operations: digamma, log-gamma, the Gamma entropy.

The array API standard has no special functions. For positive arguments
these use a shift by ten recurrence steps, then the asymptotic (Stirling)
series; the error is below ``1e-14 max(1, |f(x)|)`` in float64 (tested
against ``scipy.special`` on ``[1e-3, 1e5]``). Shared by the :mod:`refimpl.vi`
members.
"""

from __future__ import annotations

import math

from .backend import get_namespace

LOG_2PI = math.log(2.0 * math.pi)

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


def digamma(xp, x):
    """``psi(x)`` for ``x > 0``: ``psi(x) = psi(x + 10) - sum_{j<10} 1/(x + j)``, then the series."""
    shift = xp.sum(1.0 / _shifted(xp, x), axis=-1)
    y = x + _SHIFT
    t = 1.0 / (y * y)
    return xp.log(y) - 0.5 / y - t * _horner(_DIGAMMA_SERIES, t) - shift


def lgamma(xp, x):
    """``log Gamma(x)`` for ``x > 0``, by the same shift and Stirling's series."""
    shift = xp.sum(xp.log(_shifted(xp, x)), axis=-1)
    y = x + _SHIFT
    series = _horner(_STIRLING_SERIES, 1.0 / (y * y)) / y
    return (y - 0.5) * xp.log(y) - y + 0.5 * LOG_2PI + series - shift


def gamma_entropy(xp, a, b):
    """Entropy of ``Gamma(a, rate b)``: ``a - log b + lgamma(a) + (1 - a) psi(a)``."""
    return a - xp.log(b) + lgamma(xp, a) + (1.0 - a) * digamma(xp, a)
