"""Teeth for the normal model: an independent NumPy CAVI and ELBO, and planted bugs.

Read by tests/verify/test_teeth.py. The candidate works in float64 and returns
arrays of the input's dtype. With ``e = E[lambda] = a/b`` and ``E[log lambda] =
psi(a) - log b`` one sweep is::

    var = 1 / ((kappa0 + n) e)                 # q(mu); its mean never changes
    b   = b0 + (sum (x - m)^2 + kappa0 (m - mu0)^2 + (kappa0 + n) var) / 2

and the ELBO is ``n/2 (E log lambda - log 2 pi) - e/2 (sum (x - m)^2 + n var)
+ E log p(mu | lambda) + E log p(lambda) + H[N(m, var)] + H[Gamma(a, b)]``.
Each mutant changes one of these lines, or the loop around them.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy.special import digamma, gammaln

from verify import Candidate
from verify.testing import Teeth


class NormalFit(NamedTuple):
    mean: Any
    var: Any
    shape: Any
    rate: Any
    elbo: Any
    n_iter: int
    converged: bool


class NormalModel:
    """CAVI for ``x_i ~ N(mu, 1/lambda)`` with a Normal-Gamma prior; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def elbo(self, x, mean, var, shape, rate, *, mu0=0.0, kappa0=0.0, a0=0.5, b0=0.0):
        dtype = x.dtype
        x = np.asarray(x, np.float64)
        mean, var, shape, rate = (float(v) for v in (mean, var, shape, rate))
        n = x.shape[0]
        e = shape / rate
        e_log = digamma(shape) - math.log(rate)
        if self.bug == "E[log lambda] = log E[lambda]":
            e_log = math.log(e)
        sq = np.sum((x - mean) ** 2) + (0.0 if self.bug == "variance dropped from E(x - mu)^2" else n * var)
        log_2pi = 0.0 if self.bug == "log 2 pi dropped" else math.log(2 * math.pi)
        value = 0.5 * n * (e_log - log_2pi) - 0.5 * e * sq
        value += 0.5 * e_log - 0.5 * kappa0 * e * ((mean - mu0) ** 2 + var)
        keep = self.bug == "improper constants kept"
        with np.errstate(divide="ignore"):  # the planted bug takes log(0)
            if kappa0 > 0 or keep:
                value += 0.5 * (np.log(kappa0) - math.log(2 * math.pi))
            value += (a0 - 1.0) * e_log - b0 * e
            if b0 > 0 or keep:
                value += a0 * np.log(b0) - gammaln(a0)
        value += 0.5 * math.log(2 * math.pi * math.e * var)
        value += shape - math.log(rate) + gammaln(shape) + (1.0 - shape) * digamma(shape)
        return np.asarray(value, dtype=dtype)

    def _rate(self, x, mean, var, n, mu0, kappa0, b0):
        scatter = np.sum((x - mean) ** 2) + kappa0 * (mean - mu0) ** 2
        if self.bug == "rate update forgets the variance":
            return b0 + 0.5 * scatter
        if self.bug == "rate update without the 1/2":
            return b0 + scatter + (kappa0 + n) * var
        return b0 + 0.5 * (scatter + (kappa0 + n) * var)

    def fit(self, x, *, mu0=0.0, kappa0=0.0, a0=0.5, b0=0.0, e_lambda=None, tol=None, max_iter=100):
        dtype = x.dtype
        x = np.asarray(x, np.float64)
        prior = dict(mu0=mu0, kappa0=kappa0, a0=a0, b0=b0)
        n = x.shape[0]
        e = 1.0 / np.var(x) if e_lambda is None else e_lambda
        tol = 100 * np.finfo(dtype).eps if tol is None else tol
        mean = (kappa0 * mu0 + n * np.mean(x)) / (kappa0 + n)
        shape = a0 + 0.5 * (n + 1)
        rate = shape / e
        trace, converged = [], False
        for sweep in range(1, max_iter + 1):
            e = shape / rate
            var = 1.0 / ((kappa0 + n) * e)
            if self.bug != "one ELBO entry per sweep":
                trace.append(self.elbo(x, mean, var, shape, rate, **prior))
            rate = self._rate(x, mean, var, n, mu0, kappa0, b0)
            trace.append(self.elbo(x, mean, var, shape, rate, **prior))
            if abs(shape / rate - e) < tol * e:
                converged = True
                break
            if self.bug == "stops after one sweep":
                break
        q = [np.asarray(v, dtype=dtype) for v in (mean, var, shape, rate)]
        return NormalFit(*q, np.asarray(trace, dtype=dtype), sweep, converged)


_CAVI_BUGS = ("rate update forgets the variance", "rate update without the 1/2", "log 2 pi dropped",
              "one ELBO entry per sweep", "stops after one sweep")
_ELBO_BUGS = ("E[log lambda] = log E[lambda]", "variance dropped from E(x - mu)^2",
              "improper constants kept")

TEETH = {
    "normal_cavi": Teeth(
        correct=Candidate(NormalModel().fit),
        mutants={b: Candidate(NormalModel(b).fit) for b in _CAVI_BUGS},
        caught_by={
            "rate update forgets the variance": {"matches ground truth", "matches refimpl forward"},
            "rate update without the 1/2": {"matches ground truth", "ELBO never decreases"},
            "log 2 pi dropped": {"last ELBO is the ELBO of q", "ELBO below the log evidence"},
            "one ELBO entry per sweep": {"two ELBO entries per sweep"},
            "stops after one sweep": {"fixed point is stationary", "two ELBO entries per sweep"},
        },
    ),
    "normal_elbo": Teeth(
        correct=Candidate(NormalModel().elbo),
        mutants={b: Candidate(NormalModel(b).elbo) for b in _ELBO_BUGS},
        caught_by={
            "E[log lambda] = log E[lambda]": {"matches ground truth", "matches refimpl forward"},
            "variance dropped from E(x - mu)^2": {"maximal at the coordinate optima"},
        },
    ),
}
