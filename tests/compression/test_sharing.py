"""Weight sharing: k-means as scikit-learn's Lloyd, the codebook expansion and its VJP."""

import warnings

import numpy as np
import pytest
from scipy.cluster.vq import kmeans2
from sklearn.cluster import KMeans

import array_api_compat.numpy as np_xp
import array_api_strict as xps
from refimpl.backend import available_backends, backend_namespace, from_numpy, to_numpy
from refimpl.compression import (
    centroid_gradient,
    centroid_gradient_vjp,
    kmeans_quantize,
    shared_weights,
    shared_weights_vjp,
    sharing,
)
from verify.testing import assert_property, failing_properties, property_cases


@pytest.mark.parametrize(*property_cases("compression.sharing"))
def test_property(op, prop, backend, dtype):
    assert_property(op, prop, backend, dtype)


def _sklearn(x, init, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return KMeans(len(init), init=np.reshape(init, (-1, 1)), n_init=1, algorithm="lloyd",
                      **options).fit(np.reshape(x, (-1, 1)))


# -- parity with scikit-learn where it is delicate ---------------------------------------------


def test_empty_clusters_take_the_farthest_points_as_sklearn(monkeypatch):
    """Four of five centroids start empty: the farthest points, in decreasing distance, go to
    clusters 0, 1, 2, 3; codes, centroids and iterations equal scikit-learn's."""
    x = np.array([0.0, 0.13, 0.29, 0.41, 0.77, 1.0, 1.37, 1.93, 2.51, 3.2])
    init = np.array([-5.0, -4.0, 10.0, 11.0, 1.0])
    empties = []
    original = sharing._relocate_empty

    def spy(xp, x, labels, centers, sums, counts):
        empties.append(int(np.count_nonzero(counts == 0)))
        return original(xp, x, labels, centers, sums, counts)

    monkeypatch.setattr(sharing, "_relocate_empty", spy)
    result = kmeans_quantize(x, 5, init=init)
    km = _sklearn(x, init)
    assert empties[0] == 4
    np.testing.assert_array_equal(result.codes, km.labels_)
    np.testing.assert_allclose(result.codebook, km.cluster_centers_.ravel(), rtol=1e-14)
    assert int(result.n_iter) == km.n_iter_
    assert float(result.inertia) == pytest.approx(km.inertia_, rel=1e-13)


def test_a_cluster_left_empty_copies_the_biggest_unscaled_before_it():
    """Every point on its centre: nothing moves, and the empty cluster 0, before the biggest
    cluster 1, gets that cluster's sum of centred values plus the mean: 0.6 + 3 * 0.4 = 1.8
    (scikit-learn's _average_centers); with empty_clusters='keep' it stays at 5."""
    x, init = np.array([1.0, 1.0, 1.0, 0.0, 0.0]), np.array([5.0, 1.0, 0.0])
    result = kmeans_quantize(x, 3, init=init)
    np.testing.assert_allclose(result.codebook, _sklearn(x, init).cluster_centers_.ravel())
    np.testing.assert_allclose(result.codebook, [1.8, 1.0, 0.0])
    np.testing.assert_allclose(kmeans_quantize(x, 3, init=init, empty_clusters="keep").codebook,
                               [5.0, 1.0, 0.0])


def test_tied_farthest_points_go_by_index():
    """Two points at the same distance from their centre (0.0 and 2.0 around 1.0), one empty
    cluster: refimpl takes the lower index (NumPy's argpartition, scikit-learn's, is unspecified)."""
    x = np.array([0.0, 1.0, 2.0, 1.0])
    result = kmeans_quantize(x, 2, init=np.array([1.0, 9.0]), max_iter=1)
    np.testing.assert_allclose(result.codebook, [4.0 / 3.0, 0.0])


def test_keep_matches_scipy_kmeans2():
    gen = np.random.default_rng(3)
    x = gen.standard_normal(40)
    init = np.array([-9.0, -0.5, 0.0, 0.5, 9.0])
    result = kmeans_quantize(x, 5, init=init, empty_clusters="keep", tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codebook, labels = kmeans2(x, init, iter=int(result.n_iter), minit="matrix")
    np.testing.assert_array_equal(result.codes, labels)
    np.testing.assert_allclose(result.codebook, codebook, rtol=1e-13)
    assert result.codebook[0] == -9.0 and result.codebook[-1] == 9.0  # never filled


def test_tolerance_is_relative_to_the_variance():
    x = 1e-3 * np.random.default_rng(4).standard_normal(200)
    init = np.linspace(x.min(), x.max(), 8)
    for tol in (1e-4, 1e-2):
        expected = _sklearn(x, init, tol=tol).n_iter_
        assert int(kmeans_quantize(x, 8, init=init, tol=tol).n_iter) == expected


# -- initialisations ----------------------------------------------------------------------------


def test_linear_init_spans_min_to_max():
    x = np.array([3.0, -1.0, 0.5, 2.0])
    first = kmeans_quantize(x, 3, max_iter=1)
    np.testing.assert_allclose(first.codebook, [-1.0, (0.5 + 2.0) / 2, 3.0])  # from -1, 1, 3


def test_density_init_quantiles():
    """Levels 0, 1/4, ..., 1 of 0..5: type 7 interpolates, type 1 takes order statistics."""
    x = np.arange(6.0)
    linear = sharing._density_init(np_xp, x, 5, "linear")
    inverted = sharing._density_init(np_xp, x, 5, "inverted_cdf")
    np.testing.assert_allclose(linear, [0.0, 1.25, 2.5, 3.75, 5.0])
    np.testing.assert_allclose(linear, np.quantile(x, np.linspace(0, 1, 5)), rtol=1e-15)
    np.testing.assert_array_equal(inverted, [0.0, 1.0, 2.0, 4.0, 5.0])


def test_density_inverted_cdf_uses_exact_levels():
    """n = 5, k = 6: level 3/5 makes n p = 3 exactly, the third order statistic; numpy.quantile
    evaluates 5 * 0.6 = 3.0000000000000004 and takes the fourth."""
    x = np.arange(5.0)
    got = sharing._density_init(np_xp, x, 6, "inverted_cdf")
    np.testing.assert_array_equal(got, [0.0, 0.0, 1.0, 2.0, 3.0, 4.0])
    assert np.quantile(x, np.linspace(0, 1, 6), method="inverted_cdf")[3] == 3.0


def test_random_init_takes_the_smallest_noise():
    x = np.array([10.0, 20.0, 32.0, 40.0])
    noise = np.array([0.9, 0.1, 0.5, 0.3])
    result = kmeans_quantize(x, 2, init="random", noise=noise, max_iter=1)
    # Initial centroids 20 (noise 0.1), 40 (noise 0.3): clusters {10, 20} and {32, 40}.
    np.testing.assert_allclose(result.codebook, [15.0, 36.0])


def test_mask_clusters_the_kept_weights_only():
    gen = np.random.default_rng(5)
    w = gen.standard_normal((6, 7))
    mask = gen.uniform(size=w.shape) < 0.6
    result = kmeans_quantize(w, 4, mask=mask, init="density")
    alone = kmeans_quantize(w[mask], 4, init="density")
    np.testing.assert_array_equal(result.codes[~mask], -1)
    np.testing.assert_array_equal(result.codes[mask], alone.codes)
    np.testing.assert_allclose(result.codebook, alone.codebook, rtol=1e-15)


@pytest.mark.parametrize("backend", [b for b in available_backends(devices=True) if b != "numpy"])
def test_runs_on_every_backend(backend):
    be = backend_namespace(backend)
    gen = np.random.default_rng(6)
    w, mask = gen.standard_normal(60), gen.uniform(size=60) < 0.8
    expected = kmeans_quantize(w, 5, mask=mask, init=np.array([-9.0, -1.0, 0.0, 1.0, 9.0]))
    got = kmeans_quantize(from_numpy(w, be), 5, mask=from_numpy(mask, be),
                          init=from_numpy(np.array([-9.0, -1.0, 0.0, 1.0, 9.0]), be))
    np.testing.assert_array_equal(to_numpy(got.codes), expected.codes)
    np.testing.assert_allclose(to_numpy(got.codebook), expected.codebook, rtol=1e-14)


# -- the codebook expansion and the centroid gradient -------------------------------------------


def test_pruned_codes_neither_index_nor_collect():
    """-1 is 'pruned', never Python's 'last element'."""
    codebook, codes = np.array([1.0, 2.0, 3.0]), np.array([2, -1, 0])
    assert shared_weights(codebook, codes).tolist() == [3.0, 0.0, 1.0]
    assert centroid_gradient(np.array([1.0, 10.0, 100.0]), codes, 3).tolist() == [100.0, 0.0, 1.0]
    cotangents = shared_weights_vjp(codebook, codes, np.array([1.0, 10.0, 100.0]))
    assert cotangents._fields == ("codebook", "codes") and cotangents.codes is None
    g, none = centroid_gradient_vjp(np.zeros(3), codes, np.array([1.0, 2.0, 3.0]), n_clusters=3)
    assert g.tolist() == [3.0, 0.0, 1.0] and none is None


@pytest.mark.parametrize("call, error, match", [
    (lambda: kmeans_quantize(np.ones(3), 4), ValueError, "n_clusters = 4 exceeds the 3 kept"),
    (lambda: kmeans_quantize(np.ones(4), 0), ValueError, "n_clusters must be an integer >= 1"),
    (lambda: kmeans_quantize(np.ones(4), 2, init="kmeans++"), ValueError, "init must be one of"),
    (lambda: kmeans_quantize(np.ones(4), 2, init="random"), ValueError, "noise .* init='random'"),
    (lambda: kmeans_quantize(np.ones(4), 2, noise=np.ones(4)), ValueError, "init='random'"),
    (lambda: kmeans_quantize(np.ones(4), 2, init=np.ones(3)), ValueError, r"init must have shape"),
    (lambda: kmeans_quantize(np.ones(4), 2, init=np.ones(2, dtype=np.float32)), TypeError,
     "share one dtype"),
    (lambda: kmeans_quantize(np.ones(4), 2, mask=np.ones(4)), TypeError, "mask must have dtype bool"),
    (lambda: kmeans_quantize(np.ones(4), 2, mask=np.ones(3, dtype=bool)), ValueError,
     "mask must have the shape of w"),
    (lambda: kmeans_quantize(np.ones(4), 2, max_iter=0), ValueError, "max_iter must be an integer"),
    (lambda: kmeans_quantize(np.ones(4), 2, tol=-1.0), ValueError, "tol must be >= 0"),
    (lambda: kmeans_quantize(np.ones(4), 2, quantile="nearest"), ValueError, "quantile must be"),
    (lambda: kmeans_quantize(np.ones(4), 2, empty_clusters="drop"), ValueError, "empty_clusters"),
    (lambda: kmeans_quantize(np.array([1.0, np.inf, 0, 2]), 2), ValueError, "w must not contain"),
    (lambda: kmeans_quantize(np.arange(4), 2), TypeError, "w must have a real floating dtype"),
    (lambda: kmeans_quantize(np.ones(4), 2, init=xps.ones(2, dtype=xps.float64)), TypeError,
     "different array libraries"),
    (lambda: shared_weights(np.ones(3), np.array([0, 3])), ValueError, r"codes must lie in \[-1, 3\)"),
    (lambda: shared_weights(np.ones(3), np.array([-2, 0])), ValueError, "codes must lie in"),
    (lambda: shared_weights(np.ones((3, 1)), np.array([0])), ValueError, "codebook must have shape"),
    (lambda: shared_weights(np.ones(3), np.array([0.0])), TypeError, "codes must have an integer"),
    (lambda: centroid_gradient(np.ones(3), np.array([0, 1]), 2), ValueError,
     "grad must have the shape of codes"),
    (lambda: centroid_gradient_vjp(np.ones(2), np.array([0, 1]), np.ones(3), n_clusters=2),
     ValueError, r"cotangent must have the output's shape \(2,\)"),
    (lambda: centroid_gradient(np.array([1.0, np.nan]), np.array([0, 1]), 2), ValueError,
     "grad must not contain infs or NaNs"),
    (lambda: centroid_gradient_vjp(np.ones(2), np.array([0, 1]), np.array([np.inf, 0.0]),
                                   n_clusters=2), ValueError, "cotangent must not contain"),
    (lambda: shared_weights(np.array([1.0, np.nan]), np.array([0, 1])), ValueError,
     "codebook must not contain infs or NaNs"),
    (lambda: shared_weights(np.ones(0), np.array([0, 1])), ValueError,
     r"codebook must have shape \(k,\) with k >= 1"),
    (lambda: shared_weights_vjp(np.ones(2), np.array([0, 1]), np.ones(3)), ValueError,
     r"cotangent must have the output's shape \(2,\)"),
    (lambda: shared_weights_vjp(np.ones(2), np.array([0, 1]), np.array([0.0, np.nan])),
     ValueError, "cotangent must not contain infs or NaNs"),
    (lambda: shared_weights_vjp(np.ones(2), np.array([0, 1]), xps.ones(2, dtype=xps.float64)),
     TypeError, "codebook and cotangent come from different array libraries"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_kmeans_at_extreme_scales_is_the_scaled_kmeans():
    """Lloyd's steps commute with scaling: at w * 2^1000 the codebook is the scaled one, and the
    inertia (about 2^2000 times the unscaled one) is infinite, beyond the float range."""
    w = np.array([-1.0, -0.8, 0.1, 0.5, 0.9, 1.2])
    init = np.array([-1.0, 0.0, 1.0])
    base = kmeans_quantize(w, 3, init=init)
    for scale in (2.0**1000, 2.0**-1000):
        scaled = kmeans_quantize(w * scale, 3, init=init * scale)
        assert np.array_equal(scaled.codebook, base.codebook * scale)
        assert np.array_equal(scaled.codes, base.codes)
    huge = kmeans_quantize(w * 2.0**1000, 3, init=init)
    assert np.all(np.isfinite(huge.codebook)) and huge.inertia == np.inf


# -- planted bugs ------------------------------------------------------------------------------


def test_skipped_relocation_is_caught(monkeypatch):
    monkeypatch.setattr(sharing, "_relocate_empty", lambda xp, x, labels, centers, s, c: (s, c))
    assert "matches ground truth" in failing_properties("kmeans_quantize", profile="ci",
                                                        among={"matches ground truth"})


def test_unscaled_tolerance_is_caught(monkeypatch):
    original = sharing._lloyd
    monkeypatch.setattr(sharing, "_lloyd", lambda xp, x, c, m, tol, e: original(
        xp, x, c, m, 1e-4 if tol > 0 else 0.0, e))
    failed = failing_properties("kmeans_quantize", profile="ci",
                                among={"matches ground truth", "affine equivariance"})
    # Lloyd's steps run on power-of-two-scaled data (no overflow at any scale), so an
    # absolute tolerance no longer breaks affine equivariance; scikit-learn's relative one
    # still tells it apart
    assert failed == {"matches ground truth"}


def test_a_mean_for_the_centroid_gradient_is_caught(monkeypatch):
    original = sharing.grouped_sums

    def means(xp, values, labels, n):
        sums, counts = original(xp, values, labels, n)
        return sums / xp.astype(xp.clip(counts, min=1), sums.dtype), counts

    monkeypatch.setattr(sharing, "grouped_sums", means)
    assert {"vjp: dot-product test", "vjp: autograd", "adjoint test in codebook"} <= \
        failing_properties("shared_weights", profile="ci")
