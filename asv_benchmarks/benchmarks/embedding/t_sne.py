"""Exact t-SNE: the KL with its gradient per iteration, and the affinities, against scikit-learn.

scikit-learn's ``_kl_divergence`` (condensed ``P``, one ``pdist``, a Python loop over rows
for the gradient) is what its exact optimiser calls each step: with ``compute_error=False``
on most steps (the gradient only), ``True`` every 50th. Its affinities are
``pairwise_distances(squared=True)`` then ``_joint_probabilities`` (the Cython search, row
by row). The ``track_*`` ratios compare refimpl's same work, measured in the same run.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np
from scipy.spatial.distance import squareform
from sklearn.manifold._t_sne import _joint_probabilities, _kl_divergence
from sklearn.metrics import pairwise_distances

from refimpl.embedding.t_sne import tsne_affinities, tsne_kl, tsne_kl_vjp
from verify.strategies import clustered_points

SIZES = [500, 2000]


class Gradient:
    """``tsne_kl`` and ``tsne_kl_vjp`` over ``_kl_divergence``, N points in 2-D."""

    params = [SIZES]
    param_names = ["N"]
    timeout = 300

    def setup(self, n):
        gen = np.random.default_rng(0)
        X = clustered_points(gen, n, 10, 5)
        self.P = tsne_affinities(X, perplexity=30.0).P
        self.condensed = squareform(self.P, checks=False)
        self.Y = gen.standard_normal((n, 2))
        self.one = np.ones(())

    def _ours(self):
        return tsne_kl(self.P, self.Y), tsne_kl_vjp(self.P, self.Y, self.one)

    def _gradient(self):
        return tsne_kl_vjp(self.P, self.Y, self.one)

    def _sklearn(self, compute_error=True):
        n = self.Y.shape[0]
        return _kl_divergence(self.Y.ravel(), self.condensed, 1, n, 2, compute_error=compute_error)

    def time_kl_and_gradient(self, n):
        self._ours()

    def time_sklearn_kl_divergence(self, n):
        self._sklearn()

    def track_kl_and_gradient_over_sklearn(self, n):
        return common.ratio(self._ours, self._sklearn)

    def track_gradient_over_sklearn_gradient(self, n):
        return common.ratio(self._gradient, lambda: self._sklearn(compute_error=False))

    track_kl_and_gradient_over_sklearn.unit = "ratio"
    track_gradient_over_sklearn_gradient.unit = "ratio"


class Affinities:
    """``tsne_affinities`` (scikit-learn's method) over ``pairwise_distances`` + ``_joint_probabilities``."""

    params = [SIZES]
    param_names = ["N"]
    timeout = 600

    def setup(self, n):
        self.X = clustered_points(np.random.default_rng(0), n, 50, 5)

    def _ours(self):
        return tsne_affinities(self.X, perplexity=30.0)

    def _sklearn(self):
        return _joint_probabilities(pairwise_distances(self.X, squared=True), 30.0, 0)

    def time_affinities(self, n):
        self._ours()

    def track_affinities_over_sklearn(self, n):
        return common.ratio(self._ours, self._sklearn, min_seconds=0.2, repeat=3)

    track_affinities_over_sklearn.unit = "ratio"
