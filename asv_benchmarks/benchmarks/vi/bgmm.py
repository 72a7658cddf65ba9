"""Bayesian Gaussian mixture by CAVI: time per iteration, with scikit-learn as the baseline.

Both fits start from the same responsibilities (scikit-learn's k-means start
replaced) and run a fixed number of iterations (``tol = 0``). The time per
iteration is ``(t(21 iterations) - t(1 iteration)) / 20``, which removes the
shared start-up (priors, initial M-step, final E-step). Target (float64, one
BLAS thread, N = 10000, K = 10): no slower than scikit-learn, aim 2x faster;
``Ratios`` reports ours / scikit-learn's, measured in the same run.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.vi.bgmm import bgmm_cavi, bgmm_elbo, bgmm_predict, bgmm_predict_proba
from verify.ops.vi.bgmm import sklearn_fit

N, K = 10000, 10
DIMS = [2, 16]
TYPES = ["full", "diag"]


def _data(d):
    gen = np.random.default_rng(0)
    centres = 3.0 * gen.standard_normal((K, d))
    X = gen.standard_normal((N, d)) + centres[gen.integers(0, K, N)]
    resp = gen.uniform(size=(N, K))
    return X, resp / resp.sum(1, keepdims=True)


def _sklearn_fit(X, resp, covariance_type):
    """``fit(n_iter)`` for scikit-learn started from ``resp``; NotImplementedError without it."""
    try:
        import sklearn.mixture  # noqa: F401
    except ImportError as exc:  # optional bench dependency: skip the baseline cleanly
        raise NotImplementedError("scikit-learn is not installed") from exc

    def fit(n_iter):
        sklearn_fit(X, resp, covariance_type=covariance_type, max_iter=n_iter, tol=0.0)

    return fit


def _ours(X, resp, covariance_type):
    def fit(n_iter):
        bgmm_cavi(X, resp, covariance_type=covariance_type, max_iter=n_iter, tol=0.0)

    return fit


def _per_iteration(fit):
    return (common.best_time(lambda: fit(21)) - common.best_time(lambda: fit(1))) / 20


class TenIterations:
    """Ten iterations from the given responsibilities: refimpl and scikit-learn side by side."""

    params = [["refimpl", "sklearn"], DIMS, TYPES]
    param_names = ["implementation", "d", "covariance_type"]

    def setup(self, implementation, d, covariance_type):
        make = _ours if implementation == "refimpl" else _sklearn_fit
        self.fit = make(*_data(d), covariance_type)

    def time_fit(self, implementation, d, covariance_type):
        self.fit(10)


class Ratios:
    """Ours over scikit-learn's, from the same run (unit: ratio).

    ``iteration``: seconds per iteration, ``(t(21) - t(1)) / 20`` on each side
    (the difference of two timings: noisier on a busy machine).
    ``ten_iterations``: whole fits of ten iterations, start-up included on
    both sides (steadier; the start-up is about one iteration's work).
    """

    params = [DIMS, TYPES]
    param_names = ["d", "covariance_type"]
    timeout = 900

    def setup(self, d, covariance_type):
        X, resp = _data(d)
        self.sklearn = _sklearn_fit(X, resp, covariance_type)
        self.ours = _ours(X, resp, covariance_type)

    def track_iteration_over_sklearn(self, d, covariance_type):
        return _per_iteration(self.ours) / _per_iteration(self.sklearn)

    def track_ten_iterations_over_sklearn(self, d, covariance_type):
        return common.ratio(lambda: self.ours(10), lambda: self.sklearn(10))

    track_iteration_over_sklearn.unit = "ratio"
    track_ten_iterations_over_sklearn.unit = "ratio"


class FittedModel:
    """The fitted model's functions: responsibilities and labels of new data, the full ELBO."""

    params = [DIMS, TYPES]
    param_names = ["d", "covariance_type"]

    def setup(self, d, covariance_type):
        self.X, resp = _data(d)
        self.result = bgmm_cavi(self.X, resp, covariance_type=covariance_type, max_iter=5, tol=0.0)

    def time_predict_proba(self, d, covariance_type):
        bgmm_predict_proba(self.result, self.X)

    def time_predict(self, d, covariance_type):
        bgmm_predict(self.result, self.X)

    def time_elbo(self, d, covariance_type):
        bgmm_elbo(self.result, self.X, self.result.resp)
