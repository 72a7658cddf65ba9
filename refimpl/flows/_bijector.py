r"""The protocol every flow layer keeps, its result types and the checks its functions share.

A layer is a frozen dataclass of arrays (its parameters) and settings, like
the :mod:`refimpl.nn` layers; the math lives in the member modules'
functions. Every layer has

* ``forward(x) -> FlowForward(z, logdet)`` with ``logdet[n] = log|det dz_n/dx_n|``,
* ``inverse(z) -> FlowInverse(x, logdet)`` with ``logdet[n] = log|det dx_n/dz_n|``
  (minus the forward's at the same point),
* ``forward_vjp(x, gz, glogdet) -> (dx, dlayer)`` and
  ``inverse_vjp(z, gx, glogdet) -> (dz, dlayer)``: the cotangents of the input and,
  as a layer of the same type, of every parameter, for the cotangents ``gz``
  (or ``gx``) of the output and ``glogdet`` of the log-determinant.

Axis 0 of ``x`` indexes samples; ``logdet`` has shape ``(n,)``.
Convention: docs/conventions.rst, section 3.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from .._special import LOG_2PI
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ..nn._layer import Layer


class FlowForward(NamedTuple):
    """``(z, logdet)``: a layer's output and ``log|det dz/dx|`` per sample, shape ``(n,)``."""

    z: Any
    logdet: Any


class FlowInverse(NamedTuple):
    """``(x, logdet)``: an inverse's output and ``log|det dx/dz|`` per sample, shape ``(n,)``."""

    x: Any
    logdet: Any


class Bijector:
    """Base of the flow layers: frozen dataclasses with ``forward``, ``inverse`` and their VJPs.

    Subclasses implement ``forward``, ``inverse``, ``forward_vjp`` and
    ``inverse_vjp`` (see the module docstring) by calling their member's
    functions.
    """

    # As refimpl.nn's layers: the parameter arrays by field name, and a repr with their shapes.
    arrays = Layer.arrays
    __repr__ = Layer.__repr__


def require_bijector(name, flow) -> None:
    """TypeError unless ``flow`` is a flow layer (a :class:`Bijector`)."""
    if not isinstance(flow, Bijector):
        raise TypeError(f"{name} must be a refimpl.flows layer (AffineCoupling, ActNorm, "
                        f"Sequential, ...), got {type(flow).__name__}")


def require_samples(name, x, min_ndim=2, meaning="(n, d)"):
    """``x`` is a real floating array of at least ``min_ndim`` axes, axis 0 the samples."""
    require_real_floating(name, x)
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have shape {meaning} (axis 0 the samples), "
                         f"got shape {tuple(x.shape)}")


def require_flow_cotangents(data, g_out, glogdet, out_name="z", logdet_name="glogdet"):
    """Cotangents of a layer's output (the shape of its input ``data``) and log-determinant ``(n,)``.

    ``out_name`` names the output (``z`` for a forward, ``x`` for an inverse),
    so the cotangents are ``g<out_name>`` and ``logdet_name``.
    """
    data_name = "x" if out_name == "z" else "z"
    for name, g in ((f"g{out_name}", g_out), (logdet_name, glogdet)):
        require_real_floating(name, g)
    get_namespace(data, g_out, glogdet)
    require_same_dtype(**{data_name: data, f"g{out_name}": g_out, logdet_name: glogdet})
    if tuple(g_out.shape) != tuple(data.shape):
        raise ValueError(f"g{out_name} must have the output's shape {tuple(data.shape)}, "
                         f"got {tuple(g_out.shape)}")
    if tuple(glogdet.shape) != (data.shape[0],):
        raise ValueError(f"{logdet_name} must have shape (n,) = ({data.shape[0]},), "
                         f"got {tuple(glogdet.shape)}")


def per_sample(xp, value, like):
    """A log-determinant that does not depend on the sample, as an ``(n,)`` array for ``like``."""
    return xp.broadcast_to(xp.asarray(value, dtype=like.dtype, device=like.device),
                           (like.shape[0],))


def sample_axes(x) -> tuple:
    """Every axis of ``x`` but the first (the samples)."""
    return tuple(range(1, x.ndim))


def standard_normal_logpdf(xp, z):
    r"""``log N(z_n; 0, I) = -||z_n||^2 / 2 - D/2 log 2 pi`` per sample, ``D`` the size of ``z_n``."""
    size = 1
    for n in z.shape[1:]:
        size *= n
    return -0.5 * xp.sum(z * z, axis=sample_axes(z)) - 0.5 * size * LOG_2PI


def add_trees(a, b):
    """The sum of two cotangents of one structure (layers, lists, arrays); settings from ``a``."""
    if hasattr(a, "shape") and hasattr(a, "dtype"):
        return a + b
    if isinstance(a, (list, tuple)):
        return type(a)(add_trees(x, y) for x, y in zip(a, b))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return dataclasses.replace(a, **{f.name: add_trees(getattr(a, f.name), getattr(b, f.name))
                                         for f in dataclasses.fields(a) if f.init})
    return a
