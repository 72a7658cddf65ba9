"""Teeth for network dissection and IBD: an independent NumPy implementation and planted bugs.

Read by tests/verify/test_teeth.py. The correct candidate works in float64 and rounds its
results to the input's dtype. Dissection: thresholds by ``numpy.quantile``, bilinear upsampling
written per output pixel from its two nearest input rows and columns (source coordinate
``(o + 1/2) in/out - 1/2`` clamped), IoU from boolean counts. IBD: each non-negative least
squares fit solved exactly by trying every subset of columns as the support (the cases have at
most 4), the greedy loop around it. Each mutant changes one line.
"""

from __future__ import annotations

import itertools

import numpy as np
from _teeth_numpy import class_teeth


def _neighbours(out_size, in_size):
    """For each output index: the two input indices around it and the weight of the second."""
    x = np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)
    low = np.floor(x).astype(int)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, x - low


class Dissection:
    """``dissection_iou`` and ``ibd``; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _upsample(self, maps, H, W):
        (r0, r1, fr), (c0, c1, fc) = _neighbours(H, maps.shape[-2]), _neighbours(W, maps.shape[-1])
        if self.bug == "nearest upsampling":
            fr, fc = np.round(fr), np.round(fc)
        rows = maps[..., r0, :] * (1 - fr)[:, None] + maps[..., r1, :] * fr[:, None]
        return rows[..., c0] * (1 - fc) + rows[..., c1] * fc

    def iou(self, activations, masks, quantile=0.005):
        a = np.asarray(activations, np.float64)
        level = quantile if self.bug == "threshold at the q quantile" else 1 - quantile
        pooled = a[:1] if self.bug == "thresholds from the first image" else a
        threshold = np.quantile(np.moveaxis(pooled, 1, -1).reshape(-1, a.shape[1]), level, axis=0)
        units = self._upsample(a, *masks.shape[2:]) > threshold[:, None, None]
        inter = np.einsum("nuhw,nkhw->uk", units, masks, dtype=np.float64)
        if self.bug == "union only over the images showing the concept":
            present = masks.any(axis=(2, 3))
            unit_sizes = np.einsum("nuhw,nk->uk", units, present, dtype=np.float64)
            union = unit_sizes + masks.sum(axis=(0, 2, 3))[None, :] - inter
            with np.errstate(invalid="ignore"):
                return (inter / union).astype(a.dtype), threshold.astype(activations.dtype)
        union = units.sum(axis=(0, 2, 3))[:, None] + masks.sum(axis=(0, 2, 3))[None, :] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        if self.bug == "IoU averaged over the images":
            per_image = [self.iou(activations[i:i + 1], masks[i:i + 1], quantile)[0] for i in range(len(a))]
            iou = np.mean(per_image, axis=0)
        return iou.astype(activations.dtype), threshold.astype(activations.dtype)

    def _nnls(self, A, b):
        """Exact: the least-squares fit on the support, over supports whose fit is non-negative."""
        if self.bug == "unconstrained least squares":
            x = np.linalg.lstsq(A, b, rcond=None)[0]
            return x, np.linalg.norm(b - A @ x)
        best_x, best_r = np.zeros(A.shape[1]), np.linalg.norm(b)
        for size in range(1, A.shape[1] + 1):
            for S in itertools.combinations(range(A.shape[1]), size):
                xS = np.linalg.lstsq(A[:, S], b, rcond=None)[0]
                r = np.linalg.norm(b - A[:, S] @ xS)
                if np.all(xS >= 0) and r < best_r:
                    best_x = np.zeros(A.shape[1])
                    best_x[list(S)] = xS
                    best_r = r
        return best_x, best_r

    def ibd(self, w, Q, k):
        w64, Q64 = np.asarray(w, np.float64), np.asarray(Q, np.float64)
        chosen, residuals, coef = [], [], None
        for _ in range(k):
            candidates = [c for c in range(len(Q64)) if c not in chosen]
            if self.bug == "selection by correlation with w":
                c = max(candidates, key=lambda c: Q64[c] @ w64 / np.linalg.norm(Q64[c]))
                coef, r = self._nnls(Q64[chosen + [c]].T, w64)
            else:
                fits = [(self._nnls(Q64[chosen + [c]].T, w64), c) for c in candidates]
                (coef, r), c = min(fits, key=lambda f: (f[0][1], f[1]))
            if self.bug == "residual of the new concept alone":
                r = self._nnls(Q64[[c]].T, w64)[1]
            if self.bug == "residuals relative to ||w||":
                r = r / np.linalg.norm(w64)
            chosen.append(c)
            residuals.append(r)
        return np.array(chosen), coef.astype(w.dtype), np.array(residuals, dtype=w.dtype)


TEETH = {
    "dissection_iou": class_teeth(
        Dissection, "iou", None,
        ("threshold at the q quantile", "nearest upsampling", "IoU averaged over the images",
         "thresholds from the first image", "union only over the images showing the concept"),
        {"threshold at the q quantile": {"matches ground truth"},
         "thresholds from the first image": {"reordering the images changes nothing",
                                             "IoU is 1 for a unit that is the mask"},
         "union only over the images showing the concept": {"an absent concept scores 0"}},
    ),
    "ibd": class_teeth(
        Dissection, "ibd", None,
        ("unconstrained least squares", "residual of the new concept alone",
         "residuals relative to ||w||", "selection by correlation with w"),
        {"residual of the new concept alone": {"residuals never increase"},
         "residuals relative to ||w||": {"scaling w scales the decomposition"},
         "selection by correlation with w": {"matches ground truth"}},
    ),
}
