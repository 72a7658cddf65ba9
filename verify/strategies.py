"""Hypothesis strategies shared by the op records, public for candidates and tests.

Inputs are built from a drawn seed and a few drawn sizes, not element by
element: hypothesis then shrinks sizes and seeds (small, readable
counterexamples) while the values stay well conditioned by construction.
A candidate restricted to a sub-domain passes a strategy of
:class:`~verify.registry.Case` as ``verify.check(..., cases=...)``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg.lapack as lapack
from hypothesis import strategies as st

from refimpl import flows as flow_layers
from refimpl import nn

from .registry import Case

__all__ = [
    "IMAGE_FLOW_LAYERS",
    "NETWORK_ACTIVATIONS",
    "POOLINGS",
    "VECTOR_FLOW_LAYERS",
    "batch_shapes",
    "clustered_points",
    "conditioner",
    "coupling_masks",
    "flow_layer",
    "flows",
    "lapack_reflector_cases",
    "lapack_reflectors",
    "moderate_kernel",
    "moderate_periodic_kernel",
    "near_identity_kernel",
    "near_orthogonal_periodic_kernel",
    "networks",
    "rng",
    "rows_with_norms",
    "sparse_mask",
    "weights_with_ties",
]


def rng() -> st.SearchStrategy[np.random.Generator]:
    """A NumPy generator from a drawn seed (shrinks towards seed 0)."""
    return st.integers(0, 2**32 - 1).map(np.random.default_rng)


def clustered_points(gen: np.random.Generator, n: int, d: int, k: int, spread=6.0) -> np.ndarray:
    """``n`` points in ``d`` dimensions around ``k`` centres ``spread`` standard deviations apart.

    Point ``i`` belongs to cluster ``i mod k``; the centres are ``spread`` times standard
    normal, the points unit Gaussians around them: well separated, no duplicates.
    """
    centres = spread * gen.standard_normal((k, d))
    return centres[np.arange(n) % k] + gen.standard_normal((n, d))


def batch_shapes() -> st.SearchStrategy[tuple[tuple, tuple]]:
    """Pairs of leading batch shapes that broadcast (shrinks towards no batch)."""
    return st.sampled_from([((), ()), ((2,), ()), ((), (2,)), ((3,), (3,)), ((1,), (2,))])


def rows_with_norms(gen: np.random.Generator, shape, low=0.5, high=2.0) -> np.ndarray:
    """Gaussian rows rescaled to norms drawn uniformly in ``[low, high]``."""
    a = gen.standard_normal(shape)
    norms = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / norms * gen.uniform(low, high, size=norms.shape)


def lapack_reflectors(gen: np.random.Generator, d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(V, tau)`` straight from LAPACK ``dgeqrf`` of a random ``d x n`` matrix (``n <= d``).

    Row ``i`` of ``V`` is column ``i`` of ``tril(A, -1) + I``: a unit at
    position ``i`` and zeros before it (LAPACK form, as
    ``torch.linalg.householder_product`` and ``jax.lax.linalg.householder_product``
    take it).
    """
    a, tau, _, info = lapack.dgeqrf(gen.standard_normal((d, n)))
    assert info == 0
    return (np.tril(a, -1) + np.eye(d, n)).T.copy(), tau


@st.composite
def lapack_reflector_cases(draw, max_d=8, max_m=4):
    """Householder cases ``V, X, tau`` in LAPACK form, ``transpose`` drawn."""
    gen = draw(rng())
    d = draw(st.integers(1, max_d))
    n = draw(st.integers(1, d))
    V, tau = lapack_reflectors(gen, d, n)
    X = gen.standard_normal((d, draw(st.integers(1, max_m))))
    return Case({"V": V, "X": X, "tau": tau}, {"transpose": draw(st.booleans())})


# -- convolution kernels (refimpl.conv): spectra bounded away from zero ---------------------------


def near_identity_kernel(gen: np.random.Generator, grid, max_ratio=0.8) -> np.ndarray:
    """``a delta + P`` on ``grid`` with ``||P||_1 = r |a|``, ``r`` uniform in ``[0, max_ratio]``.

    Every eigenvalue ``K_hat[f] = a + P_hat[f]`` of the circular convolution
    lies in ``|a| [1 - r, 1 + r]`` (``|P_hat[f]| <= ||P||_1``), so its
    condition number is at most ``(1 + r) / (1 - r)`` by construction; ``a``
    has a random sign and ``|a|`` is uniform in ``[0.5, 2]``.
    """
    a = gen.choice([-1.0, 1.0]) * gen.uniform(0.5, 2.0)
    P = gen.standard_normal(grid)
    r = gen.uniform(0.0, max_ratio)
    K = P * (r * abs(a) / np.abs(P).sum())
    K[(0,) * len(grid)] += a
    return K


def moderate_kernel(gen: np.random.Generator, grid, limit=30.0) -> np.ndarray:
    """A Gaussian kernel with ``max|K_hat| / min|K_hat| <= limit`` (redrawn until it holds).

    Unlike :func:`near_identity_kernel` its eigenvalues take both signs on
    the self-conjugate frequencies, so the sign of the determinant varies.
    Falls back to :func:`near_identity_kernel` after 200 draws.
    """
    for _ in range(200):
        K = gen.standard_normal(grid)
        mags = np.abs(np.fft.fftn(K))
        if mags.max() <= limit * mags.min():
            return K
    return near_identity_kernel(gen, grid)


def near_orthogonal_periodic_kernel(gen: np.random.Generator, c, H, W, max_ratio=0.8) -> np.ndarray:
    """``Q delta + P``, shape ``(c, c, H, W)``, ``Q`` orthogonal, ``sum_m ||P[:, :, m]||_2 = r``.

    Every per-frequency matrix ``K_hat(f) = Q + P_hat(f)`` has
    ``||P_hat(f)||_2 <= r``, so its singular values lie in ``[1 - r, 1 + r]``
    (``r`` uniform in ``[0, max_ratio]``): the periodic convolution is
    invertible with condition number at most ``(1 + r) / (1 - r)``.
    """
    Q, _ = np.linalg.qr(gen.standard_normal((c, c)))
    P = gen.standard_normal((c, c, H, W))
    r = gen.uniform(0.0, max_ratio)
    norms = sum(np.linalg.norm(P[:, :, h, w], 2) for h in range(H) for w in range(W))
    K = P * (r / norms)
    K[:, :, 0, 0] += Q
    return K


def moderate_periodic_kernel(gen: np.random.Generator, c, H, W, limit=100.0) -> np.ndarray:
    """A Gaussian ``(c, c, H, W)`` kernel with every ``cond(K_hat(f)) <= limit`` (redrawn).

    Determinant signs of both kinds occur. Falls back to
    :func:`near_orthogonal_periodic_kernel` after 200 draws.
    """
    for _ in range(200):
        K = gen.standard_normal((c, c, H, W))
        A = np.moveaxis(np.fft.fft2(K), (0, 1), (-2, -1))
        if np.all(np.linalg.cond(A) <= limit):
            return K
    return near_orthogonal_periodic_kernel(gen, c, H, W)
# -- networks -------------------------------------------------------------------------------

NETWORK_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
#: The first pooling of a drawn CNN: average, max, or adaptive average.
POOLINGS = ("avg", "max", "adaptive")


def _fan_in_scaled(gen, shape, fan_in):
    """Gaussian weights over ``sqrt(fan_in)``: every layer keeps its input's scale."""
    return gen.standard_normal(shape) / math.sqrt(fan_in)


def _batch_norm(gen, channels):
    """A BatchNorm with ``gamma`` and the running variance in ``[0.5, 2]``."""
    return nn.BatchNorm(gen.uniform(0.5, 2.0, channels), gen.standard_normal(channels),
                        gen.standard_normal(channels), gen.uniform(0.5, 2.0, channels))


@st.composite
def networks(draw, kind=None, activations=tuple(NETWORK_ACTIVATIONS), batchnorm=False,
             bias=None, max_batch=3, pools=POOLINGS):
    """``(layers, x)``: a small random network of :mod:`refimpl.nn` layers and an input batch.

    ``kind`` ``"mlp"`` (2 to 4 widths in 1..6: Linear, then activation and
    Linear), ``"cnn"`` (Conv2d with stride 1-2 and padding, activation,
    pooling, Conv2d, activation, Flatten, Linear, on 1-2 channels of 4x4 to
    6x6 images) or ``"cam"`` (as ``"cnn"`` up to the second Conv2d, then ReLU,
    global average pooling ``AdaptiveAvgPool2d((1, 1))``, Flatten and Linear:
    the networks of class activation maps); ``"mlp"`` or ``"cnn"`` drawn when
    ``None``. Activations are drawn from ``activations`` (names of
    :data:`NETWORK_ACTIVATIONS`), the first pooling from ``pools`` (names of
    :data:`POOLINGS`). Weights are Gaussian over ``sqrt(fan_in)``, biases
    ``0.5 N(0, 1)`` on every weighted layer or none (``bias``, drawn when
    ``None``), inputs uniform in ``[-1, 1]``. ``batchnorm``: a BatchNorm after every weighted layer
    (``True``), none (``False``), or drawn per layer (``None``).
    """
    gen = draw(rng())
    kind = draw(st.sampled_from(["mlp", "cnn"])) if kind is None else kind
    with_bias = draw(st.booleans()) if bias is None else bias
    n = draw(st.integers(1, max_batch))
    layers = []

    def weighted(layer):
        layers.append(layer)
        if batchnorm or (batchnorm is None and draw(st.booleans())):
            layers.append(_batch_norm(gen, layer.weight.shape[0]))

    def activation():
        layers.append(NETWORK_ACTIVATIONS[draw(st.sampled_from(activations))]())

    def dense(fan_in, fan_out):
        weighted(nn.Linear(_fan_in_scaled(gen, (fan_out, fan_in), fan_in),
                           0.5 * gen.standard_normal(fan_out) if with_bias else None))

    if kind == "mlp":
        sizes = [draw(st.integers(1, 6)) for _ in range(draw(st.integers(2, 4)))]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i:
                activation()
            dense(a, b)
        return layers, gen.uniform(-1.0, 1.0, (n, sizes[0]))
    c, h, w = draw(st.integers(1, 2)), draw(st.integers(4, 6)), draw(st.integers(4, 6))
    x = gen.uniform(-1.0, 1.0, (n, c, h, w))
    for position in range(2):
        k = draw(st.integers(1, min(3, h, w)))
        o = draw(st.integers(1, 3))
        stride = draw(st.integers(1, 2)) if position == 0 else 1
        padding = draw(st.integers(0, k // 2))
        weighted(nn.Conv2d(_fan_in_scaled(gen, (o, c, k, k), c * k * k),
                           0.5 * gen.standard_normal(o) if with_bias else None, stride, padding))
        if kind == "cam" and position == 1:
            layers.append(nn.ReLU())
        else:
            activation()
        h, w = ((size + 2 * padding - k) // stride + 1 for size in (h, w))
        c = o
        if position == 0:
            layers.append(draw(_pooling(h, w, pools)))
            h, w = _pooled_size(layers[-1], h, w)
    if kind == "cam":
        layers.append(nn.AdaptiveAvgPool2d((1, 1)))
        h = w = 1
    layers.append(nn.Flatten())
    dense(c * h * w, draw(st.integers(1, 3)))
    return layers, x


@st.composite
def _pooling(draw, h, w, pools):
    kind = draw(st.sampled_from(list(pools)))
    if kind == "adaptive":
        return nn.AdaptiveAvgPool2d((draw(st.integers(1, h)), draw(st.integers(1, w))))
    k = min(2, h, w)
    return (nn.AvgPool2d if kind == "avg" else nn.MaxPool2d)(k)


def _pooled_size(layer, h, w):
    if isinstance(layer, nn.AdaptiveAvgPool2d):
        return layer.output_size
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    return (h - kh) // sh + 1, (w - kw) // sw + 1


# -- compression (refimpl.compression): ties in magnitude, masks with long runs -------------------


def weights_with_ties(gen: np.random.Generator, shape) -> np.ndarray:
    """Gaussian weights, about half of them snapped to multiples of 1/4: magnitudes tie, ``w``
    and ``-w`` included, so that every tie rule of pruning is exercised."""
    w = gen.standard_normal(shape)
    snap = gen.uniform(size=shape) < 0.5
    return np.where(snap, np.round(4 * w) / 4, w)


def sparse_mask(gen: np.random.Generator, shape, density: float) -> np.ndarray:
    """A boolean mask with about ``density`` of its entries set, in clumps and long runs of zeros
    (each entry keeps its left neighbour's value with probability 1/2 along the last axis)."""
    fresh = gen.uniform(size=shape) < density
    keep_left = gen.uniform(size=shape) < 0.5
    mask = fresh.copy()
    for j in range(1, shape[-1]):
        mask[..., j] = np.where(keep_left[..., j], mask[..., j - 1], fresh[..., j])
    return mask
# -- normalizing flows (refimpl.flows) ----------------------------------------------------------

#: Layer kinds :func:`flows` draws, for ``(n, d)`` vectors and for ``(n, c, H, W)`` images.
VECTOR_FLOW_LAYERS = ("additive", "affine", "permutation", "reverse", "actnorm", "lulinear",
                      "householder", "svd", "circular")
IMAGE_FLOW_LAYERS = ("actnorm", "permutation", "reverse", "glow1x1", "periodic", "circular")


def conditioner(gen: np.random.Generator, d_in: int, d_out: int, hidden: int,
                activation: str = "tanh") -> list:
    """A coupling layer's conditioner: ``Linear(d_in, hidden)``, an activation, ``Linear(hidden, d_out)``.

    Weights are Gaussian over ``sqrt(fan_in)`` and biases ``0.5 N(0, 1)``, so
    its outputs are of order one (well inside every scale convention's range).
    """
    return [nn.Linear(_fan_in_scaled(gen, (hidden, d_in), d_in), 0.5 * gen.standard_normal(hidden)),
            NETWORK_ACTIVATIONS[activation](),
            nn.Linear(_fan_in_scaled(gen, (d_out, hidden), hidden), 0.5 * gen.standard_normal(d_out))]


@st.composite
def coupling_masks(draw, d: int) -> np.ndarray:
    """A boolean mask of ``d >= 2`` features with at least one True (transformed) and one False."""
    gen = draw(rng())
    transformed = draw(st.integers(1, d - 1))
    mask = np.zeros(d, dtype=bool)
    mask[gen.permutation(d)[:transformed]] = True
    return mask


def _signed_magnitudes(gen, size, low=0.5, high=2.0):
    return gen.choice([-1.0, 1.0], size=size) * gen.uniform(low, high, size=size)


@st.composite
def _coupling_layer(draw, gen, d, affine):
    mask = draw(coupling_masks(d))
    m = int(mask.sum())
    activation = draw(st.sampled_from(["tanh", "relu"]))
    net = conditioner(gen, d - m, (2 if affine else 1) * m, draw(st.integers(1, 4)), activation)
    if not affine:
        return flow_layers.AdditiveCoupling(tuple(mask), net)
    return flow_layers.AffineCoupling(tuple(mask), net, scale=draw(st.sampled_from(flow_layers.SCALES)),
                                split=draw(st.sampled_from(flow_layers.SPLITS)),
                                clamp=draw(st.sampled_from([1.0, 2.0])))


@st.composite
def flow_layer(draw, kind: str, shape: tuple, gen: np.random.Generator | None = None):
    """One :mod:`refimpl.flows` layer of ``kind`` for samples of ``shape`` (``(d,)`` or ``(c, H, W)``).

    Parameters keep every layer well conditioned: ActNorm scales in
    ``[e^-0.5, e^0.5]``, LU and Glow triangular factors ``0.3 N(0, 1)`` with
    diagonals in ``[0.3, 1.3]`` (LU) or ``|s|`` in ``[0.5, 2]`` (Glow), unit-scale
    reflectors, singular values ``|s|`` in ``[0.5, 2]``, near-identity
    circular and near-orthogonal periodic kernels.
    """
    gen = draw(rng()) if gen is None else gen
    c = shape[0]
    if kind in ("additive", "affine"):
        return draw(_coupling_layer(gen, c, kind == "affine"))
    if kind == "permutation":
        return flow_layers.Permutation(tuple(draw(st.permutations(range(c)))))
    if kind == "reverse":
        return flow_layers.Reverse()
    if kind == "actnorm":
        return flow_layers.ActNorm(gen.uniform(-0.5, 0.5, c), 0.5 * gen.standard_normal(c))
    if kind == "lulinear":
        bias = 0.5 * gen.standard_normal(c) if draw(st.booleans()) else None
        return flow_layers.LULinear(0.3 * gen.standard_normal((c, c)), 0.3 * gen.standard_normal((c, c)),
                              gen.uniform(-1.0, 1.0, c), bias)
    if kind == "householder":
        return flow_layers.HouseholderFlow(rows_with_norms(gen, (draw(st.integers(1, c)), c)))
    if kind == "svd":
        return flow_layers.SVDLinear(rows_with_norms(gen, (draw(st.integers(1, c)), c)),
                               _signed_magnitudes(gen, c),
                               rows_with_norms(gen, (draw(st.integers(1, c)), c)))
    if kind == "circular":
        return flow_layers.CircularConv(near_identity_kernel(gen, shape))
    if kind == "glow1x1":
        perm = draw(st.one_of(st.none(), st.permutations(range(c)).map(tuple)))
        return flow_layers.Glow1x1(0.3 * gen.standard_normal((c, c)), 0.3 * gen.standard_normal((c, c)),
                             _signed_magnitudes(gen, c), perm)
    if kind == "periodic":
        return flow_layers.PeriodicConv(near_orthogonal_periodic_kernel(gen, c, *shape[1:]))
    raise ValueError(f"kind must be one of {VECTOR_FLOW_LAYERS + IMAGE_FLOW_LAYERS}, got {kind!r}")


@st.composite
def flows(draw, data=None, kinds=None, min_layers=1, max_layers=3, max_batch=3, max_d=4,
          sequential=None):
    """``(flow, x)``: a small random flow and a batch of inputs (standard normal).

    ``data`` is ``"vector"`` (``x (n, d)``, ``d`` in ``2..max_d``) or
    ``"image"`` (``x (n, c, H, W)``, ``c`` in 1..2, ``H, W`` in 1..3), drawn
    when ``None``; ``kinds`` restricts the layer kinds
    (:data:`VECTOR_FLOW_LAYERS`, :data:`IMAGE_FLOW_LAYERS`). The flow is a
    :class:`refimpl.flows.Sequential` of ``min_layers..max_layers`` layers,
    or with one layer sometimes the layer itself (``sequential`` forces
    either).
    """
    gen = draw(rng())
    data = draw(st.sampled_from(["vector", "image"])) if data is None else data
    allowed = VECTOR_FLOW_LAYERS if data == "vector" else IMAGE_FLOW_LAYERS
    kinds = allowed if kinds is None else tuple(k for k in kinds if k in allowed)
    if data == "vector":
        shape = (draw(st.integers(2, max_d)),)
    else:
        shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    count = draw(st.integers(min_layers, max_layers))
    layers = [draw(flow_layer(draw(st.sampled_from(kinds)), shape, gen)) for _ in range(count)]
    x = gen.standard_normal((draw(st.integers(1, max_batch)),) + shape)
    as_sequential = draw(st.booleans()) if sequential is None and count == 1 else sequential
    if count == 1 and as_sequential is False:
        return layers[0], x
    return flow_layers.Sequential(layers), x
