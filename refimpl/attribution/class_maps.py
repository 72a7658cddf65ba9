r"""Class activation maps: CAM, Grad-CAM and guided Grad-CAM.

Convention (docs/conventions.rst, section 5.4). Maps have shape ``(N, 1, H, W)``
(captum's layer attributions keep the channel axis).

* ``cam``: for a network ending in a global average pooling, ``Flatten`` and a
  ``Linear`` layer with weight :math:`W` (``(C, K)``), the map of the pooled
  features :math:`A` (``(N, K, H, W)``, the pooling's input):
  :math:`M = \sum_k W_{t k} A_k` (Zhou et al.; no bias, so that
  :math:`f_t = \mathrm{mean}_{hw} M + b_t`).
* ``grad_cam``: at the output :math:`A` of layer ``layer``,
  :math:`\alpha_k = \mathrm{mean}_{hw}\, \partial f_t / \partial A_k` and
  :math:`M = \sum_k \alpha_k A_k`, with ``relu=True`` :math:`\max(M, 0)` (captum's
  ``LayerGradCam``: no ReLU by default; Selvaraju et al. apply it). On the
  pooled features of a CAM network, :math:`M = \mathrm{CAM} / (HW)`.
* ``guided_grad_cam``: ``guided_backprop`` times the Grad-CAM map (with ReLU)
  upsampled to the input's height and width and broadcast over its channels
  (captum's ``GuidedGradCam``, ``mode="nearest"``).
"""

from __future__ import annotations

from .._results import cotangent_type
from .._validation import (
    require_choice,
    require_integer,
    require_finite,
    require_real_floating,
    require_same_dtype,
)
from ..backend import get_namespace
from ..nn import AdaptiveAvgPool2d, AvgPool2d, Flatten, Linear
from ._network import backward, network_activations, one_hot
from .gradients import guided_backprop
from .maps import UPSAMPLE_MODES, upsample

__all__ = ["cam", "cam_vjp", "grad_cam", "guided_grad_cam"]

CamCotangents = cotangent_type("CamCotangents", "layers x target")


def _checked(layers, x, check_finite):
    layers = list(layers)
    acts = network_activations(layers, x)
    if check_finite:
        require_finite("x", x)
    return layers, acts


def _is_global_pool(layer, a):
    if isinstance(layer, AdaptiveAvgPool2d):
        return tuple(layer.output_size) == (1, 1)
    return isinstance(layer, AvgPool2d) and tuple(layer.kernel_size) == tuple(a.shape[2:])


def _cam_tail(layers, acts):
    """The pooled features ``A`` (N, K, H, W) and the final weight ``W`` (C, K); checked."""
    if (len(layers) < 3 or not _is_global_pool(layers[-3], acts[-4])
            or not isinstance(layers[-2], Flatten) or not isinstance(layers[-1], Linear)):
        raise ValueError("cam needs a network ending in a global average pooling "
                         "(AdaptiveAvgPool2d((1, 1)), or AvgPool2d over the whole map), Flatten "
                         f"and Linear; got {[type(layer).__name__ for layer in layers[-3:]]}")
    return acts[-4], layers[-1].weight


def _target_weights(xp, seed, weight):
    """``W_t`` per sample as ``(N, K, 1, 1)``."""
    rows = seed @ weight
    return xp.reshape(rows, tuple(rows.shape) + (1, 1))


def cam(layers, x, target, *, check_finite=True):
    r"""Class activation map: :math:`M_n = \sum_k W_{t_n k}\, A_{nk}`, shape ``(N, 1, H, W)``.

    Parameters
    ----------
    layers : list of refimpl.nn layers
        Ending in a global average pooling (``AdaptiveAvgPool2d((1, 1))`` or an
        ``AvgPool2d`` over the whole map), ``Flatten`` and ``Linear`` (weight :math:`W`);
        :math:`A` is the pooling's input (after the last convolution and ReLU).
    x : (N, ...) array
    target : (N,) integer array
    check_finite : bool
        Check ``x`` for NaN and infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import AdaptiveAvgPool2d, Flatten, Linear, ReLU
    >>> from refimpl.attribution import cam
    >>> net = [ReLU(), AdaptiveAvgPool2d(1), Flatten(), Linear(np.array([[2.0, -1.0]]))]
    >>> x = np.array([[[[1.0, -1.0]], [[0.5, 3.0]]]])
    >>> cam(net, x, np.array([0])).tolist()
    [[[[1.5, -3.0]]]]
    """
    layers, acts = _checked(layers, x, check_finite)
    features, weight = _cam_tail(layers, acts)
    xp, _ = get_namespace(features)
    weights = _target_weights(xp, one_hot(target, acts[-1]), weight)
    return xp.sum(weights * features, axis=1, keepdims=True)


def cam_vjp(layers, x, target, cotangent, *, check_finite=True):
    r"""Cotangents ``(layers, x, target)`` of :func:`cam`: ``x`` only (``None`` for the others).

    :math:`\bar A = W_{t\cdot} \bar M` broadcast over the channels, then the
    backward pass of the layers before the pooling.
    """
    layers, acts = _checked(layers, x, check_finite)
    features, weight = _cam_tail(layers, acts)
    require_real_floating("cotangent", cotangent)
    xp, _ = get_namespace(features, cotangent)
    require_same_dtype(x=x, cotangent=cotangent)
    expected = (features.shape[0], 1) + tuple(features.shape[2:])
    if tuple(cotangent.shape) != expected:
        raise ValueError(f"cotangent must have the map's shape {expected}, "
                         f"got {tuple(cotangent.shape)}")
    weights = _target_weights(xp, one_hot(target, acts[-1]), weight)
    return CamCotangents(None, backward(layers[:-3], acts, weights * cotangent), None)


def _layer_index(layer, layers, acts):
    index = require_integer("layer", layer, 0)
    if index >= len(layers) or acts[index + 1].ndim != 4:
        shape = tuple(acts[index + 1].shape) if index < len(layers) else "none"
        raise ValueError(f"layer must index a layer whose output has shape (N, K, H, W) (0 <= "
                         f"layer < {len(layers)}); layer {layer} has output shape {shape}")
    return index


def grad_cam(layers, x, target, layer, *, relu=False, check_finite=True):
    r"""Grad-CAM at the output of ``layers[layer]``: :math:`M = \sum_k \alpha_k A_k`, ``(N, 1, H, W)``.

    .. math::  \alpha_{nk} = \frac{1}{HW} \sum_{h,w} \frac{\partial f_{t_n}}{\partial A_{nkhw}}

    Parameters
    ----------
    layers, x, target
        As :func:`~refimpl.attribution.saliency`.
    layer : int
        Index of the layer whose output :math:`A` (``(N, K, H, W)``) is explained.
    relu : bool
        :math:`\max(M, 0)` (Selvaraju et al.); captum's default ``False`` keeps the sign.
    check_finite : bool
        Check ``x`` for NaN and infinity.
    """
    layers, acts = _checked(layers, x, check_finite)
    index = _layer_index(layer, layers, acts)
    features = acts[index + 1]
    xp, _ = get_namespace(features)
    gradient = backward(layers, acts, one_hot(target, acts[-1]), stop=index + 1)
    alpha = xp.mean(gradient, axis=(2, 3), keepdims=True)
    heat = xp.sum(alpha * features, axis=1, keepdims=True)
    return xp.maximum(heat, 0.0) if relu else heat


def guided_grad_cam(layers, x, target, layer, *, mode="nearest", check_finite=True):
    r"""Guided Grad-CAM: :math:`\mathrm{GB}(x) \odot \mathrm{up}(\max(M, 0))`, the shape of ``x``.

    ``GB`` is :func:`~refimpl.attribution.guided_backprop`, :math:`M` the
    :func:`grad_cam` map at ``layer`` and ``up`` :func:`~refimpl.attribution.upsample`
    to the input's height and width in ``mode`` (captum's default ``"nearest"``),
    broadcast over the input's channels. ``x`` is ``(N, C, H, W)``.
    """
    require_choice("mode", mode, UPSAMPLE_MODES)
    require_real_floating("x", x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W) for guided Grad-CAM, got {tuple(x.shape)}")
    heat = grad_cam(layers, x, target, layer, relu=True, check_finite=check_finite)
    guided = guided_backprop(layers, x, target, check_finite=False)
    return guided * upsample(heat, tuple(x.shape[2:]), mode, check_finite=False)
