"""Result types shared by the families: ``SlogdetResult`` and the VJPs' cotangent tuples."""

from __future__ import annotations

from collections import namedtuple
from typing import Any, NamedTuple

__all__ = ["SlogdetResult", "cotangent_type"]


class SlogdetResult(NamedTuple):
    """``(sign, logabsdet)`` of a determinant, as ``numpy.linalg.slogdet`` returns it.

    ``det = sign * exp(logabsdet)``; ``sign`` is ``+1`` or ``-1`` (the
    determinants here are real and nonzero), ``logabsdet`` is finite.
    """

    sign: Any
    logabsdet: Any


def cotangent_type(name: str, primals: str, optional: str = ""):
    """A NamedTuple class of one cotangent per primal, named after the primals.

    Every VJP returns one: ``f_vjp(...).X`` is the cotangent of ``X``, and the
    tuple unpacks in primal order. ``optional`` primals default to ``None``
    (the cotangent of a primal that was not given, such as a missing bias).
    """
    fields = primals.split() + optional.split()
    cls = namedtuple(name, fields, defaults=(None,) * len(optional.split()))
    cls.__doc__ = f"Cotangents ({', '.join(fields)}): one per primal, by primal name."
    return cls
