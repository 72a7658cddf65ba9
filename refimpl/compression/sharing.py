r"""Weight sharing: k-means quantisation of the weights, the shared weights and their gradient.

Deep Compression (Han et al. 2016, section 3) replaces the kept weights of a
layer by ``k`` shared values, the *codebook*, and stores for each weight its
*code*, the index of its value. ``kmeans_quantize`` finds the codebook by
Lloyd's algorithm with the three initialisations of the paper, step for step
as scikit-learn's ``KMeans(algorithm="lloyd", n_init=1)``; ``shared_weights``
expands codebook and codes into weights, and its VJP, ``centroid_gradient``,
sums the gradients of the weights that share a value: the update of the
fine-tuning step. Codes are int64, ``-1`` for a pruned weight (weight 0, no
part in any sum). Convention: docs/conventions.rst, section 9.2.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .._results import cotangent_type
from .._validation import (
    require_bool_array,
    require_choice,
    require_finite,
    require_integer,
    require_integer_array,
    require_number,
    require_real_floating,
    require_same_dtype,
)
from ..backend import get_namespace
from ._groups import block_grouped_sums, grouped_sums, row_blocks

__all__ = [
    "KMeansResult",
    "centroid_gradient",
    "centroid_gradient_vjp",
    "kmeans_quantize",
    "shared_weights",
    "shared_weights_vjp",
]

INITS = ("linear", "density", "random")
QUANTILES = ("linear", "inverted_cdf")
EMPTY_CLUSTERS = ("sklearn", "keep")

SharedWeightsCotangents = cotangent_type("SharedWeightsCotangents", "codebook codes")
CentroidGradientCotangents = cotangent_type("CentroidGradientCotangents", "grad codes")


class KMeansResult(NamedTuple):
    """Result of :func:`kmeans_quantize`.

    ``codebook`` (k,) the centroids; ``codes`` (int64, ``w``'s shape) the
    centroid of each weight, ``-1`` where pruned; ``inertia`` (0-d) the sum of
    squared distances of the kept weights to their centroids; ``n_iter``
    (0-d int64) the Lloyd iterations run.
    """

    codebook: Any
    codes: Any
    inertia: Any
    n_iter: Any


# -- initial centroids (Han et al. 2016, section 3.2) ---------------------------------------------


def _linear_init(xp, x, k):
    """``k`` values evenly spaced over ``[min x, max x]``, both ends exact."""
    t = xp.arange(k, dtype=x.dtype, device=x.device) / max(k - 1, 1)
    return xp.min(x) * (1 - t) + xp.max(x) * t


def _density_init(xp, x, k, quantile):
    """Empirical quantiles of ``x`` at the levels ``j / (k - 1)``, indices in exact integers.

    ``"linear"`` interpolates the order statistics at ``h = (n - 1) j / (k - 1)``
    (NumPy's default, Hyndman-Fan 7); ``"inverted_cdf"`` takes the smallest
    ``x`` whose empirical CDF reaches the level (Hyndman-Fan 1).
    """
    ordered = xp.sort(x)
    n, den = x.shape[0], max(k - 1, 1)
    j = xp.arange(k, dtype=xp.int64, device=x.device)
    if quantile == "inverted_cdf":
        return xp.take(ordered, xp.clip((n * j + den - 1) // den - 1, min=0))
    lower = (n - 1) * j // den
    frac = xp.astype((n - 1) * j % den, x.dtype) / den
    below = xp.take(ordered, lower)
    above = xp.take(ordered, xp.clip(lower + 1, max=n - 1))
    return below + frac * (above - below)


def _random_init(xp, x, k, noise):
    """Forgy: the ``k`` weights of smallest noise, in increasing noise (a random sample)."""
    return xp.take(x, xp.argsort(noise, stable=True)[:k])


# -- Lloyd's algorithm ---------------------------------------------------------------------------


def _assign(xp, x, centers):
    """Lloyd's assignment step and the cluster sums and counts of the update, in one pass.

    Each ``x`` goes to its nearest centre, the lowest index on ties
    (``argmin``). Returns ``(labels, sums, counts)``.
    """
    k = centers.shape[0]
    ids = xp.arange(k, dtype=xp.int64, device=x.device)
    labels = []
    sums = xp.zeros(k, dtype=x.dtype, device=x.device)
    counts = xp.zeros(k, dtype=xp.int64, device=x.device)
    for rows in row_blocks(x.shape[0], k):
        nearest = xp.astype(xp.argmin((x[rows, None] - centers) ** 2, axis=1), xp.int64)
        block_sums, block_counts = block_grouped_sums(xp, x[rows], nearest, ids)
        labels.append(nearest)
        sums, counts = sums + block_sums, counts + block_counts
    return xp.concat(labels), sums, counts


def _relocate_empty(xp, x, labels, centers, sums, counts):
    """scikit-learn's rule: the empty clusters, in increasing index, each take one of the points
    farthest from their centres, in decreasing distance (ties: lower point index first).

    The point leaves its cluster's sum and count; the labels stay as they
    are. Nothing moves when every point sits on its centre.
    """
    empty = counts == 0
    n_empty = int(xp.count_nonzero(empty))
    if n_empty == 0:
        return sums, counts
    distances = (x - xp.take(centers, labels)) ** 2
    if float(xp.max(distances)) == 0.0:
        return sums, counts
    far = xp.argsort(distances, descending=True, stable=True)[:n_empty]
    moved = xp.take(x, far)
    k = centers.shape[0]
    left, left_counts = grouped_sums(xp, moved, xp.take(labels, far), k)
    arrived, arrived_counts = grouped_sums(xp, moved, xp.nonzero(empty)[0], k)
    return sums - left + arrived, counts - left_counts + arrived_counts


def _update(xp, x, labels, sums, counts, centers, empty_clusters):
    """The centres of the next iteration: cluster means, empty clusters by ``empty_clusters``."""
    if empty_clusters == "sklearn":
        sums, counts = _relocate_empty(xp, x, labels, centers, sums, counts)
    filled = counts > 0
    # Times the reciprocal count, as scikit-learn: its test "every point on its centre" is exact.
    means = sums * (1 / xp.astype(xp.where(filled, counts, 1), x.dtype))
    if empty_clusters == "keep":
        return xp.where(filled, means, centers)
    # scikit-learn's _average_centers scales the clusters in index order and copies the biggest
    # one into each cluster left empty: a cluster before the biggest gets its unscaled sum (of
    # the centred data, see kmeans_quantize).
    biggest = int(xp.argmax(counts))
    ids = xp.arange(centers.shape[0], device=x.device)
    return xp.where(filled, means, xp.where(ids < biggest, sums[biggest], means[biggest]))


def _lloyd(xp, x, centers, max_iter, tol, empty_clusters):
    """``(centers, labels, n_iter)`` of Lloyd's algorithm, stopping as scikit-learn's
    ``_kmeans_single_lloyd``: labels unchanged (strict convergence), else the summed squared
    centre shift ``<= tol``, else ``max_iter``; then a last assignment unless strict."""
    previous = None
    for iteration in range(1, max_iter + 1):
        labels, sums, counts = _assign(xp, x, centers)
        new = _update(xp, x, labels, sums, counts, centers, empty_clusters)
        shift = float(xp.sum((new - centers) ** 2))
        centers = new
        if previous is not None and bool(xp.all(labels == previous)):
            return centers, labels, iteration
        if shift <= tol:
            break
        previous = labels
    return centers, _assign(xp, x, centers)[0], iteration


# -- the op --------------------------------------------------------------------------------------


def _check_kmeans(w, n_clusters, mask, init, noise, max_iter, tol, quantile, empty_clusters,
                  check_finite):
    require_real_floating("w", w)
    arrays = {"w": w}
    if mask is not None:
        require_bool_array("mask", mask)
        arrays["mask"] = mask
    if isinstance(init, str):
        require_choice("init", init, INITS)
    else:
        require_real_floating("init", init)
        arrays["init"] = init
    if noise is not None:
        require_real_floating("noise", noise)
        arrays["noise"] = noise
    if (noise is not None) != (isinstance(init, str) and init == "random"):
        raise ValueError("noise (the weights' shape) is needed by init='random' and by it only")
    xp, _ = get_namespace(*arrays.values())
    require_same_dtype(**{k: v for k, v in arrays.items() if k != "mask"})
    for name in ("mask", "noise"):
        if name in arrays and tuple(arrays[name].shape) != tuple(w.shape):
            raise ValueError(f"{name} must have the shape of w, {tuple(w.shape)}, "
                             f"got {tuple(arrays[name].shape)}")
    require_integer("n_clusters", n_clusters, 1)
    if "init" in arrays and tuple(init.shape) != (n_clusters,):
        raise ValueError(f"init must have shape (n_clusters,) = ({n_clusters},), "
                         f"got {tuple(init.shape)}")
    require_integer("max_iter", max_iter, 1)
    require_number("tol", tol, 0.0)
    require_choice("quantile", quantile, QUANTILES)
    require_choice("empty_clusters", empty_clusters, EMPTY_CLUSTERS)
    if check_finite:
        for name in ("w", "init", "noise"):
            if name in arrays:
                require_finite(name, arrays[name])
    return xp


def kmeans_quantize(w, n_clusters, *, mask=None, init="linear", noise=None, max_iter=300,
                    tol=1e-4, quantile="linear", empty_clusters="sklearn", check_finite=True):
    r"""Quantise the kept weights to ``n_clusters`` shared values by Lloyd's k-means.

    With the kept weights :math:`x_1, \dots, x_n` (``w[mask]``, all of ``w``
    by default), Lloyd's iteration from the initial centroids :math:`c^{(0)}`
    alternates

    .. math::

        a_i = \operatorname*{arg\,min}_j\, (x_i - c_j)^2, \qquad
        c_j \leftarrow \frac{\sum_{a_i = j} x_i}{\#\{i : a_i = j\}},

    and returns the centroids, the codes :math:`a` and the inertia
    :math:`\sum_i (x_i - c_{a_i})^2`, which never increases from one
    iteration to the next. Convention (docs/conventions.rst, section 9.2):
    scikit-learn's ``KMeans(algorithm="lloyd", n_init=1)`` started from the
    same centroids, step for step: on the data centred on their mean, the
    first centroid on ties, sums times reciprocal counts; it stops when the
    codes repeat, or when :math:`\sum_j \|c_j^{new} - c_j\|^2 \le
    \mathrm{tol} \cdot \operatorname{var}(x)`, or after ``max_iter``
    iterations, then assigns the codes once more (unless they repeated). An
    empty cluster takes one of the points farthest from their centroids
    (``empty_clusters="sklearn"``; see the conventions for the details that
    make it match) or keeps its centroid (``"keep"``, SciPy's ``kmeans2``).

    Parameters
    ----------
    w : array
        Weights, any shape.
    n_clusters : int
        ``k``, at most the number of kept weights (32 for 5-bit codes).
    mask : bool array of ``w``'s shape, optional
        The kept weights (from :func:`~refimpl.compression.prune_magnitude`);
        pruned ones get code ``-1``.
    init : {"linear", "density", "random"} or (k,) array
        ``"linear"``: ``k`` values evenly spaced over ``[min x, max x]``;
        ``"density"``: the quantiles of ``x`` at levels ``j / (k - 1)``
        (method ``quantile``); ``"random"``: the kept weights with the ``k``
        smallest ``noise`` (Forgy); an array: those centroids.
    noise : array of ``w``'s shape, optional
        Uniform noise for ``init="random"`` (no hidden randomness).
    max_iter : int, default 300
    tol : float, default 1e-4
        Relative to the variance of the kept weights, as scikit-learn.
    quantile : {"linear", "inverted_cdf"}
    empty_clusters : {"sklearn", "keep"}
    check_finite : bool

    Returns
    -------
    KMeansResult
        ``(codebook, codes, inertia, n_iter)``.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import kmeans_quantize
    >>> w = np.array([[0.1, 0.9, -1.0], [0.2, 1.1, -0.9]])
    >>> result = kmeans_quantize(w, 3)
    >>> result.codebook.round(2).tolist(), result.codes.tolist()
    ([-0.95, 0.15, 1.0], [[1, 2, 0], [1, 2, 0]])
    """
    xp = _check_kmeans(w, n_clusters, mask, init, noise, max_iter, tol, quantile, empty_clusters,
                       check_finite)
    flat = xp.reshape(w, (-1,))
    kept = None if mask is None else xp.reshape(mask, (-1,))
    x = flat if kept is None else flat[kept]
    if x.shape[0] < n_clusters:
        raise ValueError(f"n_clusters = {n_clusters} exceeds the {x.shape[0]} kept weights of w")
    if not isinstance(init, str):
        centers = xp.asarray(init, copy=True)
    elif init == "linear":
        centers = _linear_init(xp, x, n_clusters)
    elif init == "density":
        centers = _density_init(xp, x, n_clusters, quantile)
    else:
        u = xp.reshape(noise, (-1,))
        centers = _random_init(xp, x, n_clusters, u if kept is None else u[kept])
    # Centred on their mean, as scikit-learn does: it fixes where an empty cluster goes.
    mean = xp.mean(x)
    x, centers = x - mean, centers - mean
    variance = float(xp.mean(x**2))
    centers, labels, n_iter = _lloyd(xp, x, centers, max_iter, tol * variance, empty_clusters)
    inertia = xp.sum((x - xp.take(centers, labels)) ** 2)
    centers = centers + mean
    if kept is not None:
        # The code of the i-th kept weight goes to the i-th True of the mask.
        place = xp.cumulative_sum(xp.astype(kept, xp.int64)) - 1
        labels = xp.where(kept, xp.take(labels, xp.clip(place, min=0)), -1)
    return KMeansResult(centers, xp.reshape(labels, w.shape), inertia,
                        xp.asarray(n_iter, dtype=xp.int64, device=flat.device))


# -- the shared weights and the centroid gradient ------------------------------------------------


def _check_codes(name, codes, n_clusters):
    require_integer_array(name, codes)
    require_integer("n_clusters", n_clusters, 1)
    xp, _ = get_namespace(codes)
    if math.prod(codes.shape):
        low, high = int(xp.min(codes)), int(xp.max(codes))
        if low < -1 or high >= n_clusters:
            raise ValueError(f"{name} must lie in [-1, {n_clusters}) (-1: pruned), "
                             f"got values in [{low}, {high}]")
    return xp


def shared_weights(codebook, codes):
    r"""The weights of a codebook and codes: ``W = codebook[codes]``, 0 where ``codes = -1``.

    .. math::  W_i = \begin{cases} c_{a_i} & a_i \ge 0 \\ 0 & a_i = -1 \end{cases}

    Linear in the codebook; its VJP is :func:`centroid_gradient`
    (docs/conventions.rst, section 9.2).

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import shared_weights
    >>> shared_weights(np.array([-0.5, 0.25]), np.array([[1, -1], [0, 1]])).tolist()
    [[0.25, 0.0], [-0.5, 0.25]]
    """
    require_real_floating("codebook", codebook)
    if codebook.ndim != 1:
        raise ValueError(f"codebook must have shape (k,), got shape {tuple(codebook.shape)}")
    get_namespace(codebook, codes)
    xp = _check_codes("codes", codes, codebook.shape[0])
    flat = xp.astype(xp.reshape(codes, (-1,)), xp.int64)
    values = xp.take(codebook, xp.clip(flat, min=0))
    zero = xp.zeros((), dtype=codebook.dtype, device=codebook.device)
    return xp.reshape(xp.where(flat >= 0, values, zero), codes.shape)


def shared_weights_vjp(codebook, codes, cotangent):
    r"""Cotangents ``(codebook, codes)`` of :func:`shared_weights`: ``(centroid_gradient(G), None)``.

    .. math::  \bar c_j = \sum_{i:\, a_i = j} G_i
    """
    require_real_floating("cotangent", cotangent)
    require_same_dtype(codebook=codebook, cotangent=cotangent)
    return SharedWeightsCotangents(centroid_gradient(cotangent, codes, codebook.shape[0]), None)


def centroid_gradient(grad, codes, n_clusters):
    r"""The gradient with respect to the shared centroids: the grouped sum of ``grad``.

    For a loss of the weights :math:`W = c[a]` (:func:`shared_weights`),

    .. math::  \frac{\partial L}{\partial c_j} = \sum_{i:\, a_i = j} \frac{\partial L}{\partial W_i},

    pruned weights (``a_i = -1``) contributing nothing (Han et al. 2016,
    section 3.1; docs/conventions.rst, section 9.2). A sum, not a mean.

    Parameters
    ----------
    grad : array
        ``dL/dW``, the shape of ``codes``.
    codes : integer array
        Values in ``[-1, n_clusters)``.
    n_clusters : int

    Returns
    -------
    (n_clusters,) array

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import centroid_gradient
    >>> centroid_gradient(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, -1, 1, 0]), 3).tolist()
    [4.0, 4.0, 0.0]
    """
    require_real_floating("grad", grad)
    get_namespace(grad, codes)
    xp = _check_codes("codes", codes, n_clusters)
    if tuple(grad.shape) != tuple(codes.shape):
        raise ValueError(f"grad must have the shape of codes, {tuple(codes.shape)}, "
                         f"got {tuple(grad.shape)}")
    labels = xp.astype(xp.reshape(codes, (-1,)), xp.int64)
    return grouped_sums(xp, xp.reshape(grad, (-1,)), labels, n_clusters)[0]


def centroid_gradient_vjp(grad, codes, cotangent, n_clusters):
    r"""Cotangents ``(grad, codes)`` of :func:`centroid_gradient`: ``(shared_weights(g, codes), None)``.

    The grouped sum and the codebook expansion are adjoint:
    :math:`\bar G_i = g_{a_i}` (0 where pruned).
    """
    require_real_floating("cotangent", cotangent)
    require_same_dtype(grad=grad, cotangent=cotangent)
    if tuple(cotangent.shape) != (n_clusters,):
        raise ValueError(f"cotangent must have shape (n_clusters,) = ({n_clusters},), "
                         f"got {tuple(cotangent.shape)}")
    return CentroidGradientCotangents(shared_weights(cotangent, codes), None)
