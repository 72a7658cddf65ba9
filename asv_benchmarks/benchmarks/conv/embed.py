"""Kernel embedding: ``embed_kernel`` and its VJP, and the layer it builds.

A deep-learning layer ``w`` (``c x c x k x k``, PyTorch layout) on a
32 x 32 grid: the embedding and its gather-VJP alone, and the whole layer
``periodic_conv(x, embed_kernel(w, (32, 32)))`` (the kernel FFT included, as
when ``w`` is trained) against the same layer by ``scipy.ndimage.correlate``
per channel pair (``c^2`` direct stencils of ``k^2`` taps). The FFT layer
pays ``O(c^2 HW log HW)`` for the kernel and wins as ``k`` grows.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np
import scipy.ndimage as ndimage

from refimpl.conv.embed import embed_kernel, embed_kernel_vjp
from refimpl.conv.periodic import periodic_conv

from .periodic import GRID

KERNELS = [3, 9]
CHANNELS = [4, 16]


class Embed:
    params = [CHANNELS, KERNELS]
    param_names = ["c", "k"]
    timeout = 300

    def setup(self, c, k):
        gen = np.random.default_rng(0)
        self.w = gen.standard_normal((c, c, k, k))
        self.x = gen.standard_normal((c,) + GRID)
        self.G = gen.standard_normal((c, c) + GRID)

    def _layer(self):
        return periodic_conv(self.x, embed_kernel(self.w, GRID))

    def _ndimage(self):
        c = self.w.shape[0]
        return [sum(ndimage.correlate(self.x[i], self.w[o, i], mode="wrap") for i in range(c))
                for o in range(c)]

    def time_embed_kernel(self, c, k):
        embed_kernel(self.w, GRID)

    def time_embed_kernel_vjp(self, c, k):
        embed_kernel_vjp(self.w, self.G, GRID)

    def time_layer(self, c, k):
        self._layer()

    def time_ndimage_layer(self, c, k):
        self._ndimage()

    def track_layer_over_ndimage(self, c, k):
        return common.ratio(self._layer, self._ndimage)

    track_layer_over_ndimage.unit = "ratio"
