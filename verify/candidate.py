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

from dataclasses import dataclass, field, replace
from functools import partial
from types import SimpleNamespace
from typing import Any, Callable, Mapping

import numpy as np

from . import adapters
from ._tree import tree_leaves
from .checks import (
    Context,
    NotProvided,
    call_forward,
    call_vjp,
    compare,
    cotangent_for,
    cotangents_of,
    generic_properties,
    natural_scale,
    outputs_of,
    rel_error,
    run_outputs,
    run_vjp,
    worst,
)
from .engine import Result, no_vjp_result, run_property
from .guard import guarded
from .registry import Case, Op, Property, get_op
from .report import format_table, summary, to_json, to_junit

__all__ = ["DTYPES", "Candidate", "Report", "candidate_properties", "check", "check_all", "replay"]

DTYPES = ("float64", "float32")


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
    expected = {n: [np.asarray(leaf, np.float64) for leaf in tree_leaves(v)]
                for n, v in cotangents_of(op, result, rounded).items()}
    scale = max(max(np.linalg.norm(leaf) for v in expected.values() for leaf in v),
                natural_scale(op, case, c))
    # default: a tree primal may hold no array (a flow of permutations).
    return worst({f"cotangent of {n}": max((rel_error(g, e, scale=scale)
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

    ``passed`` is true when nothing failed, apart from the ops listed in
    ``expected_failures``, each of which must fail at least one property
    (an op that passes although it is listed, ``XPASS``, fails the report:
    remove it from the list).
    """

    results: list[Result]
    candidates: dict[str, str] = field(default_factory=dict)
    expected_failures: dict[str, str] = field(default_factory=dict)

    def op_verdicts(self) -> dict[str, str]:
        """``pass``, ``FAIL``, ``xfail`` or ``XPASS`` for each op."""
        verdicts = {}
        for name in self.candidates:
            failed = any(not r.passed for r in self.results if r.op == name)
            if name in self.expected_failures:
                verdicts[name] = "xfail" if failed else "XPASS"
            else:
                verdicts[name] = "FAIL" if failed else "pass"
        return verdicts

    @property
    def passed(self) -> bool:
        return all(v in ("pass", "xfail") for v in self.op_verdicts().values())

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.verdict == "FAIL"]

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


def check(candidate, op, *, vjp=None, dtype="float64", max_examples=None, rtol=None, atol=None,
          seed=0, from_numpy=None, to_numpy=None, properties=None, cases=None,
          timeout=DEFAULT_TIMEOUT) -> Report:
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
        values are computed in float64 from the rounded inputs.
    max_examples : int, optional
        Drawn inputs per property (default 25).
    rtol, atol : float, optional
        A check passes when ``||actual - expected|| <= max(rtol ||expected||,
        atol)``; ``rtol`` defaults to the op's registered tolerance for
        ``dtype`` and ``atol`` to 0.
    seed : int or None
        Hypothesis seed; the same seed draws the same inputs. ``None``
        uses hypothesis's deterministic ``derandomize`` mode.
    from_numpy, to_numpy : callable or str, optional
        Array conversions (:mod:`verify.adapters`); default NumPy arrays in,
        PyTorch/JAX/CuPy/NumPy (else DLPack) recognised on the way out.
    properties : iterable of str, optional
        Only these properties (names as in the report).
    cases : callable, optional
        Returns a hypothesis strategy of :class:`~verify.registry.Case`,
        replacing the op's (properties with their own strategy keep it):
        restricts the inputs to a domain the candidate supports
        (LAPACK-form reflectors, say).
    timeout : float or None
        Seconds one call of the candidate may take (default 60); a longer
        call fails its check with a report that says so. ``None``: no limit.

    A candidate that modifies one of its input arrays fails the check that
    saw it, with the input named.

    Returns
    -------
    Report
        One result per property: examples run, largest error against the
        tolerance, verdict, and for a failure the smallest input found with
        a reproducer snippet (``Result.reproducer``).
    """
    op = _op(op)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES} (inputs are drawn in float64 and rounded "
                         f"to it), got {dtype!r}")
    candidate = _as_candidate(candidate, vjp=vjp, from_numpy=from_numpy, to_numpy=to_numpy)
    ctx = _context(candidate, dtype)
    impl = _impl(op, candidate, ctx, timeout)
    props = [p for p in candidate_properties(op) if dtype in p.dtypes]
    if properties is not None:
        props = _select(props, properties)
    results = [] if op.vjp is not None or properties is not None else [
        no_vjp_result(op, ctx.backend.name)]
    for prop in props:
        r = run_property(op, prop, ctx.backend.name, dtype, impl=impl, context=ctx,
                         max_examples=max_examples, tolerance=_tolerance(op, prop, dtype, rtol),
                         seed=seed, cases=cases, atol=atol or 0.0)
        if not r.passed and "case" in r.extra:
            case = _without_options(op, r.extra["case"])
            r.counterexample = case.describe()
            r.reproducer = reproducer(op, prop, case, candidate, dtype)
        results.append(r)
    return Report(results, {op.name: candidate.name})


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
    fail, and passing is flagged (``XPASS``). Other keywords go to
    :func:`check`.
    """
    expected = dict(expected_failures or {})
    stray = sorted(set(expected) - set(candidates))
    if stray:
        raise ValueError(f"expected_failures names ops without a candidate: {stray}")
    report = Report([], expected_failures=expected)
    for name, candidate in candidates.items():
        part = check(candidate, name, **options)
        for r in part.results:
            r.xfail = expected.get(name, "") if not r.passed else ""
        report.results += part.results
        report.candidates.update(part.candidates)
    return report


def replay(candidate, op, property, case, *, vjp=None, dtype="float64", from_numpy=None,
           to_numpy=None) -> float:
    """Run one property of :func:`check` on one input; the candidate's exceptions propagate.

    Returns the error measure (compare it with the tolerance in the report).
    This is what the reproducer snippets of a :class:`Report` call.
    """
    op = _op(op)
    candidate = _as_candidate(candidate, vjp=vjp, from_numpy=from_numpy, to_numpy=to_numpy)
    (prop,) = _select(candidate_properties(op), [property])
    ctx = _context(candidate, dtype)
    return float(prop.check(_impl(op, candidate, ctx, timeout=None), case, ctx))


# -- reproducer snippets ----------------------------------------------------------------------


def _qualified_name(fn) -> str | None:
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or not qualname or "<" in qualname or "." in qualname:
        return None
    return f"{module}:{qualname}"


def _import_line(fn, alias: str) -> str:
    name = _qualified_name(fn)
    if name is None:
        return f"{alias} = ...  # your {alias}: {fn!r} cannot be imported by name"
    module, qualname = name.split(":")
    return f"from {module} import {qualname} as {alias}"


def _literal(a: np.ndarray) -> str:
    # Python's float repr is the shortest string that round-trips exactly.
    return f"np.array({np.asarray(a).tolist()!r})"


def reproducer(op: Op, prop: Property, case: Case, candidate: Candidate, dtype: str) -> str:
    """A short script that replays one failing (property, input) on the candidate."""
    lines = ["import numpy as np", "import verify", _import_line(candidate.forward, "forward")]
    extra = ""
    if candidate.vjp is not None:
        lines.append(_import_line(candidate.vjp, "vjp"))
        extra += ", vjp=vjp"
    if isinstance(candidate.from_numpy, str):
        extra += f", from_numpy={candidate.from_numpy!r}"
    elif candidate.from_numpy is not None:
        lines.append(_import_line(candidate.from_numpy, "from_numpy"))
        extra += ", from_numpy=from_numpy"
    primals = ", ".join(f"{k!r}: {_literal(v)}" for k, v in case.primals.items())
    params = _without_options(op, case).params
    lines += [
        f"case = verify.Case({{{primals}}}, {params!r})",
        f"error = verify.replay(forward, {op.name!r}, {prop.name!r}, case, "
        f"dtype={dtype!r}{extra})",
        "print(error)",
    ]
    return "\n".join(lines)

