r"""LIME: a weighted ridge regression of the target score on given binary perturbations.

Convention (docs/conventions.rst, section 5.7). For each sample :math:`x` (features
grouped by ``feature_mask`` into :math:`F` interpretable features, or one feature
per element), the given perturbations :math:`z_s \in \{0, 1\}^F` keep the features
with :math:`z_{sj} = 1` and set the others to the baseline:
:math:`\tilde x_s = x \odot z_s[g] + b\,(1 - z_s[g])`. With
:math:`y_s = f_t(\tilde x_s)` and the exponential kernel

.. math::  \pi_s = \exp\!\Big(-\frac{d_s^2}{2 w^2}\Big),

:math:`w` the ``kernel_width`` and :math:`d_s` the ``distance`` (cosine by
default: :math:`1 - \langle u, v\rangle / (\|u\| \|v\|)`, 0 similarity when a vector
is zero; or Euclidean) between :math:`x` and :math:`\tilde x_s` (``space="input"``,
captum's ``get_exp_kernel_similarity_function``) or between :math:`\mathbf 1` and
:math:`z_s` (``space="interpretable"``, the ``lime`` package), LIME fits

.. math::  \min_{\beta_0, \beta}\ \sum_s \pi_s (y_s - \beta_0 - z_s^T \beta)^2 + \alpha \|\beta\|^2,

an unpenalised intercept (scikit-learn's ``Ridge(alpha)`` with ``sample_weight``).
Solved as scikit-learn does, by centring on the :math:`\pi`-weighted means
(:math:`\beta_0 = \bar y - \bar z^T \beta`), then by a QR factorisation of
:math:`[\sqrt{\pi}(Z - \bar z);\ \sqrt{\alpha} I]` (no normal equations).
"""

from __future__ import annotations

from typing import NamedTuple

from .._validation import (
    require_choice,
    require_number,
    require_bool_array,
    require_finite,
    require_integer_array,
    require_real_floating,
)
from ..backend import get_namespace
from ._network import network_activations, one_hot, score

__all__ = ["LIME_DISTANCES", "LIME_SPACES", "LimeResult", "lime"]

LIME_DISTANCES = ("cosine", "euclidean")
LIME_SPACES = ("input", "interpretable")


class LimeResult(NamedTuple):
    """The fit per sample: ``attribution`` (each feature's coefficient on its elements,
    ``x``'s shape), ``coefficients`` ``(N, F)``, ``intercept`` ``(N,)`` and the kernel
    ``weights`` ``(N, S)``."""

    attribution: object
    coefficients: object
    intercept: object
    weights: object


def _norm(xp, v):
    """Euclidean norm of every row of ``v``, scaled by the row's largest entry (no overflow)."""
    top = xp.max(xp.abs(v), axis=-1)
    safe = xp.where(top > 0, top, 1.0)
    return top * xp.sqrt(xp.sum((v / xp.expand_dims(safe, axis=-1)) ** 2, axis=-1))


def _distance(xp, u, v, kind):
    """Row-wise distance of ``u`` and ``v``: cosine (0 similarity for a zero row) or Euclidean."""
    if kind == "euclidean":
        return _norm(xp, u - v)
    nu, nv = _norm(xp, u), _norm(xp, v)
    unit_u = u / xp.expand_dims(xp.where(nu > 0, nu, 1.0), axis=-1)
    unit_v = v / xp.expand_dims(xp.where(nv > 0, nv, 1.0), axis=-1)
    return 1.0 - xp.sum(unit_u * unit_v, axis=-1)


def _groups(xp, x, samples, feature_mask):
    """``kept``: the boolean ``(S, D)`` elements each perturbation keeps; arguments checked."""
    if samples.ndim != 2 or samples.shape[0] < 1:
        raise ValueError(f"samples must have shape (n_samples, n_features) with n_samples >= 1, "
                         f"got {tuple(samples.shape)}")
    n_features = samples.shape[1]
    flat = xp.reshape(x, (x.shape[0], -1))
    if feature_mask is None:
        if n_features != flat.shape[1]:
            raise ValueError(f"without feature_mask every element of a sample is a feature: "
                             f"samples must have {flat.shape[1]} columns, got {n_features}")
        return samples
    require_integer_array("feature_mask", feature_mask)
    get_namespace(x, feature_mask)
    if tuple(feature_mask.shape) != tuple(x.shape[1:]):
        raise ValueError(f"feature_mask must have the shape of one sample {tuple(x.shape[1:])}, "
                         f"got {tuple(feature_mask.shape)}")
    if bool(xp.any((feature_mask < 0) | (feature_mask >= n_features))):
        raise ValueError(f"feature_mask must hold feature ids in [0, {n_features}) (one per "
                         "column of samples)")
    return xp.take(samples, xp.reshape(feature_mask, (-1,)), axis=1)


def _kernel_weights(xp, flat, perturbed, z, options):
    """``pi_s`` per sample ``(N,)`` for one perturbation ``z`` (its inputs ``perturbed`` ``(N, D)``)."""
    if options["space"] == "input":
        u, v = flat, perturbed
    else:
        u, v = xp.reshape(xp.ones_like(z), (1, -1)), xp.reshape(z, (1, -1))
    if options["float32_distance"]:
        d = xp.astype(_distance(xp, xp.astype(u, xp.float32), xp.astype(v, xp.float32),
                                options["distance"]), flat.dtype)
    else:
        d = _distance(xp, u, v, options["distance"])
    width = options["kernel_width"]
    return xp.broadcast_to(xp.exp(-(d * d) / (2.0 * width * width)), (flat.shape[0],))


def _ridge(xp, Z, y, weights, alpha):
    r"""Weighted ridge with an unpenalised intercept, per sample: ``(coefficients, intercept)``.

    ``Z`` ``(S, F)``, ``y`` and ``weights`` ``(N, S)``.
    """
    total = xp.sum(weights, axis=1, keepdims=True)
    if bool(xp.any(total == 0)):
        raise ValueError("every kernel weight of a sample is zero: increase kernel_width")
    z_mean = (weights @ Z) / total  # (N, F)
    y_mean = xp.sum(weights * y, axis=1, keepdims=True) / total  # (N, 1)
    root = xp.sqrt(weights)
    A = xp.expand_dims(root, axis=2) * (xp.expand_dims(Z, axis=0) - xp.expand_dims(z_mean, axis=1))
    b = root * (y - y_mean)
    n, f = z_mean.shape
    _, device = get_namespace(Z)
    ridge = (alpha ** 0.5) * xp.eye(f, dtype=Z.dtype, device=device)
    A = xp.concat([A, xp.broadcast_to(ridge, (n, f, f))], axis=1)
    b = xp.concat([b, xp.zeros((n, f), dtype=Z.dtype, device=device)], axis=1)
    Q, R = xp.linalg.qr(A)
    rhs = xp.matrix_transpose(Q) @ xp.expand_dims(b, axis=2)
    coefficients = xp.linalg.solve(R, rhs)[..., 0]
    intercept = y_mean[:, 0] - xp.sum(z_mean * coefficients, axis=1)
    return coefficients, intercept


def lime(layers, x, target, samples, feature_mask=None, *, kernel_width=1.0, alpha=1.0,
         baseline=0.0, distance="cosine", space="input", float32_distance=False,
         check_finite=True):
    r"""LIME with given binary perturbations, the exponential kernel and a weighted ridge fit.

    .. math::  \min_{\beta_0, \beta} \sum_s \exp\!\Big(-\frac{d_s^2}{2w^2}\Big)
               \big(f_t(\tilde x_s) - \beta_0 - z_s^T\beta\big)^2 + \alpha \|\beta\|^2

    (docs/conventions.rst, section 5.7).

    Parameters
    ----------
    layers, x, target
        As :func:`~refimpl.attribution.saliency`.
    samples : (S, F) boolean array
        The perturbations :math:`z_s` in the interpretable space, shared by the
        samples of the batch (captum draws them, Bernoulli(1/2)).
    feature_mask : integer array, shape ``x.shape[1:]``, optional
        Feature id in ``[0, F)`` of every element; default one feature per element.
    kernel_width : float
        :math:`w > 0`; captum's default 1.
    alpha : float
        Ridge penalty :math:`\alpha > 0` on the coefficients, not the intercept
        (scikit-learn's default 1; captum's default model is ``Lasso(alpha=0.01)``).
    baseline : float
        The value of removed features (captum's default 0).
    distance : {"cosine", "euclidean"}
        captum's default ``"cosine"``.
    space : {"input", "interpretable"}
        Where :math:`d_s` is measured: between :math:`x` and :math:`\tilde x_s`
        (captum), or between :math:`\mathbf 1` and :math:`z_s` (the ``lime`` package).
    float32_distance : bool
        Measure :math:`d_s` on float32 copies, as captum does (``.float()``); off
        by default.
    check_finite : bool
        Check ``x`` for NaN and infinity.

    Returns
    -------
    LimeResult
        ``attribution``, ``coefficients``, ``intercept`` and ``weights``.
    """
    for name, value in (("kernel_width", kernel_width), ("alpha", alpha)):
        require_number(name, value, 0.0, low_open=True)
    require_number("baseline", baseline)
    require_choice("distance", distance, LIME_DISTANCES)
    require_choice("space", space, LIME_SPACES)
    require_real_floating("x", x)
    require_bool_array("samples", samples)
    xp, _ = get_namespace(x, samples)
    if check_finite:
        require_finite("x", x)
    kept = _groups(xp, x, samples, feature_mask)
    options = {"kernel_width": kernel_width, "distance": distance, "space": space,
               "float32_distance": float32_distance}
    layers = list(layers)
    flat = xp.reshape(x, (x.shape[0], -1))
    Z = xp.astype(samples, x.dtype)
    seed, scores, weights = None, [], []
    for s in range(samples.shape[0]):
        perturbed = xp.where(xp.reshape(kept[s, ...], (1, -1)), flat, baseline)
        y = network_activations(layers, xp.reshape(perturbed, tuple(x.shape)))[-1]
        seed = one_hot(target, y) if seed is None else seed
        scores.append(score(y, seed))
        weights.append(_kernel_weights(xp, flat, perturbed, Z[s, ...], options))
    weights = xp.stack(weights, axis=1)
    coefficients, intercept = _ridge(xp, Z, xp.stack(scores, axis=1), weights, alpha)
    if feature_mask is None:
        attribution = xp.reshape(coefficients, tuple(x.shape))
    else:
        attribution = xp.take(coefficients, xp.reshape(feature_mask, (-1,)), axis=1)
        attribution = xp.reshape(attribution, tuple(x.shape))
    return LimeResult(attribution, coefficients, intercept, weights)
