"""Teeth for weight sharing: an independent NumPy k-means and codebook expansion, and planted bugs.

Read by tests/verify/test_teeth.py. The correct k-means candidate is
scikit-learn's Lloyd written out with ``np.bincount``: assign to the nearest
centroid (first on ties); sum and count per cluster; move the farthest
points (stable descending sort) into the empty clusters, in index order;
average (on the data centred on their mean), an empty cluster copying the
biggest one as ``_average_centers`` does (its unscaled sum before it); stop
on repeated codes or a squared shift ``<= tol var(x)``; assign once more
unless the codes repeated. The
expansion is ``where(codes >= 0, codebook[codes], 0)`` and its VJP
``bincount`` over the kept codes; the centroid gradient is that VJP, its own
VJP the expansion. Each mutant changes one step.
"""

from __future__ import annotations

import numpy as np
from _teeth_numpy import GRADIENT_CHECKS, class_teeth

from verify import Candidate
from verify.testing import Teeth


class KMeans:
    """``kmeans_quantize`` in plain NumPy; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _initial(self, x, k, init, noise, quantile):
        if not isinstance(init, str):
            return np.array(init, dtype=x.dtype)
        if init == "linear":
            if self.bug == "linear init over [-max|w|, max|w|]":
                return np.linspace(-np.abs(x).max(), np.abs(x).max(), k).astype(x.dtype)
            return np.linspace(x.min(), x.max(), k).astype(x.dtype)
        if init == "random":
            order = np.argsort(noise, kind="stable")
            return x[order[::-1][:k] if self.bug == "random init takes the largest noise"
                     else order[:k]]
        s, n, den = np.sort(x), x.size, max(k - 1, 1)
        if self.bug == "density levels (j + 1/2) / k":
            return np.quantile(s, (np.arange(k) + 0.5) / k).astype(x.dtype)
        j = np.arange(k)
        if quantile == "inverted_cdf":
            return s[np.maximum(-(-(n * j) // den) - 1, 0)]
        lower = (n - 1) * j // den
        upper = np.minimum(lower + 1, n - 1)
        frac = (((n - 1) * j) % den / den).astype(x.dtype)
        return s[lower] + frac * (s[upper] - s[lower])

    def _relocate(self, x, labels, c, sums, counts):
        empty = np.flatnonzero(counts == 0)
        if not len(empty) or self.bug == "empty clusters not relocated":
            return
        distance = (x - c[labels]) ** 2
        if distance.max() == 0:
            return
        by_distance = np.argsort(-distance, kind="stable")
        far = by_distance[::-1] if self.bug == "relocates the nearest points" else by_distance
        for e, p in zip(empty, far):
            sums[labels[p]] -= x[p]
            counts[labels[p]] -= 1
            sums[e], counts[e] = x[p], 1

    def _step(self, x, c):
        labels = np.argmin((x[:, None] - c[None, :]) ** 2, axis=1)
        k = c.size
        sums = np.bincount(labels, weights=x, minlength=k).astype(x.dtype)
        counts = np.bincount(labels, minlength=k)
        self._relocate(x, labels, c, sums, counts)
        big = int(np.argmax(counts))
        new = np.empty_like(c)
        for j in range(k):
            if counts[j]:
                new[j] = sums[j] * (1 / counts[j])
                if self.bug == "update overshoots the mean":
                    new[j] += 2 * (new[j] - c[j])
            else:
                new[j] = sums[big] if j < big else sums[big] / counts[big]
        return labels, new

    def forward(self, w, mask=None, init="linear", noise=None, *, n_clusters, max_iter=300,
                tol=1e-4, quantile="linear"):
        keep = np.ones(w.size, dtype=bool) if mask is None else mask.ravel()
        x = w.ravel()[keep]
        c = self._initial(x, n_clusters, init, None if noise is None else noise.ravel()[keep],
                          quantile)
        mean = x.mean()
        x, c = x - mean, c - mean
        limit = tol if self.bug == "tol not scaled by the variance" else tol * x.var()
        previous, strict = None, False
        for it in range(1, max_iter + 1):
            labels, new = self._step(x, c)
            shift, c = float(((new - c) ** 2).sum()), new
            if previous is not None and np.array_equal(labels, previous):
                strict = True
                break
            if shift <= limit:
                break
            previous = labels
        if not strict and self.bug != "no final assignment":
            labels = np.argmin((x[:, None] - c[None, :]) ** 2, axis=1)
        codes = np.full(w.size, -1)
        codes[keep] = labels
        inertia = np.asarray(((x - c[labels]) ** 2).sum(), dtype=w.dtype)
        return c + mean, codes.reshape(w.shape), inertia, np.asarray(it)


class Shared:
    """``shared_weights`` and ``centroid_gradient``, each the other's VJP; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _expand(self, c, codes):
        if self.bug == "pruned take the last centroid":
            return c[codes]
        return np.where(codes >= 0, c[np.maximum(codes, 0)], 0).astype(c.dtype)

    def _sum(self, g, codes, k):
        kept = codes.ravel() >= 0
        if self.bug == "pruned add to the last centroid":
            kept[:] = True
        total = np.bincount(codes.ravel()[kept] % k, weights=g.ravel()[kept], minlength=k)
        if self.bug == "mean instead of sum":
            total /= np.maximum(np.bincount(codes.ravel()[kept] % k, minlength=k), 1)
        return total.astype(g.dtype)

    def shared(self, codebook, codes):
        return self._expand(codebook, codes)

    def shared_vjp(self, codebook, codes, G):
        return self._sum(G, codes, codebook.size), None

    def gradient(self, grad, codes, n_clusters):
        return self._sum(grad, codes, n_clusters)

    def gradient_vjp(self, grad, codes, g, n_clusters):
        return self._expand(g, codes), None


def _kmeans_teeth(bugs, caught_by):
    return Teeth(correct=Candidate(KMeans().forward),
                 mutants={bug: Candidate(KMeans(bug).forward) for bug in bugs},
                 caught_by=caught_by)


TEETH = {
    "kmeans_quantize": _kmeans_teeth(
        ["tol not scaled by the variance", "empty clusters not relocated",
         "relocates the nearest points", "no final assignment", "update overshoots the mean",
         "density levels (j + 1/2) / k", "random init takes the largest noise",
         "linear init over [-max|w|, max|w|]"],
        {
            "tol not scaled by the variance": {"matches ground truth"},
            "empty clusters not relocated": {"matches ground truth", "matches refimpl forward"},
            "relocates the nearest points": {"matches ground truth"},
            "no final assignment": {"codes are the nearest centroids"},
            "update overshoots the mean": {"inertia never increases"},
            "density levels (j + 1/2) / k": {"matches ground truth"},
            "linear init over [-max|w|, max|w|]": {"affine equivariance"},
        },
    ),
    "shared_weights": class_teeth(
        Shared, "shared", "shared_vjp",
        ["pruned take the last centroid", "mean instead of sum"],
        {
            "pruned take the last centroid": {"matches ground truth", "pruned weights are zero"},
            "mean instead of sum": {"adjoint test in codebook", *GRADIENT_CHECKS},
        },
    ),
    "centroid_gradient": class_teeth(
        Shared, "gradient", "gradient_vjp",
        ["mean instead of sum", "pruned add to the last centroid", "pruned take the last centroid"],
        {
            "mean instead of sum": {"matches ground truth", "is the VJP of the codebook expansion",
                                    "adjoint test in grad"},
            "pruned add to the last centroid": {"matches ground truth",
                                                "pruned weights contribute nothing"},
            "pruned take the last centroid": {"adjoint test in grad", *GRADIENT_CHECKS},
        },
    ),
}
