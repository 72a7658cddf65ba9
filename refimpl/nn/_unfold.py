"""Shared pieces of the layers: argument checks and the unfold (im2col) / fold (col2im) pair.

Layouts follow PyTorch (docs/conventions.rst, section 4): images are
``NCHW``. The unfold is written with array-API slicing, so convolution and
pooling run on every backend; the fold is its exact adjoint.
"""

from __future__ import annotations

from .._validation import require_real_floating


def pair(name, value) -> tuple[int, int]:
    """``value`` as a pair of ints (an int repeats); ValueError naming ``name`` otherwise."""
    both = (value, value) if isinstance(value, int) else tuple(value)
    if len(both) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in both):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return both


def positive_pair(name, value) -> tuple[int, int]:
    """:func:`pair` with both entries at least 1."""
    both = pair(name, value)
    if min(both) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return both


def image(name, x, channels=None):
    require_real_floating(name, x)
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channels (shape (N, {channels}, H, W)), "
            f"got shape {tuple(x.shape)}"
        )


def out_size(n, k, s, p, what) -> int:
    """Output length of a window of ``k`` with stride ``s`` over ``n`` padded by ``p`` each side."""
    if n + 2 * p < k:
        raise ValueError(f"{what}: the padded input ({n} + 2*{p}) is smaller than the kernel ({k})")
    return (n + 2 * p - k) // s + 1


def require_cotangent(g, shape):
    """The output cotangent ``g`` is a real floating array of the output's ``shape``."""
    require_real_floating("cotangent", g)
    if tuple(g.shape) != tuple(shape):
        raise ValueError(f"cotangent must have the output's shape {tuple(shape)}, got {tuple(g.shape)}")


# ---------------------------------------------------------------------------
# unfold (im2col) and fold (col2im)
# ---------------------------------------------------------------------------


def pad(xp, device, x, padding):
    """``x`` with ``padding = (ph, pw)`` zeros on both sides of its last two axes."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    out = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype, device=device)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def window(i, j, out_hw, stride):
    """Slices of the padded input seen by kernel offset ``(i, j)`` at every output position."""
    (ho, wo), (sh, sw) = out_hw, stride
    return slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw)


def unfold(xp, device, x, kernel, stride, padding, out_hw):
    """``(N, C, H, W) -> (N, C, kh*kw, Ho, Wo)``: every window, kernel offsets row-major."""
    xpad = pad(xp, device, x, padding)
    kh, kw = kernel
    pieces = []
    for i in range(kh):
        for j in range(kw):
            rows, cols = window(i, j, out_hw, stride)
            pieces.append(xpad[:, :, rows, cols])
    return xp.stack(pieces, axis=2)


def fold(xp, device, cols, in_hw, kernel, stride, padding):
    """Adjoint of :func:`unfold`: add every window entry back to its input position."""
    n, c, _, ho, wo = cols.shape
    (h, w), (ph, pw), (kh, kw) = in_hw, padding, kernel
    out = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype, device=device)
    for i in range(kh):
        for j in range(kw):
            rows, cs = window(i, j, (ho, wo), stride)
            out[:, :, rows, cs] += cols[:, :, i * kw + j, ...]
    return out[:, :, ph:ph + h, pw:pw + w]


def selector(xp, device, dtype, n_out, k, s, p, n_in):
    """``E[o, t, i] = 1`` where input ``i`` is tap ``t`` of output ``o`` (``i = o s + t - p``)."""
    o = xp.reshape(xp.arange(n_out, device=device), (n_out, 1, 1))
    t = xp.reshape(xp.arange(k, device=device), (1, k, 1))
    i = xp.reshape(xp.arange(n_in, device=device), (1, 1, n_in))
    return xp.astype(i == o * s + t - p, dtype)
