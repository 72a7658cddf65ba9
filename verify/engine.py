"""Runs properties with hypothesis and collects one result per (op, property, dtype).

Profiles fix the number of examples; ``quick`` and ``ci`` are derandomized
(the same examples on every run), ``thorough`` draws fresh ones. A failing
property is shrunk by hypothesis; the result keeps the smallest input found.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from refimpl.backend import backend_namespace

from .checks import (Context, NotProvided, absolute_floor, generic_properties, impl_of,
                     tolerance_factors)
from .registry import Op, Property

__all__ = ["PROFILES", "Result", "properties_of", "run_op", "run_property", "run_suite"]

PROFILES = {
    "quick": dict(max_examples=8, derandomize=True),
    "ci": dict(max_examples=25, derandomize=True),
    "thorough": dict(max_examples=300, derandomize=False),
}


@dataclass
class Result:
    """Outcome of one property on one backend and dtype."""

    op: str
    property: str
    backend: str
    dtype: str
    examples: int = 0
    max_error: float = 0.0
    tolerance: float = 0.0
    passed: bool = True
    message: str = ""
    counterexample: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    skipped: bool = False
    reproducer: str = ""
    xfail: str = ""
    not_applicable: bool = False
    tolerances: dict = field(default_factory=dict)

    @property
    def not_run(self) -> bool:
        """No example ran (every draw rejected, or hypothesis stopped first): never a pass."""
        return not (self.skipped or self.not_applicable) and self.examples == 0

    @property
    def verdict(self) -> str:
        """``pass``, ``FAIL``, ``not run`` (no example ran: ``passed`` is false), ``skip`` (a
        function the check needs was not given), ``n/a`` (the op has no such checks: no VJP)
        or ``xfail`` (an expected failure)."""
        if self.not_applicable:
            return "n/a"
        if self.skipped:
            return "skip"
        if self.not_run:
            return "not run"
        if self.passed:
            return "pass"
        return "xfail" if self.xfail else "FAIL"


class _PropertyFailed(AssertionError):
    pass


def properties_of(op: Op) -> list[Property]:
    """Generic properties followed by the op's own invariants."""
    return generic_properties(op) + list(op.properties)


def _settings(profile: str, max_examples: int | None, seed: int | None):
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    opts = dict(PROFILES[profile])
    if max_examples is not None:
        opts["max_examples"] = max_examples
    if seed is not None:
        opts["derandomize"] = False
    return settings(
        deadline=None,
        database=None,
        print_blob=False,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        **opts,
    ), seed


def run_property(
    op: Op,
    prop: Property,
    backend: str,
    dtype: str,
    *,
    profile: str = "ci",
    impl=None,
    max_examples: int | None = None,
    tolerance: float | None = None,
    seed: int | None = None,
    context: Context | None = None,
    cases=None,
    atol: float = 0.0,
    tolerances: dict | None = None,
) -> Result:
    """Run one property through hypothesis; never raises for a failing check.

    ``context`` replaces the backend's (a candidate's arrays, see
    :func:`verify.check`; ``backend`` is then only the report's label),
    ``cases`` the op's strategy, ``atol`` adds an absolute floor to every
    relative error (:func:`verify.checks.absolute_floor`), ``tolerances``
    replaces the tolerance of the errors measured at the outputs and
    cotangents it names (``{"output logabsdet": 1e-6, "dV": 1e-5}``, see
    :func:`verify.checks.tolerance_factors`). A check that raises
    :class:`~verify.checks.NotProvided` is reported as skipped.
    """
    ctx = context or Context(backend_namespace(backend), dtype)
    impl = impl or impl_of(op)
    tol = tolerance if tolerance is not None else (prop.tolerance or op.tolerance)[dtype]
    own = dict(tolerances or {})
    result = Result(op.name, prop.name, backend, dtype, tolerance=tol, tolerances=own)
    last_failure: list = []
    conf, seed = _settings(profile, max_examples, seed)

    @conf
    @given((prop.cases or cases or op.cases)())
    def body(case):
        if result.skipped:
            return
        try:
            with absolute_floor(atol / tol if atol else 0.0), \
                    tolerance_factors({k: v / tol for k, v in own.items()}):
                err = prop.check(impl, case, ctx)
        except NotProvided as exc:
            result.skipped, result.message = True, str(exc)
            return
        except Exception as exc:  # a candidate that raises fails this check, it does not crash
            last_failure[:] = [case, _describe_exception(exc)]
            raise _PropertyFailed(str(exc)) from exc
        finally:
            result.examples += not result.skipped
        where = getattr(err, "where", "")
        err, limit = float(err), own.get(where, tol)
        if not math.isnan(result.max_error):  # a NaN, once seen, is the report's maximum
            result.max_error = err if math.isnan(err) else max(result.max_error, err)
        if not err <= limit:  # NaN fails too
            last_failure[:] = [case, f"error {err:.3g} > tolerance {limit:.3g}"
                               + (f" in {where}" if where else "")]
            raise _PropertyFailed(last_failure[1])

    start = time.perf_counter()
    try:
        (hypothesis_seed(seed)(body) if seed is not None else body)()
    except Exception as exc:
        result.passed = False
        if last_failure:
            case, message = last_failure
            result.message = message
            result.counterexample = case.describe()
            result.extra["case"] = case
        else:
            result.message = _describe_exception(exc)
    result.seconds = time.perf_counter() - start
    if result.passed and not result.skipped and result.examples == 0:
        result.passed = False  # a check that ran no example is not a pass
        result.message = "no example ran"
    return result


def _describe_exception(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {frame[0].filename.rsplit('/', 1)[-1]}:{frame[0].lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


def no_vjp_result(op: Op, backend: str) -> Result:
    """The report's line for an op without a VJP: it has no gradient checks."""
    return Result(op.name, "vjp", backend, "-", not_applicable=True,
                  message="no VJP (not differentiable, or a fit): no gradient checks")


def run_op(op: Op, backend: str, *, profile="ci", dtypes=("float64", "float32"), progress=None,
           seed=None):
    """All properties of one op on one backend, each for the dtypes it supports."""
    results = [] if op.vjp is not None else [no_vjp_result(op, backend)]
    for prop in properties_of(op):
        for dtype in dtypes:
            if dtype not in prop.dtypes:
                continue
            if progress:
                progress(op, prop, backend, dtype)
            results.append(run_property(op, prop, backend, dtype, profile=profile, seed=seed))
    return results


def run_suite(
    ops: list[Op],
    backends: list[str],
    *,
    profile="ci",
    dtypes=("float64", "float32"),
    progress: Callable | None = None,
    seed: int | None = None,
) -> list[Result]:
    """Every property of every op on every backend (``seed``: hypothesis's, else the profile's)."""
    results = []
    for backend in backends:
        for op in ops:
            results += run_op(op, backend, profile=profile, dtypes=dtypes, progress=progress,
                              seed=seed)
    return results
