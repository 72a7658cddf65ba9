"""Periodic convolution with ``c`` channels at 32 x 32: forward, inverse, log-determinant.

Baselines from the same run: the same FFTs plus one batched NumPy matmul /
``solve`` / ``slogdet`` of the per-frequency ``c x c`` matrices.

Target (float64, one thread): the inverse with the spectrum cached <= 1.5x
(FFTs + batched solve). The ``track_*`` benchmarks report the ratios.
"""

from .. import common

import numpy as np

from refimpl.conv.periodic import periodic_conv, periodic_conv_inverse, periodic_conv_slogdet
from refimpl.conv.spectrum import periodic_kernel_spectrum

from .circular import fft_round_trip

CHANNELS = [4, 16, 64]
GRID = (32, 32)


class _Baselines:
    """The same FFTs plus one batched NumPy matmul / solve / slogdet, written plainly."""

    def __init__(self, X, K):
        self.X, self.K = X, K
        self.A = np.moveaxis(np.fft.rfftn(K, axes=(-2, -1)), (0, 1), (-2, -1))  # (H, W', c, c)

    def _columns(self):
        return np.moveaxis(np.fft.rfftn(self.X, axes=(-2, -1)), 0, -1)[..., None]

    def _back(self, y):
        return np.fft.irfftn(np.moveaxis(y[..., 0], -1, 0), s=GRID, axes=(-2, -1))

    def matmul(self):
        return self._back(self.A @ self._columns())

    def solve(self):
        return self._back(np.linalg.solve(self.A, self._columns()))

    def slogdet(self):
        A = np.moveaxis(np.fft.rfftn(self.K, axes=(-2, -1)), (0, 1), (-2, -1))
        return np.linalg.slogdet(A)


class Periodic:
    params = [CHANNELS]
    param_names = ["c"]
    timeout = 300

    def setup(self, c):
        gen = np.random.default_rng(0)
        self.X = gen.standard_normal((c,) + GRID)
        self.K = 0.1 * gen.standard_normal((c, c) + GRID) / np.sqrt(c * np.prod(GRID))
        self.K[:, :, 0, 0] += np.eye(c)
        self.spec = periodic_kernel_spectrum(self.K)
        self.base = _Baselines(self.X, self.K)

    def time_forward_cached(self, c):
        periodic_conv(self.X, self.spec)

    def time_inverse_cached(self, c):
        periodic_conv_inverse(self.X, self.spec)

    def time_slogdet(self, c):
        periodic_conv_slogdet(self.K)

    def time_baseline_fft_matmul(self, c):
        self.base.matmul()

    def time_baseline_fft_solve(self, c):
        self.base.solve()

    def time_baseline_fft_slogdet(self, c):
        self.base.slogdet()

    def track_forward_cached_over_fft_matmul(self, c):
        return common.ratio(lambda: periodic_conv(self.X, self.spec), self.base.matmul)

    def track_forward_cached_over_fft_floor(self, c):
        return common.ratio(lambda: periodic_conv(self.X, self.spec),
                            lambda: fft_round_trip(self.X, (1, 2)))

    def track_inverse_cached_over_fft_solve(self, c):
        return common.ratio(lambda: periodic_conv_inverse(self.X, self.spec), self.base.solve)

    def track_inverse_over_fft_solve(self, c):
        return common.ratio(lambda: periodic_conv_inverse(self.X, self.K), self.base.solve)

    def track_slogdet_over_fft_slogdet(self, c):
        return common.ratio(lambda: periodic_conv_slogdet(self.K), self.base.slogdet)

    for _name in ("forward_cached_over_fft_matmul", "forward_cached_over_fft_floor",
                  "inverse_cached_over_fft_solve", "inverse_over_fft_solve",
                  "slogdet_over_fft_slogdet"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name
