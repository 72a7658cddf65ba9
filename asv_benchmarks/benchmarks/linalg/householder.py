"""Householder products: forward and VJP per method, with GEMM and LAPACK dormqr baselines.

Targets (float64, one BLAS thread, d >= 256, m >= 32): WY forward (blocks built)
<= 2.5x GEMM and <= 1.3x dormqr; VJP (dV and dX, from the forward's residuals)
<= 7x GEMM; build + forward + VJP <= 10x GEMM.
The ``track_*`` benchmarks report those ratios from the same run.
"""

from .. import common

import numpy as np
import scipy.linalg.lapack as lapack

from refimpl.linalg.householder import (
    METHODS,
    default_block_size,
    householder_matrix,
    householder_product,
    householder_product_bwd,
    householder_product_fwd,
    householder_product_vjp,
    householder_wy,
    householder_wy_apply,
)

# The targets' sizes (d >= 256, m >= 32) at both ends; the full suite runs in minutes.
DIMS = [256, 1024]
COLS = [32]


def _inputs(d, m):
    gen = np.random.default_rng(0)
    V, X = gen.standard_normal((d, d)), gen.standard_normal((d, m))
    return V, X, gen.standard_normal((d, m))


def _lapack_form(d, m):
    """dgeqrf reflectors (the structured form dormqr applies) and a workspace size."""
    gen = np.random.default_rng(0)
    a, tau, _, _ = lapack.dgeqrf(gen.standard_normal((d, d)))
    X = gen.standard_normal((d, m))
    lwork = int(lapack.dormqr("L", "N", a, tau, X, lwork=-1)[1][0])
    return a, tau, X, lwork


class Forward:
    params = [METHODS, DIMS, COLS]
    param_names = ["method", "d", "m"]

    def setup(self, method, d, m):
        if method == "sequential" and d * m > 1024 * 32:
            raise NotImplementedError("BLAS-2 reference: skipped at large sizes")
        self.V, self.X, self.G = _inputs(d, m)

    def time_forward(self, method, d, m):
        householder_product(self.V, self.X, method=method)

    def time_vjp(self, method, d, m):
        householder_product_vjp(self.V, self.X, self.G, method=method)


class Baselines:
    params = [DIMS, COLS]
    param_names = ["d", "m"]

    def setup(self, d, m):
        V, self.X, _ = _inputs(d, m)
        self.U = householder_matrix(V)
        self.a, self.tau, self.Xl, self.lwork = _lapack_form(d, m)

    def time_gemm(self, d, m):
        self.U @ self.X

    def time_dormqr(self, d, m):
        lapack.dormqr("L", "N", self.a, self.tau, self.Xl, lwork=self.lwork)


class Ratios:
    """Ratios to baselines measured in the same run (unit: ratio), as the targets define them.

    * forward: ``householder_wy_apply`` with the WY blocks built (a layer's
      weights are fixed across batches) over GEMM with ``U`` prebuilt, and over
      LAPACK ``dormqr`` (which applies structured reflectors: half the flops);
    * vjp: ``householder_product_bwd`` from the forward's residuals (dV and dX);
    * build + forward + vjp: ``householder_product_fwd`` then ``_bwd``, from ``V`` alone.
    """

    params = [DIMS, COLS]
    param_names = ["d", "m"]
    timeout = 300

    def setup(self, d, m):
        self.V, self.X, self.G = _inputs(d, m)
        self.U = householder_matrix(self.V)
        self.wy = householder_wy(self.V, block_size=default_block_size(d, m))
        self.res = householder_product_fwd(self.V, self.X)[1]
        self.a, self.tau, self.Xl, self.lwork = _lapack_form(d, m)

    def _gemm(self):
        return self.U @ self.X

    def _forward(self):
        return householder_wy_apply(self.wy, self.X)

    def track_forward_over_gemm(self, d, m):
        return common.ratio(self._forward, self._gemm)

    def track_forward_over_dormqr(self, d, m):
        return common.ratio(
            self._forward,
            lambda: lapack.dormqr("L", "N", self.a, self.tau, self.Xl, lwork=self.lwork),
        )

    def track_vjp_over_gemm(self, d, m):
        return common.ratio(lambda: householder_product_bwd(self.res, self.G), self._gemm)

    def track_build_forward_vjp_over_gemm(self, d, m):
        def everything():
            _, res = householder_product_fwd(self.V, self.X)
            householder_product_bwd(res, self.G)

        return common.ratio(everything, self._gemm)

    for _name in ("forward_over_gemm", "forward_over_dormqr", "vjp_over_gemm",
                  "build_forward_vjp_over_gemm"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name
