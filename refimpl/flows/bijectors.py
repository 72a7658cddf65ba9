r"""refimpl's other invertible ops as flow layers: Glow's 1x1, circular, periodic convolutions, SVD layer.

Convention (docs/conventions.rst, section 3.7). Each wraps existing ops and
keeps the flow protocol (axis 0 the samples, one log-determinant per
sample, the same for every sample since these layers are linear):

==================  ==================  ==================================================
layer               ``x``               ``z`` and ``log|det|``
==================  ==================  ==================================================
``Glow1x1``         ``(n, c, H, W)``    :func:`~refimpl.flows.glow_conv1x1`, ``H W sum log|s|``
``CircularConv``    ``(n, N_1, ...)``   :func:`~refimpl.conv.circular_conv` over every axis
                                        but 0; ``sum_f log|K_hat[f]|``
``PeriodicConv``    ``(n, c, H, W)``    :func:`~refimpl.conv.periodic_conv`;
                                        ``sum_f log|det K_hat(f)|``
``SVDLinear``       ``(n, d)``          ``z = x W^T`` with ``W = U diag(s) V^T``
                                        (:func:`~refimpl.linalg.svd_linear` on ``x^T``);
                                        ``sum log|s|``
==================  ==================  ==================================================

The parameters' cotangents add the log-determinant's (the ``_slogdet_vjp``
ops, with ``sum_n glogdet_n``) to the output's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._validation import require_real_floating
from ..backend import get_namespace
from ..conv import (
    circular_conv,
    circular_conv_inverse,
    circular_conv_inverse_vjp,
    circular_conv_slogdet,
    circular_conv_slogdet_vjp,
    circular_conv_vjp,
    periodic_conv,
    periodic_conv_inverse,
    periodic_conv_inverse_vjp,
    periodic_conv_slogdet,
    periodic_conv_slogdet_vjp,
    periodic_conv_vjp,
)
from ..linalg import (
    svd_linear,
    svd_linear_inverse,
    svd_linear_inverse_vjp,
    svd_linear_slogdet,
    svd_linear_slogdet_vjp,
    svd_linear_vjp,
)
from ._bijector import (
    Bijector,
    FlowForward,
    FlowInverse,
    per_sample,
    require_flow_cotangents,
    require_samples,
    sample_axes,
)
from .glow import (
    _check_perm,
    glow_conv1x1,
    glow_conv1x1_inverse,
    glow_conv1x1_inverse_vjp,
    glow_conv1x1_slogdet,
    glow_conv1x1_slogdet_vjp,
    glow_conv1x1_vjp,
)

__all__ = ["CircularConv", "Glow1x1", "PeriodicConv", "SVDLinear"]


def _images(name, x):
    require_samples(name, x, 4, "(n, c, H, W)")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (n, c, H, W), got shape {tuple(x.shape)}")


def _total(g):
    """``sum_n glogdet_n``: every sample shares the log-determinant."""
    return get_namespace(g)[0].sum(g)


class _Linear(Bijector):
    """A linear layer: ``logdet`` is the same for every sample and the inverse's is its negative.

    Subclasses give ``_check(x, name)``, ``_apply(x)``, ``_apply_vjp(x, g) ->
    (dx, *dparams)``, the same for the inverse, ``_logabsdet(x)`` and
    ``_logabsdet_vjp(x, g) -> dparams`` (``x`` an input or output: both have
    the shape that fixes the operator, such as the grid).
    """

    def forward(self, x):
        self._check(x, "x")
        z = self._apply(x)
        return FlowForward(z, per_sample(get_namespace(z)[0], self._logabsdet(x), z))

    def inverse(self, z):
        self._check(z, "z")
        x = self._apply_inverse(z)
        return FlowInverse(x, per_sample(get_namespace(x)[0], -self._logabsdet(z), x))

    def forward_vjp(self, x, gz, glogdet):
        self._check(x, "x")
        require_flow_cotangents(x, gz, glogdet)
        dx, *dparams = self._apply_vjp(x, gz)
        return dx, self._cotangent(dparams, self._logabsdet_vjp(x, _total(glogdet)))

    def inverse_vjp(self, z, gx, glogdet):
        self._check(z, "z")
        require_flow_cotangents(z, gx, glogdet, out_name="x")
        dz, *dparams = self._apply_inverse_vjp(z, gx)
        return dz, self._cotangent(dparams, self._logabsdet_vjp(z, -_total(glogdet)))

    def _cotangent(self, dparams, dlogdet):
        return type(self)(*(a + b for a, b in zip(dparams, dlogdet)), **self._settings())

    def _settings(self):
        return {}


@dataclass(frozen=True, repr=False)
class Glow1x1(_Linear):
    """Glow's invertible 1x1 convolution (:func:`~refimpl.flows.glow_conv1x1`) on ``(n, c, H, W)``."""

    L: Any
    U: Any
    s: Any
    perm: tuple | None = None

    def __post_init__(self):
        require_real_floating("s", self.s)
        if self.s.ndim != 1:
            raise ValueError(f"s must have shape (c,), got {tuple(self.s.shape)}")
        object.__setattr__(self, "perm", _check_perm(self.perm, self.s.shape[0]))

    def _check(self, x, name):
        _images(name, x)

    def _settings(self):
        return {"perm": self.perm}

    def _apply(self, x):
        return glow_conv1x1(x, self.L, self.U, self.s, perm=self.perm)

    def _apply_vjp(self, x, g):
        return glow_conv1x1_vjp(x, self.L, self.U, self.s, g, perm=self.perm)

    def _apply_inverse(self, z):
        return glow_conv1x1_inverse(z, self.L, self.U, self.s, perm=self.perm)

    def _apply_inverse_vjp(self, z, g):
        return glow_conv1x1_inverse_vjp(z, self.L, self.U, self.s, g, perm=self.perm)

    def _logabsdet(self, x):
        return glow_conv1x1_slogdet(self.s, tuple(x.shape[-2:]), perm=self.perm).logabsdet

    def _logabsdet_vjp(self, x, g):
        xp = get_namespace(self.s)[0]
        ds = glow_conv1x1_slogdet_vjp(self.s, g, tuple(x.shape[-2:]), perm=self.perm).s
        return xp.zeros_like(self.L), xp.zeros_like(self.U), ds


@dataclass(frozen=True, repr=False)
class CircularConv(_Linear):
    """Circular convolution (:func:`~refimpl.conv.circular_conv`) of each sample by ``K`` of its shape."""

    K: Any

    def __post_init__(self):
        require_real_floating("K", self.K)

    def _check(self, x, name):
        require_samples(name, x, 2, "(n, N_1, ..., N_k)")
        if tuple(x.shape[1:]) != tuple(self.K.shape):
            raise ValueError(f"{name} must have shape (n,) + K.shape = (n, "
                             f"{', '.join(map(str, self.K.shape))}), got {tuple(x.shape)}")

    def _apply(self, x):
        return circular_conv(x, self.K, sample_axes(x))

    def _apply_vjp(self, x, g):
        return circular_conv_vjp(x, self.K, g, sample_axes(x))

    def _apply_inverse(self, z):
        return circular_conv_inverse(z, self.K, sample_axes(z))

    def _apply_inverse_vjp(self, z, g):
        return circular_conv_inverse_vjp(z, self.K, g, sample_axes(z))

    def _logabsdet(self, x):
        return circular_conv_slogdet(self.K).logabsdet

    def _logabsdet_vjp(self, x, g):
        return circular_conv_slogdet_vjp(self.K, g)


@dataclass(frozen=True, repr=False)
class PeriodicConv(_Linear):
    """Multi-channel periodic convolution (:func:`~refimpl.conv.periodic_conv`), ``K (c, c, H, W)``."""

    K: Any

    def __post_init__(self):
        require_real_floating("K", self.K)
        if self.K.ndim != 4 or self.K.shape[0] != self.K.shape[1]:
            raise ValueError(f"K must have shape (c, c, H, W), got {tuple(self.K.shape)}")

    def _check(self, x, name):
        _images(name, x)
        if tuple(x.shape[1:]) != (self.K.shape[1],) + tuple(self.K.shape[2:]):
            raise ValueError(f"{name} must have shape (n, c, H, W) = (n, {self.K.shape[1]}, "
                             f"{self.K.shape[2]}, {self.K.shape[3]}), got {tuple(x.shape)}")

    def _apply(self, x):
        return periodic_conv(x, self.K)

    def _apply_vjp(self, x, g):
        return periodic_conv_vjp(x, self.K, g)

    def _apply_inverse(self, z):
        return periodic_conv_inverse(z, self.K)

    def _apply_inverse_vjp(self, z, g):
        return periodic_conv_inverse_vjp(z, self.K, g)

    def _logabsdet(self, x):
        return periodic_conv_slogdet(self.K).logabsdet

    def _logabsdet_vjp(self, x, g):
        return periodic_conv_slogdet_vjp(self.K, g)


@dataclass(frozen=True, repr=False)
class SVDLinear(_Linear):
    """The SVD layer ``z = x W^T``, ``W = U diag(s) V^T`` (:func:`~refimpl.linalg.svd_linear`), ``(n, d)``."""

    Vu: Any
    s: Any
    Vv: Any

    def __post_init__(self):
        for name in ("Vu", "s", "Vv"):
            require_real_floating(name, getattr(self, name))
        if self.s.ndim != 1 or self.Vu.ndim != 2 or self.Vv.ndim != 2:
            raise ValueError(f"Vu, s, Vv must have shapes (n_u, d), (d,), (n_v, d), got "
                             f"{tuple(self.Vu.shape)}, {tuple(self.s.shape)}, {tuple(self.Vv.shape)}")

    def _factors(self):
        return self.Vu, self.s, self.Vv

    def _check(self, x, name):
        require_samples(name, x, 2)
        if x.ndim != 2:
            raise ValueError(f"{name} must have shape (n, d), got shape {tuple(x.shape)}")

    def _apply(self, x):
        xp = get_namespace(x)[0]
        return xp.matrix_transpose(svd_linear(*self._factors(), xp.matrix_transpose(x)))

    def _apply_vjp(self, x, g):
        xp = get_namespace(x)[0]
        dVu, ds, dVv, dX = svd_linear_vjp(*self._factors(), xp.matrix_transpose(x),
                                          xp.matrix_transpose(g))
        return xp.matrix_transpose(dX), dVu, ds, dVv

    def _apply_inverse(self, z):
        xp = get_namespace(z)[0]
        return xp.matrix_transpose(svd_linear_inverse(*self._factors(), xp.matrix_transpose(z)))

    def _apply_inverse_vjp(self, z, g):
        xp = get_namespace(z)[0]
        dVu, ds, dVv, dY = svd_linear_inverse_vjp(*self._factors(), xp.matrix_transpose(z),
                                                  xp.matrix_transpose(g))
        return xp.matrix_transpose(dY), dVu, ds, dVv

    def _logabsdet(self, x):
        return svd_linear_slogdet(*self._factors()).logabsdet

    def _logabsdet_vjp(self, x, g):
        return svd_linear_slogdet_vjp(*self._factors(), g)
