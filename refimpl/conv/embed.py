r"""Deep-learning kernels as full-size convolution kernels: :func:`embed_kernel` and its VJP.

Convention (docs/conventions.rst, section 2.4). A small odd kernel of a
cross-correlation layer with circular padding (PyTorch ``"oihw"``, TF
``"hwio"``) becomes the full-size kernel of :func:`refimpl.conv.periodic_conv`.
"""

from __future__ import annotations

from .._results import cotangent_type
from .._validation import require_real_floating, require_same_dtype
from ..backend import device, get_namespace

__all__ = ["LAYOUTS", "embed_kernel", "embed_kernel_vjp"]

LAYOUTS = ("oihw", "hwio")

EmbedCotangents = cotangent_type("EmbedCotangents", "w")


def _embed_inputs(w, shape, layout, G=None):
    require_real_floating("w", w)
    xp, _ = get_namespace(w, G)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if w.ndim != 4:
        raise ValueError(f"w must have 4 axes (layout {layout!r}), got shape {tuple(w.shape)}")
    try:
        H, W = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise TypeError(f"shape must be a pair of ints (H, W), got {shape!r}") from None
    kh, kw = (w.shape[2], w.shape[3]) if layout == "oihw" else (w.shape[0], w.shape[1])
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(
            f"kernel sizes must be odd (centre k // 2), got {kh} x {kw}; an even kernel "
            "needs asymmetric padding and has no centred circular embedding"
        )
    if kh > H or kw > W:
        raise ValueError(f"kernel {kh} x {kw} does not fit the grid (H, W) = ({H}, {W})")
    return xp, (H, W), (kh, kw)


def embed_kernel(w, shape, layout="oihw"):
    r"""Full-size convolution kernel of a cross-correlation layer with circular padding.

    .. math::  K[o, i, (p_h - a) \bmod H, (p_w - b) \bmod W] = w[o, i, a, b],\qquad p = k // 2,

    so that ``periodic_conv(x, embed_kernel(w, (H, W)))`` equals PyTorch's
    ``conv2d`` of the circularly padded ``x`` and
    ``sum_i scipy.ndimage.correlate(x[i], w[o, i], mode="wrap")``.
    Computed as zero-padding, a flip and a roll by ``p + 1`` (no scatter).

    Parameters
    ----------
    w : array
        ``(c_out, c_in, kh, kw)`` for ``layout="oihw"`` (PyTorch) or
        ``(kh, kw, c_in, c_out)`` for ``"hwio"`` (TensorFlow); ``kh``, ``kw``
        odd and at most ``H``, ``W``.
    shape : (int, int)
        The grid ``(H, W)``.
    layout : {"oihw", "hwio"}

    Returns
    -------
    K : (c_out, c_in, H, W) array

    Examples
    --------
    The centre tap lands at the origin, the others around it, flipped:

    >>> import numpy as np
    >>> from refimpl.conv import embed_kernel
    >>> w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    >>> embed_kernel(w, (4, 4))[0, 0]
    array([[5., 4., 0., 6.],
           [2., 1., 0., 3.],
           [0., 0., 0., 0.],
           [8., 7., 0., 9.]])
    """
    xp, (H, W), (kh, kw) = _embed_inputs(w, shape, layout)
    if layout == "hwio":
        w = xp.permute_dims(w, (3, 2, 0, 1))
    c_out, c_in = w.shape[:2]
    dev = device(w)
    if H > kh:
        w = xp.concat([w, xp.zeros((c_out, c_in, H - kh, kw), dtype=w.dtype, device=dev)], axis=2)
    if W > kw:
        w = xp.concat([w, xp.zeros((c_out, c_in, H, W - kw), dtype=w.dtype, device=dev)], axis=3)
    # flip then roll by 1 maps index a to -a; a further roll by p centres the kernel.
    return xp.roll(xp.flip(w, axis=(2, 3)), (kh // 2 + 1, kw // 2 + 1), axis=(2, 3))


def embed_kernel_vjp(w, G, shape, layout="oihw"):
    r"""Cotangent ``(dw,)`` of :func:`embed_kernel`: the gather at the embedding positions.

    .. math::  \overline w[o, i, a, b] = G[o, i, (p_h - a) \bmod H, (p_w - b) \bmod W].
    """
    xp, (H, W), (kh, kw) = _embed_inputs(w, shape, layout, G)
    c_out, c_in = (w.shape[0], w.shape[1]) if layout == "oihw" else (w.shape[3], w.shape[2])
    if tuple(G.shape) != (c_out, c_in, H, W):
        raise ValueError(f"G must have the output's shape {(c_out, c_in, H, W)}, got {tuple(G.shape)}")
    require_real_floating("G", G)
    require_same_dtype(w=w, G=G)
    back = xp.flip(xp.roll(G, (-(kh // 2 + 1), -(kw // 2 + 1)), axis=(2, 3)), axis=(2, 3))
    dw = back[:, :, :kh, :kw]
    return EmbedCotangents(xp.permute_dims(dw, (2, 3, 1, 0)) if layout == "hwio" else dw)
