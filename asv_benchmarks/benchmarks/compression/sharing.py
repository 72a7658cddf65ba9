"""k-means quantisation of 1M weights into 32 clusters against scikit-learn, in the same run.

Both run Lloyd's algorithm from the same 32 linearly spaced centroids for
the same 10 iterations (``tol = 0``, ``max_iter = 10``: the parity of the
records means the same iterations), one thread each. Also the centroid
gradient against ``numpy.bincount``.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import warnings

import numpy as np
from sklearn.cluster import KMeans

from refimpl.compression.sharing import centroid_gradient, kmeans_quantize

ITERATIONS = 10


class KMeans1M:
    timeout = 600

    def setup(self):
        gen = np.random.default_rng(0)
        self.w = 0.05 * gen.standard_normal(1_000_000)
        self.init = np.linspace(self.w.min(), self.w.max(), 32)
        self.grad = gen.standard_normal(self.w.shape)
        self.codes = gen.integers(-1, 32, self.w.shape)

    def refimpl(self):
        kmeans_quantize(self.w, 32, init=self.init, max_iter=ITERATIONS, tol=0.0)

    def sklearn(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            KMeans(32, init=self.init.reshape(-1, 1), n_init=1, algorithm="lloyd",
                   max_iter=ITERATIONS, tol=0.0).fit(self.w.reshape(-1, 1))

    def time_kmeans_refimpl(self):
        self.refimpl()

    def time_kmeans_sklearn(self):
        self.sklearn()

    def track_kmeans_over_sklearn(self):
        return common.ratio(self.refimpl, self.sklearn, min_seconds=0.0, repeat=3)

    def track_centroid_gradient_over_bincount(self):
        kept = self.codes >= 0
        return common.ratio(lambda: centroid_gradient(self.grad, self.codes, 32),
                            lambda: np.bincount(self.codes[kept], weights=self.grad[kept],
                                                minlength=32))

    track_kmeans_over_sklearn.unit = "ratio"
    track_centroid_gradient_over_bincount.unit = "ratio"
