r"""Operations on attribution maps: upsampling (as PyTorch's ``interpolate``) and refinement.

Convention (docs/conventions.rst, section 5.5).

``upsample(maps, size, mode)`` resizes ``(N, C, H, W)`` maps to ``size = (h, w)``
as ``torch.nn.functional.interpolate(maps, size, mode=mode)`` without
``align_corners``: separably, :math:`Y = P_h\, M\, P_w^T` per sample and channel,
each axis (input length :math:`n`, output length :math:`m`, :math:`s = n / m`)
with the matrix :math:`P` (``m x n``):

* ``"bilinear"``: half-pixel centres, source :math:`u_d = \max(s (d + 1/2) - 1/2,\, 0)`,
  :math:`i = \lfloor u_d \rfloor`, :math:`\lambda = u_d - i`,
  :math:`P_{d,i} \mathrel{+}= 1 - \lambda`, :math:`P_{d, \min(i + 1, n - 1)} \mathrel{+}= \lambda`;
* ``"nearest"`` (PyTorch's and captum's default, *not* half-pixel):
  :math:`P_{d, \min(\lfloor d\, s \rfloor, n - 1)} = 1`;
* ``"nearest-exact"`` (half-pixel): :math:`P_{d, \min(\lfloor (d + 1/2)\, s \rfloor, n - 1)} = 1`.

The nearest indices are computed as PyTorch computes them, in float32
(:math:`s` rounded to float32, the product rounded to float32, then the floor).
Shrinking (``m < n``) uses the same formulas (PyTorch without ``antialias``).

``refine(attribution, probability)``: :math:`A \odot P`, the probabilistic-saliency
refinement, with :math:`P` of the attribution's shape or one probability per
sample ``(N,)``.
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

from .._results import cotangent_type
from .._validation import (
    require_choice,
    require_integer,
    require_finite,
    require_real_floating,
    require_same_dtype,
)
from ..backend import get_namespace

__all__ = ["UPSAMPLE_MODES", "refine", "refine_vjp", "upsample", "upsample_vjp"]

UPSAMPLE_MODES = ("bilinear", "nearest", "nearest-exact")

UpsampleCotangents = cotangent_type("UpsampleCotangents", "maps")
RefineCotangents = cotangent_type("RefineCotangents", "attribution probability")


class _Axes(NamedTuple):
    rows: object
    cols: object


def _f32(value):
    """``value`` rounded to float32, as PyTorch's float index arithmetic rounds it."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _nearest_source(d, n, m, half_pixel):
    """PyTorch's ``nearest_idx``: ``min(floorf((d [+ 0.5]) * scale), n - 1)`` in float32."""
    if m == n:
        return d
    if m == 2 * n and not half_pixel:
        return d >> 1
    scale = _f32(n / m)
    return min(math.floor(_f32((d + 0.5 if half_pixel else d) * scale)), n - 1)


def _axis_weights(n, m, mode):
    """The ``m x n`` interpolation matrix of one axis, as nested lists of floats."""
    rows = [[0.0] * n for _ in range(m)]
    for d in range(m):
        if mode == "bilinear":
            u = max((n / m) * (d + 0.5) - 0.5, 0.0)
            i = int(u)  # u >= 0: the floor
            lam = u - i
            rows[d][i] += 1.0 - lam
            rows[d][min(i + 1, n - 1)] += lam
        else:
            rows[d][_nearest_source(d, n, m, mode == "nearest-exact")] = 1.0
    return rows


def _size(size):
    if isinstance(size, (int, float)) or len(size) != 2:
        raise ValueError(f"size must be a pair (h, w) of output lengths, got {size!r}")
    return tuple(require_integer(name, s, 1) for name, s in zip(("size[0]", "size[1]"), size))


def _matrices(maps, size, mode):
    """``(xp, (P_h, P_w))`` for ``maps`` of shape (N, C, H, W), arguments checked."""
    require_real_floating("maps", maps)
    require_choice("mode", mode, UPSAMPLE_MODES)
    if maps.ndim != 4:
        raise ValueError(f"maps must have shape (N, C, H, W), got {tuple(maps.shape)}")
    h, w = _size(size)
    xp, device = get_namespace(maps)
    return xp, _Axes(*(xp.asarray(_axis_weights(n, m, mode), dtype=maps.dtype, device=device)
                       for n, m in zip(maps.shape[2:], (h, w))))


def upsample(maps, size, mode="bilinear", *, check_finite=True):
    r"""Resize ``(N, C, H, W)`` maps to ``size`` as ``torch.nn.functional.interpolate``.

    .. math::  Y_{nc} = P_h\, M_{nc}\, P_w^T

    with the per-axis matrices of docs/conventions.rst, section 5.5 (half-pixel
    centres for ``"bilinear"`` and ``"nearest-exact"``; PyTorch's ``"nearest"``
    takes :math:`\lfloor d\, n/m \rfloor`).

    Parameters
    ----------
    maps : (N, C, H, W) array
    size : pair of int
        Output height and width.
    mode : {"bilinear", "nearest", "nearest-exact"}
        Default ``"bilinear"``; captum's ``LayerAttribution.interpolate`` and
        ``GuidedGradCam`` default to ``"nearest"``.
    check_finite : bool
        Check ``maps`` for NaN and infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.attribution import upsample
    >>> upsample(np.array([[[[0.0, 4.0]]]]), (1, 4)).tolist()
    [[[[0.0, 1.0, 3.0, 4.0]]]]
    >>> upsample(np.array([[[[0.0, 4.0]]]]), (1, 3), mode="nearest").tolist()
    [[[[0.0, 0.0, 4.0]]]]
    """
    xp, P = _matrices(maps, size, mode)
    if check_finite:
        require_finite("maps", maps)
    return P.rows @ maps @ xp.matrix_transpose(P.cols)


def upsample_vjp(maps, cotangent, size, mode="bilinear", *, check_finite=True):
    r"""Cotangent ``(maps,)`` of :func:`upsample`: the adjoint :math:`P_h^T G P_w`."""
    xp, P = _matrices(maps, size, mode)
    require_real_floating("cotangent", cotangent)
    require_same_dtype(maps=maps, cotangent=cotangent)
    expected = tuple(maps.shape[:2]) + (P.rows.shape[0], P.cols.shape[0])
    if tuple(cotangent.shape) != expected:
        raise ValueError(f"cotangent must have the output's shape {expected}, "
                         f"got {tuple(cotangent.shape)}")
    if check_finite:
        require_finite("maps", maps)
    return UpsampleCotangents(xp.matrix_transpose(P.rows) @ cotangent @ P.cols)


def _per_sample(xp, probability, attribution):
    """``probability`` shaped to broadcast against ``attribution``."""
    if probability.ndim == 1:
        return xp.reshape(probability, (probability.shape[0],) + (1,) * (attribution.ndim - 1))
    return probability


def _check_refine(attribution, probability, check_finite):
    require_real_floating("attribution", attribution)
    require_real_floating("probability", probability)
    xp, _ = get_namespace(attribution, probability)
    require_same_dtype(attribution=attribution, probability=probability)
    if attribution.ndim < 1 or tuple(probability.shape) not in (tuple(attribution.shape),
                                                                 tuple(attribution.shape[:1])):
        raise ValueError(f"probability must have the attribution's shape {tuple(attribution.shape)} "
                         f"or one entry per sample {tuple(attribution.shape[:1])}, "
                         f"got {tuple(probability.shape)}")
    if check_finite:
        require_finite("attribution", attribution)
        require_finite("probability", probability)
    if bool(xp.any((probability < 0) | (probability > 1))):
        raise ValueError("probability must lie in [0, 1]")
    return xp


def refine(attribution, probability, *, check_finite=True):
    r"""Probabilistic-saliency refinement: :math:`A \odot P`.

    Parameters
    ----------
    attribution : (N, ...) array
        Any attribution map :math:`A`.
    probability : array
        :math:`P \in [0, 1]`: the attribution's shape (a probability map), or
        ``(N,)`` (one probability per sample, e.g. of the explained class).
    check_finite : bool
        Check both for NaN and infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.attribution import refine
    >>> refine(np.array([[2.0, -1.0]]), np.array([0.25])).tolist()
    [[0.5, -0.25]]
    """
    xp = _check_refine(attribution, probability, check_finite)
    return attribution * _per_sample(xp, probability, attribution)


def refine_vjp(attribution, probability, cotangent, *, check_finite=True):
    r"""Cotangents ``(attribution, probability)`` of :func:`refine`: :math:`(G P,\ G A)`,
    the latter summed over each sample when ``probability`` is ``(N,)``."""
    xp = _check_refine(attribution, probability, check_finite)
    require_real_floating("cotangent", cotangent)
    require_same_dtype(attribution=attribution, cotangent=cotangent)
    if tuple(cotangent.shape) != tuple(attribution.shape):
        raise ValueError(f"cotangent must have the attribution's shape {tuple(attribution.shape)}, "
                         f"got {tuple(cotangent.shape)}")
    d_probability = cotangent * attribution
    if probability.ndim == 1 and attribution.ndim > 1:
        d_probability = xp.sum(xp.reshape(d_probability, (attribution.shape[0], -1)), axis=1)
    return RefineCotangents(cotangent * _per_sample(xp, probability, attribution), d_probability)
