"""The op registry: one record per op, the single source of truth.

``verify`` (engine, CLI, candidate checks), the docs tables and the asv
benchmarks all read these records. Adding an op to refimpl means adding one
:class:`Op` record in ``verify/ops/<building block>.py`` and calling
:func:`register`; every module of ``verify.ops`` is imported on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = ["Case", "Op", "Property", "get_op", "ops", "register"]


@dataclass(frozen=True)
class Case:
    """One drawn input: float64 NumPy primals (in signature order) and keyword params."""

    primals: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{k}: shape {tuple(v.shape)}" for k, v in self.primals.items()]
        parts += [f"{k}={v!r}" for k, v in self.params.items()]
        return ", ".join(parts)


@dataclass(frozen=True)
class Property:
    """A checkable property of an op.

    ``check(impl, case, ctx)`` returns an error measure that must not exceed
    the tolerance (``tolerance`` per dtype, else the op's). ``impl`` carries
    ``forward`` and ``vjp``: refimpl's own, or a candidate's. Properties
    marked ``refimpl_only`` exercise refimpl options (methods, block sizes)
    that a candidate's plain signature lacks.
    """

    name: str
    check: Callable
    description: str
    tolerance: Mapping[str, float] | None = None
    dtypes: tuple[str, ...] = ("float64", "float32")
    cases: Callable[[], Any] | None = None
    refimpl_only: bool = False


@dataclass(frozen=True)
class Op:
    """Everything known about one op.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"householder_product"``.
    module : str
        Building block (``refimpl.<module>``), for docs and benchmarks.
    forward, vjp : callable
        ``forward(*primals, **params)`` and ``vjp(*primals, cotangent, **params)``
        returning one cotangent per primal.
    primals : tuple of str
        Names of the differentiable positional arguments, in order.
    cases : callable
        Returns a hypothesis strategy of :class:`Case` (small, well-conditioned).
    reference : callable
        Independent float64 NumPy forward (SciPy/LAPACK or the definition).
    naive : callable or None
        Forward written with ``autograd.numpy``, differentiated by autograd.
    properties : tuple of Property
        Op-specific invariants; the engine adds the generic ones.
    tolerance : mapping
        Normwise relative tolerance per dtype.
    convention, references : str, tuple of str
        Text for the report and the docs.
    bench_case : callable or None
        ``bench_case(size) -> Case`` for asv, ``size`` from ``bench_sizes``.
    options : tuple of str
        Keyword params that select a refimpl implementation (method, block
        size) rather than the mathematical function: they are not passed to
        candidates (:func:`verify.check`) nor written to golden vectors.
    """

    name: str
    module: str
    forward: Callable
    vjp: Callable
    primals: tuple[str, ...]
    cases: Callable[[], Any]
    reference: Callable
    naive: Callable | None
    properties: tuple[Property, ...]
    tolerance: Mapping[str, float]
    convention: str
    references: tuple[str, ...] = ()
    bench_case: Callable | None = None
    bench_sizes: tuple = ()
    options: tuple[str, ...] = ()


_REGISTRY: dict[str, Op] = {}
_loaded = [False]


def register(op: Op) -> Op:
    """Add ``op`` to the registry; a duplicate name is an error."""
    if op.name in _REGISTRY:
        raise ValueError(f"op {op.name!r} is registered twice")
    _REGISTRY[op.name] = op
    return op


def _load() -> None:
    if _loaded[0]:
        return
    _loaded[0] = True
    package = importlib.import_module("verify.ops")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"verify.ops.{info.name}")


def ops(names=None) -> list[Op]:
    """Registered ops (all, or those named), in registration order."""
    _load()
    if names is None:
        return list(_REGISTRY.values())
    return [get_op(n) for n in names]


def get_op(name: str) -> Op:
    """The record of one op; ``KeyError`` listing the known names otherwise."""
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no op {name!r}; registered ops: {', '.join(_REGISTRY)}") from None
