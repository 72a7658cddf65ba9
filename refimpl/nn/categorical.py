r"""Softmax and log-softmax (logits to a categorical distribution), stable to the float maximum.

Convention (docs/conventions.rst, section 4.8): ``softmax(x, axis=-1)`` is
PyTorch's ``torch.softmax(x, dim)`` and ``log_softmax`` its
``torch.log_softmax``. Both shift by the maximum along the axis, with the
shifted logits clamped at ``-max_float`` so that no intermediate overflows for
any finite input (logits near the float maximum included); an entry more than
the float range below the maximum has probability 0 and log-probability
``-inf`` (its exact value is below ``-max_float``), as PyTorch gives.

The kernels :func:`probabilities`, :func:`log_probabilities` and
:func:`softmax_backward` (not exported) are the softmax of the attention,
routing and distillation ops.
"""

from __future__ import annotations

from .._results import cotangent_type
from .._validation import require_finite, require_real_floating, require_same_dtype
from ..backend import get_namespace
from ._unfold import require_cotangent

__all__ = ["log_softmax", "log_softmax_vjp", "softmax", "softmax_vjp"]

SoftmaxCotangents = cotangent_type("SoftmaxCotangents", "x")


def _floor(xp, m):
    """``max(m, 0) - max_float``: clamping ``x`` there keeps ``x - m >= -max_float``."""
    return xp.maximum(m, 0.0) - float(xp.finfo(m.dtype).max)


def shifted_logits(xp, x, axis, allowed=None):
    r"""``x - max(x)`` along ``axis``, clamped at ``-max_float``: no operation overflows.

    The clamp ``x >= max(m, 0) - max_float`` (``m`` the maximum) moves only
    entries that had ``exp(x - m) = 0`` and a log-probability below the float
    range. ``allowed`` (boolean, broadcastable) leaves entries out of the
    maximum; their shifted values are meaningless and must be masked by the caller.
    """
    if allowed is not None:
        x = xp.where(allowed, x, -float(xp.finfo(x.dtype).max))
    m = xp.max(x, axis=axis, keepdims=True)
    return xp.maximum(x, _floor(xp, m)) - m


def probabilities(xp, x, axis=-1, allowed=None):
    r"""``softmax(x)`` along ``axis`` over the ``allowed`` entries; 0 elsewhere.

    .. math::  p_i = \frac{[i \in A]\, e^{x_i - m}}{\sum_{j \in A} e^{x_j - m}},\qquad m = \max_{j \in A} x_j

    A row with no allowed entry is all zeros (no ``0 / 0``).
    """
    e = xp.exp(shifted_logits(xp, x, axis, allowed))
    if allowed is None:
        return e / xp.sum(e, axis=axis, keepdims=True)  # the maximum contributes exp(0) = 1
    e = xp.where(allowed, e, 0.0)
    z = xp.sum(e, axis=axis, keepdims=True)
    return e / xp.where(z > 0, z, 1.0)


def log_probabilities(xp, x, axis=-1):
    r"""``log softmax(x)`` along ``axis``: :math:`(x_i - m) - \log \sum_j e^{x_j - m}`, ``-inf`` below the float range."""
    d = shifted_logits(xp, x, axis)
    out = d - xp.log(xp.sum(xp.exp(d), axis=axis, keepdims=True))
    return xp.where(x >= _floor(xp, xp.max(x, axis=axis, keepdims=True)), out, -xp.inf)


def softmax_backward(xp, p, g, axis=-1):
    r"""The VJP of ``p = softmax(x)``: :math:`\bar x = p \odot (\bar p - \langle p, \bar p\rangle)`."""
    return p * (g - xp.sum(p * g, axis=axis, keepdims=True))


def _check(x, axis, check_finite, cotangent=None):
    require_real_floating("x", x)
    xp, _ = get_namespace(x, cotangent)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis must be an int in [-{x.ndim}, {x.ndim}) for x of shape "
                         f"{tuple(x.shape)}, got {axis!r}")
    if x.shape[axis] == 0:
        raise ValueError(f"x must have at least one entry along axis {axis}, got shape "
                         f"{tuple(x.shape)}")
    if cotangent is not None:
        require_cotangent(cotangent, tuple(x.shape))
        require_same_dtype(x=x, cotangent=cotangent)
    if check_finite:
        require_finite("x", x)
    return xp


def softmax(x, *, axis=-1, check_finite=True):
    r"""Softmax along ``axis`` (``torch.softmax(x, dim=axis)``), stable for any finite ``x``.

    .. math::  \operatorname{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}},\qquad m = \max_j x_j

    Convention: docs/conventions.rst, section 4.8.

    Parameters
    ----------
    x : array, at least 1-D
    axis : int
        The axis that sums to 1.
    check_finite : bool
        Raise ValueError when ``x`` holds NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import softmax
    >>> softmax(np.array([0.0, np.log(3.0)])).round(12).tolist()
    [0.25, 0.75]
    >>> big = np.finfo(np.float64).max
    >>> softmax(np.array([big, big, -big])).tolist()
    [0.5, 0.5, 0.0]
    """
    xp = _check(x, axis, check_finite)
    return probabilities(xp, x, axis)


def softmax_vjp(x, cotangent, *, axis=-1, check_finite=True):
    r"""Cotangent ``(x,)`` of :func:`softmax`: :math:`\bar x = p \odot (G - \langle p, G\rangle)`."""
    xp = _check(x, axis, check_finite, cotangent)
    return SoftmaxCotangents(softmax_backward(xp, probabilities(xp, x, axis), cotangent, axis))


def log_softmax(x, *, axis=-1, check_finite=True):
    r"""Log-softmax along ``axis`` (``torch.log_softmax(x, dim=axis)``), stable for any finite ``x``.

    .. math::  \log\operatorname{softmax}(x)_i = (x_i - m) - \log \sum_j e^{x_j - m}

    An entry more than ``max_float`` below the maximum gives ``-inf``, the
    correctly rounded value. Convention: docs/conventions.rst, section 4.8.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import log_softmax
    >>> np.exp(log_softmax(np.array([[1e308, 1e308]]))).tolist()
    [[0.5, 0.5]]
    """
    xp = _check(x, axis, check_finite)
    return log_probabilities(xp, x, axis)


def log_softmax_vjp(x, cotangent, *, axis=-1, check_finite=True):
    r"""Cotangent ``(x,)`` of :func:`log_softmax`: :math:`\bar x = G - p \sum_j G_j`."""
    xp = _check(x, axis, check_finite, cotangent)
    p = probabilities(xp, x, axis)
    return SoftmaxCotangents(cotangent - p * xp.sum(cotangent, axis=axis, keepdims=True))
