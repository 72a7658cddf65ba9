"""Teeth for channel correspondence: an independent NumPy implementation and planted bugs.

Read by tests/verify/test_teeth.py. The correct candidate works in float64 and rounds its
results to the input's dtype: correlations from standardised columns (``ptp = 0`` marks a
constant channel), the semi-matching by ``argmax``, the bipartite matching by brute force
over every injective matching of the smaller side (the cases are at most 6 x 6), least
squares by ``numpy.linalg.lstsq`` and the lasso exhaustively over supports and signs (the
cases have at most 5 channels). Each mutant changes one line.
"""

from __future__ import annotations

import itertools

import numpy as np
from _teeth_numpy import class_teeth


class Correspondence:
    """Correlation, matchings and regression; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _z(self, A, role="first"):
        F = np.moveaxis(np.asarray(A, np.float64), 1, -1).reshape(-1, A.shape[1])
        live = np.ptp(F, axis=0) > 0
        centred = F if self.bug == "no centring" else F - F.mean(axis=0)
        ddof = 1 if self.bug == "sample deviation (ddof = 1)" else 0
        if self.bug == "second network only centred" and role == "second":
            return np.where(live, centred, 0.0)
        sd = np.sqrt((centred ** 2).sum(axis=0) / (len(F) - ddof))
        return np.where(live, centred / np.where(live, sd, 1.0), 0.0)

    def correlation(self, A, B, constant="raise"):
        ZA, ZB = self._z(A), self._z(B, "second")
        rho = np.clip(ZA.T @ ZB / len(ZA), -1.0, 1.0)
        if self.bug == "absolute correlation":
            rho = np.abs(rho)
        return rho.astype(A.dtype)

    def semi(self, rho):
        rho = np.asarray(rho, np.float64)
        if self.bug == "argmin":
            return np.argmin(rho, axis=1)
        if self.bug == "first column above the row mean":
            return np.argmax(rho > rho.mean(axis=1, keepdims=True), axis=1)
        return np.argmax(rho, axis=1)

    def bipartite(self, rho):
        rho = np.asarray(rho, np.float64)
        if self.bug == "semi-matching":
            return np.argmax(rho, axis=1)
        if self.bug == "each row greedily in turn":
            return self._greedy(rho, order=np.argsort(-rho, axis=1, kind="stable")
                                + rho.shape[1] * np.arange(rho.shape[0])[:, None])
        sign = -1.0 if self.bug == "minimises" else 1.0
        c1, c2 = rho.shape
        small = rho if c1 <= c2 else rho.T
        rows = np.arange(small.shape[0])
        best = max(itertools.permutations(range(small.shape[1]), small.shape[0]),
                   key=lambda p: sign * small[rows, list(p)].sum())
        if c1 <= c2:
            return np.array(best)
        matched = np.full(c1, -1)
        matched[list(best)] = rows
        return matched

    @staticmethod
    def _greedy(rho, order):
        """Take pairs in the given order of flat indices while both ends are still free."""
        c1, c2 = rho.shape
        matched, taken = np.full(c1, -1), set()
        for flat in np.ravel(order):
            a, b = divmod(int(flat), c2)
            if matched[a] < 0 and b not in taken:
                matched[a] = b
                taken.add(b)
        return matched

    def _lasso(self, ZA, ZB, l1):
        """Exhaustively: the support ``S`` and signs ``s`` (``3^C1`` pairs, C1 <= 5 here) whose
        ``w_S = G_SS^-1 (c_S - l1 s)`` has signs ``s`` and leaves ``|c_j - G_j w| <= l1`` off S."""
        M = len(ZA)
        penalty = l1 * M if self.bug == "penalty without the 1/(2M) scaling" else l1
        G, C = ZA.T @ ZA / M, ZA.T @ ZB / M
        W = np.zeros_like(C)
        for b in range(C.shape[1]):
            c = C[:, b]
            for signs in itertools.product((-1.0, 0.0, 1.0), repeat=len(c)):
                s = np.array(signs)
                S = np.flatnonzero(s)
                w = np.zeros_like(c)
                if len(S):
                    block = G[np.ix_(S, S)]
                    if np.linalg.matrix_rank(block) < len(S):
                        continue
                    w[S] = np.linalg.solve(block, c[S] - penalty * s[S])
                if np.all(np.sign(w[S]) == s[S]) and np.all(
                        np.abs(c - G @ w)[s == 0] <= penalty * (1 + 1e-9)):
                    W[:, b] = w
                    break
        return W

    def regression(self, A, B, l1=None, constant="raise"):
        ZA, ZB = self._z(A), self._z(B)
        if l1 is None and self.bug == "ridge 0.1 instead of least squares":
            M = len(ZA)
            W = np.linalg.solve(ZA.T @ ZA / M + 0.1 * np.eye(ZA.shape[1]), ZA.T @ ZB / M)
        elif l1 is None:
            W = np.linalg.lstsq(ZA, ZB, rcond=None)[0]
            W[~np.any(ZA != 0, axis=0)] = 0.0  # minimum norm: exactly 0 on a constant channel
        else:
            W = self._lasso(ZA, ZB, l1)
        residual = ZB - ZA @ W
        loss = (residual ** 2).sum(axis=0)
        if self.bug != "loss summed over the samples":
            loss = loss / len(ZA)
        used = np.full(W.shape[1], W.shape[0]) if self.bug == "n_used counts every channel" \
            else np.count_nonzero(W, axis=0)
        return W.astype(A.dtype), loss.astype(A.dtype), used


def _teeth(method, bugs, caught_by):
    return class_teeth(Correspondence, method, None, bugs, caught_by)


TEETH = {
    "channel_correlation": _teeth(
        "correlation",
        ("sample deviation (ddof = 1)", "no centring", "second network only centred",
         "absolute correlation"),
        {"sample deviation (ddof = 1)": {"matches ground truth", "self-correlation has a unit diagonal"},
         "no centring": {"invariant under affine maps of a channel"},
         "second network only centred": {"swapping the networks transposes rho"},
         "absolute correlation": {"matches ground truth"}},
    ),
    "semi_matching": _teeth(
        "semi", ("argmin", "first column above the row mean"),
        {"argmin": {"matches ground truth", "picks each row's maximum"},
         "first column above the row mean": {"relabelling the columns relabels the partners"}},
    ),
    "bipartite_matching": _teeth(
        "bipartite",
        ("semi-matching", "each row greedily in turn", "minimises"),
        {"semi-matching": {"an injective matching"},
         "each row greedily in turn": {"transposing rho inverts the matching"},
         "minimises": {"matches ground truth", "total at least every matching's"}},
    ),
    "channel_regression": _teeth(
        "regression",
        ("sample deviation (ddof = 1)", "penalty without the 1/(2M) scaling",
         "loss summed over the samples", "n_used counts every channel",
         "ridge 0.1 instead of least squares"),
        {"sample deviation (ddof = 1)": {"matches ground truth"},
         "penalty without the 1/(2M) scaling": {"the lasso's optimality conditions hold"},
         "loss summed over the samples": {"independent channels lose 1 in expectation",
                                          "loss and n_used describe coef"},
         "n_used counts every channel": {"loss and n_used describe coef"},
         "ridge 0.1 instead of least squares": {"a network regressed on itself loses nothing"}},
    ),
}
