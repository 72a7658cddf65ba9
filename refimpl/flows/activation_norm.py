r"""Activation normalisation (Glow's ActNorm, nflows' parametrisation) and its data-dependent init.

Convention (docs/conventions.rst, section 3.4). Per channel ``j`` of
``x (n, c, ...)`` (features of ``(n, c)``, channels of images):

.. math::  z = e^{a_j} x + b_j,\qquad \log|\det| = P \sum_j a_j,

``a = log_scale``, ``b = shift``, ``P`` the number of positions per channel
(``H W`` for images, 1 for vectors), as nflows' ``ActNorm``. Glow writes
``(x + b') e^{a}``: its ``b'`` is ``b e^{-a}`` here. ``actnorm_init(x)``
sets ``a = -log(std + eps)`` and ``b = -mean e^{a}`` over the batch (and the
positions), so that the output has zero mean and unit variance on that
batch: nflows (``ddof=1``, ``eps=0``, the defaults), normflows (``ddof=1``,
``eps=1e-6``), Glow (``ddof=0``, ``eps=1e-6``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from .._results import cotangent_type
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ._bijector import (
    Bijector,
    FlowForward,
    FlowInverse,
    per_sample,
    require_flow_cotangents,
    require_samples,
)

__all__ = [
    "ActNorm",
    "ActNormParams",
    "actnorm",
    "actnorm_init",
    "actnorm_init_vjp",
    "actnorm_inverse",
    "actnorm_inverse_vjp",
    "actnorm_vjp",
]

ActNormCotangents = cotangent_type("ActNormCotangents", "x log_scale shift")
ActNormInverseCotangents = cotangent_type("ActNormInverseCotangents", "z log_scale shift")
ActNormInitCotangents = cotangent_type("ActNormInitCotangents", "x")


class ActNormParams(NamedTuple):
    """``(log_scale, shift)`` of an :class:`ActNorm`, shape ``(c,)`` each."""

    log_scale: Any
    shift: Any


def _channel_axes(x) -> tuple:
    """The axes summed per channel: the samples and the positions (all but axis 1)."""
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(xp, v, x):
    """``v (c,)`` shaped to broadcast along axis 1 of ``x``."""
    return xp.reshape(v, (v.shape[0],) + (1,) * (x.ndim - 2))


def _positions(x) -> int:
    count = 1
    for n in x.shape[2:]:
        count *= n
    return count


def _actnorm_inputs(x, log_scale, shift, data="x", **cotangents):
    require_samples(data, x, 2, "(n, c, ...)")
    for name, arr in (("log_scale", log_scale), ("shift", shift)):
        require_real_floating(name, arr)
    xp, _ = get_namespace(x, log_scale, shift, *cotangents.values())
    require_same_dtype(**{data: x, "log_scale": log_scale, "shift": shift})
    c = x.shape[1]
    for name, arr in (("log_scale", log_scale), ("shift", shift)):
        if tuple(arr.shape) != (c,):
            raise ValueError(f"{name} must have shape (c,) = ({c},) for {data} of shape "
                             f"{tuple(x.shape)}, got {tuple(arr.shape)}")
    return xp


def _logdet(xp, log_scale, x):
    return per_sample(xp, float(_positions(x)) * xp.sum(log_scale), x)


def actnorm(x, log_scale, shift):
    r"""ActNorm: ``z = exp(log_scale) x + shift`` per channel, ``logdet = P sum(log_scale)``.

    .. math::  z_{n j \dots} = e^{a_j} x_{n j \dots} + b_j,\qquad \log|\det| = P \sum_j a_j

    Parameters
    ----------
    x : (n, c, ...) array
        Channel axis 1; ``P`` is the number of positions per channel (``H W``).
    log_scale, shift : (c,) arrays

    Returns
    -------
    FlowForward(z, logdet) : arrays of shapes ``x.shape`` and ``(n,)``

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.flows import actnorm
    >>> z, logdet = actnorm(np.array([[1.0, 2.0]]), np.log(np.array([2.0, 4.0])), np.array([0.5, 0.0]))
    >>> z.tolist(), bool(np.isclose(logdet[0], np.log(8.0)))
    ([[2.5, 8.0]], True)
    """
    xp = _actnorm_inputs(x, log_scale, shift)
    z = _per_channel(xp, xp.exp(log_scale), x) * x + _per_channel(xp, shift, x)
    return FlowForward(z, _logdet(xp, log_scale, x))


def actnorm_vjp(x, log_scale, shift, gz, glogdet):
    r"""Cotangents ``(x, log_scale, shift)`` of :func:`actnorm`.

    .. math::  \bar x = e^{a} g,\qquad
               \bar a_j = e^{a_j} \sum_{n, \dots} g\, x + P \sum_n \bar\ell_n,\qquad
               \bar b_j = \sum_{n, \dots} g.
    """
    xp = _actnorm_inputs(x, log_scale, shift, gz=gz, glogdet=glogdet)
    require_flow_cotangents(x, gz, glogdet)
    axes, scale = _channel_axes(x), xp.exp(log_scale)
    d_log_scale = scale * xp.sum(gz * x, axis=axes) + float(_positions(x)) * xp.sum(glogdet)
    return ActNormCotangents(_per_channel(xp, scale, x) * gz, d_log_scale, xp.sum(gz, axis=axes))


def actnorm_inverse(z, log_scale, shift):
    r"""Inverse of :func:`actnorm`: ``x = (z - shift) exp(-log_scale)``, ``logdet = -P sum(log_scale)``."""
    xp = _actnorm_inputs(z, log_scale, shift, data="z")
    x = (z - _per_channel(xp, shift, z)) * _per_channel(xp, xp.exp(-log_scale), z)
    return FlowInverse(x, _logdet(xp, -log_scale, z))


def actnorm_inverse_vjp(z, log_scale, shift, gx, glogdet):
    r"""Cotangents ``(z, log_scale, shift)`` of :func:`actnorm_inverse`.

    With ``x`` the inverse's output:

    .. math::  \bar z = e^{-a} g,\qquad \bar a_j = -\sum_{n, \dots} g\, x - P \sum_n \bar\ell_n,
               \qquad \bar b_j = -e^{-a_j} \sum_{n, \dots} g.
    """
    xp = _actnorm_inputs(z, log_scale, shift, data="z", gx=gx, glogdet=glogdet)
    require_flow_cotangents(z, gx, glogdet, out_name="x")
    axes = _channel_axes(z)
    inv = xp.exp(-log_scale)
    x = (z - _per_channel(xp, shift, z)) * _per_channel(xp, inv, z)
    d_log_scale = -xp.sum(gx * x, axis=axes) - float(_positions(z)) * xp.sum(glogdet)
    return ActNormInverseCotangents(_per_channel(xp, inv, z) * gx, d_log_scale,
                                    -inv * xp.sum(gx, axis=axes))


# ---------------------------------------------------------------------------
# Data-dependent initialisation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Moments:
    """Per-channel ``mean``, ``std`` (with ``ddof``), ``r = std + eps`` and the count ``N``."""

    mean: Any
    std: Any
    r: Any
    count: int


def _check_init(x, ddof, eps):
    require_samples("x", x, 2, "(n, c, ...)")
    if isinstance(ddof, bool) or not isinstance(ddof, int) or ddof < 0:
        raise ValueError(f"ddof must be a non-negative int, got {ddof!r}")
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps >= 0):
        raise ValueError(f"eps must be a non-negative number, got {eps!r}")
    count = x.shape[0] * _positions(x)
    if count <= ddof:
        raise ValueError(f"x must hold more than ddof = {ddof} values per channel, got {count}")
    return count


def _moments(x, ddof, eps) -> _Moments:
    count = _check_init(x, ddof, eps)
    xp, _ = get_namespace(x)
    axes = _channel_axes(x)
    mean = xp.mean(x, axis=axes)
    centred = x - _per_channel(xp, mean, x)
    std = xp.sqrt(xp.sum(centred * centred, axis=axes) / float(count - ddof))
    if not bool(xp.all(std > 0)):
        j = int(xp.argmin(std))
        raise ValueError(f"channel {j} of x is constant over the batch: its scale "
                         f"-log(std + eps) is undefined or meaningless")
    return _Moments(mean, std, std + eps, count)


def actnorm_init(x, *, ddof=1, eps=0.0):
    r"""Data-dependent initialisation of :class:`ActNorm` from a batch ``x (n, c, ...)``.

    .. math::  a_j = -\log(\mathrm{std}_j + \epsilon),\qquad b_j = -\mathrm{mean}_j\, e^{a_j},

    the statistics taken per channel over the samples and positions,
    ``std`` with ``ddof`` (the divisor is ``N - ddof``). Then
    ``actnorm(x, a, b)`` has zero mean and, for ``eps = 0``, unit variance on
    that batch. Defaults are nflows' (``torch.std``: ``ddof=1``, ``eps=0``);
    normflows uses ``eps=1e-6``, Glow ``ddof=0, eps=1e-6``. A constant channel
    is a ``ValueError`` naming it.

    Returns
    -------
    ActNormParams(log_scale, shift) : (c,) arrays

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.flows import actnorm, actnorm_init
    >>> x = np.random.default_rng(0).normal(3.0, 2.0, size=(100, 2))
    >>> z = actnorm(x, *actnorm_init(x)).z
    >>> bool(np.allclose(z.mean(axis=0), 0) and np.allclose(z.std(axis=0, ddof=1), 1))
    True
    """
    xp, _ = get_namespace(x)
    m = _moments(x, ddof, eps)
    return ActNormParams(-xp.log(m.r), -m.mean / m.r)


def actnorm_init_vjp(x, g_log_scale, g_shift, *, ddof=1, eps=0.0):
    r"""Cotangent ``(x,)`` of :func:`actnorm_init` for the cotangents of ``log_scale`` and ``shift``.

    With ``r = std + eps``, ``a = -log r`` and ``b = -mean / r``, the cotangent
    of ``r`` is ``-g_a / r + g_b mean / r^2`` and of the mean ``-g_b / r``; and
    ``d std / d x = (x - mean) / ((N - ddof) std)`` (the mean's own effect on
    ``std`` sums to zero), ``d mean / d x = 1 / N``.
    """
    for name, g in (("g_log_scale", g_log_scale), ("g_shift", g_shift)):
        require_real_floating(name, g)
    xp, _ = get_namespace(x, g_log_scale, g_shift)
    require_same_dtype(x=x, g_log_scale=g_log_scale, g_shift=g_shift)
    m = _moments(x, ddof, eps)
    for name, g in (("g_log_scale", g_log_scale), ("g_shift", g_shift)):
        if tuple(g.shape) != tuple(m.mean.shape):
            raise ValueError(f"{name} must have shape (c,) = {tuple(m.mean.shape)}, "
                             f"got {tuple(g.shape)}")
    g_r = -g_log_scale / m.r + g_shift * m.mean / (m.r * m.r)
    g_mean = -g_shift / m.r
    centred = x - _per_channel(xp, m.mean, x)
    d_std = _per_channel(xp, g_r / (float(m.count - ddof) * m.std), x) * centred
    return ActNormInitCotangents(d_std + _per_channel(xp, g_mean / float(m.count), x))


@dataclass(frozen=True, repr=False)
class ActNorm(Bijector):
    """Activation normalisation (:func:`actnorm`): ``log_scale`` and ``shift`` of shape ``(c,)``.

    ``ActNorm(*actnorm_init(x))`` is the data-dependent initialisation.
    """

    log_scale: Any
    shift: Any

    def __post_init__(self):
        for name in ("log_scale", "shift"):
            value = getattr(self, name)
            require_real_floating(name, value)
            if value.ndim != 1:
                raise ValueError(f"{name} must have shape (c,), got {tuple(value.shape)}")

    def forward(self, x):
        return actnorm(x, self.log_scale, self.shift)

    def inverse(self, z):
        return actnorm_inverse(z, self.log_scale, self.shift)

    def forward_vjp(self, x, gz, glogdet):
        c = actnorm_vjp(x, self.log_scale, self.shift, gz, glogdet)
        return c.x, ActNorm(c.log_scale, c.shift)

    def inverse_vjp(self, z, gx, glogdet):
        c = actnorm_inverse_vjp(z, self.log_scale, self.shift, gx, glogdet)
        return c.z, ActNorm(c.log_scale, c.shift)
