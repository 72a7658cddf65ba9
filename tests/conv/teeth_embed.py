"""Teeth for the kernel embedding: an independent NumPy implementation and planted bugs.

Read by tests/verify/test_teeth.py. The correct candidate scatters ``w`` by
index arrays, ``K[o, i, (p - a) mod H, (p - b) mod W] = w[o, i, a, b]`` with
``p = k // 2``; its VJP gathers ``G`` at the same indices. Each mutant
changes one of these lines.
"""

from __future__ import annotations

import numpy as np
from _teeth_numpy import GRADIENT_CHECKS, class_teeth


class Embed:
    """``embed_kernel`` by index arrays; ``bug`` plants one mistake."""

    def __init__(self, bug=None):
        self.bug = bug

    def _index(self, kh, kw, shape):
        def one(k, n):
            p = (k + 1) // 2 if self.bug == "centre off by one" else k // 2
            a = np.arange(k)
            return (a - p) % n if self.bug == "kernel not flipped" else (p - a) % n
        return one(kh, shape[0])[:, None], one(kw, shape[1])[None, :]

    def _oihw(self, w, layout):
        if layout == "hwio" and self.bug != "hwio read as oihw":
            return np.transpose(w, (3, 2, 0, 1))
        return w

    def forward(self, w, shape, layout="oihw"):
        w = self._oihw(w, layout)
        K = np.zeros(w.shape[:2] + tuple(shape), dtype=w.dtype)
        K[(slice(None), slice(None)) + self._index(*w.shape[2:], shape)] = w
        return K

    def vjp(self, w, G, shape, layout="oihw"):
        kh, kw = self._oihw(w, layout).shape[2:]
        rows, cols = Embed()._index(kh, kw, shape)
        if self.bug == "dw gathers G unflipped":
            rows, cols = Embed("kernel not flipped")._index(kh, kw, shape)
        dw = G[:, :, rows, cols]
        if layout == "hwio" and self.bug != "dw left in oihw":
            dw = np.transpose(dw, (2, 3, 1, 0))
        return (dw.astype(w.dtype),)


TEETH = {
    "embed_kernel": class_teeth(
        Embed, "forward", "vjp",
        ["centre off by one", "kernel not flipped", "hwio read as oihw", "dw gathers G unflipped",
         "dw left in oihw"],
        {
            "centre off by one": {"matches ground truth", "matches refimpl forward",
                                  "layer matches scipy.ndimage.correlate (wrap)",
                                  "layer matches circular padding + cross-correlation"},
            "kernel not flipped": {"layer matches scipy.ndimage.correlate (wrap)",
                                   "layer matches circular padding + cross-correlation"},
            "hwio read as oihw": {"matches ground truth"},
            "dw gathers G unflipped": {"adjoint test in w", *GRADIENT_CHECKS},
            "dw left in oihw": {"adjoint test in w", *GRADIENT_CHECKS},
        },
    ),
}
