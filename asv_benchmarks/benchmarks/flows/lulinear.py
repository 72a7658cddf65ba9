"""nflows' LULinear against a GEMM and a LAPACK solve with ``W`` prebuilt, same run.

``lu_linear`` forms ``W = L~ U~`` on every call (``O(d^3)``) before the
``O(n d^2)`` product; the ratio shows when that matters (small batches, large ``d``).
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.flows import lu_linear, lu_linear_inverse, lu_linear_vjp

FEATURES = [64, 256]
BATCH = 256


class LULinear:
    params = [FEATURES]
    param_names = ["d"]

    def setup(self, d):
        gen = np.random.default_rng(0)
        self.args = (0.1 * gen.standard_normal((d, d)), 0.1 * gen.standard_normal((d, d)),
                     gen.uniform(-1, 1, d))
        self.bias, self.x = gen.standard_normal(d), gen.standard_normal((BATCH, d))
        L, U, u = self.args
        self.W = (np.tril(L, -1) + np.eye(d)) @ (np.triu(U, 1) + np.diag(np.logaddexp(0, u) + 1e-3))

    def _forward(self):
        return lu_linear(self.x, *self.args, self.bias)

    def _inverse(self):
        return lu_linear_inverse(self.x, *self.args, self.bias)

    def _gemm(self):
        return self.x @ self.W.T + self.bias

    def _solve(self):
        return np.linalg.solve(self.W, (self.x - self.bias).T).T

    def time_forward(self, d):
        self._forward()

    def time_vjp(self, d):
        lu_linear_vjp(self.x, *self.args, self.x, np.ones(BATCH), self.bias)

    def track_forward_over_gemm(self, d):
        return common.ratio(self._forward, self._gemm)

    def track_inverse_over_solve(self, d):
        return common.ratio(self._inverse, self._solve)

    for _name in ("forward_over_gemm", "inverse_over_solve"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name
