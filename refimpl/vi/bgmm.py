r"""Bayesian Gaussian mixture fitted by CAVI: scikit-learn's ``BayesianGaussianMixture`` model.

Convention (docs/conventions.rst, section 6.2). The model, priors, defaults and update
order are those of scikit-learn's ``BayesianGaussianMixture`` (1.9), started
from given responsibilities instead of k-means:

.. math::
    \pi &\sim \operatorname{Dir}(\alpha_0 \mathbf 1_K) \ \text{or stick-breaking }
          v_k \sim \operatorname{Beta}(1, \alpha_0),\ \pi_k = v_k\textstyle\prod_{j<k}(1 - v_j), \\
    \Lambda_k &\sim \mathcal W(W_0, \nu_0),\qquad
    \mu_k \mid \Lambda_k \sim N(m_0, (\beta_0\Lambda_k)^{-1}),\qquad
    x_n \mid z_n = k \sim N(\mu_k, \Lambda_k^{-1}),

with the mean-field family ``q(z) q(pi) prod_k q(mu_k, Lambda_k)``,
``q(mu_k, Lambda_k) = N(m_k, (beta_k Lambda_k)^{-1}) W(W_k, nu_k)``. The
covariance types restrict the Wishart scale matrices: ``full`` (any SPD
``W_k``), ``diag`` (diagonal ``W_0`` and ``W_k``), ``spherical``
(``W = w I``) and ``tied`` (every ``Lambda_k`` keeps its own prior, but the
family has one shared factor, ``q(Lambda_k) = W(W, nu)`` for all ``k``: this is
what scikit-learn's ``nu = nu0 + N / K`` and its Wishart normaliser counted
``K`` times compute). Within each family the M-step below is the exact
coordinate optimum.

Defaults (as scikit-learn): ``alpha0 = 1/K``, ``beta0 = 1``, ``m0 = mean(X)``,
``nu0 = D``, ``W0^{-1} = cov(X)`` (``ddof = 1``; its diagonal for ``diag``,
the mean of that for ``spherical``); ``reg_covar = 1e-6``, ``tol = 1e-3``,
``max_iter = 100``; weight prior ``dirichlet_process``.

Order: an M-step from ``resp_init``, then per iteration an E-step, an
M-step, and both bounds at the new ``q`` with the ``resp`` of that E-step.
Statistics use ``N_k = sum_n r_nk + 10 eps`` (scikit-learn's guard against
empty components) and ``S_k + reg_covar I``. Convergence: the change of
scikit-learn's bound is below ``tol`` (absolute), so iteration counts match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._special import LOG_2PI, digamma, lgamma
from .._validation import (
    power_of_two_scale,
    require_finite,
    require_ndim,
    require_real_floating,
    require_same_dtype,
)
from ..backend import get_namespace

__all__ = [
    "BGMMPrior",
    "BGMMResult",
    "COVARIANCE_TYPES",
    "WEIGHT_PRIOR_TYPES",
    "bgmm_cavi",
    "bgmm_elbo",
    "bgmm_predict",
    "bgmm_predict_proba",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
WEIGHT_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
_LOG_PI = math.log(math.pi)


def _layout(covariance_type):
    """Array layout of the scale matrices: ``tied`` is stored as ``K`` equal full matrices."""
    return "full" if covariance_type == "tied" else covariance_type


@dataclass
class BGMMPrior:
    """The prior actually used (defaults filled in), in scikit-learn's names.

    ``covariance`` is the inverse Wishart scale ``W0^{-1}``: ``(D, D)`` for
    ``full`` and ``tied``, ``(D,)`` for ``diag``, 0-d for ``spherical``.
    ``covariance_logdet`` is ``log |W0^{-1}|`` (``D log w`` for spherical),
    found at the data's scale: it stays finite where the default
    ``covariance`` (a sample covariance of data near 1e-300, say) underflows.
    ``None`` (a prior built by hand): computed from ``covariance``.
    """

    weight_concentration: float
    mean_precision: float
    mean: Any
    degrees_of_freedom: float
    covariance: Any
    covariance_type: str
    weight_concentration_prior_type: str
    covariance_logdet: Any = None


@dataclass
class BGMMResult:
    """Fitted ``q`` in scikit-learn's names, the two traces, and the final responsibilities.

    Attributes
    ----------
    weights : (K,) array
        ``E[pi]`` (stick-breaking: renormalised, as scikit-learn).
    means : (K, D) array
        ``m_k``.
    covariances : array
        ``W_k^{-1} / nu_k`` (scikit-learn's ``covariances_``): ``(K, D, D)``
        full, ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical.
    precisions, precisions_cholesky : arrays
        ``E[Lambda_k] = nu_k W_k`` and scikit-learn's factor of it (upper
        triangular ``U`` with ``U U^T = E[Lambda_k]`` for full and tied), same shapes.
    degrees_of_freedom : (K,) array
        ``nu_k`` (0-d for tied).
    mean_precision : (K,) array
        ``beta_k``.
    weight_concentration : array
        Dirichlet ``alpha`` (K,), or the stick-breaking ``(gamma_1, gamma_2)`` as ``(2, K)``.
    elbo : (n_iter,) array
        The full ELBO (every constant) after each iteration.
    lower_bounds : (n_iter,) array
        scikit-learn's ``lower_bounds_``: same iterates, constants dropped.
    n_iter : int
    converged : bool
    resp : (N, K) array
        Responsibilities of a final E-step (scikit-learn's ``fit_predict``).
    prior : BGMMPrior

    The fitted ``q`` is read from the public fields alone
    (:func:`bgmm_predict_proba`, :func:`bgmm_elbo`): ``W_k^{-1} = nu_k
    covariances_k``, ``beta_k``, ``m_k``, ``nu_k`` and the weight
    concentration, with the types in ``prior``; a result assembled from
    another library's fit (scikit-learn's attributes) works the same way.
    """

    weights: Any
    means: Any
    covariances: Any
    precisions: Any
    precisions_cholesky: Any
    degrees_of_freedom: Any
    mean_precision: Any
    weight_concentration: Any
    elbo: Any
    lower_bounds: Any
    n_iter: int
    converged: bool
    resp: Any
    prior: BGMMPrior


# ---------------------------------------------------------------------------
# Validation and priors
# ---------------------------------------------------------------------------


def _positive(name, value, bound=0.0, rule="positive"):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    if not value > bound:
        raise ValueError(f"{name} must be {rule}, got {value}")
    return float(value)


def _check_data(X, resp, check_finite, name="resp_init"):
    """Validate ``X (N, D)`` and responsibilities ``resp (N, K)`` (named ``name`` in errors)."""
    require_real_floating("X", X)
    require_real_floating(name, resp)
    xp, device = get_namespace(**{"X": X, name: resp})
    require_same_dtype(**{"X": X, name: resp})
    require_ndim("X", X, 2, "(N, D)")
    if X.ndim != 2 or resp.ndim != 2 or resp.shape[0] != X.shape[0]:
        raise ValueError(f"X must have shape (N, D) and {name} (N, K), got {tuple(X.shape)} "
                         f"and {tuple(resp.shape)}")
    n, k = resp.shape
    if k < 1 or n < k:
        raise ValueError(f"X has {n} samples, fewer than the {k} components of {name} "
                         "(need N >= K >= 1)")
    if check_finite:
        require_finite("X", X)
        require_finite(name, resp)
    # sqrt(eps), and no tighter than 1e-6: rows rounded from float32 are still accepted in float64.
    tol = max(math.sqrt(float(xp.finfo(X.dtype).eps)), 1e-6)
    if not bool(xp.all(resp >= 0)):
        raise ValueError(f"{name} must be non-negative (responsibilities are probabilities)")
    if not bool(xp.all(xp.abs(xp.sum(resp, axis=1) - 1.0) <= tol)):
        raise ValueError(f"every row of {name} must sum to one (to within {tol:.1e})")
    return xp, device


def _check_options(covariance_type, weight_type, reg_covar, tol, max_iter):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    if weight_type not in WEIGHT_PRIOR_TYPES:
        raise ValueError(f"weight_concentration_prior_type must be one of {WEIGHT_PRIOR_TYPES}, "
                         f"got {weight_type!r}")
    if isinstance(reg_covar, bool) or not isinstance(reg_covar, (int, float)) or not (
            0 <= reg_covar < math.inf):
        raise ValueError(f"reg_covar must be non-negative and finite, got {reg_covar!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"tol must be a non-negative number, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")


def _as_array(xp, X, name, value, shape):
    """A prior given as an array (same library and device as ``X``) or, if 0-d, a number."""
    if value is None:
        return None
    if hasattr(value, "shape"):
        get_namespace(**{"X": X, name: value})
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
        return xp.astype(value, X.dtype)
    if shape != ():
        raise TypeError(f"{name} must be an array of shape {shape}")
    return xp.asarray(_positive(name, value), dtype=X.dtype, device=get_namespace(X=X)[1])


def _check_covariance_prior(xp, cov, covariance_type, name="covariance_prior"):
    """``cov`` finite, symmetric, positive definite; ``name`` says where it came from."""
    if not bool(xp.all(xp.isfinite(cov))):
        raise ValueError(f"{name} must be finite")
    if covariance_type == "full":
        if not bool(xp.all(cov == xp.matrix_transpose(cov))):
            raise ValueError(f"{name} must be symmetric")
        ok = bool(xp.all(xp.linalg.eigvalsh(cov) > 0))
    else:
        ok = bool(xp.all(cov > 0))
    if not ok:
        raise ValueError(f"{name} must be positive definite (the inverse Wishart "
                         f"scale W0^-1; {covariance_type}: "
                         + ("all eigenvalues > 0)" if covariance_type == "full" else "all entries > 0)"))


def _prior(xp, X, K, covariance_type, weight_type, weight_concentration_prior,
           mean_precision_prior, mean_prior, degrees_of_freedom_prior, covariance_prior):
    n, d = X.shape
    alpha0 = 1.0 / K if weight_concentration_prior is None else _positive(
        "weight_concentration_prior", weight_concentration_prior)
    beta0 = 1.0 if mean_precision_prior is None else _positive(
        "mean_precision_prior", mean_precision_prior)
    nu0 = float(d) if degrees_of_freedom_prior is None else _positive(
        "degrees_of_freedom_prior", degrees_of_freedom_prior, d - 1.0, f"> D - 1 = {d - 1}")
    m0 = _as_array(xp, X, "mean_prior", mean_prior, (d,))
    if m0 is None:
        m0 = xp.mean(X, axis=0)
    elif not bool(xp.all(xp.isfinite(m0))):
        raise ValueError("mean_prior must be finite")
    layout = _layout(covariance_type)
    shape = {"full": (d, d), "diag": (d,), "spherical": ()}[layout]
    cov = _as_array(xp, X, "covariance_prior", covariance_prior, shape)
    if cov is not None:
        _check_covariance_prior(xp, cov, layout)
        return BGMMPrior(alpha0, beta0, m0, nu0, cov, covariance_type, weight_type)
    if n < 2:
        raise ValueError("the default covariance_prior (the sample covariance) needs N >= 2")
    # The sample covariance of X / s (s a power of two: exact), checked and its log-determinant
    # taken at that scale; times s^2 it may underflow (X near 1e-300), its log-determinant not.
    Xc = X - xp.mean(X, axis=0)
    s = power_of_two_scale(xp, Xc)
    Y = Xc / s
    scaled = {
        "full": lambda: xp.matmul(xp.matrix_transpose(Y), Y) / (n - 1),
        "diag": lambda: xp.sum(Y * Y, axis=0) / (n - 1),
        "spherical": lambda: xp.mean(xp.sum(Y * Y, axis=0) / (n - 1)),
    }[layout]()
    # Not passed: the error must blame the data (degenerate at its scale).
    _check_covariance_prior(xp, scaled, layout,
                            "the default covariance_prior (the sample covariance of X)")
    # In Python floats (no overflow warning), against the data type's largest value.
    if not float(xp.max(xp.abs(scaled))) * s * s <= float(xp.finfo(X.dtype).max):
        raise ValueError("the default covariance_prior (the sample covariance of X) overflows: "
                         "the exact covariance is beyond the float range; rescale X")
    cov = _times_scale_squared(scaled, s)
    logdet = _logdet(xp, scaled, layout, d) + 2.0 * d * math.log(s)
    return BGMMPrior(alpha0, beta0, m0, nu0, cov, covariance_type, weight_type, logdet)


def _times_scale_squared(v, s):
    """``v s^2`` for a power of two ``s``, one factor at a time: ``s^2`` itself may be out of
    range where the product is not (or is, and then rounds to 0 or infinity correctly)."""
    return (v * s) * s


# ---------------------------------------------------------------------------
# Second-moment features: one layout for every covariance type
# ---------------------------------------------------------------------------


@dataclass
class _Features:
    """Shifted data and its features ``F = [1, Y, O]`` (``N x (1 + D + T)``), ``Y = Xc / s``.

    ``s`` (``scale``) is a power of two: dividing by it is exact, and it keeps
    the products ``O`` of the features and the quadratic forms built on them
    in range for data near 1e300 or 1e-300 (as LAPACK's ``dnrm2`` scales
    before it squares). Moments and quadratic forms of ``Y`` are those of
    ``Xc`` divided by ``s`` or ``s^2``, exactly in the normal range (so the
    M-step's statistics are bit for bit those of the unscaled data).

    ``O`` holds the second-moment features: ``full`` (and ``tied``):
    ``Xc[:, i_t] Xc[:, j_t]`` over the pairs ``i <= j`` (``T = D (D + 1) / 2``);
    ``diag``: ``Xc**2``; ``spherical``: ``|Xc|^2``. Then ``r^T F`` gives the
    counts, first and second moments of every component in one matrix
    product, and the E-step is one product ``B @ F^T``: every ``x^T W x`` is
    ``O @ coef`` with ``coef`` the pair coefficients of ``W`` (off-diagonal
    pairs counted twice).
    """

    F: Any
    d: int
    scale: float
    device: Any
    pairs: tuple  # (i_t, j_t) index arrays of the pairs (full only)
    flat: Any  # full: index of (i_t, j_t) in a flattened D x D matrix
    unpack: Any  # full: index of pair t for each entry of a flattened D x D matrix
    multiplicity: Any  # full: 1 on the diagonal pairs, 2 off it


def _features(xp, device, Xc, layout, scale) -> _Features:
    """The feature matrix of shifted data ``Xc`` divided by the power of two ``scale``, for a
    layout of the Wishart scales (see :class:`_Features`)."""
    n, d = Xc.shape
    Xc = Xc / scale
    ones = xp.ones((n, 1), dtype=Xc.dtype, device=device)
    if layout != "full":
        O = Xc * Xc
        if layout == "spherical":
            O = xp.sum(O, axis=1, keepdims=True)
        return _Features(xp.concat([ones, Xc, O], axis=1), d, scale, device, (), None, None, None)
    ii = [i for i in range(d) for j in range(i, d)]
    jj = [j for i in range(d) for j in range(i, d)]
    t_of = {(i, j): t for t, (i, j) in enumerate(zip(ii, jj))}
    index = lambda values: xp.asarray(values, dtype=xp.int64, device=device)  # noqa: E731
    I, J = index(ii), index(jj)
    O = xp.take(Xc, I, axis=1) * xp.take(Xc, J, axis=1)
    unpack = index([t_of[(min(a, b), max(a, b))] for a in range(d) for b in range(d)])
    mult = xp.asarray([1.0 if i == j else 2.0 for i, j in zip(ii, jj)], dtype=Xc.dtype, device=device)
    return _Features(xp.concat([ones, Xc, O], axis=1), d, scale, device, (I, J),
                     index([i * d + j for i, j in zip(ii, jj)]), unpack, mult)


# ---------------------------------------------------------------------------
# Wishart pieces by covariance type (W full, diagonal, or w I)
# ---------------------------------------------------------------------------


def _scale(xp, scale_inv, covariance_type, d):
    """``(W, log|W|)`` from ``W^{-1}`` (full: through its Cholesky factor)."""
    if covariance_type == "full":
        L = xp.linalg.cholesky(scale_inv)
        logdet_inv = 2.0 * xp.sum(xp.log(xp.linalg.diagonal(L)), axis=-1)
        Linv = xp.linalg.inv(L)
        return xp.matmul(xp.matrix_transpose(Linv), Linv), -logdet_inv
    w = 1.0 / scale_inv
    return w, (xp.sum(xp.log(w), axis=-1) if covariance_type == "diag" else d * xp.log(w))


def _times_w(xp, q, V):
    """``W_k v_k`` for ``V`` of shape ``(K, D)``."""
    if q.covariance_type == "full":
        return xp.matmul(q.W, V[:, :, None])[:, :, 0]
    return q.W * V if q.covariance_type == "diag" else q.W[:, None] * V


def _quad(xp, q, V):
    """``v_k^T W_k v_k`` for ``V`` of shape ``(K, D)``."""
    return xp.sum(V * _times_w(xp, q, V), axis=-1)


def _pair_coefficients(xp, W, feats: _Features, covariance_type):
    """``coef`` with ``x^T W_k x = sum_t O_t(x) coef_kt``, shape ``(K, T)``."""
    if covariance_type == "full":
        flat = xp.reshape(W, (W.shape[0], -1))
        return xp.take(flat, feats.flat, axis=1) * feats.multiplicity
    return W if covariance_type == "diag" else W[:, None]


def _prior_trace(xp, q, prior: BGMMPrior, d):
    """``tr(W0^{-1} W_k)``."""
    cov = prior.covariance
    if q.covariance_type == "full":
        return xp.sum(xp.reshape(q.W * cov, (q.W.shape[0], -1)), axis=-1)
    return xp.sum(q.W * cov, axis=-1) if q.covariance_type == "diag" else d * cov * q.W


def _half_dof(xp, dof, d):
    """``(nu_k - i) / 2`` for ``i = 0 .. D-1``, shape ``(K, D)``."""
    i = xp.arange(d, dtype=dof.dtype, device=_device(dof))
    return 0.5 * (dof[..., None] - i)


def _e_log_det(xp, dof, logdet_w, d):
    """``E[log |Lambda_k|] = sum_{i<D} psi((nu_k - i)/2) + D log 2 + log |W_k|``."""
    return xp.sum(digamma(xp, _half_dof(xp, dof, d)), axis=-1) + d * math.log(2.0) + logdet_w


def _log_wishart_norm(xp, dof, logdet_w, d, with_pi):
    """``log B(W, nu)`` of the Wishart density (scikit-learn omits the ``log pi`` term)."""
    lg = xp.sum(lgamma(xp, _half_dof(xp, dof, d)), axis=-1)
    out = -0.5 * dof * logdet_w - 0.5 * dof * d * math.log(2.0) - lg
    return out - d * (d - 1) / 4.0 * _LOG_PI if with_pi else out


def _wishart_entropy(log_norm, dof, e_log_det, d):
    """``H[W(W, nu)] = -log B(W, nu) - (nu - D - 1)/2 E[log|Lambda|] + nu D / 2`` (Bishop B.82)."""
    return -log_norm - 0.5 * (dof - d - 1.0) * e_log_det + 0.5 * dof * d


# ---------------------------------------------------------------------------
# Weights: Dirichlet or truncated stick-breaking
# ---------------------------------------------------------------------------


def _lbeta(xp, a, b):
    return lgamma(xp, a) + lgamma(xp, b) - lgamma(xp, a + b)


def _e_log_weights(xp, weight_type, concentration):
    """``E[log pi_k]``."""
    if weight_type == "dirichlet_distribution":
        return digamma(xp, concentration) - digamma(xp, xp.sum(concentration))
    g1, g2 = concentration[0, :], concentration[1, :]
    dsum = digamma(xp, g1 + g2)
    e_log_rest = digamma(xp, g2) - dsum  # E[log(1 - v_k)]
    before = xp.cumulative_sum(e_log_rest) - e_log_rest  # sum over j < k
    return digamma(xp, g1) - dsum + before


def _dirichlet_entropy(xp, alpha):
    """``H[Dir(alpha)] = log B(alpha) + (a - K) psi(a) - sum (alpha_k - 1) psi(alpha_k)``,
    ``a = sum alpha``."""
    a = xp.sum(alpha)
    log_b = xp.sum(lgamma(xp, alpha)) - lgamma(xp, a)
    return log_b + (a - alpha.shape[0]) * digamma(xp, a) - xp.sum((alpha - 1.0) * digamma(xp, alpha))


def _beta_entropy(xp, a, b):
    """``H[Beta(a, b)] = log B(a, b) - (a-1) psi(a) - (b-1) psi(b) + (a+b-2) psi(a+b)``."""
    return (_lbeta(xp, a, b) - (a - 1.0) * digamma(xp, a) - (b - 1.0) * digamma(xp, b)
            + (a + b - 2.0) * digamma(xp, a + b))


def _weight_terms(xp, q, alpha0, K):
    """``E[log p(pi)] + H[q(pi)]`` for the full ELBO."""
    if q.weight_type == "dirichlet_distribution":
        log_c0 = math.lgamma(K * alpha0) - K * math.lgamma(alpha0)
        return log_c0 + (alpha0 - 1.0) * xp.sum(q.e_log_pi) + _dirichlet_entropy(xp, q.concentration)
    g1, g2 = q.concentration[0, :], q.concentration[1, :]
    e_log_rest = digamma(xp, g2) - digamma(xp, g1 + g2)
    prior = K * math.log(alpha0) + (alpha0 - 1.0) * xp.sum(e_log_rest)  # Beta(1, alpha0) sticks
    return prior + xp.sum(_beta_entropy(xp, g1, g2))


def _log_weight_norm(xp, q):
    """scikit-learn's ``log_norm_weight``: Dirichlet ``log C(alpha)``, DP ``-sum log B(g1, g2)``."""
    if q.weight_type == "dirichlet_distribution":
        alpha = q.concentration
        return lgamma(xp, xp.sum(alpha)) - xp.sum(lgamma(xp, alpha))
    return -xp.sum(_lbeta(xp, q.concentration[0, :], q.concentration[1, :]))


def _weights(xp, q):
    """``E[pi]``; stick-breaking ``E[v_k] prod_{j<k} E[1 - v_j]``, renormalised (scikit-learn)."""
    if q.weight_type == "dirichlet_distribution":
        return q.concentration / xp.sum(q.concentration)
    g1, g2 = q.concentration[0, :], q.concentration[1, :]
    log_rest = xp.log(g2) - xp.log(g1 + g2)
    w = g1 / (g1 + g2) * xp.exp(xp.cumulative_sum(log_rest) - log_rest)
    return w / xp.sum(w)


# ---------------------------------------------------------------------------
# M-step and E-step
# ---------------------------------------------------------------------------


@dataclass
class _Stats:
    """Weighted statistics; means and scatter of the scaled features (``Xc / s``)."""

    counts: Any  # sum_n r_nk
    nk: Any  # counts + 10 eps (scikit-learn's guard against empty components)
    xbar: Any  # weighted means of Xc / s
    scatter: Any  # sum_n r_nk (y_n - ybar_k)(y_n - ybar_k)^T as pair features (K, T), y = Xc / s
    scale: float  # s, the features' scale


def _statistics(xp, feats: _Features, resp_t, layout):
    """``N_k``, ``xbar_k / s`` and the weighted scatter ``/ s^2``: one product ``r^T F`` (no
    ``reg_covar``).

    ``resp_t`` is ``r^T``, shape ``(K, N)``: components along the first axis
    keep the E-step's reductions over ``k`` fast (contiguous rows).
    """
    d = feats.d
    moments = xp.matmul(resp_t, feats.F)
    counts = moments[:, 0]
    nk = counts + 10.0 * float(xp.finfo(resp_t.dtype).eps)
    xbar = moments[:, 1:1 + d] / nk[:, None]
    if layout == "full":
        I, J = feats.pairs
        outer = xp.take(xbar, I, axis=1) * xp.take(xbar, J, axis=1)
    else:
        outer = xbar * xbar
        if layout == "spherical":
            outer = xp.sum(outer, axis=1, keepdims=True)
    return _Stats(counts, nk, xbar, moments[:, 1 + d:] - nk[:, None] * outer, feats.scale)


def _unpacked(xp, feats: _Features, scatter, layout):
    """Scatter in the layout of ``W^{-1}``: ``(K, D, D)``, ``(K, D)`` or ``(K,)``."""
    if layout == "full":
        d = feats.d
        return xp.reshape(xp.take(scatter, feats.unpack, axis=1), (scatter.shape[0], d, d))
    return scatter if layout == "diag" else scatter[:, 0]


@dataclass
class _Q:
    """Variational parameters, with the derived quantities every step reuses."""

    covariance_type: str  # the layout: "full" (also for tied), "diag" or "spherical"
    weight_type: str
    concentration: Any  # (K,) Dirichlet, or (2, K) stick-breaking Beta parameters
    mean_precision: Any  # beta_k
    means: Any  # m_k (shifted coordinates inside the fit)
    dof: Any  # nu_k
    scale_inv: Any  # W_k^{-1}: (K, D, D), (K, D) or (K,)
    W: Any  # W_k in the same layout
    logdet_w: Any  # log |W_k|
    coef: Any  # pair coefficients of W_k, (K, T)
    e_log_det: Any  # E[log |Lambda_k|]
    e_log_pi: Any  # E[log pi_k]


def _m_step(xp, feats: _Features, stats: _Stats, prior: BGMMPrior, m0c, reg_covar, d) -> _Q:
    """Coordinate optimum of ``q(pi) prod q(mu_k, Lambda_k)`` given the statistics."""
    wt, ct = prior.weight_concentration_prior_type, _layout(prior.covariance_type)
    nk = stats.nk
    if wt == "dirichlet_distribution":
        concentration = prior.weight_concentration + nk
    else:
        tail = xp.flip(xp.cumulative_sum(xp.flip(nk, axis=0)), axis=0)  # sum_{j >= k}
        after = xp.concat([tail[1:], xp.zeros((1,), dtype=nk.dtype, device=feats.device)])
        concentration = xp.stack([1.0 + nk, prior.weight_concentration + after])
    beta = prior.mean_precision + nk
    xbar = stats.xbar * stats.scale
    means = (prior.mean_precision * m0c + nk[:, None] * xbar) / beta[:, None]
    diff = xbar - m0c
    shrink = prior.mean_precision * nk / beta
    scatter = _times_scale_squared(_unpacked(xp, feats, stats.scatter, ct), stats.scale)
    if ct == "full":
        eye = xp.eye(d, dtype=nk.dtype, device=feats.device)
        scale_inv = (prior.covariance + scatter + reg_covar * nk[:, None, None] * eye
                     + shrink[:, None, None] * diff[:, :, None] * diff[:, None, :])
    elif ct == "diag":
        scale_inv = prior.covariance + scatter + reg_covar * nk[:, None] + shrink[:, None] * diff * diff
    else:  # scikit-learn's spherical: the mean of the diagonal
        scale_inv = prior.covariance + scatter / d + nk * reg_covar + shrink * xp.mean(diff * diff, axis=-1)
    dof = prior.degrees_of_freedom + nk
    if prior.covariance_type == "tied":  # one q(Lambda_k) shared by all k: average the optima
        scale_inv = xp.broadcast_to(xp.mean(scale_inv, axis=0), scale_inv.shape)
        dof = xp.broadcast_to(xp.mean(dof), dof.shape)
    return _q_of(xp, feats, ct, wt, concentration, beta, means, dof, scale_inv)


def _q_of(xp, feats: _Features, layout, weight_type, concentration, beta, means, dof,
          scale_inv) -> _Q:
    """``q`` from its parameters, with the derived quantities (``W_k``, ``E[log|Lambda_k|]``, ...)."""
    d = feats.d
    W, logdet_w = _scale(xp, scale_inv, layout, d)
    return _Q(layout, weight_type, concentration, beta, means, dof, scale_inv, W, logdet_w,
              _pair_coefficients(xp, W, feats, layout), _e_log_det(xp, dof, logdet_w, d),
              _e_log_weights(xp, weight_type, concentration))


def _fitted_q(xp, result: BGMMResult, feats: _Features, shift) -> _Q:
    """The ``q`` of a result from its public fields, means in coordinates shifted by ``shift``.

    ``W_k^{-1} = nu_k covariances_k`` (scikit-learn's ``covariances_`` is
    ``W_k^{-1} / nu_k``); ``tied`` results hold one matrix and one ``nu``,
    broadcast to the ``K`` equal factors.
    """
    K = result.means.shape[0]
    layout = _layout(result.prior.covariance_type)
    dof = xp.broadcast_to(xp.asarray(result.degrees_of_freedom), (K,))
    covariances = result.covariances
    if result.prior.covariance_type == "tied":
        covariances = xp.broadcast_to(covariances, (K,) + tuple(covariances.shape))
    scale = {"full": dof[:, None, None], "diag": dof[:, None], "spherical": dof}[layout]
    return _q_of(xp, feats, layout, result.prior.weight_concentration_prior_type,
                 result.weight_concentration, result.mean_precision, result.means - shift, dof,
                 covariances * scale)


def _device(x):
    return get_namespace(x)[1]


class _LogRho(NamedTuple):
    """``log rho^T = const + s^2 quadratic``: ``const`` (K, 1), ``quadratic`` (K, N)."""

    const: Any
    quadratic: Any
    scale: float


def _log_rho(xp, q: _Q, feats: _Features, mc) -> _LogRho:
    r"""``log rho`` of the E-step, transposed (``(K, N)``), the data part as one product ``B @ F^T``.

    ``log rho_nk = E[log pi_k] + E[log|Lambda_k|]/2 - D/2 log 2pi - D/(2 beta_k)
    - nu_k/2 (x_n - m_k)^T W_k (x_n - m_k)``, with the quadratic form expanded
    (in shifted coordinates, divided by ``s^2``: ``y = x / s``) into
    ``y^T W y - 2 mu^T W y + mu^T W mu``, ``mu = m / s``.
    """
    d = feats.d
    mu = mc / feats.scale
    wm = _times_w(xp, q, mu)
    const = q.e_log_pi + 0.5 * q.e_log_det - 0.5 * d * LOG_2PI - 0.5 * d / q.mean_precision
    B = xp.concat([(-0.5 * q.dof * xp.sum(mu * wm, axis=-1))[:, None], q.dof[:, None] * wm,
                   -0.5 * q.dof[:, None] * q.coef], axis=1)
    return _LogRho(const[:, None], xp.matmul(B, xp.matrix_transpose(feats.F)), feats.scale)


def _responsibilities(xp, log_rho: _LogRho, device):
    """``(r^T, log r^T)``: the softmax over components (axis 0), sums as a vector-matrix product.

    ``log rho = c + s^2 A`` enters as ``s^2 (A - max_k A) + c``: shifting each
    column by ``s^2 max_k A`` changes no softmax, and what is left is
    representable, or ``-inf`` (a responsibility of exactly 0) where the exact
    difference is beyond the float range, with data near 1e300 (where
    ``s^2 A`` alone would overflow, and ``c`` would be lost beside it).
    """
    A = log_rho.quadratic
    z = _times_scale_squared(A - xp.max(A, axis=0, keepdims=True), log_rho.scale) + log_rho.const
    a = z - xp.max(z, axis=0, keepdims=True)
    e = xp.exp(a)
    total = xp.matmul(xp.ones((1, e.shape[0]), dtype=e.dtype, device=device), e)
    return e / total, a - xp.log(total)


# ---------------------------------------------------------------------------
# The two bounds
# ---------------------------------------------------------------------------


def _sklearn_bound(xp, q: _Q, log_wishart, neg_entropy_z, d):
    """scikit-learn's ``_compute_lower_bound`` (total, constants dropped).

    ``log_wishart`` is its Wishart normaliser per component (no ``log pi`` term).
    """
    return (-neg_entropy_z - xp.sum(log_wishart) - _log_weight_norm(xp, q)
            - 0.5 * d * xp.sum(xp.log(q.mean_precision)))


def _full_elbo(xp, q: _Q, stats: _Stats, prior: BGMMPrior, m0c, log_wishart, neg_entropy_z, d):
    """Bishop (10.70)-(10.77) with every constant, for scikit-learn's model and families.

    ``E[log p(X|Z,mu,Lambda)] + E[log p(Z|pi)] + E[log p(pi)] + E[log p(mu,Lambda)]
    - E[log q(Z)] - E[log q(pi)] - E[log q(mu,Lambda)]``. The data term uses
    ``sum_n r_nk (x_n - m_k)^T W_k (x_n - m_k) = tr(W_k scatter_k) + N_k (xbar_k - m_k)^T W_k (xbar_k - m_k)``
    (the ``10 eps`` guard in ``N_k`` counts as rounding). ``log_wishart`` is
    scikit-learn's normaliser (without ``log pi``), as in :func:`_sklearn_bound`.
    """
    nk, beta, nu, e_log_det = stats.nk, q.mean_precision, q.dof, q.e_log_det
    # The quadratic terms at the features' scale, times s^2 last: -inf, not NaN, past the range.
    trace = xp.sum(q.coef * stats.scatter, axis=-1)
    quad = trace + nk * _quad(xp, q, stats.xbar - q.means / stats.scale)
    data = 0.5 * xp.sum(nk * (e_log_det - d / beta - d * LOG_2PI)
                        - nu * _times_scale_squared(quad, stats.scale))
    assignments = xp.sum(stats.counts * q.e_log_pi) - neg_entropy_z
    beta0, nu0 = prior.mean_precision, prior.degrees_of_freedom
    prior_mu_lam = xp.sum(
        0.5 * (d * math.log(beta0 / (2 * math.pi)) + e_log_det - d * beta0 / beta
               - beta0 * nu * _quad(xp, q, q.means - m0c))
        + 0.5 * (nu0 - d - 1.0) * e_log_det - 0.5 * nu * _prior_trace(xp, q, prior, d))
    prior_mu_lam = prior_mu_lam + nk.shape[0] * _log_wishart_prior(xp, prior, d)
    log_norm = log_wishart - d * (d - 1) / 4.0 * _LOG_PI
    entropy_mu_lam = xp.sum(-0.5 * e_log_det - 0.5 * d * (xp.log(beta) - LOG_2PI) + 0.5 * d
                            + _wishart_entropy(log_norm, nu, e_log_det, d))
    weights = _weight_terms(xp, q, prior.weight_concentration, nk.shape[0])
    return data + assignments + weights + prior_mu_lam + entropy_mu_lam


def _log_wishart_prior(xp, prior: BGMMPrior, d):
    """``log B(W_0, nu_0)`` of the prior."""
    nu0 = xp.asarray(prior.degrees_of_freedom, dtype=prior.mean.dtype,
                     device=get_namespace(prior.mean)[1])
    return _log_wishart_norm(xp, nu0, _logdet_w0(xp, prior, d), d, True)


def _logdet_w0(xp, prior: BGMMPrior, d):
    """``log |W_0|``: minus the prior's ``covariance_logdet``, or from its ``W0^{-1}``."""
    if prior.covariance_logdet is not None:
        return -prior.covariance_logdet
    return -_logdet(xp, prior.covariance, _layout(prior.covariance_type), d)


def _logdet(xp, cov, layout, d):
    """``log |C|`` of covariances in a layout: full through the Cholesky factor, diagonal the sum
    of the logarithms, spherical ``D log c``."""
    if layout == "full":
        return 2.0 * xp.sum(xp.log(xp.linalg.diagonal(xp.linalg.cholesky(cov))), axis=-1)
    return xp.sum(xp.log(cov), axis=-1) if layout == "diag" else d * xp.log(cov)


# ---------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------


def bgmm_cavi(
    X, resp_init, *, covariance_type="full", weight_concentration_prior_type="dirichlet_process",
    weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
    degrees_of_freedom_prior=None, covariance_prior=None, reg_covar=1e-6, tol=1e-3,
    max_iter=100, check_finite=True,
):
    r"""Fit scikit-learn's Bayesian Gaussian mixture by CAVI, starting from ``resp_init``.

    One M-step from ``resp_init``, then per iteration: E-step
    (``r_nk ∝ exp(log rho_nk)``), M-step, and both bounds. With
    ``N_k, xbar_k, S_k`` the weighted statistics of ``r``:

    .. math::
        \beta_k = \beta_0 + N_k,\quad m_k = \frac{\beta_0 m_0 + N_k\bar x_k}{\beta_k},\quad
        \nu_k = \nu_0 + N_k,\quad
        W_k^{-1} = W_0^{-1} + N_k S_k + \frac{\beta_0 N_k}{\beta_k}(\bar x_k - m_0)(\bar x_k - m_0)^T,

    ``alpha_k = alpha0 + N_k`` (Dirichlet) or ``gamma_k = (1 + N_k,
    alpha0 + sum_{j>k} N_j)`` (stick-breaking), and

    .. math::
        \log\rho_{nk} = E[\log\pi_k] + \tfrac12 E[\log|\Lambda_k|] - \tfrac D2\log 2\pi
        - \frac{D}{2\beta_k} - \frac{\nu_k}2 (x_n - m_k)^T W_k (x_n - m_k).

    Parameters
    ----------
    X : (N, D) array
        Data, float32 or float64.
    resp_init : (N, K) array
        Starting responsibilities: non-negative rows summing to one, ``N >= K``.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Family of the Wishart scale matrices (``tied``: one ``q(Lambda)`` for all components).
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}
        Stick-breaking (truncated at ``K``) or symmetric Dirichlet weights.
    weight_concentration_prior, mean_precision_prior, degrees_of_freedom_prior : float, optional
        ``alpha0 > 0`` (default ``1/K``), ``beta0 > 0`` (1), ``nu0 > D - 1`` (``D``).
    mean_prior : (D,) array, optional
        ``m0`` (default ``mean(X)``).
    covariance_prior : array or float, optional
        ``W0^{-1}``, positive definite: ``(D, D)`` full and tied, ``(D,)`` diag, scalar
        spherical (default: the sample covariance, ``ddof = 1``, reduced likewise).
    reg_covar : float
        Added to the diagonal of every ``S_k`` (scikit-learn's regulariser).
    tol : float
        Stop when scikit-learn's bound changes by less than ``tol``.
    max_iter : int
        Maximum number of iterations.
    check_finite : bool
        Reject NaN and infinity in ``X`` and ``resp_init``.

    Returns
    -------
    BGMMResult
        Fitted parameters, the full ELBO and scikit-learn's bound per
        iteration, and the responsibilities of a final E-step.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.vi import bgmm_cavi, bgmm_predict
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (40, 2)), rng.normal(3, 1, (40, 2))])
    >>> resp = np.where(X[:, :1] < 0, [0.8, 0.2], [0.2, 0.8])  # a rough start
    >>> res = bgmm_cavi(X, resp, reg_covar=0.0, tol=0.0, max_iter=20)
    >>> bool(np.all(np.diff(res.elbo) >= -1e-9 * np.abs(res.elbo).max()))
    True
    >>> labels = bgmm_predict(res, X)
    >>> bool(labels[0] != labels[-1] and np.all(labels[:40] == labels[0]))
    True
    """
    xp, device = _check_data(X, resp_init, check_finite)
    _check_options(covariance_type, weight_concentration_prior_type, reg_covar, tol, max_iter)
    d, K = X.shape[1], resp_init.shape[1]
    prior = _prior(xp, X, K, covariance_type, weight_concentration_prior_type,
                   weight_concentration_prior, mean_precision_prior, mean_prior,
                   degrees_of_freedom_prior, covariance_prior)
    shift = xp.mean(X, axis=0)  # work in shifted coordinates: less cancellation
    layout = _layout(covariance_type)
    m0c = prior.mean - shift
    Xc = X - shift
    feats = _features(xp, device, Xc, layout, _joint_scale(xp, Xc, m0c))
    start = _statistics(xp, feats, xp.matrix_transpose(resp_init), layout)
    q = _m_step(xp, feats, start, prior, m0c, reg_covar, d)
    elbo, bounds, converged, it = [], [], False, 0
    for it in range(1, max_iter + 1):
        resp_t, log_resp_t = _responsibilities(xp, _log_rho(xp, q, feats, q.means), device)
        stats = _statistics(xp, feats, resp_t, layout)
        q = _m_step(xp, feats, stats, prior, m0c, reg_covar, d)
        neg_entropy_z = xp.sum(resp_t * log_resp_t)
        log_wishart = _log_wishart_norm(xp, q.dof, q.logdet_w, d, False)
        bounds.append(_sklearn_bound(xp, q, log_wishart, neg_entropy_z, d))
        elbo.append(_full_elbo(xp, q, stats, prior, m0c, log_wishart, neg_entropy_z, d))
        if it > 1 and bool(xp.abs(bounds[-1] - bounds[-2]) < tol):
            converged = True
            break
    resp = xp.matrix_transpose(_responsibilities(xp, _log_rho(xp, q, feats, q.means), device)[0])
    return _result(xp, q, shift, xp.stack(elbo), xp.stack(bounds), it, converged, resp,
                   prior)


def _result(xp, q: _Q, shift, elbo, bounds, n_iter, converged, resp, prior) -> BGMMResult:
    nu = q.dof
    if q.covariance_type == "full":
        covariances = q.scale_inv / nu[:, None, None]
        precisions = q.W * nu[:, None, None]
        # scikit-learn's factor: upper triangular U with U U^T = precision (L^-T sqrt(nu)).
        L_inv = xp.linalg.inv(xp.linalg.cholesky(q.scale_inv))
        precisions_chol = xp.matrix_transpose(L_inv) * xp.sqrt(nu)[:, None, None]
    else:
        scale = nu[:, None] if q.covariance_type == "diag" else nu
        covariances = q.scale_inv / scale
        precisions = q.W * scale
        precisions_chol = xp.sqrt(precisions)
    if prior.covariance_type == "tied":  # scikit-learn's shapes: one matrix, one dof
        covariances, precisions, precisions_chol, nu = (
            covariances[0, ...], precisions[0, ...], precisions_chol[0, ...], nu[0, ...])
    return BGMMResult(_weights(xp, q), q.means + shift, covariances, precisions, precisions_chol,
                      nu, q.mean_precision, q.concentration, elbo, bounds, n_iter, converged, resp,
                      prior)


def _check_result(result, X, name="X"):
    """Validate ``result`` and data ``X (M, D)`` for it; return ``(xp, device)``."""
    if not isinstance(result, BGMMResult):
        raise TypeError(f"result must be a BGMMResult (the output of bgmm_cavi), "
                        f"got {type(result).__name__}")
    require_real_floating(name, X)
    xp, device = get_namespace(**{name: X, "result.means": result.means})
    require_same_dtype(**{name: X, "means": result.means})
    d = result.means.shape[1]
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"{name} must have shape (M, {d}) for this fit, got {tuple(X.shape)}")
    return xp, device


def _shifted(xp, device, result, X):
    """Features of ``X`` and the fitted ``q``, both in coordinates shifted by the mean of ``X``."""
    shift = xp.mean(X, axis=0)
    Xc, mc = X - shift, result.means - shift
    feats = _features(xp, device, Xc, _layout(result.prior.covariance_type),
                      _joint_scale(xp, Xc, mc))
    return feats, _fitted_q(xp, result, feats, shift), shift


def _joint_scale(xp, Xc, mc):
    """The features' scale: a power of two for the data and the means together (the quadratic
    forms in ``x - m`` stay in range for either far from the other)."""
    return max(power_of_two_scale(xp, Xc), power_of_two_scale(xp, mc))


def bgmm_predict_proba(result: BGMMResult, X, *, check_finite=True):
    r"""Responsibilities ``r_nk`` of new data under the fitted ``q`` (one E-step).

    ``r_nk ∝ exp(log rho_nk)`` with ``log rho`` of :func:`bgmm_cavi`, from the
    result's public fields: ``E[log pi_k]`` from ``weight_concentration``,
    ``W_k = precisions_k / nu_k``, ``m_k = means_k``, ``beta_k = mean_precision_k``.

    Parameters
    ----------
    result : BGMMResult
        Output of :func:`bgmm_cavi`.
    X : (M, D) array
        New data, same library, device and dtype as the fit.
    check_finite : bool
        Raise ``ValueError`` on NaN or infinity in ``X``.

    Returns
    -------
    resp : (M, K) array
    """
    xp, device = _check_result(result, X)
    if check_finite:
        require_finite("X", X)
    feats, q, _ = _shifted(xp, device, result, X)
    return xp.matrix_transpose(_responsibilities(xp, _log_rho(xp, q, feats, q.means), device)[0])


def bgmm_predict(result: BGMMResult, X, *, check_finite=True):
    """The most responsible component of each row of ``X`` (``argmax`` of :func:`bgmm_predict_proba`,
    whose ``check_finite`` it passes on).

    Returns
    -------
    labels : (M,) integer array
        The first maximal component at ties.
    """
    xp, _ = get_namespace(X=X)
    return xp.argmax(bgmm_predict_proba(result, X, check_finite=check_finite), axis=1)


def bgmm_elbo(result: BGMMResult, X, resp):
    """The full ELBO at responsibilities ``resp`` and the fitted ``q(pi, mu, Lambda)`` of ``result``.

    The fit's ``elbo`` trace holds this quantity at each iteration's pair
    ``(r_t, M-step(r_t))``. At ``resp = result.resp`` (the final E-step) it is
    the maximum over ``resp`` for the fitted ``q``. The fitted ``q`` and the
    prior are read from the result's public fields (see :class:`BGMMResult`).

    Parameters
    ----------
    result : BGMMResult
        Output of :func:`bgmm_cavi`.
    X : (N, D) array
        The data of the fit.
    resp : (N, K) array
        Responsibilities (rows on the simplex).

    Returns
    -------
    elbo : 0-d array
    """
    _check_result(result, X)
    xp, device = _check_data(X, resp, True, name="resp")
    d, K = X.shape[1], result.means.shape[0]
    if resp.shape[1] != K:
        raise ValueError(f"resp must have shape (N, {K}) for this fit, got {tuple(resp.shape)}")
    feats, q, shift = _shifted(xp, device, result, X)
    stats = _statistics(xp, feats, xp.matrix_transpose(resp), q.covariance_type)
    positive = resp > 0
    log_resp = xp.log(xp.where(positive, resp, xp.ones_like(resp)))  # 0 log 0 = 0
    neg_entropy_z = xp.sum(resp * log_resp)
    log_wishart = _log_wishart_norm(xp, q.dof, q.logdet_w, d, False)
    return _full_elbo(xp, q, stats, result.prior, result.prior.mean - shift, log_wishart,
                      neg_entropy_z, d)
