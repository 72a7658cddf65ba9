"""The error contract, checked from the records: bad input gets a clear error, never a silent NaN.

From one valid case of an op, :func:`bad_inputs` derives the classes of bad
input a user meets (:data:`KINDS`), one primal or parameter at a time, and
:func:`check_errors` runs the op on each and classifies what happened:

``error``
    a ``ValueError`` or ``TypeError`` whose message names the argument (the
    primal or parameter changed, or for shape mismatches any argument);
``correct``
    a result equal to the expected one: the op's own result on the valid
    case for views that must work, the independent reference on the changed
    inputs where the input is still valid (an extra batch axis, an empty
    batch, a representable result at an extreme scale);

and the failures: ``silent`` (a NaN or infinite output, or a result where an
error was due), ``wrong`` (a finite result that differs from the expected
one), ``unclear`` (a ``ValueError``/``TypeError`` that does not name the
argument) and ``raw`` (any other exception: a library's ``IndexError``,
``LinAlgError``, ...). ``unverified`` marks a result the reference could not
judge (it failed on the changed inputs too); it is reported, not failed.

Bad cotangents (``cotangent: ...``) are refused by every VJP the same way:
cotangents are arguments too. Every op added to the registry is covered
without new test code (``tests/verify/test_errors.py``);
``refimpl-verify errors`` prints the table.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ._tree import is_array
from .checks import call_forward, call_vjp, cotangent_for, outputs_of, rel_error
from .registry import Case, Op

__all__ = ["KINDS", "BadInput", "Outcome", "bad_cotangents", "bad_inputs", "check_errors",
           "format_errors"]

KINDS = (
    "wrong ndim", "mismatched shape", "integer dtype", "bool dtype", "complex dtype",
    "float16 dtype", "nan", "inf", "empty", "python list", "mixed namespace", "mixed device",
    "mixed precision", "non-contiguous view", "negative-stride view", "scaled by 1e300",
    "scaled by 1e-300", "nan parameter", "inf parameter",
    "cotangent: wrong shape", "cotangent: nan", "cotangent: inf", "cotangent: integer dtype",
    "cotangent: python list", "cotangent: mixed precision", "cotangent: mixed namespace",
)
FAILURES = ("silent", "wrong", "unclear", "raw")


@dataclass(frozen=True)
class BadInput:
    """One changed call: ``kind``, the argument changed, the primals and params to call with.

    ``expect`` is ``"error"`` (only an error naming the argument is right),
    ``"same"`` (the op's result on the valid case is expected: views), or
    ``"reference"`` (an error naming the argument, or the reference's result
    on the changed NumPy inputs when it has one).
    """

    kind: str
    argument: str
    primals: dict
    params: dict
    expect: str
    numpy_primals: dict | None = None  # the changed inputs as NumPy, for the reference
    cotangents: list | None = None  # a call of the VJP with these, not of the forward


@dataclass
class Outcome:
    """What one :class:`BadInput` gave."""

    op: str
    kind: str
    argument: str
    verdict: str
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict in FAILURES


# -- the changed inputs ------------------------------------------------------------------------


def _float_primals(op: Op, case: Case) -> list[str]:
    return [p.name for p in op.primals if p.dtype == "float" and case.primals.get(p.name) is not None
            and np.asarray(case.primals[p.name]).size]


def _replace(case: Case, name, value) -> dict:
    return {**case.primals, name: value}


def _with_first(a: np.ndarray, value) -> np.ndarray:
    b = np.array(a, dtype=np.float64, copy=True)
    b.reshape(-1)[0] = value
    return b


def _strided(a: np.ndarray) -> np.ndarray:
    """The values of ``a`` as a view with gaps between elements (every other entry of a buffer)."""
    buffer = np.repeat(a[..., None], 2, axis=-1)
    return buffer[..., 0]


def _reversed_strides(a: np.ndarray) -> np.ndarray:
    """The values of ``a`` as a view with negative strides on every axis."""
    flipped = np.array(np.flip(a), copy=True)
    return np.flip(flipped)


def _extended(a: np.ndarray) -> np.ndarray:
    """``a`` one longer along its last axis (the new entries copied from the first)."""
    return np.concatenate([a, a[..., :1]], axis=-1)


def _empty(a: np.ndarray) -> np.ndarray:
    """``a`` with its first axis cut to length zero."""
    return a[:0]


def _array_api_strict(a, device=None):
    import array_api_strict as xps

    out = xps.asarray(np.asarray(a))
    return out if device is None else out.to_device(xps.Device(device))


def bad_inputs(op: Op, case: Case) -> Iterator[BadInput]:
    """The bad-input classes of :data:`KINDS` for ``op``, derived from the valid ``case``."""
    params = case.params
    for name in _float_primals(op, case):
        a = np.asarray(case.primals[name], dtype=np.float64)

        def changed(kind, value, expect="error", as_numpy=None):
            return BadInput(kind, name, _replace(case, name, value), params, expect,
                            _replace(case, name, value if as_numpy is None else as_numpy))

        yield changed("wrong ndim", a[..., None], "reference")
        if a.ndim:
            yield changed("mismatched shape", _extended(a), "reference")
        yield changed("integer dtype", np.round(a).astype(np.int64))
        yield changed("bool dtype", a > 0)
        yield changed("complex dtype", a.astype(np.complex128))
        yield changed("float16 dtype", a.astype(np.float16))
        yield changed("nan", _with_first(a, math.nan))
        yield changed("inf", _with_first(a, math.inf))
        if a.ndim:
            yield changed("empty", _empty(a), "reference")
        yield changed("python list", a.tolist())
        yield changed("mixed precision", a.astype(np.float32))
        yield changed("non-contiguous view", _strided(a), "same")
        yield changed("negative-stride view", _reversed_strides(a), "same")
        yield changed("scaled by 1e300", a * 1e300, "reference")
        yield changed("scaled by 1e-300", a * 1e-300, "reference")
        if len(_float_primals(op, case)) > 1:
            yield BadInput("mixed namespace", name, _replace(case, name, _array_api_strict(a)),
                           params, "error")
            strict = {k: _array_api_strict(v) if is_array(v) else v for k, v in case.primals.items()}
            strict[name] = _array_api_strict(a, "device1")
            yield BadInput("mixed device", name, strict, params, "error")
    for key, value in params.items():
        if isinstance(value, float) and key not in op.options:
            for kind, bad in (("nan parameter", math.nan), ("inf parameter", math.inf)):
                yield BadInput(kind, key, dict(case.primals), {**params, key: bad}, "reference",
                               dict(case.primals))


def cotangent_names(op: Op) -> list[str]:
    """The names of the VJP's cotangent parameters: after the required primals."""
    required = sum(not p.optional for p in op.primals)
    names = list(inspect.signature(op.vjp).parameters)
    return names[required:required + len(op.differentiable_outputs)]


def bad_cotangents(op: Op, case: Case) -> Iterator[BadInput]:
    """Bad cotangents for the VJP (cotangents are arguments too): each must be refused."""
    if op.vjp is None:
        return
    valid = cotangent_for(op, case)
    for i, name in enumerate(cotangent_names(op)):
        c = np.asarray(valid[i], dtype=np.float64)

        def changed(kind, value):
            cotangents = list(valid)
            cotangents[i] = value
            return BadInput(f"cotangent: {kind}", name, dict(case.primals), case.params, "error",
                            cotangents=cotangents)

        if c.ndim:
            yield changed("wrong shape", _extended(c))
        yield changed("nan", _with_first(c, math.nan))
        yield changed("inf", _with_first(c, math.inf))
        yield changed("integer dtype", np.round(c).astype(np.int64))
        yield changed("python list", c.tolist())
        yield changed("mixed precision", c.astype(np.float32))
        yield changed("mixed namespace", _array_api_strict(c))


# -- running and judging -----------------------------------------------------------------------

_NAMED = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def _names(op: Op, case: Case) -> set:
    return set(op.primal_names) | set(case.params)


def _names_argument(message: str, argument: str, accept: set) -> bool:
    words = set(_NAMED.findall(message))
    return argument in words or bool(words & accept)


def _host(value):
    from refimpl.backend import to_numpy

    return np.asarray(to_numpy(value), dtype=np.float64) if is_array(value) else value


def _outputs(op: Op, result) -> dict:
    values = outputs_of(op, result)
    return {o.name: _host(values[o.name]) for o in op.outputs
            if o.compared and o.dtype == "float" and is_array(values[o.name])}


def _non_finite(outputs: dict) -> str:
    for name, value in outputs.items():
        if not np.all(np.isfinite(value)):
            return name
    return ""


def _expected(op: Op, bad: BadInput, valid: dict):
    """The outputs to compare with, or ``None`` when nothing can judge the result."""
    if bad.expect == "same":
        return valid
    if bad.expect != "reference":
        return None
    try:
        result = call_forward(op, op.reference, bad.numpy_primals, bad.params, lambda a: a)
    except Exception:
        return None
    names = [o.name for o in op.outputs if o.compared and o.dtype == "float"]
    if isinstance(result, dict):
        values = result
    else:
        values = dict(zip([o.name for o in op.outputs],
                          list(result) if isinstance(result, (tuple, list)) else [result]))
    expected = {n: np.asarray(values[n], dtype=np.float64) for n in names if n in values}
    return expected if expected and not _non_finite(expected) else None


def _judge_result(op, bad, outputs, valid) -> tuple[str, str]:
    bad_output = _non_finite(outputs)
    if bad_output:
        return "silent", f"output {bad_output} is not finite"
    if bad.expect == "error":
        return "silent", "returned a result; an error naming the argument was due"
    expected = _expected(op, bad, valid)
    if expected is None:
        return "unverified", "returned a result the reference cannot judge"
    tol = 1e-10
    errors = {n: rel_error(outputs[n], expected[n]) if outputs[n].shape == expected[n].shape
              else math.inf for n in expected if n in outputs}
    worst = max(errors.values(), default=0.0)
    if worst <= tol:
        return "correct", ""
    if bad.expect == "reference" and bad.kind.startswith("scaled"):
        return "wrong", f"relative error {worst:.2g} against the reference (a representable result)"
    return "wrong", f"relative error {worst:.2g}"


def _clear_type(exc) -> bool:
    """A ``ValueError``/``TypeError`` of Python's or refimpl's own, not a library's subclass
    (NumPy's ``LinAlgError`` is a ``ValueError`` whose message names no argument)."""
    kind = type(exc)
    return kind in (ValueError, TypeError) or (
        isinstance(exc, (ValueError, TypeError)) and kind.__module__.startswith(("refimpl", "verify")))


def _judge_error(op, bad, exc, case) -> tuple[str, str]:
    message = f"{type(exc).__name__}: {exc}"
    if not _clear_type(exc):
        return "raw", message
    accept = _names(op, case) if bad.kind in ("mismatched shape", "wrong ndim", "empty") else set()
    if _names_argument(str(exc), bad.argument, accept):
        if bad.kind.startswith("scaled") and _expected(op, bad, {}) is not None:
            return "wrong", f"{message} (the exact result is representable)"
        return "error", message
    return "unclear", message


def check_errors(op: Op, case: Case, *, forward=None) -> list[Outcome]:
    """Run every bad input of ``case`` through ``forward`` (default refimpl's); one outcome each.

    Floating-point warnings are silenced: a NaN or an overflow is judged by
    the outcome (``silent``), not reported on the way.
    """
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return _check_errors(op, case, forward or op.forward)


def _check_errors(op, case, forward):
    valid = _outputs(op, call_forward(op, forward, case.primals, case.params, lambda a: a))
    outcomes = []
    for bad in [*bad_inputs(op, case), *bad_cotangents(op, case)]:
        try:
            if bad.cotangents is not None:
                result = call_vjp(op, op.vjp, bad.primals, bad.cotangents, bad.params, lambda a: a)
                outcomes.append(Outcome(op.name, bad.kind, bad.argument, "silent",
                                        "the VJP returned cotangents; an error naming the "
                                        "cotangent was due"))
                continue
            result = call_forward(op, forward, bad.primals, bad.params, lambda a: a)
        except Exception as exc:  # the outcome being judged: every exception is classified
            verdict, message = _judge_error(op, bad, exc, case)
        else:
            try:
                verdict, message = _judge_result(op, bad, _outputs(op, result), valid)
            except Exception as exc:  # an output that is not an array of the input's library
                verdict, message = "wrong", f"{type(exc).__name__}: {exc}"
        outcomes.append(Outcome(op.name, bad.kind, bad.argument, verdict, message[:300]))
    return outcomes


def format_errors(outcomes: list[Outcome]) -> str:
    """A table of counts per bad-input class and verdict, then every failure."""
    verdicts = ("error", "correct", "unverified", *FAILURES)
    counts = summary(outcomes)
    rows = [("class", *verdicts)] + [(k, *(str(counts.get(k, {}).get(v, 0)) for v in verdicts))
                                     for k in KINDS if k in counts]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failures = [o for o in outcomes if o.failed]
    lines += ["", *(f"{o.verdict.upper()} {o.op}: {o.kind} in {o.argument}: {o.message}"
                    for o in failures)]
    lines.append(f"{len(outcomes)} bad inputs, {len(failures)} failures")
    return "\n".join(lines)


def outcomes_json(outcomes: list[Outcome]) -> str:
    import json

    return json.dumps([vars(o) for o in outcomes], indent=1)


def summary(outcomes: list[Outcome]) -> dict:
    """Counts per (kind, verdict)."""
    counts: dict[str, dict[str, int]] = {}
    for o in outcomes:
        counts.setdefault(o.kind, {}).setdefault(o.verdict, 0)
        counts[o.kind][o.verdict] += 1
    return counts


def draw_case(op: Op, seed: int = 0) -> Case:
    """One valid case of ``op`` (the same for the same seed and versions)."""
    from .vectors import _draw

    (case,) = _draw(op, 1, seed)
    return case

