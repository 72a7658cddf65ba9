"""3-D circular convolution: forward, inverse and log-determinant, with same-run baselines.

``h x w x c`` tensors, all three axes periodic, against the FFT floor (a
bare ``rfftn`` + ``irfftn`` round trip of the same shape) and against
``scipy.ndimage.convolve(mode="wrap")`` with a 3x3x3 kernel.

Targets (float64, one thread; docs/performance.rst): forward with the
kernel's FFT included <= 1.5x the FFT floor at 64 x 64 x 16; forward with the
kernel spectrum cached <= 1.5x the floor. Peers from the same run: the same
three-FFT convolution written with ``scipy.fft``, and with ``torch.fft``
when PyTorch is installed. The ``track_*`` benchmarks report the ratios.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np
import scipy.fft
import scipy.ndimage as ndimage

from refimpl.conv.circular import circular_conv, circular_conv_inverse, circular_conv_slogdet
from refimpl.conv.spectrum import kernel_spectrum
from verify.anchors import fft_round_trip
from verify.strategies import near_identity_kernel

SHAPES_3D = [(32, 32, 3), (64, 64, 16)]


def three_fft_conv(fft, X, K):
    """Circular convolution over all axes, written plainly with ``fft`` (scipy's, torch's)."""
    return fft.irfftn(fft.rfftn(X) * fft.rfftn(K), s=X.shape)


class Circular3D:
    params = [[f"{h}x{w}x{c}" for h, w, c in SHAPES_3D]]
    param_names = ["shape"]
    timeout = 300

    def setup(self, shape):
        dims = tuple(int(n) for n in shape.split("x"))
        gen = np.random.default_rng(0)
        self.X = gen.standard_normal(dims)
        self.K = near_identity_kernel(gen, dims)
        self.spec = kernel_spectrum(self.K)
        self.w3 = gen.standard_normal((3, 3, 3))
        self.floor = fft_round_trip(self.X, (0, 1, 2))

    def time_forward(self, shape):
        circular_conv(self.X, self.K)

    def time_forward_cached(self, shape):
        circular_conv(self.X, self.spec)

    def time_inverse_cached(self, shape):
        circular_conv_inverse(self.X, self.spec)

    def time_slogdet(self, shape):
        circular_conv_slogdet(self.K)

    def time_fft_floor(self, shape):
        self.floor()

    def time_ndimage_3x3x3(self, shape):
        ndimage.convolve(self.X, self.w3, mode="wrap")

    def track_forward_cached_over_floor(self, shape):
        return common.ratio(lambda: circular_conv(self.X, self.spec), self.floor)

    def track_forward_over_floor(self, shape):
        return common.ratio(lambda: circular_conv(self.X, self.K), self.floor)

    def track_inverse_cached_over_floor(self, shape):
        return common.ratio(lambda: circular_conv_inverse(self.X, self.spec), self.floor)

    def track_forward_over_scipy_three_fft(self, shape):
        return common.ratio(lambda: circular_conv(self.X, self.K),
                            lambda: three_fft_conv(scipy.fft, self.X, self.K))

    def track_forward_cached_over_ndimage_3x3x3(self, shape):
        return common.ratio(lambda: circular_conv(self.X, self.spec),
                            lambda: ndimage.convolve(self.X, self.w3, mode="wrap"))

    for _name in ("forward_cached_over_floor", "forward_over_floor", "inverse_cached_over_floor",
                  "forward_over_scipy_three_fft", "forward_cached_over_ndimage_3x3x3"):
        locals()[f"track_{_name}"].unit = "ratio"
    del _name


class TorchCircular3D:
    """The forward, kernel FFT included, against the same convolution in ``torch.fft``."""

    params = [[f"{h}x{w}x{c}" for h, w, c in SHAPES_3D]]
    param_names = ["shape"]
    timeout = 300

    def setup(self, shape):
        self.torch = common.require_torch()
        dims = tuple(int(n) for n in shape.split("x"))
        gen = np.random.default_rng(0)
        self.X, self.K = gen.standard_normal(dims), near_identity_kernel(gen, dims)
        self.X_t, self.K_t = self.torch.from_numpy(self.X), self.torch.from_numpy(self.K)

    def track_forward_over_torch(self, shape):
        return common.ratio(lambda: circular_conv(self.X, self.K),
                            lambda: three_fft_conv(self.torch.fft, self.X_t, self.K_t))

    track_forward_over_torch.unit = "ratio"
