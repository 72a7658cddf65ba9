"""SVD-parametrised layer: inverse, slogdet, expm and forward against dense baselines.

Targets (float64, one BLAS thread; docs/performance.rst): at d = 2048, m = 32
the inverse, WY build included, at least 3x faster than ``numpy.linalg.solve``
with the dense ``W``; the prepared layer's inverse (both WY factors built once)
<= 5x a plain GEMM with ``W`` prebuilt; ``svd_linear_slogdet`` under 20
microseconds at d = 2048, its argument checks cheaper than its math (the op
over the bare NumPy expression <= 2), both with ``check_finite=False``: the
default adds an ``O(d (n_u + n_v))`` finiteness pass over the reflectors. The ``track_*`` benchmarks report those
ratios from the same run (``speedup``: baseline time over ours, > 1 is
faster; ``over_gemm``: ours over GEMM).

The baselines' cost does not depend on the values of ``W``, so they use a
Gaussian ``d x d`` matrix instead of materialising the layer (``O(d^3)``).
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np
import scipy.linalg

from refimpl.linalg.svd_layer import (
    svd_linear,
    svd_linear_inverse,
    svd_linear_prepare,
    svd_linear_slogdet,
    sym_expm_apply,
)

# The targets' sizes; the dense baselines cost O(d^3), so d = 2048 only where a target names it.
DIMS = [256, 1024]
COLS = [32]


def _layer(d, m):
    gen = np.random.default_rng(0)
    Vu, Vv = gen.standard_normal((d, d)), gen.standard_normal((d, d))
    s = gen.uniform(0.5, 2.0, d) * gen.choice([-1.0, 1.0], d)
    return Vu, s, Vv, gen.standard_normal((d, m)), gen.standard_normal((d, d))


class Layer:
    params = [DIMS + [2048], COLS]
    param_names = ["d", "m"]
    timeout = 600

    def setup(self, d, m):
        self.Vu, self.s, self.Vv, self.X, self.W = _layer(d, m)

    def time_forward(self, d, m):
        svd_linear(self.Vu, self.s, self.Vv, self.X)

    def time_inverse(self, d, m):
        svd_linear_inverse(self.Vu, self.s, self.Vv, self.X)

    def time_dense_solve(self, d, m):
        np.linalg.solve(self.W, self.X)

    def time_dense_gemm(self, d, m):
        self.W @ self.X

    def track_inverse_speedup_over_solve(self, d, m):
        return common.ratio(lambda: np.linalg.solve(self.W, self.X),
                            lambda: svd_linear_inverse(self.Vu, self.s, self.Vv, self.X))

    def track_inverse_over_gemm(self, d, m):
        return common.ratio(lambda: svd_linear_inverse(self.Vu, self.s, self.Vv, self.X),
                            lambda: self.W @ self.X)

    def track_forward_over_gemm(self, d, m):
        return common.ratio(lambda: svd_linear(self.Vu, self.s, self.Vv, self.X),
                            lambda: self.W @ self.X)

    for _name in ("inverse_speedup_over_solve", "inverse_over_gemm", "forward_over_gemm"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name


class Prepared:
    """The prepared layer (WY factors built once) against GEMM with ``W`` prebuilt."""

    params = [DIMS + [2048], COLS]
    param_names = ["d", "m"]
    timeout = 600

    def setup(self, d, m):
        Vu, s, Vv, self.X, self.W = _layer(d, m)
        self.layer = svd_linear_prepare(Vu, s, Vv)

    def time_prepared_inverse(self, d, m):
        self.layer.inverse(self.X)

    def track_prepared_inverse_over_gemm(self, d, m):
        return common.ratio(lambda: self.layer.inverse(self.X), lambda: self.W @ self.X)

    def track_prepared_forward_over_gemm(self, d, m):
        return common.ratio(lambda: self.layer.forward(self.X), lambda: self.W @ self.X)

    track_prepared_inverse_over_gemm.unit = "ratio"
    track_prepared_forward_over_gemm.unit = "ratio"


def _slogdet_math(s, n_u, n_v):
    """The bare NumPy expression of the layer's slogdet, no argument checks: the floor."""
    sign = (-1.0) ** (n_u + n_v) * np.prod(np.sign(s))
    return sign, np.sum(np.log(np.abs(s)))


class Slogdet:
    params = [[256, 2048]]
    param_names = ["d"]
    timeout = 600

    def setup(self, d):
        self.Vu, self.s, self.Vv, _, self.W = _layer(d, 1)

    def time_slogdet(self, d):
        svd_linear_slogdet(self.Vu, self.s, self.Vv)

    def time_dense_slogdet(self, d):
        np.linalg.slogdet(self.W)

    def _slogdet_unchecked(self):
        """The ``O(d)`` op the targets are about (the default checks the reflectors' values)."""
        return svd_linear_slogdet(self.Vu, self.s, self.Vv, check_finite=False)

    def track_slogdet_microseconds(self, d):
        return 1e6 * common.best_time(self._slogdet_unchecked)

    def track_slogdet_checked_microseconds(self, d):
        return 1e6 * common.best_time(lambda: svd_linear_slogdet(self.Vu, self.s, self.Vv))

    def track_slogdet_speedup_over_numpy(self, d):
        return common.ratio(lambda: np.linalg.slogdet(self.W),
                            lambda: svd_linear_slogdet(self.Vu, self.s, self.Vv))

    def track_slogdet_over_bare_math(self, d):
        n_u, n_v = self.Vu.shape[-2], self.Vv.shape[-2]
        return common.ratio(self._slogdet_unchecked, lambda: _slogdet_math(self.s, n_u, n_v))

    track_slogdet_microseconds.unit = "microseconds"
    track_slogdet_checked_microseconds.unit = "microseconds"
    track_slogdet_speedup_over_numpy.unit = "ratio"
    track_slogdet_over_bare_math.unit = "ratio"


class Expm:
    """``expm(W) X`` for the symmetric ``W = U diag(s) U^T`` against SciPy's dense expm."""

    params = [[256], COLS]
    param_names = ["d", "m"]
    timeout = 600

    def setup(self, d, m):
        self.Vu, s, _, self.X, W = _layer(d, m)
        self.s = s / 2
        self.Ws = (W + W.T) / np.sqrt(8 * d)  # symmetric, spectrum in about [-1, 1] like s / 2

    def time_sym_expm_apply(self, d, m):
        sym_expm_apply(self.Vu, self.s, self.X)

    def time_dense_expm_and_product(self, d, m):
        scipy.linalg.expm(self.Ws) @ self.X

    def track_expm_speedup_over_scipy(self, d, m):
        return common.ratio(lambda: scipy.linalg.expm(self.Ws) @ self.X,
                            lambda: sym_expm_apply(self.Vu, self.s, self.X))

    track_expm_speedup_over_scipy.unit = "ratio"
