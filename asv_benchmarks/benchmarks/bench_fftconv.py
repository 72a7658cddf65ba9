"""FFT convolutions: forward, inverse and log-determinant, with same-run baselines.

3-D circular convolution (``h x w x c``, all three axes periodic) against the
FFT floor (a bare ``rfftn`` + ``irfftn`` round trip of the same shape) and
against ``scipy.ndimage.convolve(mode="wrap")`` with a 3x3x3 kernel.
Periodic convolution with ``c`` channels at 32 x 32 against the same FFTs plus
one batched ``numpy`` matmul / ``solve`` / ``slogdet`` of the per-frequency
``c x c`` matrices.

Targets (float64, one thread): forward with the kernel spectrum cached
<= 1.5x the FFT floor; periodic inverse with the spectrum cached <= 1.5x
(FFTs + batched solve). The ``track_*`` benchmarks report these ratios.
"""

from . import common

import numpy as np
import scipy.ndimage as ndimage

from refimpl.fftconv import (
    circular_conv,
    circular_conv_inverse,
    circular_conv_slogdet,
    kernel_spectrum,
    periodic_conv,
    periodic_conv_inverse,
    periodic_conv_slogdet,
    periodic_kernel_spectrum,
)

SHAPES_3D = [(32, 32, 3), (64, 64, 16), (128, 128, 32)]
CHANNELS = [4, 16, 64]
GRID = (32, 32)


def _near_identity_3d(shape, gen):
    K = 0.1 * gen.standard_normal(shape) / np.sqrt(np.prod(shape))
    K[0, 0, 0] += 1.0
    return K


def _fft_round_trip(X, axes):
    s = tuple(X.shape[a] for a in axes)
    return np.fft.irfftn(np.fft.rfftn(X, s=s, axes=axes), s=s, axes=axes)


class Circular3D:
    params = [[f"{h}x{w}x{c}" for h, w, c in SHAPES_3D]]
    param_names = ["shape"]
    timeout = 300

    def setup(self, shape):
        dims = tuple(int(n) for n in shape.split("x"))
        gen = np.random.default_rng(0)
        self.X = gen.standard_normal(dims)
        self.K = _near_identity_3d(dims, gen)
        self.spec = kernel_spectrum(self.K)
        self.w3 = gen.standard_normal((3, 3, 3))

    def time_forward(self, shape):
        circular_conv(self.X, self.K)

    def time_forward_cached(self, shape):
        circular_conv(self.X, self.spec)

    def time_inverse_cached(self, shape):
        circular_conv_inverse(self.X, self.spec)

    def time_slogdet(self, shape):
        circular_conv_slogdet(self.K)

    def time_fft_floor(self, shape):
        _fft_round_trip(self.X, (0, 1, 2))

    def time_ndimage_3x3x3(self, shape):
        ndimage.convolve(self.X, self.w3, mode="wrap")

    def track_forward_cached_over_floor(self, shape):
        return common.ratio(lambda: circular_conv(self.X, self.spec),
                            lambda: _fft_round_trip(self.X, (0, 1, 2)))

    def track_forward_over_floor(self, shape):
        return common.ratio(lambda: circular_conv(self.X, self.K),
                            lambda: _fft_round_trip(self.X, (0, 1, 2)))

    def track_inverse_cached_over_floor(self, shape):
        return common.ratio(lambda: circular_conv_inverse(self.X, self.spec),
                            lambda: _fft_round_trip(self.X, (0, 1, 2)))

    def track_forward_cached_over_ndimage_3x3x3(self, shape):
        return common.ratio(lambda: circular_conv(self.X, self.spec),
                            lambda: ndimage.convolve(self.X, self.w3, mode="wrap"))

    for _name in ("forward_cached_over_floor", "forward_over_floor", "inverse_cached_over_floor",
                  "forward_cached_over_ndimage_3x3x3"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name


class _PeriodicBaselines:
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
        self.base = _PeriodicBaselines(self.X, self.K)

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
                            lambda: _fft_round_trip(self.X, (1, 2)))

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
