"""Teeth for t-SNE: an independent NumPy implementation and planted bugs.

Read by tests/verify/test_teeth.py. The correct candidate works in float64 whatever it is given
and rounds its results to the input's dtype. Its perplexity search is scikit-learn's per-row
loop as written (``beta = 1``, doubling or halving until bracketed, then bisection; a row sum
that underflows becomes ``1e-8``); ``"plain"`` scales ``X - mean`` by the power of two that
brings it into ``[-1, 1)``. ``Q`` and the KL are dense; the gradient is
``4 sum_j (p_ij - S q_ij) dw/dd / w (y_i - y_j)`` written as ``c (p - S q) K`` with
``c = 2 (nu + 1) / nu``; the VJP of ``Q`` goes through ``dL/dw = (G - <G, Q>) / Z``. The
optimiser is scikit-learn's ``_gradient_descent`` loop, vectorised. Each mutant changes one line.
"""

from __future__ import annotations

import math
import struct

import numpy as np
from _teeth_numpy import GRADIENT_CHECKS, class_teeth

from verify import Candidate
from verify.testing import Teeth

EPS = np.finfo(np.float64).eps


def _f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def _pairwise(X, bug=None):
    diff = X[:, None, :] - X[None, :, :]
    if bug == "L1 distances":
        return np.abs(diff).sum(axis=-1)
    return (diff * diff).sum(axis=-1)


def _search_row(d, target, tol, max_steps, floor_sum):
    """scikit-learn's ``_binary_search_perplexity`` for one row ``d`` (own entry removed)."""
    beta, lo, hi = 1.0, -math.inf, math.inf
    for _ in range(max_steps):
        p = np.exp(-d * beta)
        total = p.sum()
        total = floor_sum if total == 0.0 else total
        p = p / total
        gap = math.log(total) + beta * float(np.dot(d, p)) - target
        if abs(gap) <= tol:
            break
        if gap > 0:
            lo = beta
            beta = beta * 2.0 if hi == math.inf else (beta + hi) / 2.0
        else:
            hi = beta
            beta = beta / 2.0 if lo == -math.inf else (beta + lo) / 2.0
    return p


class TSNE:
    """Affinities, ``Q``, KL, gradient and the optimiser; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    # -- P -------------------------------------------------------------------------------------

    def _conditional(self, X, perplexity, method, tol, max_steps):
        if method == "plain":
            Xc = X - X.mean(axis=0)
            largest = np.abs(Xc).max()
            if self.bug != "plain search on unscaled X" and largest > 0:
                Xc = Xc * math.ldexp(1.0, -math.frexp(largest)[1])
            D, floor_sum = _pairwise(Xc, self.bug), 1e-8
        else:
            D = _pairwise(X, self.bug).astype(np.float32).astype(np.float64)
            perplexity, tol, floor_sum = _f32(perplexity), _f32(tol), _f32(1e-8)
        target = math.log2(perplexity) if self.bug == "entropy in bits" else math.log(perplexity)
        n = len(X)
        C = np.zeros((n, n))
        for i in range(n):
            others = np.arange(n) != i
            C[i, others] = _search_row(D[i, others], target, tol, max_steps, floor_sum)
        return C

    def affinities_f64(self, X, perplexity=30.0, method="sklearn", tol=1e-5, max_steps=100,
                       floor=EPS):
        C = self._conditional(np.asarray(X, np.float64), perplexity, method, tol, max_steps)
        if self.bug == "P not symmetrised":
            P = C / len(C)
        elif self.bug == "P normalised by N":
            P = (C + C.T) / len(C)
        else:
            S = C + C.T
            P = S / S.sum()
        P = np.maximum(P, floor)
        np.fill_diagonal(P, 0.0)
        if self.bug == "P from another perplexity":
            return TSNE().affinities_f64(X, perplexity * 1.5, method, tol, max_steps, floor)[0], C
        return P, C

    def affinities(self, X, **params):
        with np.errstate(over="ignore", invalid="ignore"):  # a mutant's overflow fails a check
            return tuple(a.astype(X.dtype) for a in self.affinities_f64(X, **params))

    # -- Q, KL and the gradient ----------------------------------------------------------------

    def _kernel(self, Y, dof):
        """``(w, Q, K)``: weights with a zero diagonal, ``Q = w / Z``, ``K = (1 + d/nu)^-1``."""
        D = _pairwise(np.asarray(Y, np.float64), self.bug)
        exponent = -(dof + 1.0) if self.bug == "squared kernel" else -(dof + 1.0) / 2.0
        w = (1.0 + D / dof) ** exponent
        np.fill_diagonal(w, 0.0)
        if self.bug == "Q normalised per row":
            Q = w / w.sum(axis=1, keepdims=True)
        else:
            Q = w / w.sum()
        K = w if self.bug == "sklearn's weight for every dof" else 1.0 / (1.0 + D / dof)
        return w, Q, K

    def _spread(self, Y, M):
        """``sum_j M_ij (y_i - y_j)``."""
        Y = np.asarray(Y, np.float64)
        return M.sum(axis=1)[:, None] * Y - M @ Y

    def q(self, Y, dof=1.0):
        return self._kernel(Y, dof)[1].astype(Y.dtype)

    def q_vjp(self, Y, G, dof=1.0):
        w, Q, K = self._kernel(Y, dof)
        G = np.asarray(G, np.float64)
        inner = 0.0 if self.bug == "Q's VJP without the normalisation term" else np.sum(G * Q)
        A = Q * K * (G - inner)
        return ((-(dof + 1.0) / dof) * self._spread(Y, A + A.T)).astype(Y.dtype),

    def kl_f64(self, P, Y, dof=1.0, floor=EPS):
        _, Q, _ = self._kernel(Y, dof)
        P = np.asarray(P, np.float64) * (1 - np.eye(len(P)))
        logs = np.log(np.maximum(np.where(P > 0, P, 1.0), floor) / np.maximum(Q, floor))
        return float(np.sum(P * logs))

    def kl(self, P, Y, dof=1.0, floor=EPS):
        return np.asarray(self.kl_f64(P, Y, dof, floor), dtype=Y.dtype)

    def gradient(self, P, Y, dof=1.0, exaggeration=None, sklearn_weight=False):
        """``dKL/dY``; with ``exaggeration`` scikit-learn's step direction (``alpha p - q``, and
        with ``sklearn_weight`` its pair weight ``w`` in place of ``K``)."""
        w, Q, K = self._kernel(Y, dof)
        K = w if sklearn_weight else K
        P = np.asarray(P, np.float64) * (1 - np.eye(len(P)))
        if exaggeration is None:
            M = (P + P.T) / 2 - P.sum() * Q
        else:
            M = exaggeration * P - Q
        factor = 4.0 if self.bug == "factor 4 for every dof" else 2.0 * (dof + 1.0) / dof
        grad = factor * self._spread(Y, M * K)
        if self.bug == "gradient sign flipped":
            grad = -grad
        if self.bug == "weight decay in the gradient":
            grad = grad + 1e-2 * np.asarray(Y, np.float64)
        return grad

    def kl_vjp(self, P, Y, g, dof=1.0, floor=EPS):
        return None, (float(g) * self.gradient(P, Y, dof)).astype(Y.dtype)

    # -- the optimiser -------------------------------------------------------------------------

    def _descend(self, P, alpha, Y, start, stop, momentum, patience, o):
        update, gains = np.zeros_like(Y), np.ones_like(Y)
        best, best_i, last, trace = np.inf, start, start - 1, []
        for i in range(start, stop):
            last = i
            grad = self.gradient(P, Y, o["dof"], alpha, sklearn_weight=o["gradient"] == "sklearn")
            check = (i + 1) % o["n_iter_check"] == 0
            if check:
                trace.append(self.kl_f64(alpha * P, Y, o["dof"]))
            decrease = update * grad < 0.0
            gains = np.maximum(np.where(decrease, gains + 0.2, gains * 0.8), o["min_gain"])
            if self.bug == "last coordinate's gains frozen":
                gains[:, -1] = 1.0
            grad = gains * grad
            update = momentum * update - o["lr"] * grad
            if self.bug == "first point never moves":
                update[0] = 0.0
            Y = Y + update
            if check and self.bug != "no stopping tests":
                if trace[-1] < best:
                    best, best_i = trace[-1], i
                elif i - best_i > patience:
                    break
                if np.linalg.norm(grad) <= o["min_grad_norm"]:
                    break
        return Y, last, trace

    def fit(self, X, Y0, perplexity=30.0, early_exaggeration=12.0, learning_rate="auto",
            max_iter=1000, n_iter_without_progress=300, min_grad_norm=1e-7, dof=1.0,
            exaggeration_iter=250, n_iter_check=50, gradient="kl"):
        n = len(X)
        lr = max(n / early_exaggeration / 4.0, 50.0) if learning_rate == "auto" else learning_rate
        o = dict(dof=dof, gradient=gradient, n_iter_check=n_iter_check, min_gain=0.01, lr=lr,
                 min_grad_norm=min_grad_norm)
        P, _ = TSNE().affinities_f64(X, perplexity=perplexity)
        Y = np.asarray(Y0, np.float64)
        late_momentum = 0.5 if self.bug == "momentum 0.5 throughout" else 0.8
        Y, last, early = self._descend(P, early_exaggeration, Y, 0, exaggeration_iter, 0.5,
                                       exaggeration_iter, o)
        if self.bug == "ascent after the exaggeration phase":
            o["lr"] = -lr
        Y, last, late = self._descend(P, 1.0, Y, last + 1, max_iter, late_momentum,
                                      n_iter_without_progress, o)
        dtype = X.dtype
        return {"embedding": Y.astype(dtype), "kl_divergence": np.asarray(self.kl_f64(P, Y, dof), dtype),
                "n_iter": np.asarray(last + 1), "learning_rate": np.asarray(lr, dtype),
                "kl_trace": np.asarray(early + late, dtype)}


def _candidate(method, bug=None):
    return Candidate(getattr(TSNE(bug), method))


_AFFINITY_BUGS = ("entropy in bits", "P not symmetrised", "P normalised by N",
                  "P from another perplexity", "L1 distances", "plain search on unscaled X")
_FIT_BUGS = ("momentum 0.5 throughout", "ascent after the exaggeration phase",
             "no stopping tests", "first point never moves", "last coordinate's gains frozen")

TEETH = {
    "tsne_affinities": Teeth(
        correct=_candidate("affinities"),
        mutants={bug: _candidate("affinities", bug) for bug in _AFFINITY_BUGS},
        caught_by={
            "entropy in bits": {"matches ground truth", "each conditional reaches the perplexity"},
            "P not symmetrised": {"P is symmetric and normalised", "P is the symmetrised conditional"},
            "P normalised by N": {"P is symmetric and normalised"},
            "P from another perplexity": {"P is the symmetrised conditional"},
            "L1 distances": {"invariant under rigid motions of X"},
            "plain search on unscaled X": {"plain: invariant under X -> 2^k X"},
        },
    ),
    "student_t_affinities": class_teeth(
        TSNE, "q", "q_vjp",
        ("squared kernel", "Q normalised per row", "Q's VJP without the normalisation term",
         "L1 distances"),
        {"squared kernel": {"matches ground truth", "matches refimpl forward"},
         "Q normalised per row": {"Q is a symmetric distribution"},
         "Q's VJP without the normalisation term": GRADIENT_CHECKS,
         "L1 distances": {"invariant under rigid motions of Y"}},
    ),
    "tsne_kl": class_teeth(
        TSNE, "kl", "kl_vjp",
        ("factor 4 for every dof", "sklearn's weight for every dof", "Q normalised per row",
         "gradient sign flipped", "weight decay in the gradient"),
        {"factor 4 for every dof": GRADIENT_CHECKS,
         "sklearn's weight for every dof": GRADIENT_CHECKS,
         "Q normalised per row": {"matches ground truth", "zero with a zero gradient at P = Q(Y)"},
         "gradient sign flipped": {"gradient equals scikit-learn's (dof = 1)"},
         "weight decay in the gradient": {"invariant under rigid motions of Y"}},
    ),
    "tsne": Teeth(
        correct=_candidate("fit"),
        mutants={bug: _candidate("fit", bug) for bug in _FIT_BUGS},
        caught_by={
            "momentum 0.5 throughout": {"matches ground truth"},
            "ascent after the exaggeration phase":
                {"KL never exceeds its first check after the exaggeration phase"},
            "no stopping tests": {"stops when scikit-learn stops"},
            "first point never moves": {"relabelling the points permutes the embedding"},
            "last coordinate's gains frozen": {"signed coordinate permutations commute"},
        },
    ),
}
