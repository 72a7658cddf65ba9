r"""Coupling layers: additive (NICE) and affine (RealNVP), with the scale conventions of nflows, Glow, FrEIA.

Convention (docs/conventions.rst, section 3.2). ``x`` is ``(n, d)``; the
boolean ``mask`` of shape ``(d,)`` marks the **transformed** features (nflows:
``mask > 0``); the others, in increasing order, are the identity features
``x_a`` and the conditioner's input. The conditioner is a list of
:mod:`refimpl.nn` layers. With ``m`` transformed features ``x_b``:

.. math::  \text{additive:}\quad z_b = x_b + t(x_a),\qquad \log|\det| = 0,

.. math::  \text{affine:}\quad z_b = x_b \odot s + t,\qquad \log|\det| = \sum_j \log s_j,
           \qquad s = \sigma(u),\ (t, u) = \mathrm{split}(\mathrm{NN}(x_a)),

and ``z_a = x_a``. The conditioner maps ``(n, d - m)`` to ``(n, m)``
(additive) or ``(n, 2m)`` (affine). ``scale`` names the squashing ``sigma``
and ``split`` where ``t`` and ``u`` sit in the conditioner's output:

==========  =====================================  =====================
``scale``   ``s = sigma(u)``                       used by
==========  =====================================  =====================
"nflows"    ``sigmoid(u + 2) + 1e-3`` (default)    nflows
"glow"      ``sigmoid(u + 2)``                     Glow, normflows
"exp"       ``exp(u)``                             RealNVP, TFP
"tanh"      ``exp(clamp tanh(u))``                 RealNVP's soft clamp
"atan"      ``exp(clamp 0.636 atan(u))``           FrEIA (clamp 2)
==========  =====================================  =====================

``split``: ``"shift_first"`` (default, nflows: ``t = h[:, :m]``,
``u = h[:, m:]``), ``"scale_first"`` (FrEIA) or ``"interleaved"`` (Glow,
normflows: ``t = h[:, 0::2]``, ``u = h[:, 1::2]``). The VJP derivations are in
``docs/blocks/flows.rst``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._results import cotangent_type
from ..backend import get_namespace
from ..nn import sequential, sequential_vjp, sigmoid
from ..nn._layer import Layer
from ._bijector import (
    Bijector,
    FlowForward,
    FlowInverse,
    per_sample,
    require_flow_cotangents,
    require_samples,
)

__all__ = [
    "SCALES",
    "SPLITS",
    "AdditiveCoupling",
    "AffineCoupling",
    "additive_coupling",
    "additive_coupling_inverse",
    "additive_coupling_inverse_vjp",
    "additive_coupling_vjp",
    "affine_coupling",
    "affine_coupling_inverse",
    "affine_coupling_inverse_vjp",
    "affine_coupling_vjp",
]

SCALES = ("nflows", "glow", "exp", "tanh", "atan")
SPLITS = ("shift_first", "scale_first", "interleaved")
NFLOWS_SCALE_FLOOR = 1e-3  # nflows adds it to the sigmoid: s >= 1e-3, log s finite
FREIA_ATAN = 0.636  # FrEIA's constant (about 2 / pi): |log s| < clamp

CouplingCotangents = cotangent_type("CouplingCotangents", "x mask conditioner")
CouplingInverseCotangents = cotangent_type("CouplingInverseCotangents", "z mask conditioner")


# ---------------------------------------------------------------------------
# The split of the features by the mask, and the conditioner
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Coupling:
    """Which features pass through (``identity``) and which are transformed, as index arrays.

    ``merge_order`` takes ``concat([identity part, transformed part])`` back to
    the original feature order.
    """

    xp: Any
    identity: Any
    transformed: Any
    merge_order: Any

    def parts(self, x):
        return self.xp.take(x, self.identity, axis=1), self.xp.take(x, self.transformed, axis=1)

    def merge(self, a, b):
        return self.xp.take(self.xp.concat([a, b], axis=1), self.merge_order, axis=1)


def _require_conditioner(conditioner):
    if isinstance(conditioner, Layer) or not isinstance(conditioner, (list, tuple)):
        raise TypeError(f"conditioner must be a list of refimpl.nn layers, "
                        f"got {type(conditioner).__name__}")
    for i, layer in enumerate(conditioner):
        if not isinstance(layer, Layer):
            raise TypeError(f"conditioner[{i}] must be a refimpl.nn layer, got {type(layer).__name__}")


def _coupling_inputs(x, mask, conditioner, data="x", **cotangents) -> _Coupling:
    """Validate ``x (n, d)``, the boolean ``mask (d,)`` (both parts nonempty) and the conditioner."""
    require_samples(data, x, 2)
    if x.ndim != 2:
        raise ValueError(f"{data} must have shape (n, d), got shape {tuple(x.shape)}")
    if not hasattr(mask, "dtype") or "bool" not in str(mask.dtype):
        raise TypeError(f"mask must be a boolean array (True = transformed feature), "
                        f"got {getattr(mask, 'dtype', type(mask).__name__)}")
    xp, _ = get_namespace(x, mask, *cotangents.values())
    if tuple(mask.shape) != (x.shape[1],):
        raise ValueError(f"mask must have shape (d,) = ({x.shape[1]},), got {tuple(mask.shape)}")
    transformed = int(xp.sum(xp.astype(mask, xp.int64)))
    if not 0 < transformed < x.shape[1]:
        raise ValueError(f"mask must mark at least one transformed (True) and one identity "
                         f"(False) feature, got {transformed} of {x.shape[1]} transformed")
    _require_conditioner(conditioner)
    identity_idx = xp.nonzero(~mask)[0]
    transformed_idx = xp.nonzero(mask)[0]
    order = xp.argsort(xp.concat([identity_idx, transformed_idx]))
    return _Coupling(xp, identity_idx, transformed_idx, order)


def _conditioner_output(conditioner, x_a, width):
    """``NN(x_a)``, required to have shape ``(n, width)``."""
    h = sequential(conditioner, x_a)
    if tuple(h.shape) != (x_a.shape[0], width):
        raise ValueError(f"conditioner must map (n, {x_a.shape[1]}) identity features to "
                         f"(n, {width}), got shape {tuple(h.shape)}")
    return h


# ---------------------------------------------------------------------------
# The scale conventions
# ---------------------------------------------------------------------------


def _check_options(scale, split, clamp):
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not (isinstance(clamp, (int, float)) and not isinstance(clamp, bool) and clamp > 0):
        raise ValueError(f"clamp must be a positive number, got {clamp!r}")


def _squash(xp, u, scale, clamp):
    r"""``(s, log s, d log s / du)`` of the named convention, each stable for every finite ``u``.

    ``1 - sigmoid(a)`` is evaluated as ``sigmoid(-a)`` and ``log sigmoid(a)``
    as ``-logaddexp(0, -a)``: neither loses digits when the sigmoid saturates.
    """
    if scale in ("nflows", "glow"):
        a = u + 2.0
        sig, rest = sigmoid(a), sigmoid(-a)
        if scale == "glow":
            return sig, -xp.logaddexp(xp.zeros_like(a), -a), rest
        s = sig + NFLOWS_SCALE_FLOOR
        return s, xp.log(s), sig * rest / s
    if scale == "exp":
        return xp.exp(u), u, xp.ones_like(u)
    if scale == "tanh":
        t = xp.tanh(u)
        log_s = clamp * t
        return xp.exp(log_s), log_s, clamp * (1.0 - t * t)
    log_s = (clamp * FREIA_ATAN) * xp.atan(u)
    return xp.exp(log_s), log_s, (clamp * FREIA_ATAN) / (1.0 + u * u)


def _shift_and_raw_scale(h, m, split):
    """``(t, u)`` from the conditioner output ``h (n, 2m)``."""
    if split == "shift_first":
        return h[:, :m], h[:, m:]
    if split == "scale_first":
        return h[:, m:], h[:, :m]
    return h[:, 0::2], h[:, 1::2]


def _join(xp, dt, du, split):
    """The cotangent of ``h`` from those of ``t`` and ``u``: the adjoint of the split."""
    if split == "shift_first":
        return xp.concat([dt, du], axis=1)
    if split == "scale_first":
        return xp.concat([du, dt], axis=1)
    return xp.reshape(xp.stack([dt, du], axis=-1), (dt.shape[0], 2 * dt.shape[1]))


@dataclass(frozen=True)
class _Affine:
    """The conditioner's values at the identity features: ``t``, ``s``, ``log s``, ``dlog s/du``."""

    x_a: Any
    shift: Any
    s: Any
    log_s: Any
    dlog_s: Any


def _affine_parameters(c: _Coupling, conditioner, x_a, m, scale, split, clamp) -> _Affine:
    h = _conditioner_output(conditioner, x_a, 2 * m)
    shift, u = _shift_and_raw_scale(h, m, split)
    return _Affine(x_a, shift, *_squash(c.xp, u, scale, clamp))


# ---------------------------------------------------------------------------
# Additive coupling (NICE)
# ---------------------------------------------------------------------------


def additive_coupling(x, mask, conditioner):
    r"""NICE's additive coupling: ``z_b = x_b + t(x_a)``, ``z_a = x_a``, log-determinant 0.

    .. math::  z_{\text{mask}} = x_{\text{mask}} + \mathrm{NN}(x_{\lnot\text{mask}}),\qquad
               z_{\lnot\text{mask}} = x_{\lnot\text{mask}}.

    Parameters
    ----------
    x : (n, d) array
    mask : (d,) bool array
        True for the transformed features (nflows' ``mask > 0``); at least one
        of each kind.
    conditioner : list of refimpl.nn layers
        Maps the ``(n, d - m)`` identity features to ``(n, m)`` shifts.

    Returns
    -------
    FlowForward(z, logdet) : (n, d) and (n,) arrays

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import Linear
    >>> from refimpl.flows import additive_coupling
    >>> x, mask = np.array([[1.0, 2.0]]), np.array([False, True])
    >>> additive_coupling(x, mask, [Linear(np.array([[3.0]]))]).z.tolist()
    [[1.0, 5.0]]
    """
    c = _coupling_inputs(x, mask, conditioner)
    x_a, x_b = c.parts(x)
    z_b = x_b + _conditioner_output(conditioner, x_a, x_b.shape[1])
    return FlowForward(c.merge(x_a, z_b), per_sample(c.xp, 0.0, x))


def additive_coupling_vjp(x, mask, conditioner, gz, glogdet):
    r"""Cotangents ``(x, mask, conditioner)`` of :func:`additive_coupling`.

    .. math::  \bar x_b = g_b,\qquad (\overline{\mathrm{NN}}, \bar x_a^{\,\mathrm{NN}})
               = \mathrm{NN}^*(x_a; g_b),\qquad \bar x_a = g_a + \bar x_a^{\,\mathrm{NN}}.

    ``mask`` takes no cotangent (``None``); the conditioner's is a list of
    layers holding its parameters' cotangents. ``glogdet`` multiplies a
    log-determinant that is identically 0.
    """
    c = _coupling_inputs(x, mask, conditioner, gz=gz, glogdet=glogdet)
    require_flow_cotangents(x, gz, glogdet)
    x_a, _ = c.parts(x)
    g_a, g_b = c.parts(gz)
    d_cond, d_a = sequential_vjp(conditioner, x_a, g_b)
    return CouplingCotangents(c.merge(g_a + d_a, g_b), None, d_cond)


def additive_coupling_inverse(z, mask, conditioner):
    r"""Inverse of :func:`additive_coupling`: ``x_b = z_b - t(z_a)``, ``x_a = z_a``, log-determinant 0."""
    c = _coupling_inputs(z, mask, conditioner, data="z")
    z_a, z_b = c.parts(z)
    x_b = z_b - _conditioner_output(conditioner, z_a, z_b.shape[1])
    return FlowInverse(c.merge(z_a, x_b), per_sample(c.xp, 0.0, z))


def additive_coupling_inverse_vjp(z, mask, conditioner, gx, glogdet):
    r"""Cotangents ``(z, mask, conditioner)`` of :func:`additive_coupling_inverse`.

    ``dz_b = g_b``; the conditioner's backward runs with ``-g_b`` and its input
    cotangent adds to ``dz_a = g_a``.
    """
    c = _coupling_inputs(z, mask, conditioner, data="z", gx=gx, glogdet=glogdet)
    require_flow_cotangents(z, gx, glogdet, out_name="x")
    z_a, _ = c.parts(z)
    g_a, g_b = c.parts(gx)
    d_cond, d_a = sequential_vjp(conditioner, z_a, -g_b)
    return CouplingInverseCotangents(c.merge(g_a + d_a, g_b), None, d_cond)


# ---------------------------------------------------------------------------
# Affine coupling (RealNVP)
# ---------------------------------------------------------------------------


def affine_coupling(x, mask, conditioner, *, scale="nflows", split="shift_first", clamp=2.0):
    r"""RealNVP's affine coupling: ``z_b = x_b * s + t``, ``z_a = x_a``, ``log|det| = sum log s``.

    .. math::  (t, u) = \mathrm{split}(\mathrm{NN}(x_a)),\quad s = \sigma(u),\quad
               z_b = x_b \odot s + t,\quad \log|\det| = \sum_j \log s_j.

    Parameters
    ----------
    x : (n, d) array
    mask : (d,) bool array
        True for the transformed features (nflows' ``mask > 0``).
    conditioner : list of refimpl.nn layers
        Maps the ``(n, d - m)`` identity features to ``(n, 2m)``.
    scale : {"nflows", "glow", "exp", "tanh", "atan"}
        The squashing ``s = sigma(u)`` (module docstring); default nflows'
        ``sigmoid(u + 2) + 1e-3``.
    split : {"shift_first", "scale_first", "interleaved"}
        Where ``t`` and ``u`` sit in the conditioner's output; default nflows'.
    clamp : float
        The bound ``|log s| < clamp`` of ``"tanh"`` and ``"atan"`` (FrEIA's
        default 2); unused otherwise.

    Returns
    -------
    FlowForward(z, logdet) : (n, d) and (n,) arrays

    Examples
    --------
    A zero conditioner gives ``t = 0`` and nflows' ``s = sigmoid(2) + 1e-3``:

    >>> import numpy as np
    >>> from refimpl.nn import Linear
    >>> from refimpl.flows import affine_coupling, affine_coupling_inverse
    >>> x, mask = np.array([[1.0, 2.0]]), np.array([False, True])
    >>> net = [Linear(np.zeros((2, 1)))]
    >>> z, logdet = affine_coupling(x, mask, net)
    >>> s = 1 / (1 + np.exp(-2.0)) + 1e-3
    >>> bool(np.allclose(z, [[1.0, 2.0 * s]]) and np.allclose(logdet, np.log(s)))
    True
    >>> bool(np.allclose(affine_coupling_inverse(z, mask, net).x, x))
    True
    """
    _check_options(scale, split, clamp)
    c = _coupling_inputs(x, mask, conditioner)
    x_a, x_b = c.parts(x)
    p = _affine_parameters(c, conditioner, x_a, x_b.shape[1], scale, split, clamp)
    return FlowForward(c.merge(x_a, x_b * p.s + p.shift), c.xp.sum(p.log_s, axis=1))


def affine_coupling_vjp(x, mask, conditioner, gz, glogdet, *, scale="nflows",
                        split="shift_first", clamp=2.0):
    r"""Cotangents ``(x, mask, conditioner)`` of :func:`affine_coupling`.

    With ``l = log s`` and ``l' = dl/du`` (``ds/du = s l'``):

    .. math::  \bar x_b = g_b \odot s,\qquad \bar t = g_b,\qquad
               \bar u = l' \odot (g_b \odot x_b \odot s + \bar\ell),

    ``bar ell`` being ``glogdet`` per sample; ``(t_bar, u_bar)`` joined as the
    conditioner's output cotangent go through its backward, whose input
    cotangent adds to ``dx_a = g_a``. ``mask`` takes none (``None``).
    """
    _check_options(scale, split, clamp)
    c = _coupling_inputs(x, mask, conditioner, gz=gz, glogdet=glogdet)
    require_flow_cotangents(x, gz, glogdet)
    x_a, x_b = c.parts(x)
    p = _affine_parameters(c, conditioner, x_a, x_b.shape[1], scale, split, clamp)
    g_a, g_b = c.parts(gz)
    du = p.dlog_s * (g_b * x_b * p.s + glogdet[:, None])
    d_cond, d_a = sequential_vjp(conditioner, x_a, _join(c.xp, g_b, du, split))
    return CouplingCotangents(c.merge(g_a + d_a, g_b * p.s), None, d_cond)


def affine_coupling_inverse(z, mask, conditioner, *, scale="nflows", split="shift_first",
                            clamp=2.0):
    r"""Inverse of :func:`affine_coupling`: ``x_b = (z_b - t) / s`` with ``(t, s)`` from ``NN(z_a)``.

    ``logdet = -sum log s``. Arguments as :func:`affine_coupling`, with ``z``.
    """
    _check_options(scale, split, clamp)
    c = _coupling_inputs(z, mask, conditioner, data="z")
    z_a, z_b = c.parts(z)
    p = _affine_parameters(c, conditioner, z_a, z_b.shape[1], scale, split, clamp)
    return FlowInverse(c.merge(z_a, (z_b - p.shift) / p.s), -c.xp.sum(p.log_s, axis=1))


def affine_coupling_inverse_vjp(z, mask, conditioner, gx, glogdet, *, scale="nflows",
                                split="shift_first", clamp=2.0):
    r"""Cotangents ``(z, mask, conditioner)`` of :func:`affine_coupling_inverse`.

    With ``x_b = (z_b - t) / s``:

    .. math::  \bar z_b = g_b / s,\qquad \bar t = -g_b / s,\qquad
               \bar u = -l' \odot (g_b \odot x_b + \bar\ell),

    then through the conditioner at ``z_a`` as in :func:`affine_coupling_vjp`.
    """
    _check_options(scale, split, clamp)
    c = _coupling_inputs(z, mask, conditioner, data="z", gx=gx, glogdet=glogdet)
    require_flow_cotangents(z, gx, glogdet, out_name="x")
    z_a, z_b = c.parts(z)
    p = _affine_parameters(c, conditioner, z_a, z_b.shape[1], scale, split, clamp)
    g_a, g_b = c.parts(gx)
    g_over_s = g_b / p.s
    du = -p.dlog_s * (g_over_s * (z_b - p.shift) + glogdet[:, None])
    d_cond, d_a = sequential_vjp(conditioner, z_a, _join(c.xp, -g_over_s, du, split))
    return CouplingInverseCotangents(c.merge(g_a + d_a, g_over_s), None, d_cond)


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------


def _static_mask(mask) -> tuple:
    """A layer keeps its mask as a tuple of bools: a setting, not a parameter array."""
    try:
        values = tuple(bool(m) for m in mask)
    except TypeError:
        raise TypeError(f"mask must be a sequence of bools, got {type(mask).__name__}") from None
    if not 0 < sum(values) < len(values):
        raise ValueError(f"mask must mark at least one transformed (True) and one identity "
                         f"(False) feature, got {values}")
    return values


def _mask_array(mask, x):
    xp, device = get_namespace(x)
    return xp.asarray(mask, dtype=xp.bool, device=device)


class _CouplingLayer(Bijector):
    """Shared checks of the coupling layers: the mask a tuple of bools, the conditioner a tuple."""

    def __post_init__(self):
        object.__setattr__(self, "mask", _static_mask(self.mask))
        _require_conditioner(self.conditioner)
        object.__setattr__(self, "conditioner", tuple(self.conditioner))

    def _call(self, fn, x, *cotangents):
        return fn(x, _mask_array(self.mask, x), list(self.conditioner), *cotangents,
                  **self._settings())

    def _with_conditioner(self, cotangents):
        return type(self)(self.mask, cotangents.conditioner, **self._settings())

    def forward(self, x):
        return self._call(self._ops[0], x)

    def inverse(self, z):
        return self._call(self._ops[2], z)

    def forward_vjp(self, x, gz, glogdet):
        c = self._call(self._ops[1], x, gz, glogdet)
        return c.x, self._with_conditioner(c)

    def inverse_vjp(self, z, gx, glogdet):
        c = self._call(self._ops[3], z, gx, glogdet)
        return c.z, self._with_conditioner(c)


@dataclass(frozen=True, repr=False)
class AdditiveCoupling(_CouplingLayer):
    """NICE's additive coupling layer (:func:`additive_coupling`); ``mask`` True = transformed."""

    mask: tuple
    conditioner: tuple
    _ops = (additive_coupling, additive_coupling_vjp, additive_coupling_inverse,
            additive_coupling_inverse_vjp)

    def _settings(self):
        return {}


@dataclass(frozen=True, repr=False)
class AffineCoupling(_CouplingLayer):
    """RealNVP's affine coupling layer (:func:`affine_coupling`) with its scale conventions."""

    mask: tuple
    conditioner: tuple
    scale: str = "nflows"
    split: str = "shift_first"
    clamp: float = 2.0
    _ops = (affine_coupling, affine_coupling_vjp, affine_coupling_inverse,
            affine_coupling_inverse_vjp)

    def __post_init__(self):
        super().__post_init__()
        _check_options(self.scale, self.split, self.clamp)

    def _settings(self):
        return {"scale": self.scale, "split": self.split, "clamp": self.clamp}
