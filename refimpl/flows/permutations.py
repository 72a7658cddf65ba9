r"""Feature permutations as flow layers: a fixed ``perm`` (nflows' ``Permutation``) and ``Reverse``.

Convention (docs/conventions.rst, section 3.3). Along axis 1 of ``x``
(features, or channels of ``(n, c, H, W)`` images), ``z[:, i] = x[:, perm[i]]``
(``torch.index_select(x, 1, perm)``, as nflows); the inverse gathers with
``argsort(perm)``. ``|det| = 1``: the log-determinant is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._results import cotangent_type
from ..backend import get_namespace
from ._bijector import (
    Bijector,
    FlowForward,
    FlowInverse,
    per_sample,
    require_flow_cotangents,
    require_samples,
)
from .glow import _check_perm

__all__ = [
    "Permutation",
    "Reverse",
    "permutation",
    "permutation_inverse",
    "permutation_inverse_vjp",
    "permutation_vjp",
]

PermutationCotangents = cotangent_type("PermutationCotangents", "x")
PermutationInverseCotangents = cotangent_type("PermutationInverseCotangents", "z")


def _inverse(perm):
    inverse = [0] * len(perm)
    for i, j in enumerate(perm):
        inverse[j] = i
    return tuple(inverse)


def _require_perm(perm, d):
    """``perm`` as a tuple, a permutation of ``range(d)`` (``None`` is not one)."""
    if perm is None:
        raise TypeError("perm must be a sequence of ints, got None")
    return _check_perm(perm, d)


def _gather(x, perm, data="x"):
    """``x[:, perm]`` after checking ``x`` and ``perm`` (a permutation of ``range(x.shape[1])``)."""
    require_samples(data, x, 2, "(n, d, ...)")
    perm = _require_perm(perm, x.shape[1])
    xp, device = get_namespace(x)
    return xp.take(x, xp.asarray(perm, dtype=xp.int64, device=device), axis=1)


def permutation(x, *, perm):
    r"""Permute the features: ``z[:, i] = x[:, perm[i]]``, log-determinant 0.

    Parameters
    ----------
    x : (n, d, ...) array
        Axis 1 is permuted (features, or image channels).
    perm : sequence of int
        A permutation of ``range(d)``.

    Returns
    -------
    FlowForward(z, logdet) : arrays of shapes ``x.shape`` and ``(n,)``

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.flows import permutation
    >>> permutation(np.array([[10.0, 20.0, 30.0]]), perm=(2, 0, 1)).z.tolist()
    [[30.0, 10.0, 20.0]]
    """
    z = _gather(x, perm)
    return FlowForward(z, per_sample(get_namespace(x)[0], 0.0, x))


def permutation_vjp(x, gz, glogdet, *, perm):
    """Cotangent ``(x,)`` of :func:`permutation`: ``dx[:, perm[i]] = gz[:, i]`` (a gather by ``argsort``)."""
    require_samples("x", x, 2, "(n, d, ...)")
    require_flow_cotangents(x, gz, glogdet)
    return PermutationCotangents(_gather(gz, _inverse(_require_perm(perm, x.shape[1])), "gz"))


def permutation_inverse(z, *, perm):
    """Inverse of :func:`permutation`: ``x[:, perm[i]] = z[:, i]``, log-determinant 0."""
    require_samples("z", z, 2, "(n, d, ...)")
    x = _gather(z, _inverse(_require_perm(perm, z.shape[1])), "z")
    return FlowInverse(x, per_sample(get_namespace(z)[0], 0.0, z))


def permutation_inverse_vjp(z, gx, glogdet, *, perm):
    """Cotangent ``(z,)`` of :func:`permutation_inverse`: ``gx`` gathered by ``perm``."""
    require_samples("z", z, 2, "(n, d, ...)")
    require_flow_cotangents(z, gx, glogdet, out_name="x")
    return PermutationInverseCotangents(_gather(gx, perm, "gx"))


class _Permuting(Bijector):
    def forward(self, x):
        return permutation(x, perm=self._perm(x))

    def inverse(self, z):
        return permutation_inverse(z, perm=self._perm(z))

    def forward_vjp(self, x, gz, glogdet):
        return permutation_vjp(x, gz, glogdet, perm=self._perm(x)).x, self

    def inverse_vjp(self, z, gx, glogdet):
        return permutation_inverse_vjp(z, gx, glogdet, perm=self._perm(z)).z, self


@dataclass(frozen=True, repr=False)
class Permutation(_Permuting):
    """A fixed permutation of axis 1 (:func:`permutation`); no parameters."""

    perm: tuple

    def __post_init__(self):
        d = len(self.perm) if hasattr(self.perm, "__len__") else 0
        object.__setattr__(self, "perm", _require_perm(self.perm, d))

    def _perm(self, x):
        return self.perm


@dataclass(frozen=True, repr=False)
class Reverse(_Permuting):
    """Reverses axis 1 (nflows' ``ReversePermutation``): ``perm = (d - 1, ..., 0)``."""

    def _perm(self, x):
        require_samples("x", x, 2, "(n, d, ...)")
        return tuple(range(x.shape[1] - 1, -1, -1))
