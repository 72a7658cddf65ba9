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

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from refimpl.backend import backend_namespace

from .checks import (Context, NotProvided, absolute_floor, generic_properties, impl_of,
                     tolerance_factors)
from .registry import Op, Property

__all__ = ["PROFILES", "Result", "properties_of", "run_property", "run_suite", "tolerance_of"]

#: Differences below the smallest normal number of the dtype are not compared relatively: a
#: subnormal result (sigmoid' at -100 in float32) carries no relative accuracy in any library.
_SUBNORMAL = {"float64": float(np.finfo(np.float64).tiny), "float32": float(np.finfo(np.float32).tiny)}

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
    error: str = ""
    shards: list = field(default_factory=list)
    tolerances: dict = field(default_factory=dict)

    @property
    def not_run(self) -> bool:
        """No example ran (every draw rejected, or hypothesis stopped first): never a pass."""
        return not (self.skipped or self.not_applicable or self.error) and self.examples == 0

    @property
    def verdict(self) -> str:
        """``pass``, ``FAIL``, ``not run`` (no example ran: ``passed`` is false), ``skip`` (a
        function the check needs was not given), ``n/a`` (the op has no such checks: no VJP),
        ``xfail`` (an expected failure) or ``ERROR`` (the check did not finish: its time limit,
        or its worker died; ``error`` says which)."""
        if self.error:
            return "ERROR"
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


class _OutOfTime(BaseException):
    """Stops hypothesis between two examples; a BaseException, so that it is not shrunk."""


def properties_of(op: Op) -> list[Property]:
    """Generic properties followed by the op's own invariants."""
    return generic_properties(op) + list(op.properties)


def tolerance_of(op: Op, prop: Property, dtype: str) -> float:
    """The property's tolerance for ``dtype``, else the op's."""
    return (prop.tolerance or op.tolerance)[dtype]


def _settings(profile: str, max_examples: int | None, seed: int | None, database=None,
              shrink: bool = True):
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    opts = dict(PROFILES[profile])
    if max_examples is not None:
        opts["max_examples"] = max_examples
    if seed is not None:
        opts["derandomize"] = False
    return settings(
        deadline=None,
        database=database,
        print_blob=False,
        phases=(Phase.explicit, Phase.reuse, Phase.generate) + ((Phase.shrink,) if shrink else ()),
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
    time_limit: float | None = None,
    database=None,
    tolerances: dict | None = None,
    shrink: bool = True,
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
    ``time_limit`` (seconds) stops the run before the next example once
    exceeded, and reports it as an ``ERROR`` (an example already running
    finishes first: a hanging candidate call needs :func:`verify.check`'s
    per-call limit). ``database``: hypothesis's example database (none by
    default), keyed by (op, property, backend, dtype), whose failing examples
    are replayed first. ``shrink=False`` reports the first failing example as
    drawn, not the smallest hypothesis can find from it.
    """
    ctx = context or Context(backend_namespace(backend), dtype)
    impl = impl or impl_of(op)
    tol = tolerance if tolerance is not None else tolerance_of(op, prop, dtype)
    own = dict(tolerances or {})
    result = Result(op.name, prop.name, backend, dtype, tolerance=tol, tolerances=own)
    last_failure: list = []
    conf, seed = _settings(profile, max_examples, seed, database, shrink)
    start = time.perf_counter()

    @conf
    @given((prop.cases or cases or op.cases)())
    def body(case):
        if result.skipped:
            return
        if time_limit is not None and time.perf_counter() - start > time_limit:
            raise _OutOfTime
        try:
            with absolute_floor(max(atol, _SUBNORMAL[dtype]) / tol if tol else 0.0), \
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

    if database is not None:
        _share_failures(body, (op.name, prop.name, backend, dtype), seed)
    elif seed is not None:
        hypothesis_seed(seed)(body)
    try:
        body()
    except _OutOfTime:
        result.passed = False
        result.error = result.message = (f"exceeded its time limit of {time_limit:g} s after "
                                         f"{result.examples} examples")
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


def _share_failures(test, key: tuple, seed: int | None) -> None:
    """Key hypothesis's database by ``key``, and seed the draws without turning it off.

    hypothesis keys its database by the test function's source, the same
    ``body`` for every property: without a key of its own, one op's failures
    would replay for all. Its ``seed`` decorator turns the database off (a
    seeded run reproduces one run); here the seed fixes a shard's draws and
    the database adds the failures other shards found, replayed first. Both
    through hypothesis's private attributes: tests/verify/test_distributed.py
    checks that a saved failure is replayed.
    """
    test._hypothesis_internal_database_key = repr(key).encode()
    if seed is not None:
        test._hypothesis_internal_use_seed = seed


def _describe_exception(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {frame[0].filename.rsplit('/', 1)[-1]}:{frame[0].lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


def no_vjp_result(op: Op, backend: str) -> Result:
    """The report's line for an op without a VJP: it has no gradient checks."""
    return Result(op.name, "vjp", backend, "-", not_applicable=True,
                  message="no VJP (not differentiable, or a fit): no gradient checks")


def run_suite(
    ops: list[Op],
    backends: list[str],
    *,
    profile="ci",
    dtypes=("float64", "float32"),
    progress: Callable | None = None,
    seed: int | None = None,
) -> list[Result]:
    """Every property of every op on every backend, run here one shard after the other.

    The run is a :class:`verify.distributed.Campaign` (``seed``: its campaign
    seed, see there), so that a sharded run of the same campaign reports the
    same results. ``progress(shard)`` is called before each shard.
    """
    # Imported here: verify.distributed builds on this module.
    from .distributed import Campaign, run_serial

    campaign = Campaign.new([op.name for op in ops], backends, dtypes, profile=profile, seed=seed)
    return run_serial(campaign, progress=progress)
