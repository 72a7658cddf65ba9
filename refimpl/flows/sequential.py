r"""Compositions of flow layers, the density of a flow under a standard normal base, and sampling.

Convention (docs/conventions.rst, section 3.8). ``Sequential(layers)``
applies ``f = f_L o ... o f_1`` (``layers[0]`` first); log-determinants add:

.. math::  \log|\det J_f(x)| = \sum_l \log|\det J_{f_l}(x_{l-1})|,\qquad x_0 = x,\ x_l = f_l(x_{l-1}).

With the base ``N(0, I)`` on ``z = f(x)`` (the *normalizing* direction,
nflows' ``Flow.log_prob``; normflows' and TFP's ``forward`` is the sampling
direction ``f^{-1}``):

.. math::  \log p(x) = \log \mathcal N(f(x); 0, I) + \log|\det J_f(x)|,

and ``sample(flow, z)`` returns ``x = f^{-1}(z)`` with
``log p(x) = log N(z; 0, I) - log|det J_{f^{-1}}(z)|``. Every function here
takes any flow layer (a single layer or a ``Sequential``) and has a VJP
with respect to its input and every parameter of every layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from .._results import cotangent_type
from .._validation import require_real_floating, require_same_dtype
from ..backend import get_namespace
from ..nn.network import _in_layer
from ._bijector import (
    Bijector,
    FlowForward,
    FlowInverse,
    require_bijector,
    require_flow_cotangents,
    require_samples,
    standard_normal_logpdf,
)

__all__ = [
    "Bijector",
    "FlowForward",
    "FlowInverse",
    "FlowSample",
    "Sequential",
    "flow_forward",
    "flow_forward_vjp",
    "flow_inverse",
    "flow_inverse_vjp",
    "log_prob",
    "log_prob_vjp",
    "sample",
    "sample_vjp",
]

FlowCotangents = cotangent_type("FlowCotangents", "flow x")
FlowInverseCotangents = cotangent_type("FlowInverseCotangents", "flow z")


class FlowSample(NamedTuple):
    """``(x, log_prob)``: a sample ``x = f^{-1}(z)`` and its log density, shape ``(n,)``."""

    x: Any
    log_prob: Any


@dataclass(frozen=True, repr=False)
class Sequential(Bijector):
    """The composition ``f_L o ... o f_1`` of flow layers (``layers[0]`` acts first)."""

    layers: tuple

    def __post_init__(self):
        if not isinstance(self.layers, (list, tuple)):
            raise TypeError(f"layers must be a list of flow layers, got {type(self.layers).__name__}")
        for i, layer in enumerate(self.layers):
            require_bijector(f"layers[{i}]", layer)
        object.__setattr__(self, "layers", tuple(self.layers))

    def __repr__(self):
        return f"Sequential({list(self.layers)!r})"

    def _trace(self, x):
        """``([x_0, ..., x_L], sum of log-determinants)`` through the layers in order."""
        values, logdet = [x], None
        for i, layer in enumerate(self.layers):
            z, ld = _in_layer(i, layer, layer.forward, values[-1])
            values.append(z)
            logdet = ld if logdet is None else logdet + ld
        return values, logdet

    def _inverse_trace(self, z):
        """``([z_L, ..., z_0], sum of log-determinants)`` through the inverses, last layer first."""
        values, logdet = [z], None
        for i in reversed(range(len(self.layers))):
            x, ld = _in_layer(i, self.layers[i], self.layers[i].inverse, values[-1])
            values.append(x)
            logdet = ld if logdet is None else logdet + ld
        return values, logdet

    def forward(self, x):
        if not self.layers:
            return _identity(x, FlowForward)
        values, logdet = self._trace(x)
        return FlowForward(values[-1], logdet)

    def inverse(self, z):
        if not self.layers:
            return _identity(z, FlowInverse)
        values, logdet = self._inverse_trace(z)
        return FlowInverse(values[-1], logdet)

    def forward_vjp(self, x, gz, glogdet):
        """Backpropagation, last layer first; every layer's log-determinant takes ``glogdet``."""
        values, _ = self._trace(x)
        g, dlayers = gz, [None] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            g, dlayers[i] = _in_layer(i, self.layers[i], self.layers[i].forward_vjp, values[i],
                                      g, glogdet)
        return g, Sequential(dlayers)

    def inverse_vjp(self, z, gx, glogdet):
        """Backpropagation through the inverses, first layer's inverse (the last applied) first."""
        values, _ = self._inverse_trace(z)
        count = len(self.layers)
        g, dlayers = gx, [None] * count
        for step in reversed(range(count)):  # values[step] is the input of layer count-1-step
            i = count - 1 - step
            g, dlayers[i] = _in_layer(i, self.layers[i], self.layers[i].inverse_vjp, values[step],
                                      g, glogdet)
        return g, Sequential(dlayers)


def _identity(x, result):
    xp, _ = get_namespace(x)
    return result(x, xp.zeros((x.shape[0],), dtype=x.dtype, device=x.device))


def _flow_and_data(flow, x, data):
    require_bijector("flow", flow)
    require_samples(data, x, 2, "(n, ...)")


def _require_per_sample(name, g, x):
    require_real_floating(name, g)
    get_namespace(x, g)
    require_same_dtype(**{name: g, "x": x})
    if tuple(g.shape) != (x.shape[0],):
        raise ValueError(f"{name} must have shape (n,) = ({x.shape[0]},), got {tuple(g.shape)}")


def flow_forward(flow, x):
    r"""The normalizing direction of a flow: ``FlowForward(z, logdet)`` with ``z = f(x)``.

    .. math::  z = f(x),\qquad \mathrm{logdet}_n = \log|\det \partial z_n / \partial x_n|

    Parameters
    ----------
    flow : flow layer
        A single layer or a :class:`Sequential`.
    x : (n, ...) array
        Samples along axis 0, in the first layer's layout.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.flows import ActNorm, Reverse, Sequential, flow_forward
    >>> flow = Sequential([ActNorm(np.log(np.array([2.0, 4.0])), np.zeros(2)), Reverse()])
    >>> z, logdet = flow_forward(flow, np.array([[1.0, 1.0]]))
    >>> z.tolist(), bool(np.isclose(logdet[0], np.log(8.0)))
    ([[4.0, 2.0]], True)
    """
    _flow_and_data(flow, x, "x")
    return flow.forward(x)


def flow_forward_vjp(flow, x, gz, glogdet):
    r"""Cotangents ``(flow, x)`` of :func:`flow_forward` for ``gz`` and ``glogdet``.

    ``flow``'s cotangent is a layer of its type (a ``Sequential`` of layers)
    holding every parameter's cotangent.
    """
    _flow_and_data(flow, x, "x")
    require_flow_cotangents(x, gz, glogdet)
    dx, dflow = flow.forward_vjp(x, gz, glogdet)
    return FlowCotangents(dflow, dx)


def flow_inverse(flow, z):
    r"""The sampling direction: ``FlowInverse(x, logdet)``, ``x = f^{-1}(z)``, ``logdet = log|det dx/dz|``."""
    _flow_and_data(flow, z, "z")
    return flow.inverse(z)


def flow_inverse_vjp(flow, z, gx, glogdet):
    """Cotangents ``(flow, z)`` of :func:`flow_inverse`."""
    _flow_and_data(flow, z, "z")
    require_flow_cotangents(z, gx, glogdet, out_name="x")
    dz, dflow = flow.inverse_vjp(z, gx, glogdet)
    return FlowInverseCotangents(dflow, dz)


def log_prob(flow, x):
    r"""Log density of ``x`` under the flow with a standard normal base, shape ``(n,)``.

    .. math::  \log p(x_n) = -\tfrac12 \lVert f(x_n)\rVert^2 - \tfrac D2 \log 2\pi
               + \log|\det J_f(x_n)|,

    ``D`` the size of one sample. The training loss is ``-mean(log_prob)``.

    Examples
    --------
    A single ActNorm maps ``N(-b e^{-a}, e^{-2a})`` to ``N(0, 1)``:

    >>> import numpy as np, scipy.stats
    >>> from refimpl.flows import ActNorm, log_prob
    >>> a, b, x = np.array([0.5]), np.array([1.0]), np.array([[0.3], [-2.0]])
    >>> expected = scipy.stats.norm.logpdf(x[:, 0], loc=-b * np.exp(-a), scale=np.exp(-a))
    >>> bool(np.allclose(log_prob(ActNorm(a, b), x), expected))
    True
    """
    z, logdet = flow_forward(flow, x)
    return standard_normal_logpdf(get_namespace(z)[0], z) + logdet


def log_prob_vjp(flow, x, g):
    r"""Cotangents ``(flow, x)`` of :func:`log_prob` for ``g`` of shape ``(n,)``.

    ``g = 1`` gives the gradient of ``sum_n log p(x_n)`` with respect to ``x``
    and every parameter: the flow's backward with ``gz = -g z`` and
    ``glogdet = g``.
    """
    _flow_and_data(flow, x, "x")
    _require_per_sample("g", g, x)
    z, _ = flow.forward(x)
    gz = -_broadcast_per_sample(get_namespace(z)[0], g, z) * z
    dx, dflow = flow.forward_vjp(x, gz, g)
    return FlowCotangents(dflow, dx)


def _broadcast_per_sample(xp, g, like):
    return xp.reshape(g, (g.shape[0],) + (1,) * (like.ndim - 1))


def sample(flow, z):
    r"""Samples ``x = f^{-1}(z)`` of the flow from base draws ``z`` (an input), with their log density.

    .. math::  x = f^{-1}(z),\qquad \log p(x_n) = \log\mathcal N(z_n; 0, I)
               - \log|\det J_{f^{-1}}(z_n)|

    Returns
    -------
    FlowSample(x, log_prob) : arrays of shapes ``z.shape`` and ``(n,)``
    """
    _flow_and_data(flow, z, "z")
    x, logdet = flow.inverse(z)
    return FlowSample(x, standard_normal_logpdf(get_namespace(z)[0], z) - logdet)


def sample_vjp(flow, z, gx, glog_prob):
    r"""Cotangents ``(flow, z)`` of :func:`sample` for ``gx`` and ``glog_prob``.

    The inverse's backward with ``(gx, -glog_prob)`` (its log-determinant
    enters with a minus) plus the base density's ``-glog_prob z``.
    """
    _flow_and_data(flow, z, "z")
    require_flow_cotangents(z, gx, glog_prob, out_name="x", logdet_name="glog_prob")
    dz, dflow = flow.inverse_vjp(z, gx, -glog_prob)
    xp, _ = get_namespace(z)
    return FlowInverseCotangents(dflow, dz - _broadcast_per_sample(xp, glog_prob, z) * z)
