"""Periodic convolution with ``c`` channels at 32 x 32: forward, inverse, log-determinant.

Baselines from the same run (:mod:`verify.anchors`): the same FFTs plus one
batched NumPy matmul / ``solve`` / ``slogdet`` of the per-frequency ``c x c``
matrices, the kernel's spectrum cached for matmul and solve as on our side.

Target (float64, one thread): the inverse with the spectrum cached <= 1.5x
(FFTs + batched solve). The ``track_*`` benchmarks report the ratios.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.conv.periodic import periodic_conv, periodic_conv_inverse, periodic_conv_slogdet
from refimpl.conv.spectrum import periodic_kernel_spectrum
from verify.anchors import fft_round_trip, periodic_fft, periodic_fft_slogdet

CHANNELS = [4, 16]
GRID = (32, 32)


class _Baselines:
    """The same FFTs plus one batched NumPy matmul / solve / slogdet, written plainly."""

    def __init__(self, X, K):
        self.matmul = periodic_fft(X, K, np.matmul, kernel_spectrum_timed=False)
        self.solve = periodic_fft(X, K, np.linalg.solve, kernel_spectrum_timed=False)
        self.slogdet = periodic_fft_slogdet(K)
        self.floor = fft_round_trip(X, (1, 2))


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
        return common.ratio(lambda: periodic_conv(self.X, self.spec), self.base.floor)

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
