r"""Teeth for the Bayesian Gaussian mixture: an independent NumPy CAVI, ELBO and E-step.

Read by tests/verify/test_teeth.py. No scikit-learn, no refimpl: a framework
developer's own CAVI, one component at a time with full ``D x D`` matrices
(``diag`` and ``spherical`` scale matrices are kept diagonal and ``w I``,
``tied`` averages the components' optima). With ``N_k = sum_n r_nk + 10 eps``::

    beta_k = beta0 + N_k,   m_k = (beta0 m0 + N_k xbar_k) / beta_k,   nu_k = nu0 + N_k,
    W_k^-1 = W0^-1 + N_k (S_k + reg I) + beta0 N_k / beta_k (xbar_k - m0)(xbar_k - m0)^T,
    alpha_k = alpha0 + N_k   or   (gamma1_k, gamma2_k) = (1 + N_k, alpha0 + sum_{j>k} N_j),
    log rho_nk = E[log pi_k] + E[log|Lambda_k|]/2 - D/2 log 2 pi - D/(2 beta_k)
                 - nu_k/2 (x_n - m_k)^T W_k (x_n - m_k),
    E[log|Lambda_k|] = sum_{i<D} psi((nu_k - i)/2) + D log 2 + log|W_k|.

Per iteration: E-step, M-step, scikit-learn's bound and the full ELBO (Bishop
10.70-10.77, entropies in closed form). Each mutant changes one of these lines
or the loop around them.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from scipy.special import betaln, digamma, gammaln, logsumexp, multigammaln, xlogy

from verify import Candidate
from verify.testing import Teeth

LOG_2PI = math.log(2 * math.pi)


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _full(values, covariance_type, K, d):
    """Scale matrices of any layout as ``(K, D, D)``."""
    values = _f64(values)
    if covariance_type == "tied":
        return np.broadcast_to(values, (K, d, d)).copy()
    if covariance_type == "diag":
        return np.stack([np.diag(v) for v in values])
    if covariance_type == "spherical":
        return np.stack([v * np.eye(d) for v in values])
    return values


class Mixture:
    """CAVI for scikit-learn's Bayesian Gaussian mixture; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    # -- expectations under q ---------------------------------------------------------------

    def _e_log_pi(self, conc):
        if conc.ndim == 1:
            return digamma(conc) - digamma(conc.sum())
        total = digamma(conc[0] + conc[1])
        before = np.concatenate([[0.0], np.cumsum(digamma(conc[1]) - total)[:-1]])
        return digamma(conc[0]) - total + before

    def _e_log_det(self, nu, W):
        d = W.shape[-1]
        shift = 1 if self.bug == "digamma argument (nu - i + 1) / 2" else 0
        half = 0.5 * (nu[:, None] - np.arange(d) + shift)
        return digamma(half).sum(axis=1) + d * math.log(2) + np.linalg.slogdet(W)[1]

    def log_rho(self, q, X):
        d = X.shape[1]
        log_rho = np.empty((X.shape[0], len(q.nu)))
        e_log_pi = (np.zeros(len(q.nu)) if self.bug == "E[log pi] ignored"
                    else self._e_log_pi(q.conc))
        e_log_det = self._e_log_det(q.nu, q.W)
        for k in range(len(q.nu)):
            diff = X if self.bug == "x instead of x - m_k" else X - q.m[k]
            maha = np.einsum("ni,ij,nj->n", diff, q.W[k], diff)
            mean_term = 0.0 if self.bug == "E-step without D / (2 beta)" else d / (2 * q.beta[k])
            log_rho[:, k] = (e_log_pi[k] + 0.5 * e_log_det[k] - 0.5 * d * LOG_2PI - mean_term
                             - 0.5 * q.nu[k] * maha)
        return log_rho

    def e_step(self, q, X):
        log_rho = self.log_rho(q, X)
        if self.bug == "not normalised":
            return np.exp(log_rho - log_rho.max(axis=1, keepdims=True))
        return np.exp(log_rho - logsumexp(log_rho, axis=1, keepdims=True))

    # -- the M-step ----------------------------------------------------------------------------

    def _concentration(self, nk, prior):
        if prior.weight_type == "dirichlet_distribution":
            return prior.alpha0 + nk
        after = nk.sum() - np.cumsum(nk)  # sum_{j > k}
        if self.bug == "stick-breaking tail includes k":
            after = after + nk
        return np.stack([1.0 + nk, prior.alpha0 + after])

    def _restricted(self, A, covariance_type):
        """The optimum of each family given the full ``W_k^-1`` optima ``A``."""
        d = A.shape[-1]
        if covariance_type == "diag":
            return np.stack([np.diag(np.diag(a)) for a in A])
        if covariance_type == "spherical":
            return np.stack([np.trace(a) / d * np.eye(d) for a in A])
        if covariance_type == "tied":
            return np.broadcast_to(A.mean(axis=0), A.shape).copy()
        return A

    def m_step(self, X, r, prior, reg_covar, eps):
        n, d = X.shape
        nk = r.sum(axis=0) + (0.0 if self.bug == "no 10 eps guard" else 10 * eps)
        beta = prior.beta0 + nk
        A, means = [], []
        for k in range(r.shape[1]):
            xbar = r[:, k] @ X / nk[k]
            S = (r[:, k, None] * (X - xbar)).T @ (X - xbar) / nk[k] + reg_covar * np.eye(d)
            if self.bug == "scatter 5% too large":
                S = 1.05 * S
            means.append((prior.beta0 * prior.m0 + nk[k] * xbar) / beta[k])
            dm = xbar - prior.m0
            A.append(prior.W0_inv + nk[k] * S + prior.beta0 * nk[k] / beta[k] * np.outer(dm, dm))
        A = self._restricted(np.array(A), prior.covariance_type)
        nu = prior.nu0 + nk + (0.5 if self.bug == "nu_k off by one half" else 0.0)
        if prior.covariance_type == "tied":
            nu = np.full_like(nu, nu.mean())
        return SimpleNamespace(conc=self._concentration(nk, prior), beta=beta, m=np.array(means),
                               nu=nu, A=A, W=np.linalg.inv(A))

    # -- the bounds ----------------------------------------------------------------------------

    def _log_wishart_b(self, W, nu, with_pi=True):
        """``log B(W, nu)``; scikit-learn's normaliser drops the ``D (D - 1) / 4 log pi``."""
        d = W.shape[-1]
        pi_term = d * (d - 1) / 4 * math.log(math.pi)
        return (-0.5 * nu * np.linalg.slogdet(W)[1] - 0.5 * nu * d * math.log(2)
                - multigammaln(0.5 * nu, d) + (0.0 if with_pi else pi_term))

    def sklearn_bound(self, q, r, d):
        log_norm_weight = (gammaln(q.conc.sum()) - gammaln(q.conc).sum() if q.conc.ndim == 1
                           else -np.sum(betaln(q.conc[0], q.conc[1])))
        log_wishart = sum(self._log_wishart_b(q.W[k], q.nu[k], False) for k in range(len(q.nu)))
        return (-np.sum(xlogy(r, r)) - log_wishart - log_norm_weight
                - 0.5 * d * np.sum(np.log(q.beta)))

    def _weights_terms(self, conc, alpha0):
        e_log_pi = self._e_log_pi(conc)
        if conc.ndim == 1:
            K, a = len(conc), conc.sum()
            entropy = (gammaln(conc).sum() - gammaln(a) + (a - K) * digamma(a)
                       - np.sum((conc - 1) * digamma(conc)))
            log_c0 = 0.0 if self.bug == "weight prior normaliser dropped" else (
                gammaln(K * alpha0) - K * gammaln(alpha0))
            return log_c0 + (alpha0 - 1) * e_log_pi.sum() + entropy
        g1, g2 = conc
        e_log_rest = digamma(g2) - digamma(g1 + g2)
        entropy = (betaln(g1, g2) - (g1 - 1) * digamma(g1) - (g2 - 1) * digamma(g2)
                   + (g1 + g2 - 2) * digamma(g1 + g2))
        log_c0 = 0.0 if self.bug == "weight prior normaliser dropped" else math.log(alpha0)
        return np.sum(log_c0 + (alpha0 - 1) * e_log_rest + entropy)

    def elbo(self, q, prior, X, r):
        d = X.shape[1]
        entropy_z = 0.0 if self.bug == "entropy of q(Z) dropped" else -np.sum(xlogy(r, r))
        total = np.sum(r * self.log_rho(q, X)) + entropy_z
        total += self._weights_terms(q.conc, prior.alpha0)
        e_log_det = self._e_log_det(q.nu, q.W)
        m0 = np.zeros(d) if self.bug == "prior mean taken as 0" else prior.m0
        W0 = np.linalg.inv(prior.W0_inv)
        for k in range(len(q.nu)):
            dm = q.m[k] - m0
            total += (0.5 * d * math.log(prior.beta0 / (2 * math.pi)) + 0.5 * e_log_det[k]
                      - 0.5 * d * prior.beta0 / q.beta[k] - 0.5 * prior.beta0 * q.nu[k] * dm @ q.W[k] @ dm)
            total += (self._log_wishart_b(W0, prior.nu0) + 0.5 * (prior.nu0 - d - 1) * e_log_det[k]
                      - 0.5 * q.nu[k] * np.trace(prior.W0_inv @ q.W[k]))
            entropy_wishart = (-self._log_wishart_b(q.W[k], q.nu[k])
                               - 0.5 * (q.nu[k] - d - 1) * e_log_det[k] + 0.5 * q.nu[k] * d)
            total += (-0.5 * e_log_det[k] - 0.5 * d * math.log(q.beta[k] / (2 * math.pi))
                      + 0.5 * d + entropy_wishart)
        return total

    # -- public functions ----------------------------------------------------------------------

    def _prior(self, X, K, covariance_type, weight_type, alpha0, beta0, m0, nu0, cov0):
        n, d = X.shape
        if cov0 is None:
            cov = np.atleast_2d(np.cov(X.T))
            cov0 = {"diag": np.diag(np.diag(cov)),
                    "spherical": np.mean(np.diag(cov)) * np.eye(d)}.get(covariance_type, cov)
        else:
            cov0 = _f64(cov0)
            cov0 = {"diag": lambda: np.diag(cov0), "spherical": lambda: float(cov0) * np.eye(d)
                    }.get(covariance_type, lambda: cov0)()
        return SimpleNamespace(
            covariance_type=covariance_type, weight_type=weight_type,
            alpha0=1.0 / K if alpha0 is None else alpha0, beta0=1.0 if beta0 is None else beta0,
            m0=X.mean(axis=0) if m0 is None else _f64(m0), nu0=float(d) if nu0 is None else nu0,
            W0_inv=cov0)

    def fit(self, X, resp_init, *, covariance_type="full",
            weight_concentration_prior_type="dirichlet_process", weight_concentration_prior=None,
            mean_precision_prior=None, mean_prior=None, degrees_of_freedom_prior=None,
            covariance_prior=None, reg_covar=1e-6, tol=1e-3, max_iter=100):
        dtype, eps = X.dtype, float(np.finfo(X.dtype).eps)
        X, r = _f64(X), _f64(resp_init)
        prior = self._prior(X, r.shape[1], covariance_type, weight_concentration_prior_type,
                            weight_concentration_prior, mean_precision_prior, mean_prior,
                            degrees_of_freedom_prior, covariance_prior)
        with np.errstate(invalid="ignore" if self.bug == "no 10 eps guard" else "warn"):  # 0 / 0
            return self._iterate(X, r, prior, reg_covar, eps, tol, max_iter, dtype)

    def _iterate(self, X, r, prior, reg_covar, eps, tol, max_iter, dtype):
        q = self.m_step(X, r, prior, reg_covar, eps)
        elbo, bounds, converged = [], [], False
        for it in range(1, max_iter + 1):
            r_new = self.e_step(q, X)
            q = self.m_step(X, r if self.bug == "M-step from the previous responsibilities"
                            else r_new, prior, reg_covar, eps)
            r = r_new
            bounds.append(self.sklearn_bound(q, r, X.shape[1]))
            elbo.append(self.elbo(q, prior, X, r))
            change = abs(bounds[-1] - bounds[-2]) if it > 1 else np.inf
            scale = abs(bounds[-1]) if self.bug == "tol relative to |bound|" else 1.0
            if change < tol * scale:
                converged = True
                break
        return self._result(q, prior, elbo, bounds, it, converged, self.e_step(q, X), dtype)

    def _result(self, q, prior, elbo, bounds, n_iter, converged, resp, dtype):
        ct, K, d = prior.covariance_type, len(q.nu), q.m.shape[1]
        cov = q.A / q.nu[:, None, None]
        prec = q.W * q.nu[:, None, None]
        chol = np.stack([np.linalg.inv(np.linalg.cholesky(c)).T for c in cov])
        if ct == "diag":
            cov, prec, chol = (np.stack([np.diag(a) for a in m]) for m in (cov, prec, chol))
        elif ct == "spherical":
            cov, prec, chol = (m[:, 0, 0] for m in (cov, prec, chol))
        nu = q.nu
        if ct == "tied":
            cov, prec, chol, nu = cov[0], prec[0], chol[0], q.nu[0]
        if q.conc.ndim == 1:
            weights = q.conc / q.conc.sum()
        else:
            g1, g2 = q.conc
            rest = g2 / (g1 + g2)
            weights = g1 / (g1 + g2) * np.concatenate([[1.0], np.cumprod(rest)[:-1]])
            weights = weights / weights.sum()
        cast = lambda a: np.asarray(a, dtype=dtype)  # noqa: E731
        return SimpleNamespace(
            weights=cast(weights), means=cast(q.m), covariances=cast(cov), precisions=cast(prec),
            precisions_cholesky=cast(chol), degrees_of_freedom=cast(nu),
            mean_precision=cast(q.beta), weight_concentration=cast(q.conc),
            elbo=cast(elbo), lower_bounds=cast(bounds), n_iter=n_iter, converged=converged,
            resp=cast(resp))

    def _q_of(self, result):
        """``q`` from a result's public fields."""
        m = _f64(result.means)
        K, d = m.shape
        nu = np.broadcast_to(_f64(result.degrees_of_freedom), (K,))
        W = _full(result.precisions, result.prior.covariance_type, K, d) / nu[:, None, None]
        return SimpleNamespace(conc=_f64(result.weight_concentration),
                               beta=_f64(result.mean_precision), m=m, nu=nu, W=W)

    def predict_proba(self, result, X):
        return np.asarray(self.e_step(self._q_of(result), _f64(X)), dtype=X.dtype)

    def predict(self, result, X):
        probabilities = self.e_step(self._q_of(result), _f64(X))
        pick = np.argmin if self.bug == "argmin" else np.argmax
        return pick(probabilities, axis=1)

    def full_elbo(self, result, X, resp):
        p = result.prior
        prior = self._prior(_f64(X), result.means.shape[0], p.covariance_type,
                            p.weight_concentration_prior_type, p.weight_concentration,
                            p.mean_precision, p.mean, p.degrees_of_freedom, p.covariance)
        value = self.elbo(self._q_of(result), prior, _f64(X), _f64(resp))
        return np.asarray(value, dtype=X.dtype)


_FIT_BUGS = ("stick-breaking tail includes k", "no 10 eps guard",
             "digamma argument (nu - i + 1) / 2", "E-step without D / (2 beta)",
             "nu_k off by one half", "M-step from the previous responsibilities",
             "scatter 5% too large", "tol relative to |bound|")
_ELBO_BUGS = ("weight prior normaliser dropped", "entropy of q(Z) dropped",
              "prior mean taken as 0")
_PROBA_BUGS = ("E[log pi] ignored", "not normalised", "x instead of x - m_k")
_PREDICT_BUGS = ("argmin", "x instead of x - m_k")

TEETH = {
    "bgmm_cavi": Teeth(
        correct=Candidate(Mixture().fit),
        mutants={b: Candidate(Mixture(b).fit) for b in _FIT_BUGS},
        caught_by={
            "stick-breaking tail includes k": {"matches ground truth", "matches refimpl forward"},
            "no 10 eps guard": {"matches ground truth"},
            "digamma argument (nu - i + 1) / 2": {"matches ground truth"},
            "E-step without D / (2 beta)": {"final responsibilities are an E-step"},
            "nu_k off by one half": {"full ELBO minus scikit-learn's bound is constant"},
            "scatter 5% too large": {"one component: q is the Normal-Wishart posterior",
                                     "one component: ELBO is the log evidence"},
            "tol relative to |bound|": {"stops when scikit-learn stops"},
        },
        options={"max_examples": 6},  # each example is a few small fits; every bug shows within 6
    ),
    "bgmm_elbo": Teeth(
        correct=Candidate(Mixture().full_elbo),
        mutants={b: Candidate(Mixture(b).full_elbo) for b in _ELBO_BUGS},
        caught_by={
            "weight prior normaliser dropped": {"matches ground truth"},
            "entropy of q(Z) dropped": {"maximal at the final E-step"},
            "prior mean taken as 0": {"translation invariance"},
        },
    ),
    "bgmm_predict_proba": Teeth(
        correct=Candidate(Mixture().predict_proba),
        mutants={b: Candidate(Mixture(b).predict_proba) for b in _PROBA_BUGS},
        caught_by={
            "E[log pi] ignored": {"matches ground truth", "the fit's data gives its final E-step"},
            "not normalised": {"rows sum to one"},
            "x instead of x - m_k": {"translation invariance"},
        },
    ),
    "bgmm_predict": Teeth(
        correct=Candidate(Mixture().predict),
        mutants={b: Candidate(Mixture(b).predict) for b in _PREDICT_BUGS},
        caught_by={"argmin": {"matches ground truth"}, "x instead of x - m_k": {"translation invariance"}},
    ),
}
