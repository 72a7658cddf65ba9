"""Householder products: forward and VJP per method, with GEMM, LAPACK dormqr and PyTorch peers.

Targets (float64, one BLAS thread, d = 1024, m = 32 and 256; docs/performance.rst):
prebuilt WY apply <= 2.3x GEMM ``U @ X``; forward including the WY build <= 3.5x
(m = 32) and <= 2.8x (m = 256) GEMM; VJP from the forward's residuals <= 7.5x
GEMM; ``householder_product_vjp`` (forward included) <= 10.5x GEMM at m = 256;
forward within 1.2x of ``torch.linalg.householder_product`` + ``Q @ X`` at every
size of ``TorchPeer``, and forward + VJP far ahead of torch autograd.
The ``track_*`` benchmarks report those ratios from the same run.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

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
    * forward with build: ``householder_product`` from ``V`` alone;
    * vjp: ``householder_product_bwd`` from the forward's residuals (dV and dX);
    * build + forward + vjp: ``householder_product_vjp`` from ``V`` alone.

    Both ``m`` of the targets: the build's share and the best block size
    depend on it.
    """

    params = [DIMS, [32, 256]]
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

    def track_forward_with_build_over_gemm(self, d, m):
        return common.ratio(lambda: householder_product(self.V, self.X), self._gemm)

    def track_forward_over_dormqr(self, d, m):
        return common.ratio(
            self._forward,
            lambda: lapack.dormqr("L", "N", self.a, self.tau, self.Xl, lwork=self.lwork),
        )

    def track_vjp_over_gemm(self, d, m):
        return common.ratio(lambda: householder_product_bwd(self.res, self.G), self._gemm)

    def track_build_forward_vjp_over_gemm(self, d, m):
        return common.ratio(lambda: householder_product_vjp(self.V, self.X, self.G), self._gemm)

    for _name in ("forward_over_gemm", "forward_with_build_over_gemm", "forward_over_dormqr",
                  "vjp_over_gemm", "build_forward_vjp_over_gemm"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name


class TorchPeer:
    """refimpl against PyTorch (one thread) on LAPACK-form reflectors, as torch takes them.

    torch's forward is ``householder_product(A, tau) @ X``: LAPACK's ``dorgqr``
    forms ``Q`` (exploiting the reflectors' triangle), then one GEMM. Ours is
    ``householder_product(V, X, tau=tau)`` with row ``i`` of ``V`` column ``i``
    of ``tril(A, -1) + I`` (docs/conventions.rst, section 1.1), never forming
    ``U``. The VJP ratio is ours (forward included) over torch autograd's
    forward and backward.
    """

    params = [[256, 512, 1024], [32, 256]]
    param_names = ["d", "m"]
    timeout = 300

    def setup(self, d, m):
        self.torch = common.require_torch()
        a, self.tau, X, _ = _lapack_form(d, m)
        self.V = np.ascontiguousarray((np.tril(a, -1) + np.eye(d)).T)
        self.X, self.G = X, np.random.default_rng(1).standard_normal((d, m))
        self.A_t, self.tau_t = self.torch.from_numpy(a), self.torch.from_numpy(self.tau)
        self.X_t, self.G_t = self.torch.from_numpy(X), self.torch.from_numpy(self.G)

    def _torch_forward(self):
        return self.torch.linalg.householder_product(self.A_t, self.tau_t) @ self.X_t

    def _torch_forward_backward(self):
        A = self.A_t.detach().requires_grad_(True)
        tau = self.tau_t.detach().requires_grad_(True)
        X = self.X_t.detach().requires_grad_(True)
        (self.torch.linalg.householder_product(A, tau) @ X).backward(self.G_t)

    def track_forward_over_torch(self, d, m):
        return common.ratio(lambda: householder_product(self.V, self.X, tau=self.tau),
                            self._torch_forward)

    def track_forward_vjp_over_torch_autograd(self, d, m):
        return common.ratio(
            lambda: householder_product_vjp(self.V, self.X, self.G, tau=self.tau),
            self._torch_forward_backward)

    track_forward_over_torch.unit = "ratio"
    track_forward_vjp_over_torch_autograd.unit = "ratio"
