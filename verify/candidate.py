"""Checking another framework's implementation of a registered op against refimpl.

A *candidate* is ``forward(*primals, **params)`` and, optionally,
``vjp(*primals, cotangent, **params)`` returning one cotangent per primal,
with the signature of the op's record (:func:`verify.registry.get_op`) less
its refimpl-only ``options``. It takes and returns its own arrays (see
:mod:`verify.adapters`). :func:`check` runs on it

* the generic properties: the forward against the op's independent float64
  ground truth, the dot-product test and autograd's VJP of a naive forward;
* agreement with refimpl's own forward and VJP on the same drawn inputs;
* every registered invariant not marked ``refimpl_only``;

and returns a :class:`Report`. Each output's type, namespace, device, dtype
and shape are checked before its values; a candidate that raises, returns the
wrong kind of array or returns NaN fails that check and nothing else. Checks
that need a ``vjp`` are skipped when none is given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from functools import partial
from types import SimpleNamespace
from typing import Any, Callable, Mapping

import numpy as np

from . import adapters
from ._tree import is_array, tree_leaves
from .checks import (
    Context,
    NotProvided,
    call_forward,
    call_vjp,
    compare,
    cotangent_for,
    cotangent_label,
    cotangents_of,
    free_entries,
    generic_properties,
    natural_scale,
    outputs_of,
    rel_error,
    run_outputs,
    run_vjp,
    structured,
    worst,
)
from .engine import Result, no_vjp_result, run_property
from .guard import guarded
from .registry import Case, Op, Property, get_op
from .report import format_table, summary, to_json, to_junit

__all__ = ["DTYPES", "REFUSED_DTYPES", "Candidate", "Report", "candidate_properties", "check",
           "check_all", "replay", "tolerance_keys"]

DTYPES = ("float64", "float32")

#: dtypes a candidate may use that :func:`check` refuses, and why (each refusal is a ValueError
#: that says so: a check that cannot be run is never reported as a pass).
REFUSED_DTYPES = {
    "float16": "half precision (unit roundoff 4.9e-4, largest value 65504) has no registered "
               "tolerance: the ops' float32 tolerances scaled by the unit roundoff would accept "
               "wrong results, and drawn inputs and intermediate products overflow",
    "bfloat16": "bfloat16 (unit roundoff 3.9e-3) has no registered tolerance: scaled float32 "
                "tolerances would accept wrong results, and NumPy has no bfloat16 to round "
                "the drawn inputs to",
    "complex64": "refimpl's ops are defined on real arrays (no record has complex inputs)",
    "complex128": "refimpl's ops are defined on real arrays (no record has complex inputs)",
}


@dataclass(frozen=True)
class Candidate:
    """A framework's implementation of one op: forward, optional vjp, array conversions."""

    forward: Callable
    vjp: Callable | None = None
    from_numpy: Any = None
    to_numpy: Callable | None = None

    @property
    def name(self) -> str:
        return _qualified_name(self.forward) or repr(self.forward)


def _as_candidate(candidate, **overrides) -> Candidate:
    if not isinstance(candidate, Candidate):
        if not callable(candidate):
            raise TypeError(f"a candidate must be callable or a Candidate, got {candidate!r}")
        candidate = Candidate(candidate)
    return replace(candidate, **{k: v for k, v in overrides.items() if v is not None})


# -- what a candidate is checked for ----------------------------------------------------------


def _agrees_forward(op, impl, case, ctx):
    """Every compared output against refimpl's on the same (rounded) inputs, in float64."""
    rounded = {k: ctx.rounded(v) for k, v in case.primals.items()}
    expected = outputs_of(op, call_forward(op, op.forward, rounded, case.params, lambda a: a))
    got = run_outputs(op, impl, case, ctx)
    return worst({("output" if len(op.outputs) == 1 else f"output {n}"):
                  compare(op.output(n), got[n], np.asarray(expected[n], dtype=got[n].dtype))
                  for n in got})


def _agrees_vjp(op, impl, case, ctx):
    """Each cotangent against refimpl's, relative to the largest of refimpl's."""
    c = cotangent_for(op, case)
    got = run_vjp(op, impl, case, ctx, c)
    rounded = {k: ctx.rounded(v) for k, v in case.primals.items()}
    result = call_vjp(op, op.vjp, rounded, [ctx.rounded(ci) for ci in c], case.params, lambda a: a)
    expected = {n: free_entries(n, case, [np.asarray(leaf, np.float64)
                                          for leaf in tree_leaves(v)])
                for n, v in cotangents_of(op, result, rounded).items()}
    scale = max(max(np.linalg.norm(leaf) for v in expected.values() for leaf in v),
                natural_scale(op, case, c))
    # default: a tree primal may hold no array (a flow of permutations).
    return worst({cotangent_label(n): max((rel_error(g, e, scale=scale)
                                            for g, e in zip(got[n], expected[n])), default=0.0)
                  for n in got})


def candidate_properties(op: Op) -> list[Property]:
    """Generic properties, agreement with refimpl, and the invariants not marked refimpl-only."""
    truth, *derived = generic_properties(op)
    agree = Property("matches refimpl forward", partial(_agrees_forward, op),
                     "forward equals refimpl's forward on the same (rounded) inputs", generic=True)
    props = [truth, agree, *derived]
    if op.vjp is not None:
        props.append(Property("vjp: matches refimpl", partial(_agrees_vjp, op),
                              "every cotangent equals refimpl's hand-derived VJP", generic=True))
    return props + [p for p in op.properties if not p.refimpl_only]


DEFAULT_TIMEOUT = 60.0


def _impl(op: Op, candidate: Candidate, ctx: Context, timeout=DEFAULT_TIMEOUT) -> SimpleNamespace:
    """``impl`` for the checks: refimpl-only options dropped, a missing vjp skips, and every
    call guarded (inputs unchanged, ``timeout`` seconds at most: :mod:`verify.guard`)."""
    def params(kw):
        return {k: v for k, v in kw.items() if k not in op.options}

    required = [p.name for p in op.primals if not p.optional]
    cotangents = ["cotangent" if len(op.differentiable_outputs) == 1 else f"cotangent of {o.name}"
                  for o in op.differentiable_outputs]
    to_numpy = ctx.adapter.to_numpy if ctx.adapter is not None else np.asarray
    forward = guarded(candidate.forward, "the candidate's forward", to_numpy, timeout, required)
    vjp = guarded(candidate.vjp, "the candidate's vjp", to_numpy, timeout, required + cotangents) \
        if candidate.vjp is not None else None

    def call_vjp(*args, **kw):
        if vjp is None:
            raise NotProvided("no vjp given")
        return vjp(*args, **params(kw))

    return SimpleNamespace(forward=lambda *a, **kw: forward(*a, **params(kw)), vjp=call_vjp)


def _without_options(op: Op, case: Case) -> Case:
    return Case(case.primals, {k: v for k, v in case.params.items() if k not in op.options})


def _op(op) -> Op:
    return op if isinstance(op, Op) else get_op(op)


# -- the report -------------------------------------------------------------------------------


@dataclass
class Report:
    """Results of :func:`check` or :func:`check_all`: one per (op, property).

    ``passed`` is true when every op ran and nothing failed (a check that ran
    no example is ``not run``, and fails the report), apart from the ops listed in
    ``expected_failures``, each of which must fail at least one property
    (an op that passes although it is listed, ``XPASS``, fails the report:
    remove it from the list).
    """

    results: list[Result]
    candidates: dict[str, str] = field(default_factory=dict)
    expected_failures: dict[str, str] = field(default_factory=dict)

    def op_verdicts(self) -> dict[str, str]:
        """``pass``, ``FAIL``, ``xfail``, ``XPASS`` or ``not run`` (no check of the op ran an
        example: never a pass) for each op."""
        verdicts = {}
        for name in self.candidates:
            mine = [r for r in self.results if r.op == name]
            failed = any(not r.passed for r in mine)
            if not any(r.examples for r in mine):
                verdicts[name] = "not run"
            elif name in self.expected_failures:
                verdicts[name] = "xfail" if failed else "XPASS"
            else:
                verdicts[name] = "FAIL" if failed else "pass"
        return verdicts

    @property
    def passed(self) -> bool:
        return all(v in ("pass", "xfail") for v in self.op_verdicts().values())

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.verdict in ("FAIL", "not run")]

    def __str__(self) -> str:
        lines = [f"{name}: {cand}" for name, cand in self.candidates.items()]
        lines += ["", format_table(self.results)]
        lines += [f"XPASS {name}: listed as an expected failure ({self.expected_failures[name]}) "
                  "but every property passed" for name, v in self.op_verdicts().items()
                  if v == "XPASS"]
        return "\n".join(lines)

    def to_json(self) -> str:
        return to_json(self.results, candidates=self.candidates,
                       expected_failures=self.expected_failures, ops=self.op_verdicts(),
                       passed=self.passed)

    def to_junit(self) -> str:
        return to_junit(self.results, name="refimpl-verify check")

    def summary(self) -> str:
        return summary(self.results)


# -- entry points -----------------------------------------------------------------------------


def _context(candidate: Candidate, dtype: str) -> Context:
    adapter = adapters.adapter(candidate.from_numpy, candidate.to_numpy)
    return Context(adapter.backend(dtype), dtype, adapter)


def _tolerance(op, prop, dtype, rtol):
    """``rtol`` replaces the op's tolerance; a property's own scale moves with it."""
    registered = (prop.tolerance or op.tolerance)[dtype]
    return None if rtol is None else registered * rtol / op.tolerance[dtype]


def tolerance_keys(op: Op) -> dict[str, str]:
    """``{key: label}``: the names :func:`check`'s ``rtol`` mapping takes for ``op`` (the op,
    each compared float output, ``d<primal>`` for each cotangent), and the label its checks
    measure errors at (``"output"``, ``"output logabsdet"``, ``"dV"``)."""
    outputs = [o.name for o in op.outputs if o.compared and o.dtype == "float"]
    keys = {op.name: op.name}
    keys.update({n: "output" if len(op.outputs) == 1 else f"output {n}" for n in outputs})
    if op.vjp is not None:
        keys.update({cotangent_label(p.name): cotangent_label(p.name)
                     for p in op.primals if p.is_differentiable})
    return keys


def _split_rtol(op: Op, rtol) -> tuple[float | None, dict]:
    """``rtol`` as (the op's tolerance, ``{label: tolerance}`` per output and cotangent)."""
    if rtol is None:
        return None, {}
    if not isinstance(rtol, Mapping):
        return float(rtol), {}
    keys = tolerance_keys(op)
    unknown = [k for k in rtol if k not in keys]
    if unknown:
        raise ValueError(f"rtol names {unknown}, which {op.name} does not have; it takes "
                         f"{', '.join(keys)}")
    return rtol.get(op.name), {keys[k]: float(v) for k, v in rtol.items() if k != op.name}


def per_op(value, op_names, argument: str = "rtol"):
    """``{op: value}``: a number (or ``None``) for every op, or a mapping keyed by op name
    (each value a number or a per-output mapping, :func:`check`'s ``rtol``)."""
    if not isinstance(value, Mapping):
        return dict.fromkeys(op_names, value)
    stray = sorted(set(value) - set(op_names))
    if stray:
        raise ValueError(f"{argument} names ops without a candidate: {stray} (a mapping of "
                         f"{argument} is keyed by op name here)")
    return {name: value.get(name) for name in op_names}


def check(candidate, op, *, vjp=None, dtype="float64", max_examples=None, rtol=None, atol=None,
          seed=0, from_numpy=None, to_numpy=None, properties=None, cases=None,
          timeout=DEFAULT_TIMEOUT, shrink=True) -> Report:
    """Check a framework's implementation of ``op`` against refimpl.

    Parameters
    ----------
    candidate : callable or Candidate
        ``forward(*primals, **params)`` in the candidate's own arrays.
    op : str or Op
        A registered op (``refimpl-verify list``).
    vjp : callable, optional
        ``vjp(*primals, cotangent, **params)``, one cotangent per primal.
        Without it the gradient checks are reported as skipped.
    dtype : {"float64", "float32"}
        Inputs are drawn in float64 and rounded to ``dtype``; the expected
        values are computed in float64 from the rounded inputs, and the
        op's registered tolerance for ``dtype`` applies. ``"float16"``,
        ``"bfloat16"`` and the complex dtypes are refused with a
        ``ValueError`` saying why (:data:`REFUSED_DTYPES`).
    max_examples : int, optional
        Drawn inputs per property (default 25).
    rtol : float or mapping, optional
        A check passes when ``||actual - expected|| <= max(rtol ||expected||,
        atol)``; ``rtol`` defaults to the op's registered tolerance for
        ``dtype`` (a property with its own tolerance moves with it). A
        mapping overrides it per output and per cotangent:
        ``{"logabsdet": 1e-6, "dV": 1e-5, "<op>": 1e-7}`` (output names,
        ``d<primal>`` for a cotangent, the op's name for the rest:
        :func:`tolerance_keys`); the report shows every tolerance used.
    atol : float, optional
        Absolute floor of every error (default 0).
    seed : int or None
        Hypothesis seed; the same seed draws the same inputs. ``None``
        uses hypothesis's deterministic ``derandomize`` mode.
    from_numpy, to_numpy : callable or str, optional
        Array conversions (:mod:`verify.adapters`); default NumPy arrays in,
        PyTorch/JAX/CuPy/NumPy (else DLPack) recognised on the way out.
    properties : iterable of str, optional
        Only these properties (names as in the report).
    cases : str or callable, optional
        The name of one of the op's structures (:class:`~verify.registry.Structure`,
        ``"lapack"`` for reflectors in LAPACK form: ``refimpl-verify list``):
        inputs drawn in that form, cotangents compared on its free entries,
        and properties that draw their own inputs skipped (they are not in
        that form). Or a callable returning a hypothesis strategy of
        :class:`~verify.registry.Case`, replacing the op's (properties with
        their own strategy keep it): a domain the candidate supports.
    timeout : float or None
        Seconds one call of the candidate may take (default 60); a longer
        call fails its check with a report that says so. ``None``: no limit.
    shrink : bool
        For a failure, search for the smallest failing input (hypothesis's
        shrink phase, the default). ``False`` reports the first failing input
        as drawn: faster where only the verdicts matter (a gate over many
        candidates, planted-bug suites), with a larger reproducer.

    A candidate that modifies one of its input arrays fails the check that
    saw it, with the input named.

    Returns
    -------
    Report
        One result per property: examples run, largest error against the
        tolerance, verdict, and for a failure the smallest input found (the
        first failing one with ``shrink=False``) with a reproducer snippet
        (``Result.reproducer``).
    """
    op = _op(op)
    _check_dtype_argument(dtype)
    candidate = _as_candidate(candidate, vjp=vjp, from_numpy=from_numpy, to_numpy=to_numpy)
    ctx = _context(candidate, dtype)
    impl = _impl(op, candidate, ctx, timeout)
    rtol, own = _split_rtol(op, rtol)
    structure = op.structure(cases) if isinstance(cases, str) else None
    props = [p for p in candidate_properties(op) if dtype in p.dtypes]
    if properties is not None:
        props = _select(props, properties)
    results = [] if op.vjp is not None or properties is not None else [
        no_vjp_result(op, ctx.backend.name)]
    for prop in props:
        if structure is not None and not _keeps_form(prop, structure):
            results.append(Result(op.name, prop.name, ctx.backend.name, dtype, skipped=True,
                                  message=f"its inputs are not in {structure.name} form"))
            continue
        with structured(structure):
            r = run_property(op, prop, ctx.backend.name, dtype, impl=impl, context=ctx,
                             max_examples=max_examples,
                             tolerance=_tolerance(op, prop, dtype, rtol), seed=seed,
                             cases=structure.cases if structure else cases, atol=atol or 0.0,
                             tolerances=own, shrink=shrink)
        if not r.passed and "case" in r.extra:
            case = _without_options(op, r.extra["case"])
            r.counterexample = case.describe()
            r.reproducer = reproducer(op, prop, case, candidate, dtype,
                                      structure.name if structure else None)
        results.append(r)
    return Report(results, {op.name: candidate.name})


def _keeps_form(prop: Property, structure) -> bool:
    """A property whose inputs stay in ``structure``'s form: generic ones (they draw from it),
    those the structure lists, and those drawing from its own strategy."""
    if prop.cases is not None:
        return prop.cases is structure.cases
    return prop.generic or prop.name in structure.keeps


def _check_dtype_argument(dtype) -> None:
    """``dtype`` is one that :func:`check` runs (:data:`DTYPES`), else a ValueError saying why."""
    if dtype in DTYPES:
        return
    why = REFUSED_DTYPES.get(dtype)
    checked = " or ".join(DTYPES)
    if why is not None:
        raise ValueError(f"dtype={dtype!r} is refused, not checked: {why}. Check the {checked} "
                         "version of the candidate (half-precision kernels: compare them with "
                         "that version under your own tolerance)")
    raise ValueError(f"dtype must be {checked} (inputs are drawn in float64 and rounded to it), "
                     f"got {dtype!r}")


def _select(props, names):
    names = list(names)
    known = {p.name for p in props}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown properties {unknown}; this check has: {sorted(known)}")
    return [p for p in props if p.name in names]


def check_all(candidates: Mapping, *, expected_failures: Mapping[str, str] | None = None,
              **options) -> Report:
    """:func:`check` every ``{op name: candidate}``; one report.

    ``expected_failures`` maps op names to the reason they are known to fail
    (a bug reported upstream, an unsupported convention); such an op must
    fail, and passing is flagged (``XPASS``). ``rtol`` is a number for
    every op or a mapping by op name of :func:`check`'s ``rtol`` (a number
    or a per-output mapping). Other keywords go to :func:`check`.
    """
    expected = dict(expected_failures or {})
    stray = sorted(set(expected) - set(candidates))
    if stray:
        raise ValueError(f"expected_failures names ops without a candidate: {stray}")
    report = Report([], expected_failures=expected)
    rtol = per_op(options.pop("rtol", None), list(candidates))
    for name, candidate in candidates.items():
        part = check(candidate, name, rtol=rtol[name], **options)
        for r in part.results:
            r.xfail = expected.get(name, "") if not r.passed else ""
        report.results += part.results
        report.candidates.update(part.candidates)
    return report


def replay(candidate, op, property, case, *, vjp=None, dtype="float64", from_numpy=None,
           to_numpy=None, cases=None) -> float:
    """Run one property of :func:`check` on one input; the candidate's exceptions propagate.

    Returns the error measure (compare it with the tolerance in the report).
    ``cases`` names the op's structure the check ran with (cotangents
    compared on its free entries). This is what the reproducer snippets of a
    :class:`Report` call.
    """
    op = _op(op)
    _check_dtype_argument(dtype)
    candidate = _as_candidate(candidate, vjp=vjp, from_numpy=from_numpy, to_numpy=to_numpy)
    (prop,) = _select(candidate_properties(op), [property])
    ctx = _context(candidate, dtype)
    with structured(op.structure(cases) if cases is not None else None):
        return float(prop.check(_impl(op, candidate, ctx, timeout=None), case, ctx))


# -- reproducer snippets ----------------------------------------------------------------------


def _qualified_name(fn) -> str | None:
    """``module:qualname`` when importing it gives ``fn`` back (module-level functions, classes'
    functions), else ``None`` (closures, lambdas, bound methods, partials)."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or not qualname or "<" in qualname or hasattr(fn, "__self__"):
        return None
    return f"{module}:{qualname}"


def _rebuild_hint(fn, alias: str) -> str:
    """How to rebuild a candidate that cannot be imported by name: where it was made, and the
    values it closes over, in plain words."""
    if isinstance(fn, partial):
        inner = _qualified_name(fn.func)
        if inner is not None:
            module, qualname = inner.split(":")
            return (f"from {module} import {qualname.split('.')[0]}\n"
                    f"{alias} = functools.partial({qualname}, *{fn.args!r}, **{fn.keywords!r})")
    code = getattr(fn, "__code__", None)
    where = f" (defined at {code.co_filename}:{code.co_firstlineno})" if code else ""
    cells = dict(zip(code.co_freevars, fn.__closure__ or ())) if code else {}
    captured = ", ".join(f"{k}={_short_repr(c.cell_contents)}" for k, c in cells.items())
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    return "\n".join(
        [f"# {alias} is {name}{where}: a closure, lambda or bound method cannot be imported.",
         "# Rebuild it here as it was built there (or make it a module-level function)"
         + (f"; it captured {captured}" if captured else "") + ".",
         f"{alias} = ...  # rebuild {name}"])


def _short_repr(value) -> str:
    shape = getattr(value, "shape", None)  # modules have a shape function: not arrays
    text = f"<array shape {tuple(shape)}>" if isinstance(shape, tuple) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _import_line(fn, alias: str) -> str:
    name = _qualified_name(fn)
    if name is None:
        return _rebuild_hint(fn, alias)
    module, qualname = name.split(":")
    head, _, rest = qualname.partition(".")
    if rest:  # a class's function: import the class
        return f"from {module} import {head}\n{alias} = {qualname}"
    return f"from {module} import {qualname} as {alias}"


def _literal(value, imports: set) -> str:
    """Python source that rebuilds ``value``: arrays exactly (Python's float repr round-trips),
    containers and dataclasses (refimpl.nn layers) field by field, imports added to ``imports``."""
    if is_array(value):
        a = np.asarray(value)
        return f"np.array({a.tolist()!r}, dtype=np.{a.dtype.name})"
    if isinstance(value, tuple) and hasattr(value, "_fields") or dataclasses.is_dataclass(value) \
            and not isinstance(value, type):
        cls = type(value)
        imports.add(f"from {cls.__module__} import {cls.__qualname__}")
        fields = value._asdict() if isinstance(value, tuple) else {
            f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
        inner = ", ".join(f"{k}={_literal(v, imports)}" for k, v in fields.items())
        return f"{cls.__qualname__}({inner})"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_literal(v, imports) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_literal(v, imports)}" for k, v in value.items()) + "}"
    return repr(value)


def reproducer(op: Op, prop: Property, case: Case, candidate: Candidate, dtype: str,
               cases: str | None = None) -> str:
    """A short script that replays one failing (property, input) on the candidate.

    The input is written out in full (arrays, and layers field by field); the
    candidate is imported by name, or, for a closure, lambda or bound method,
    the script says where it was made and what it captured, to rebuild it.
    """
    imports = {"import numpy as np", "import verify"}
    body = [_import_line(candidate.forward, "forward")]
    extra = ""
    if candidate.vjp is not None:
        body.append(_import_line(candidate.vjp, "vjp"))
        extra += ", vjp=vjp"
    if isinstance(candidate.from_numpy, str):
        extra += f", from_numpy={candidate.from_numpy!r}"
    elif candidate.from_numpy is not None:
        body.append(_import_line(candidate.from_numpy, "from_numpy"))
        extra += ", from_numpy=from_numpy"
    if any("functools.partial" in line for line in body):
        imports.add("import functools")
    primals = ", ".join(f"{k!r}: {_literal(v, imports)}" for k, v in case.primals.items())
    params = _literal(_without_options(op, case).params, imports)
    body += [
        f"case = verify.Case({{{primals}}}, {params})",
        f"error = verify.replay(forward, {op.name!r}, {prop.name!r}, case, "
        f"dtype={dtype!r}{extra}" + (f", cases={cases!r})" if cases else ")"),
        "print(error)",
    ]
    return "\n".join(sorted(imports) + body)
