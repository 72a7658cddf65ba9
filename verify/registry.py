"""The op registry: one record per op, the single source of truth.

``verify`` (engine, CLI, candidate checks, golden vectors), the docs tables
and the asv benchmarks all read these records. An op is a public function of
a ``refimpl.<family>`` package, and its record lives in
``verify/ops/<family>/<member>.py``, mirroring ``refimpl/<family>/<member>.py``.
The op's name is the function's name (``Op.name`` is read from ``forward``).

A record is one :class:`Op`: the function, its primals (:class:`Primal`,
with dtypes, so integer and boolean inputs work), its outputs
(:class:`Output`), a strategy of input cases, an independent ground truth,
and optional fields: the hand-written ``vjp``, an autograd-differentiable
``naive`` forward, relations (``inverse_of``, ``slogdet_of``, ``linear_in``)
from which the engine derives the round trip, the log-determinant against
the Jacobian and the adjoint test, and op-specific invariants
(:class:`Property`). See ``docs/contributing.rst``.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = [
    "Anchor",
    "Case",
    "Op",
    "Output",
    "Primal",
    "Property",
    "get_op",
    "ops",
    "register",
]

PRIMAL_DTYPES = ("float", "int64", "bool", "tree")
OUTPUT_DTYPES = ("float", "int", "bool")


@dataclass(frozen=True)
class Primal:
    """One array argument of an op, passed positionally (keyword when ``optional``).

    ``dtype`` is ``"float"`` (the check's dtype: float64 or float32),
    ``"int64"``, ``"bool"``, or ``"tree"``: a structure (lists, tuples,
    dicts, dataclasses such as :mod:`refimpl.nn` layers) whose floating
    arrays are converted like float primals. Float primals are differentiable
    unless ``differentiable=False``; integer and boolean ones never are, a
    tree only when ``differentiable=True`` (its cotangent is a tree of the
    same structure). An ``optional`` primal may be absent from a case; when
    present it is passed by keyword.
    """

    name: str
    dtype: str = "float"
    optional: bool = False
    differentiable: bool | None = None

    def __post_init__(self):
        if self.dtype not in PRIMAL_DTYPES:
            raise ValueError(f"Primal {self.name!r}: dtype must be one of {PRIMAL_DTYPES}, "
                             f"got {self.dtype!r}")

    @property
    def is_differentiable(self) -> bool:
        if self.differentiable is not None:
            return self.differentiable
        return self.dtype == "float"


@dataclass(frozen=True)
class Output:
    """One output of an op, named as the field of its result (NamedTuple or dataclass).

    ``dtype`` is ``"float"`` (the check's dtype), ``"int"`` or ``"bool"``
    (compared exactly). A ``differentiable`` output takes a cotangent in the
    VJP; ``compared=False`` keeps an output out of the comparisons (an
    iteration trace whose length may differ between correct implementations).
    ``scale`` floors the denominator of the output's relative error: ``1.0``
    measures a log-determinant or log-density, which may be exactly 0 (an
    orthogonal layer), by its absolute error below magnitude 1.
    """

    name: str
    dtype: str = "float"
    differentiable: bool | None = None
    compared: bool = True
    scale: float | None = None

    def __post_init__(self):
        if self.dtype not in OUTPUT_DTYPES:
            raise ValueError(f"Output {self.name!r}: dtype must be one of {OUTPUT_DTYPES}, "
                             f"got {self.dtype!r}")

    @property
    def is_differentiable(self) -> bool:
        if self.differentiable is not None:
            return self.differentiable
        return self.dtype == "float"


@dataclass(frozen=True)
class Case:
    """One drawn input: NumPy primals by name (float64, int64, bool or trees) and keyword params."""

    primals: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{k}: {_describe(v)}" for k, v in self.primals.items()]
        parts += [f"{k}={v!r}" for k, v in self.params.items()]
        return ", ".join(parts)


def _describe(value) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        kind = "" if value.dtype.kind == "f" else f" {value.dtype}"
        return f"shape {tuple(value.shape)}{kind}"
    return repr(value)


@dataclass(frozen=True)
class Property:
    """A checkable property of an op.

    ``check(impl, case, ctx)`` returns an error measure that must not exceed
    the tolerance (``tolerance`` per dtype, else the op's). ``impl`` carries
    ``forward`` and ``vjp``: refimpl's own, or a candidate's. Properties
    marked ``refimpl_only`` exercise refimpl options (methods, block sizes)
    that a candidate's plain signature lacks. ``generic`` marks the
    properties the engine derives for every op (they run on every backend;
    op-specific invariants run on NumPy and array-api-strict's second
    device).
    """

    name: str
    check: Callable
    description: str
    tolerance: Mapping[str, float] | None = None
    dtypes: tuple[str, ...] = ("float64", "float32")
    cases: Callable[[], Any] | None = None
    refimpl_only: bool = False
    generic: bool = False


@dataclass(frozen=True)
class Anchor:
    """The baseline of an op's benchmark: ``track_<op>_over_<name>`` is the op's time over it.

    ``name`` is a short identifier (``gemm``, ``solve``, ``dorgqr``,
    ``fft_round_trip``, ``definition``, ``sklearn``). ``build(case)`` receives
    the op's bench case and returns a function of no arguments that does the
    baseline's work at the same sizes: a GEMM of matching size, the LAPACK or
    SciPy call that computes the same quantity densely, or a peer library's
    function. Its set-up (random operands, a factorisation the call starts
    from) happens in ``build``, outside the timing; the function's result is
    discarded. Without ``build`` the baseline is the record's ``reference``,
    called on the case as the op is (:meth:`Op.anchor`): the op's definition
    written the direct way, or the peer routine the reference calls, which
    ``name`` then says (``sklearn``, ``linear_sum_assignment``, ``autograd``).
    """

    name: str
    build: Callable[[Case], Callable[[], Any]] | None = None

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"Anchor name must be an identifier (it names a benchmark), "
                             f"got {self.name!r}")


@dataclass(frozen=True)
class Op:
    """Everything known about one op.

    Attributes
    ----------
    forward : callable
        The public refimpl function; the op is named after it and its module
        ``refimpl.<family>.<member>`` gives ``family`` and ``member``.
        Called as ``forward(*required primals, **optional primals, **params)``.
    primals : tuple of Primal
        The array arguments, in signature order.
    cases : callable
        Returns a hypothesis strategy of :class:`Case` (small, well conditioned).
    reference : callable
        Independent float64 NumPy ground truth, ``reference(*primals, **params)``
        (absent optional primals omitted), returning the outputs (an array, a
        tuple in output order, or a mapping; a mapping may hold only some).
    tolerance : mapping
        Normwise relative tolerance per dtype.
    convention : str
        One sentence of the op's convention, for the report and ``list``;
        ``section`` names its section of ``docs/conventions.rst``.
    outputs : tuple of Output
        Default one differentiable float output, ``("out",)``.
    vjp : callable or None
        ``vjp(*required primals, *cotangents, **optional primals, **params)``
        with one cotangent per differentiable output, returning one cotangent
        per primal (a NamedTuple by primal name; ``None`` for an absent or
        non-differentiable primal). Without it the op has no gradient checks.
    naive : callable or None
        Forward written with ``autograd.numpy``, differentiated by autograd
        (gradient ground truth; also the Jacobian of ``slogdet_of``).
    properties : tuple of Property
        Op-specific invariants; the engine adds the generic ones.
    data : str or None
        The primal an invertible or linear op maps (``X``), for the relations.
    inverse_of : str or None
        This op inverts op ``inverse_of`` in its ``data`` primal (the other
        primals the same, by position): the engine checks the round trip both
        ways, the error divided by ``condition(case)`` when given.
    slogdet_of : str or None
        This op's outputs ``(sign, logabsdet)`` (or its ``logdet`` output)
        are the slogdet of the Jacobian of op ``slogdet_of``'s first output
        with respect to its ``data`` primal, at the points ``jacobian_points(case)``
        (pairs ``(case of that op, index into this op's outputs)``).
    linear_in : tuple of str
        Primals in which the forward is linear: the engine adds the adjoint
        test ``<f(x), g> = <x, vjp(g)_x>`` for each.
    options : tuple of str
        Keyword params that select a refimpl implementation (method, block
        size) rather than the mathematical function: not passed to candidates
        nor written to golden vectors.
    bench_case : callable or None
        ``bench_case(size)`` returns the :class:`Case` the asv benchmarks time
        (``asv_benchmarks/benchmarks/bench_registry.py``), one per entry of
        ``bench_sizes`` (tuples of ints, such as ``(d, m)``).
    bench_anchor : Anchor or None
        The baseline the op's forward is divided by in the same run, giving
        the ratio benchmark ``track_<op>_over_<anchor name>``.
    """

    forward: Callable
    primals: tuple[Primal, ...]
    cases: Callable[[], Any]
    reference: Callable
    tolerance: Mapping[str, float]
    convention: str
    section: str = ""
    outputs: tuple[Output, ...] = (Output("out"),)
    vjp: Callable | None = None
    naive: Callable | None = None
    properties: tuple[Property, ...] = ()
    data: str | None = None
    inverse_of: str | None = None
    condition: Callable | None = None
    slogdet_of: str | None = None
    jacobian_points: Callable | None = None
    linear_in: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    bench_case: Callable | None = None
    bench_sizes: tuple = ()
    bench_anchor: Anchor | None = None

    @property
    def name(self) -> str:
        return self.forward.__name__

    @property
    def module(self) -> str:
        """``<family>.<member>``: the forward's module below ``refimpl``."""
        return self.forward.__module__.removeprefix("refimpl.")

    @property
    def family(self) -> str:
        return self.module.split(".")[0]

    @property
    def primal_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.primals)

    def primal(self, name: str) -> Primal:
        return next(p for p in self.primals if p.name == name)

    def output(self, name: str) -> Output:
        return next(o for o in self.outputs if o.name == name)

    @property
    def differentiable_outputs(self) -> tuple[Output, ...]:
        return tuple(o for o in self.outputs if o.is_differentiable)

    def anchor(self, case: Case) -> Callable[[], Any]:
        """The work of ``bench_anchor`` on ``case``, a function of no arguments."""
        if self.bench_anchor.build is not None:
            return self.bench_anchor.build(case)
        from .checks import call_forward  # checks imports this module

        return functools.partial(call_forward, self, self.reference, case.primals, case.params,
                                 lambda a: a)

    def signature(self) -> str:
        """``name(V, X, *, tau=None, transpose=...)`` as candidates are called."""
        required = [p.name for p in self.primals if not p.optional]
        optional = [f"{p.name}=None" for p in self.primals if p.optional]
        return f"{self.name}({', '.join(required + optional)})"


_REGISTRY: dict[str, Op] = {}
_loaded = [False]


def register(op: Op) -> Op:
    """Add ``op`` to the registry; a duplicate name or an inconsistent record is an error."""
    if op.name in _REGISTRY:
        raise ValueError(f"op {op.name!r} is registered twice")
    _validate(op)
    _REGISTRY[op.name] = op
    return op


def _validate(op: Op) -> None:
    names = op.primal_names
    if len(set(names)) != len(names):
        raise ValueError(f"op {op.name!r}: primal names repeat: {names}")
    for field_name in ("data",):
        value = getattr(op, field_name)
        if value is not None and value not in names:
            raise ValueError(f"op {op.name!r}: {field_name}={value!r} is not a primal of {names}")
    unknown = [n for n in op.linear_in if n not in names]
    if unknown:
        raise ValueError(f"op {op.name!r}: linear_in names unknown primals {unknown}")
    if op.linear_in and op.vjp is None:
        raise ValueError(f"op {op.name!r}: linear_in needs a vjp (the adjoint test)")
    if op.inverse_of is not None and op.data is None:
        raise ValueError(f"op {op.name!r}: inverse_of needs data (the primal it maps)")
    if op.slogdet_of is not None and op.jacobian_points is None:
        raise ValueError(f"op {op.name!r}: slogdet_of needs jacobian_points")
    if op.bench_case is not None and not op.bench_sizes:
        raise ValueError(f"op {op.name!r}: bench_case needs bench_sizes")
    if op.bench_anchor is not None and op.bench_case is None:
        raise ValueError(f"op {op.name!r}: bench_anchor needs a bench_case to build it from")


def _load() -> None:
    if _loaded[0]:
        return
    _loaded[0] = True
    package = importlib.import_module("verify.ops")
    for info in pkgutil.walk_packages(package.__path__, prefix="verify.ops."):
        importlib.import_module(info.name)


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
