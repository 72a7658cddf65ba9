"""Building blocks of property checks: the context, calls by record, error measures, generic checks.

Every check returns a *normwise relative error*, ``||a - b|| / ||b||`` with a
floor on the denominator (an :class:`Err`, a float that also says which
output or cotangent it was measured on), and raises :class:`CheckError` when
an output has the wrong type, namespace, device, shape or dtype: those are
checked before values.

Calls follow the record (:class:`~verify.registry.Op`):
``forward(*required primals, **optional primals, **params)`` and
``vjp(*required primals, *cotangents, **optional primals, **params)``, one
cotangent per differentiable output. Results are read by output name
(NamedTuple, dataclass, mapping) or position (tuple, list); VJP results by
primal name or position.

The generic properties every op gets are built here from its record: ground
truth; with a ``vjp``, the dot-product test and autograd's VJP of the
``naive`` forward; and from the relations, the adjoint test (``linear_in``),
the round trip (``inverse_of``) and the log-determinant against the
Jacobian (``slogdet_of``). Refimpl's side of a relation is computed on NumPy
copies in the check's dtype: a candidate only ever sees its own arrays.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

import array_api_compat
import numpy as np

from refimpl.backend import Backend, from_numpy, to_numpy

from ._tree import is_array, tree_leaves, tree_map
from .registry import Case, Op, Property, get_op

__all__ = [
    "CheckError",
    "Context",
    "Err",
    "NotProvided",
    "absolute_floor",
    "cotangent_label",
    "free_entries",
    "call_forward",
    "call_vjp",
    "cotangent_for",
    "generic_properties",
    "impl_of",
    "rel_error",
    "structured",
    "tolerance_factors",
    "worst",
]

_TINY = 1e-300


class CheckError(AssertionError):
    """An output broke the contract before its values were compared."""


class NotProvided(Exception):
    """A check needs a function the candidate does not have (its ``vjp``): skip it."""


class Err(float):
    """An error measure that remembers where it was measured (an output or cotangent name)."""

    where: str = ""

    def __new__(cls, value, where=""):
        self = super().__new__(cls, value)
        self.where = where
        return self


def cotangent_label(primal: str) -> str:
    """``dV``: how checks and reports name the cotangent of primal ``V``."""
    return f"d{primal}"


_TOLERANCE_FACTORS: contextvars.ContextVar[dict] = contextvars.ContextVar(
    "tolerance_factors", default={})


@contextlib.contextmanager
def tolerance_factors(factors: dict):
    """Within the block, the error measured at ``where`` is held to ``factors[where]`` times the
    check's tolerance (per-output overrides, ``verify.check(..., rtol={"dV": ...})``): :func:`worst`
    picks the error furthest beyond its own tolerance."""
    token = _TOLERANCE_FACTORS.set(dict(factors))
    try:
        yield
    finally:
        _TOLERANCE_FACTORS.reset(token)


_STRUCTURE: contextvars.ContextVar = contextvars.ContextVar("structure", default=None)


@contextlib.contextmanager
def structured(structure):
    """Within the block, cotangents of the primals that ``structure`` (a
    :class:`~verify.registry.Structure`, or ``None``) fixes in part are compared on its free
    entries only, and finite differences move only those."""
    token = _STRUCTURE.set(structure)
    try:
        yield
    finally:
        _STRUCTURE.reset(token)


def free_entries(name: str, case: Case, leaves: list) -> list:
    """``leaves`` (arrays of primal ``name``), the entries the active structure fixes set to 0."""
    structure = _STRUCTURE.get()
    mask = None if structure is None else structure.free(case).get(name)
    return leaves if mask is None else [np.where(mask, leaf, 0.0) for leaf in leaves]


def worst(errors: dict) -> Err:
    """The error of ``{where: error}`` largest relative to its tolerance (:func:`tolerance_factors`;
    NaN first: it is never within tolerance)."""
    if not errors:
        return Err(0.0)
    factors = _TOLERANCE_FACTORS.get()
    labelled = [(getattr(value, "where", "") or where, value) for where, value in errors.items()]
    where, value = max(labelled, key=lambda kv: (np.isnan(kv[1]), kv[1] / factors.get(kv[0], 1.0)))
    return Err(value, where)


# -- the context: where a check runs ----------------------------------------------------------


def _dtype_name(x) -> str:
    return str(x.dtype).rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Context:
    """Where a check runs: a backend and a dtype, plus conversions both ways.

    With an ``adapter`` (see :mod:`verify.adapters`) the arrays are a
    candidate framework's: ``put`` goes through ``adapter.from_numpy`` and
    ``take`` through ``adapter.to_numpy``, after the same contract checks.
    """

    backend: Backend
    dtype: str
    adapter: Any = None

    def _convert(self, x):
        if self.adapter is None:
            return from_numpy(x, self.backend)
        return self.adapter.put(x)

    def local(self, x):
        """``x`` as NumPy in this context's dtype (float leaves; integer and bool kept)."""
        return tree_map(lambda a: np.asarray(a, dtype=self.dtype) if a.dtype.kind == "f"
                        else np.asarray(a), x)

    def put(self, x):
        """A NumPy input (array or tree) as this context's arrays, floats in its dtype."""
        return tree_map(lambda a: self._convert(a), self.local(x))

    def rounded(self, x):
        """``x`` rounded to this dtype and back to float64: what the op really saw."""
        return tree_map(lambda a: a.astype(np.float64) if a.dtype.kind == "f" else a, self.local(x))

    def take(self, out, shape, what="output", kind="float") -> np.ndarray:
        """Check namespace, device, dtype and shape of ``out``; return it as NumPy.

        ``kind`` is ``"float"`` (this context's dtype, returned as float64),
        ``"int"`` (any integer dtype) or ``"bool"``; a 0-d integer or boolean
        output may also be a Python or NumPy scalar (a fit's ``n_iter``).
        """
        if kind != "float" and isinstance(out, (int, np.integer, np.bool_)) and shape == ():
            # A fit's count or flag (n_iter, converged) may be a Python or NumPy scalar.
            host = np.asarray(out)
            _check_dtype(what, host.dtype.name, kind, self.dtype)
            return host
        if not is_array(out):
            raise CheckError(f"{what} is not an array but {type(out).__name__}")
        expected_ns = self.backend.xp
        try:
            got_ns = array_api_compat.array_namespace(out)
        except TypeError:
            raise CheckError(f"{what} is a {type(out).__name__}, not an array of "
                             f"{expected_ns.__name__}") from None
        if got_ns is not expected_ns:
            raise CheckError(
                f"{what} is in namespace {got_ns.__name__}, expected {expected_ns.__name__}"
            )
        if array_api_compat.device(out) != self.backend.device:
            raise CheckError(
                f"{what} is on device {array_api_compat.device(out)!r}, "
                f"expected {self.backend.device!r}"
            )
        _check_dtype(what, _dtype_name(out), kind, self.dtype)
        if tuple(out.shape) != tuple(shape):
            raise CheckError(f"{what} has shape {tuple(out.shape)}, expected {tuple(shape)}")
        convert = to_numpy if self.adapter is None else self.adapter.to_numpy
        host = np.asarray(convert(out))
        return host.astype(np.float64) if kind == "float" else host


def _check_dtype(what, got, kind, dtype):
    if kind == "float" and got != dtype:
        raise CheckError(f"{what} has dtype {got}, expected {dtype}")
    if kind == "int" and not (got.startswith("int") or got.startswith("uint")):
        raise CheckError(f"{what} has dtype {got}, expected an integer dtype")
    if kind == "bool" and got != "bool":
        raise CheckError(f"{what} has dtype {got}, expected bool")


# -- error measures ---------------------------------------------------------------------------

_ABSOLUTE_FLOOR = contextvars.ContextVar("absolute_floor", default=0.0)


@contextlib.contextmanager
def absolute_floor(floor: float):
    """Within the block, :func:`rel_error` divides by at least ``floor``.

    With ``floor = atol / rtol`` a check ``rel_error(a, b) <= rtol`` passes
    exactly when ``||a - b|| <= max(rtol ||b||, atol)``.
    """
    token = _ABSOLUTE_FLOOR.set(floor)
    try:
        yield
    finally:
        _ABSOLUTE_FLOOR.reset(token)


def rel_error(actual, expected, scale=None) -> float:
    """Normwise relative error ``||actual - expected|| / max(scale, ||expected||)``.

    NaN in ``actual`` gives NaN and infinity gives infinity: either fails
    every tolerance, and the report says which it was. The norms are taken
    of the arrays divided by their largest magnitude (as LAPACK's ``dnrm2``),
    so values near the float limits do not overflow or underflow.
    """
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if np.any(np.isnan(actual)):
        return float("nan")
    if not np.all(np.isfinite(actual)):
        return float("inf")
    size = max(float(np.max(np.abs(actual), initial=0.0)), float(np.max(np.abs(expected), initial=0.0)))
    unit = size if size > 0 else 1.0
    difference = np.linalg.norm((actual - expected) / unit) if np.isfinite(size) else \
        np.linalg.norm(actual / unit - expected / unit)
    floors = [np.linalg.norm(expected / unit), _ABSOLUTE_FLOOR.get() / unit, _TINY / unit]
    if scale is not None:
        floors.append(scale / unit)
    return float(difference / max(floors))


def mismatch(actual, expected) -> float:
    """Exact comparison of integer or boolean outputs: 0, or infinity when any entry differs."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return float("inf")
    return 0.0 if np.array_equal(actual, expected) else float("inf")


def compare(output, actual, expected, scale=None) -> float:
    """:func:`rel_error` for float outputs (``scale`` defaults to the output's), :func:`mismatch`
    for integer and boolean ones."""
    if output.dtype == "float":
        return rel_error(actual, expected, output.scale if scale is None else scale)
    return mismatch(actual, expected)


# -- calls by record --------------------------------------------------------------------------


def impl_of(op) -> SimpleNamespace:
    """refimpl's own implementation of ``op``, as the ``impl`` argument of checks."""
    return SimpleNamespace(forward=op.forward, vjp=op.vjp)


def present(op: Op, primals: dict) -> list:
    """The op's primals that ``primals`` holds (absent optional ones left out), in order."""
    return [p for p in op.primals if primals.get(p.name) is not None]


def call_args(op: Op, primals: dict, convert):
    """``(positional, keywords)``: required primals by position, optional ones by name."""
    args = [convert(primals[p.name]) for p in op.primals if not p.optional]
    kwargs = {p.name: convert(primals[p.name]) for p in op.primals
              if p.optional and primals.get(p.name) is not None}
    return args, kwargs


def call_forward(op: Op, fn, primals: dict, params: dict, convert):
    """``fn(*required, **optional, **params)`` with every primal passed through ``convert``."""
    args, kwargs = call_args(op, primals, convert)
    return fn(*args, **kwargs, **params)


def call_vjp(op: Op, fn, primals: dict, cotangents: list, params: dict, convert):
    """``fn(*required, *cotangents, **optional, **params)``."""
    args, kwargs = call_args(op, primals, convert)
    return fn(*args, *[convert(c) for c in cotangents], **kwargs, **params)


def outputs_of(op: Op, result, what="forward") -> dict:
    """``{output name: value}`` from a result: an array, a tuple, a mapping or an object."""
    names = [o.name for o in op.outputs]
    if len(names) == 1 and not _has_fields(result, names[0]):
        return {names[0]: result}  # the value itself: ctx.take says what is wrong with it
    if isinstance(result, dict):
        values = {n: result[n] for n in names if n in result}
    elif isinstance(result, (tuple, list)) and not hasattr(result, "_fields"):
        if len(result) != len(names):
            raise CheckError(f"{what} must return {len(names)} outputs {tuple(names)}, "
                             f"got {len(result)}")
        values = dict(zip(names, result))
    else:
        values = {n: getattr(result, n) for n in names if hasattr(result, n)}
    missing = [n for n in names if n not in values]
    if missing:
        raise CheckError(f"{what} result {type(result).__name__} has no output {missing[0]!r} "
                         f"(outputs: {', '.join(names)})")
    return values


def _has_fields(result, name) -> bool:
    """A structured result holding output ``name``: a mapping, NamedTuple or dataclass."""
    if isinstance(result, dict):
        return name in result
    if is_array(result):
        return False
    return (hasattr(result, "_fields") or dataclasses.is_dataclass(result)) and hasattr(result, name)


def cotangents_of(op: Op, result, primals: dict) -> dict:
    """``{primal name: cotangent}`` for the differentiable primals ``primals`` holds."""
    given = present(op, primals)
    if isinstance(result, dict):
        values = dict(result)
    elif isinstance(result, tuple) and hasattr(result, "_fields"):
        values = result._asdict()
    elif isinstance(result, (tuple, list)):
        if len(result) == len(op.primals):
            values = dict(zip(op.primal_names, result))
        elif len(result) == len(given):
            values = {p.name: r for p, r in zip(given, result)}
        else:
            raise CheckError(f"vjp must return {len(given)} cotangents (one per primal "
                             f"{tuple(p.name for p in given)}), got {len(result)}")
    else:
        raise CheckError(f"vjp must return a tuple of {len(given)} cotangents, "
                         f"got {type(result).__name__}")
    wanted = differentiable(op, primals)
    missing = [n for n in wanted if values.get(n) is None]
    if missing:
        raise CheckError(f"vjp returned no cotangent of {missing[0]} "
                         f"({cotangent_label(missing[0])})")
    return {n: values[n] for n in wanted}


def _flat(values) -> list:
    """An output of a reference: a tuple/list of outputs, or one array."""
    return list(values) if isinstance(values, (tuple, list)) else [values]


def reference_outputs(op: Op, case: Case, rounded=None) -> dict:
    """The reference's outputs ``{name: float64 NumPy}`` at ``case`` (inputs as ``rounded``)."""
    primals = {k: (v if rounded is None else rounded(v)) for k, v in case.primals.items()}
    result = call_forward(op, op.reference, primals, case.params, lambda a: a)
    if isinstance(result, dict):
        return {k: np.asarray(v) for k, v in result.items()}
    names = [o.name for o in op.outputs]
    return {n: np.asarray(v) for n, v in zip(names, _flat(result))}


def output_shapes(op: Op, case: Case) -> dict:
    """Shapes of every output: refimpl's own forward on the case's NumPy arrays.

    An output that is a sequence of arrays (relevance at every layer) has no
    single shape and no entry: a property that reads it checks its parts.
    """
    result = call_forward(op, op.forward, case.primals, case.params, lambda a: a)
    return {k: tuple(np.shape(v)) for k, v in outputs_of(op, result).items()
            if not isinstance(v, (list, tuple))}


def take_outputs(op, ctx, result, shapes, names=None) -> dict:
    """Check and convert the named outputs of ``result`` (all compared ones by default)."""
    values = outputs_of(op, result)
    selected = [o for o in op.outputs if (o.name in names if names else o.compared)]
    return {o.name: ctx.take(values[o.name], shapes[o.name], _what(op, o.name), o.dtype)
            for o in selected}


def _what(op, name):
    return "output" if len(op.outputs) == 1 else f"output {name}"


def run_outputs(op, impl, case, ctx, names=None, primals=None) -> dict:
    """``impl.forward`` on ``ctx`` at ``case`` (primals replaced by ``primals``), checked."""
    primals = case.primals if primals is None else primals
    result = call_forward(op, impl.forward, primals, case.params, ctx.put)
    return take_outputs(op, ctx, result, output_shapes(op, Case(primals, case.params)), names)


def take_cotangents(op, ctx, result, primals) -> dict:
    """Check and convert the cotangents of a VJP result to float64 NumPy (trees leaf by leaf)."""
    out = {}
    for name, cot in cotangents_of(op, result, primals).items():
        primal = op.primal(name)
        if primal.dtype == "tree":
            leaves = tree_leaves(cot)
            shapes = [a.shape for a in tree_leaves(primals[name])]
            if len(leaves) != len(shapes):
                raise CheckError(f"cotangent {cotangent_label(name)} has {len(leaves)} arrays, "
                                 f"expected {len(shapes)} (one per array of {name})")
            out[name] = [ctx.take(c, s, f"cotangent {cotangent_label(name)}")
                         for c, s in zip(leaves, shapes)]
        else:
            out[name] = [ctx.take(cot, primals[name].shape, f"cotangent {cotangent_label(name)}")]
    return out


def cotangent_for(op, case) -> list:
    """A fixed random cotangent per differentiable output (seeded by the case's values)."""
    shapes = output_shapes(op, case)
    values = [float(np.abs(a.astype(np.float64)).sum()) for a in tree_leaves(case.primals)]
    seed = int(sum(values) * 1e6) % 2**32
    gen = np.random.default_rng(seed)
    return [gen.standard_normal(shapes[o.name]) for o in op.differentiable_outputs]


def natural_scale(op, case, cotangents) -> float:
    """``max_i sum_o ||c_o|| ||f_o(x)|| / ||x_i||``: a gradient's typical size at ``case``.

    The size of ``<c, f>``'s gradient with respect to ``x_i`` for an ``f``
    homogeneous of degree one in ``x_i``. Gradient errors are measured
    relative to at least this, so that a cotangent that is exactly zero (a
    function constant in an input) is held to rounding noise of the size the
    gradient would have, not to 0/0.
    """
    outputs = call_forward(op, op.forward, case.primals, case.params, lambda a: a)
    values = outputs_of(op, outputs)
    size = sum(float(np.linalg.norm(c)) * float(np.linalg.norm(np.asarray(values[o.name], float)))
               for c, o in zip(cotangents, op.differentiable_outputs))
    norms = [float(np.linalg.norm(np.concatenate([np.ravel(a) for a in tree_leaves(case.primals[n])])))
             for n in differentiable(op, case.primals) if tree_leaves(case.primals[n])]
    return max((size / max(n, _TINY) for n in norms), default=0.0)


def run_vjp(op, impl, case, ctx, cotangents) -> dict:
    """``impl.vjp`` on ``ctx``: ``{primal: [leaf cotangents as float64 NumPy]}``."""
    if impl.vjp is None:
        raise NotProvided("no vjp given")
    result = call_vjp(op, impl.vjp, case.primals, cotangents, case.params, ctx.put)
    return {n: free_entries(n, case, leaves)
            for n, leaves in take_cotangents(op, ctx, result, case.primals).items()}


def differentiable(op: Op, primals: dict) -> list[str]:
    """The given primals that take a cotangent: differentiable, and not an integer or boolean
    array (a boolean ``attn_mask`` where a float one is differentiable has none)."""
    return [p.name for p in present(op, primals)
            if p.is_differentiable and not _discrete(primals[p.name])]


def _discrete(value) -> bool:
    return is_array(value) and np.asarray(value).dtype.kind in "biu"


# -- generic properties -----------------------------------------------------------------------


def _ground_truth(op, impl, case, ctx):
    expected = reference_outputs(op, case, ctx.rounded)
    result = call_forward(op, impl.forward, case.primals, case.params, ctx.put)
    shapes = {k: v.shape for k, v in expected.items()}
    names = [o.name for o in op.outputs if o.compared and o.name in expected]
    got = take_outputs(op, ctx, result, shapes, names)
    return worst({_what(op, n): compare(op.output(n), got[n], expected[n]) for n in names})


def _dot_product(op, impl, case, ctx):
    """``<t_i, vjp_i(c)>`` against ``<c, (f(x_i + h t_i) - f(x_i - h t_i)) / 2h>``, per primal.

    One random direction ``t_i`` per differentiable primal ``x_i`` (the others
    held), so that a failure names the cotangent (``dV``). Each entry of
    ``t_i`` is scaled by the magnitude of its entry of ``x_i``, so that the
    step is relative everywhere (a row of size 1e-3 beside rows of size 1e2
    is not stepped past its own scale), and the central difference is
    Richardson-extrapolated from steps ``h`` and ``h/2`` (truncation
    ``O(h^4)``: functions that curve on a small scale, a variance of nearly
    equal samples, stay within the tolerance). Each error is relative to
    ``||t_i|| ||vjp_i(c)||``, the Cauchy-Schwarz bound of the left side (so
    that cancellation cannot hide a bug), and at least to ``||t_i||`` times
    :func:`natural_scale`.
    """
    c = cotangent_for(op, case)
    cotangents = run_vjp(op, impl, case, ctx, c)
    rng = np.random.default_rng(12345)
    names = differentiable(op, case.primals)
    directions = {n: free_entries(n, case, [_relative(rng.standard_normal(a.shape), a)
                                            for a in tree_leaves(case.primals[n])])
                  for n in names}
    natural = natural_scale(op, case, c)
    errors = {}
    for n in names:
        if not directions[n]:  # a tree primal without arrays (a flow of permutations)
            continue
        lhs = sum(float(np.sum(t * g)) for t, g in zip(directions[n], cotangents[n]))
        scale = max(sum(np.linalg.norm(t) * np.linalg.norm(g)
                        for t, g in zip(directions[n], cotangents[n])),
                    natural * math.sqrt(sum(float(np.sum(t * t)) for t in directions[n])))
        coarse, fine = (_directional_difference(op, impl, case, ctx, c, n, directions[n], h)
                        for h in (2e-6, 1e-6))
        errors[cotangent_label(n)] = abs(lhs - (4 * fine - coarse) / 3) / max(scale, _TINY)
    return worst(errors)


def _directional_difference(op, impl, case, ctx, cotangents, name, direction, h) -> float:
    """``<c, (f(x + h t) - f(x - h t)) / 2h>`` with primal ``name`` moved along ``direction``."""
    outs = []
    for sign in (1.0, -1.0):
        moved = iter([a + sign * h * t for a, t in zip(tree_leaves(case.primals[name]), direction)])
        shifted = {**case.primals, name: tree_map(lambda a: next(moved), case.primals[name])}
        outs.append(run_outputs(op, impl, case, ctx, [o.name for o in op.differentiable_outputs],
                                primals=shifted))
    return sum(float(np.sum(ci * (outs[0][o.name] - outs[1][o.name]) / (2 * h)))
               for ci, o in zip(cotangents, op.differentiable_outputs))


def _relative(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``t`` scaled entrywise by ``|x|``, floored at ``1e-3`` of ``x``'s largest entry (and at
    ``1e-3``): a step along it is relative to each entry."""
    if t.size == 0:
        return t
    size = np.abs(np.asarray(x, dtype=np.float64))
    return t * np.maximum(size, 1e-3 * max(1.0, float(size.max())))


def _autograd(op, impl, case, ctx):
    """Each cotangent against autograd's gradient of ``<c, naive(x)>`` (float64).

    Errors are normwise and relative to the largest expected cotangent, and
    at least to :func:`natural_scale`: a cotangent that is exactly zero (d = 1
    reflectors, say) is then held to the rounding of its neighbours, not to 0/0.
    """
    from autograd import grad

    c = cotangent_for(op, case)
    got = run_vjp(op, impl, case, ctx, c)
    inputs = {k: ctx.rounded(v) for k, v in case.primals.items()}
    expected = {}
    # autograd differentiates arrays and plain containers; tree primals (dataclass layers)
    # are covered by the dot-product test.
    for name in [n for n in got if op.primal(n).dtype != "tree"]:
        def pairing(x, name=name):
            outs = _flat(call_forward(op, op.naive, {**inputs, name: x}, case.params, lambda a: a))
            return sum(_inner(ci, o) for ci, o in zip(c, outs))

        (expected[name],) = free_entries(name, case, [grad(pairing)(inputs[name])])
    if not expected:
        return Err(0.0)
    scale = max(max(np.linalg.norm(e) for e in expected.values()), natural_scale(op, case, c))
    return worst({cotangent_label(n): rel_error(got[n][0], e, scale=scale)
                  for n, e in expected.items()})


def _inner(c, out):
    import autograd.numpy as anp

    return anp.sum(c * out)


def _adjoint(name, op, impl, case, ctx):
    """``<f(x), g> = <x, vjp(g)_x>`` for an op linear in ``x`` (no differences)."""
    (output,) = op.differentiable_outputs
    shapes = output_shapes(op, case)
    g = np.random.default_rng(11).standard_normal(shapes[output.name])
    y = run_outputs(op, impl, case, ctx, [output.name])[output.name]
    (x_bar,) = run_vjp(op, impl, case, ctx, [g])[name]
    x = ctx.rounded(case.primals[name])
    scale = np.linalg.norm(y) * np.linalg.norm(g) + np.linalg.norm(x) * np.linalg.norm(x_bar)
    return Err(abs(np.sum(y * g) - np.sum(x * x_bar)) / max(scale, _TINY), cotangent_label(name))


def _related_primals(op, other, primals, data_value):
    """``other``'s primals by position from ``op``'s, its data primal replaced."""
    mapped = {q.name: primals.get(p.name) for p, q in zip(op.primals, other.primals)}
    mapped[other.data] = data_value
    return {k: v for k, v in mapped.items() if v is not None}


def _refimpl_first(op, primals, params, ctx):
    """refimpl's ``op`` on NumPy copies in the context's dtype; its first output as float64."""
    local = {k: ctx.local(v) for k, v in primals.items()}
    result = call_forward(op, op.forward, local, params, lambda a: a)
    return np.asarray(next(iter(outputs_of(op, result).values())), dtype=np.float64)


def _round_trip(op, impl, case, ctx):
    """Both ways: ``F(op(y)) = y`` and ``op(F(y)) = y`` with ``F = inverse_of``, refimpl's ``F``."""
    forward = get_op(op.inverse_of)
    y = ctx.rounded(case.primals[op.data])
    first = op.outputs[0].name
    x = run_outputs(op, impl, case, ctx, [first])[first]
    back = _refimpl_first(forward, _related_primals(op, forward, case.primals, x), case.params, ctx)
    there = _refimpl_first(forward, _related_primals(op, forward, case.primals, y), case.params, ctx)
    again = run_outputs(op, impl, case, ctx, [first], primals={**case.primals, op.data: there})[first]
    scale = op.condition(Case({k: ctx.rounded(v) for k, v in case.primals.items()}, case.params)) \
        if op.condition else 1.0
    return worst({f"{op.inverse_of}({op.name}({op.data}))": rel_error(back, y) / scale,
                  f"{op.name}({op.inverse_of}({op.data}))": rel_error(again, y) / scale})


def jacobian(op: Op, case: Case) -> np.ndarray:
    """Dense Jacobian of ``op``'s first output with respect to ``op.data`` at ``case`` (float64).

    autograd of the record's ``naive`` forward when it has one, else central
    differences of its ``reference`` (step ``1e-5``, error ``O(1e-10)``).
    """
    x0 = np.asarray(case.primals[op.data], dtype=np.float64)

    def first(fn, x):
        return _flat(call_forward(op, fn, {**case.primals, op.data: x}, case.params, lambda a: a))[0]

    if op.naive is not None:
        from autograd import jacobian as autograd_jacobian

        J = autograd_jacobian(lambda x: first(op.naive, x))(x0)
        return np.reshape(J, (-1, x0.size))
    h = 1e-5
    columns = []
    for i in range(x0.size):
        e = np.zeros(x0.size)
        e[i] = h
        e = e.reshape(x0.shape)
        columns.append(np.ravel(first(op.reference, x0 + e) - first(op.reference, x0 - e)) / (2 * h))
    return np.stack(columns, axis=1)


def _logdet_of_jacobian(op, impl, case, ctx):
    """``(sign, logabsdet)`` outputs against ``numpy.linalg.slogdet`` of the Jacobian."""
    related = get_op(op.slogdet_of)
    rounded = Case({k: ctx.rounded(v) for k, v in case.primals.items()}, case.params)
    names = [o.name for o in op.outputs if o.name in ("sign", "logabsdet", "logdet")]
    got = run_outputs(op, impl, case, ctx, names)
    errors = {}
    for point, index in op.jacobian_points(rounded):
        sign, logabsdet = np.linalg.slogdet(jacobian(related, point))
        for name in names:
            value = got[name][tuple(index)]
            expected = sign if name == "sign" else logabsdet
            errors[f"{name}{list(index)}"] = (mismatch(value, expected) if name == "sign"
                                              else rel_error(value, expected, scale=1.0))
    return worst(errors)


_GRADIENT_TOL = {"float64": 1e-6}


def generic_properties(op: Op) -> list[Property]:
    """The properties every op gets from its record (see the module docstring)."""
    props = [Property(
        "matches ground truth", partial(_ground_truth, op),
        "forward equals the independent float64 reference (SciPy/LAPACK or the definition)",
        generic=True,
    )]
    if op.vjp is not None:
        props.append(Property(
            "vjp: dot-product test", partial(_dot_product, op),
            "<t, vjp(c)> equals <c, central difference of the forward along t>, one primal at "
            "a time (float64)",
            tolerance=_GRADIENT_TOL, dtypes=("float64",), generic=True,
        ))
        if op.naive is not None:
            props.append(Property(
                "vjp: autograd", partial(_autograd, op),
                "every cotangent equals autograd's VJP of an independent naive forward",
                generic=True,
            ))
    for name in op.linear_in:
        props.append(Property(
            f"adjoint test in {name}", partial(_adjoint, name, op),
            f"<f({name}), g> = <{name}, vjp(g)_{name}>: the VJP is the exact adjoint (no differences)",
            generic=True,
        ))
    if op.inverse_of is not None:
        condition = " (error / cond)" if op.condition else ""
        props.append(Property(
            f"round trip with {op.inverse_of}{condition}", partial(_round_trip, op),
            f"{op.inverse_of}({op.name}({op.data})) = {op.data} and "
            f"{op.name}({op.inverse_of}({op.data})) = {op.data}, refimpl's {op.inverse_of}",
            generic=True,
        ))
    if op.slogdet_of is not None:
        props.append(Property(
            "log-determinant of the Jacobian", partial(_logdet_of_jacobian, op),
            f"sign and log|det| equal numpy.linalg.slogdet of the Jacobian of {op.slogdet_of} "
            f"(autograd of its naive forward, or central differences)",
            generic=True,
        ))
    return props
