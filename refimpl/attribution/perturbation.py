r"""Perturbation attributions: occlusion (sliding windows) and feature ablation (feature groups).

Convention (docs/conventions.rst, section 5.6). Replacing the features of a mask
:math:`m` by the baseline :math:`b` changes the target score by

.. math::  \Delta_m = f_t(x) - f_t\big(x \odot (1 - m) + b\, m\big).

* ``occlusion``: windows of shape ``window`` over every axis after the batch
  axis (captum's ``sliding_window_shapes``), the first with its corner at index
  0, then moved by ``strides`` along each axis until the axis is covered:
  :math:`\lceil (D - k)/s \rceil + 1` positions per axis of length :math:`D`, the
  last window cut at the border when :math:`s` does not divide :math:`D - k`.
  Each feature receives the mean of :math:`\Delta_m` over the windows that cover
  it, :math:`R_i = \sum_{m \ni i} \Delta_m / |\{m \ni i\}|` (captum's ``Occlusion``).
* ``feature_ablation``: each group :math:`g` of ``feature_mask`` (features with
  equal ids) is replaced at once; its features receive :math:`\Delta_g` (captum's
  ``FeatureAblation``).

Each window or group costs one forward pass of the batch; ``perturbations_per_eval``
of them share a pass (captum's name; it does not change the result).
"""

from __future__ import annotations

import itertools
import math

from .._validation import (
    require_integer,
    require_number,
    require_finite,
    require_integer_array,
    require_real_floating,
)
from ..backend import get_namespace
from ._network import target_score

__all__ = ["feature_ablation", "occlusion"]


def _check_input(x, baseline, per_eval, check_finite):
    require_number("baseline", baseline)
    require_integer("perturbations_per_eval", per_eval, 1)
    require_real_floating("x", x)
    if check_finite:
        require_finite("x", x)


def _spread_drops(layers, x, target, masks, baseline, per_eval):
    r"""``sum_m Delta_m m``: every mask's score drop on its features, ``x``'s shape.

    ``masks`` is a list of boolean arrays of shape ``x.shape[1:]``; ``per_eval``
    of them are evaluated in one forward pass of ``(P N, ...)`` inputs.
    """
    xp, _ = get_namespace(x)
    n, features = x.shape[0], tuple(x.shape[1:])
    unperturbed = target_score(layers, x, target)
    total = xp.zeros_like(x)
    for start in range(0, len(masks), per_eval):
        chunk = xp.stack(masks[start:start + per_eval])
        p = chunk.shape[0]
        perturbed = xp.where(xp.expand_dims(chunk, axis=1), baseline, xp.expand_dims(x, axis=0))
        scores = target_score(layers, xp.reshape(perturbed, (p * n,) + features), xp.concat([target] * p))
        drops = xp.reshape(unperturbed, (1, n)) - xp.reshape(scores, (p, n))
        weighted = (xp.reshape(drops, (p, n) + (1,) * len(features))
                    * xp.expand_dims(xp.astype(chunk, x.dtype), axis=1))
        total = total + xp.sum(weighted, axis=0)
    return total


def _per_axis(name, value, ndim):
    pairs = (value,) * ndim if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(pairs, (tuple, list)) or len(pairs) != ndim:
        raise ValueError(f"{name} must be an int or a tuple of {ndim} ints (one per axis after "
                         f"the batch axis), got {value!r}")
    return tuple(require_integer(f"{name}[{i}]", v, 1) for i, v in enumerate(pairs))


def _window_starts(length, window, stride):
    """captum's window corners along one axis: ``0, s, 2s, ...``, ``ceil((D - k) / s) + 1`` of them."""
    return [i * stride for i in range(math.ceil((length - window) / stride) + 1)]


def _occlusion_masks(xp, device, shape, window, strides):
    """One boolean mask per window position (windows cut at the border), and the cover counts."""
    for axis, (length, k, s) in enumerate(zip(shape, window, strides)):
        if k > length:
            raise ValueError(f"window[{axis}] = {k} exceeds the input's length {length} on axis "
                             f"{axis + 1}")
        if s > k and k < length:
            raise ValueError(f"strides[{axis}] = {s} must not exceed window[{axis}] = {k} "
                             "(features would be skipped)")
    ranges = [xp.arange(length, device=device) for length in shape]

    def inside(axis, start):
        index = [1] * len(shape)
        index[axis] = shape[axis]
        r = ranges[axis]
        return xp.reshape((r >= start) & (r < start + window[axis]), tuple(index))

    corners = itertools.product(*(_window_starts(n, k, s) for n, k, s in zip(shape, window, strides)))
    masks = []
    for corner in corners:
        mask = inside(0, corner[0])
        for axis in range(1, len(shape)):
            mask = mask & inside(axis, corner[axis])
        masks.append(mask)
    return masks


def occlusion(layers, x, target, window, strides=1, baseline=0.0, *, float32_average=False,
              perturbations_per_eval=8, check_finite=True):
    r"""Occlusion: each feature's mean score drop over the windows that cover it.

    .. math::  R_i = \frac{1}{|\{m \ni i\}|} \sum_{m \ni i}
               \Big(f_t(x) - f_t\big(x \odot (1 - m) + b\, m\big)\Big)

    over the window masks :math:`m` placed as captum places them
    (docs/conventions.rst, section 5.6).

    Parameters
    ----------
    layers, x, target
        As :func:`~refimpl.attribution.saliency`.
    window : int or tuple of int
        Window shape over the axes after the batch axis (captum's
        ``sliding_window_shapes``; for images ``(C, kh, kw)``).
    strides : int or tuple of int
        Shift per axis, default 1; at most the window where the window is
        shorter than the axis (captum's rule).
    baseline : float
        The value occluded features take (captum's default 0).
    float32_average : bool
        Round the sum and the mean to float32 as captum does
        (``total.float() / count``); off by default.
    perturbations_per_eval : int
        Windows per forward pass (memory against speed; same result).
    check_finite : bool
        Check ``x`` for NaN and infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import Linear
    >>> from refimpl.attribution import occlusion
    >>> net = [Linear(np.array([[1.0, 2.0, 3.0]]))]
    >>> occlusion(net, np.array([[1.0, 1.0, 1.0]]), np.array([0]), window=2).tolist()
    [[3.0, 4.0, 5.0]]
    """
    _check_input(x, baseline, perturbations_per_eval, check_finite)
    shape = tuple(x.shape[1:])
    window = _per_axis("window", window, len(shape))
    strides = _per_axis("strides", strides, len(shape))
    xp, device = get_namespace(x)
    masks = _occlusion_masks(xp, device, shape, window, strides)
    total = _spread_drops(layers, x, target, masks, baseline, perturbations_per_eval)
    counts = xp.astype(sum(xp.astype(m, xp.int64) for m in masks), x.dtype)
    if not float32_average:
        return total / counts
    return xp.astype(xp.astype(total, xp.float32) / xp.astype(counts, xp.float32), x.dtype)


def feature_ablation(layers, x, target, feature_mask, baseline=0.0, *, perturbations_per_eval=8,
                     check_finite=True):
    r"""Feature ablation: each group's score drop when the whole group takes the baseline.

    .. math::  R_i = f_t(x) - f_t\big(x \odot (1 - m_{g(i)}) + b\, m_{g(i)}\big),

    :math:`m_g` the indicator of the features with id :math:`g` in ``feature_mask``.

    Parameters
    ----------
    layers, x, target
        As :func:`~refimpl.attribution.saliency`.
    feature_mask : integer array, shape ``x.shape[1:]``
        Group ids (non-negative; any values, each distinct id one group), the same
        for every sample.
    baseline : float
        The value ablated features take (captum's default 0).
    perturbations_per_eval : int
        Groups per forward pass (same result).
    check_finite : bool
        Check ``x`` for NaN and infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import Linear
    >>> from refimpl.attribution import feature_ablation
    >>> net = [Linear(np.array([[1.0, 2.0, 3.0]]))]
    >>> groups = np.array([0, 0, 1])
    >>> feature_ablation(net, np.array([[1.0, 1.0, 1.0]]), np.array([0]), groups).tolist()
    [[3.0, 3.0, 3.0]]
    """
    _check_input(x, baseline, perturbations_per_eval, check_finite)
    require_integer_array("feature_mask", feature_mask)
    xp, _ = get_namespace(x, feature_mask)
    if tuple(feature_mask.shape) != tuple(x.shape[1:]):
        raise ValueError(f"feature_mask must have the shape of one sample {tuple(x.shape[1:])}, "
                         f"got {tuple(feature_mask.shape)}")
    if bool(xp.any(feature_mask < 0)):
        raise ValueError("feature_mask must hold non-negative group ids")
    groups = xp.unique_values(feature_mask)
    masks = [feature_mask == groups[g] for g in range(groups.shape[0])]
    return _spread_drops(layers, x, target, masks, baseline, perturbations_per_eval)
