"""Glow's 1x1 convolution: forward, inverse, log-determinant and VJP against plain NumPy.

``c`` channels on a 32 x 32 grid, batch 8. Baselines from the same run: the
per-pixel product with ``W`` prebuilt (one ``matmul`` of ``(c, c)`` by
``(8, c, HW)``) and ``numpy.linalg.solve`` with ``W``. ``glow_conv1x1``
forms ``W = P L~ (U~ + diag(s))`` on every call (``O(c^3)``, small next to
``O(c^2 HW)`` per image), and ``glow_conv1x1_slogdet`` is ``O(c)``. The
``track_*`` benchmarks report the ratios.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.flows.glow import (
    glow_conv1x1,
    glow_conv1x1_inverse,
    glow_conv1x1_slogdet,
    glow_conv1x1_vjp,
    glow_lu_weight,
)

CHANNELS = [4, 64]
GRID = (32, 32)
BATCH = 8


class Glow:
    params = [CHANNELS]
    param_names = ["c"]
    timeout = 300

    def setup(self, c):
        gen = np.random.default_rng(0)
        self.L, self.U = 0.3 * gen.standard_normal((2, c, c))
        self.s = gen.uniform(0.5, 2.0, c) * gen.choice([-1.0, 1.0], c)
        self.perm = tuple(gen.permutation(c))
        self.X = gen.standard_normal((BATCH, c) + GRID)
        self.W = glow_lu_weight(self.L, self.U, self.s, perm=self.perm)
        self.pixels = self.X.reshape(BATCH, c, -1)

    def _forward(self):
        return glow_conv1x1(self.X, self.L, self.U, self.s, perm=self.perm)

    def _inverse(self):
        return glow_conv1x1_inverse(self.X, self.L, self.U, self.s, perm=self.perm)

    def _matmul(self):
        return self.W @ self.pixels

    def _solve(self):
        return np.linalg.solve(self.W, self.pixels)

    def time_forward(self, c):
        self._forward()

    def time_inverse(self, c):
        self._inverse()

    def time_vjp(self, c):
        glow_conv1x1_vjp(self.X, self.L, self.U, self.s, self.X, perm=self.perm)

    def time_slogdet(self, c):
        glow_conv1x1_slogdet(self.s, GRID, perm=self.perm)

    def time_lu_weight(self, c):
        glow_lu_weight(self.L, self.U, self.s, perm=self.perm)

    def time_baseline_matmul(self, c):
        self._matmul()

    def time_baseline_solve(self, c):
        self._solve()

    def track_forward_over_matmul(self, c):
        return common.ratio(self._forward, self._matmul)

    def track_inverse_over_solve(self, c):
        return common.ratio(self._inverse, self._solve)

    for _name in ("forward_over_matmul", "inverse_over_solve"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name
