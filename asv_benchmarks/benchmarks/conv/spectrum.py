"""Kernel spectra: the one-off cost a cached spectrum saves on every later call.

``kernel_spectrum`` of an ``h x w x c`` kernel and ``periodic_kernel_spectrum``
of a ``c x c x 32 x 32`` kernel, each against the bare NumPy FFT it wraps
(``rfftn``; for the periodic kernel also the transposition to per-frequency
matrices). The ``track_*`` benchmarks report the ratios (the overhead of the
argument checks and of the norms kept for the singularity tests).
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.conv.spectrum import kernel_spectrum, periodic_kernel_spectrum

from verify.strategies import near_identity_kernel

from .circular import SHAPES_3D
from .periodic import CHANNELS, GRID


class CircularSpectrum:
    params = [[f"{h}x{w}x{c}" for h, w, c in SHAPES_3D]]
    param_names = ["shape"]
    timeout = 300

    def setup(self, shape):
        dims = tuple(int(n) for n in shape.split("x"))
        self.K = near_identity_kernel(np.random.default_rng(0), dims)

    def time_kernel_spectrum(self, shape):
        kernel_spectrum(self.K)

    def time_rfftn(self, shape):
        np.fft.rfftn(self.K)

    def track_kernel_spectrum_over_rfftn(self, shape):
        return common.ratio(lambda: kernel_spectrum(self.K), lambda: np.fft.rfftn(self.K))

    track_kernel_spectrum_over_rfftn.unit = "ratio"


class PeriodicSpectrum:
    params = [CHANNELS]
    param_names = ["c"]
    timeout = 300

    def setup(self, c):
        self.K = np.random.default_rng(0).standard_normal((c, c) + GRID)

    def _numpy(self):
        return np.moveaxis(np.fft.rfftn(self.K, axes=(-2, -1)), (0, 1), (-2, -1)).copy()

    def time_periodic_kernel_spectrum(self, c):
        periodic_kernel_spectrum(self.K)

    def time_rfftn_per_frequency(self, c):
        self._numpy()

    def track_periodic_kernel_spectrum_over_rfftn(self, c):
        return common.ratio(lambda: periodic_kernel_spectrum(self.K), self._numpy)

    track_periodic_kernel_spectrum_over_rfftn.unit = "ratio"
