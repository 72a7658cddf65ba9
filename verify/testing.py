"""pytest integration: one test per (op, property, backend, dtype).

Used by refimpl's own tests (``tests/<family>/test_<member>.py``)::

    @pytest.mark.parametrize(*property_cases("linalg.householder"))
    def test_property(op, prop, backend, dtype):
        assert_property(op, prop, backend, dtype)

The generic properties (ground truth, gradients, relations) run on every
backend; an op's own invariants on NumPy and on array-api-strict's second
device (where any hidden conversion to host memory fails), so that test
time grows with the ops, not with ops times backends.

and by a framework's test suite, one test per (op, check) of its candidates::

    @verify.parametrize_with_checks({"householder_product_tau": Candidate(fn, vjp=fn_vjp)})
    def test_against_refimpl(check):
        check()

The profile comes from ``REFIMPL_VERIFY_PROFILE`` (default ``quick``; ``ci`` or
``thorough`` for long runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from refimpl.backend import available_backends

from .candidate import Candidate, _as_candidate, candidate_properties, check, per_op
from .engine import properties_of, run_property
from .registry import Op, Property, get_op, ops

__all__ = [
    "Teeth",
    "assert_property",
    "failing_properties",
    "parametrize_with_checks",
    "property_cases",
    "test_profile",
]


def test_profile() -> str:
    """The tests' profile: ``quick`` (8 examples a property: 117 ops x 2 backends x 2 dtypes
    fit CI's minutes), else ``REFIMPL_VERIFY_PROFILE`` (``ci``: 25, ``thorough``: 300)."""
    return os.environ.get("REFIMPL_VERIFY_PROFILE", "quick")


test_profile.__test__ = False  # not a pytest test despite its name


INVARIANT_BACKENDS = ("numpy", "array_api_strict:device1")


def backends_for(prop: Property) -> list[str]:
    """NumPy, array-api-strict's second device and CuPy (with a GPU) for a generic property;
    NumPy and the second device otherwise.

    array-api-strict's default device is left out: the second device runs the same namespace
    and also fails any array created off the inputs' device, so it catches all the default
    device would, and more.
    """
    every = [b for b in available_backends(devices=True) if b != "array_api_strict"]
    return every if prop.generic else [b for b in every if b in INVARIANT_BACKENDS]


def property_cases(module: str):
    """``(argnames, params)`` for ``pytest.mark.parametrize`` over one member module.

    ``module`` is ``"<family>.<member>"`` (``"linalg.householder"``).
    """
    import pytest

    params = []
    for op in ops():
        if op.module != module:
            continue
        for prop in properties_of(op):
            for backend in backends_for(prop):
                for dtype in prop.dtypes:
                    test_id = _test_id(op.name, prop.name, backend, dtype)
                    params.append(pytest.param(op, prop, backend, dtype, id=test_id))
    if not params:
        raise LookupError(f"no registered op belongs to refimpl.{module}")
    return "op,prop,backend,dtype", params


def assert_property(op, prop, backend, dtype) -> None:
    """Run one property; fail with the error, tolerance and smallest failing input."""
    r = run_property(op, prop, backend, dtype, profile=test_profile())
    assert r.passed, (
        f"{op.name}: {prop.name} failed on {backend} {dtype} after {r.examples} examples: "
        f"{r.message}\n  smallest failing input: {r.counterexample or '(none)'}"
    )


def _test_id(*parts) -> str:
    return "-".join(parts).replace(" ", "_")


@dataclass(frozen=True)
class _Check:
    """One (op, property, dtype) of a candidate; calling it runs the check under pytest."""

    op: Op
    prop: Property
    candidate: Candidate
    dtype: str
    options: dict

    def __call__(self) -> None:
        import pytest

        report = check(self.candidate, self.op, dtype=self.dtype, properties=[self.prop.name],
                       **self.options)
        (r,) = report.results
        if r.skipped:
            pytest.skip(r.message)
        assert r.passed, "\n".join(
            x for x in (
                f"{self.op.name}: {r.property} failed ({self.dtype}, {r.examples} examples): "
                f"{r.message}",
                r.counterexample and f"smallest failing input: {r.counterexample}",
                r.reproducer and "reproduce with:\n" + r.reproducer,
            ) if x
        )


def parametrize_with_checks(candidates, *, expected_failures=None, dtypes=("float64",),
                            **options):
    """``pytest.mark.parametrize("check", ...)`` with one test per (op, check[, dtype]).

    ``candidates`` maps op names to a callable or a :class:`~verify.Candidate`;
    ``expected_failures`` maps op names to a reason, and marks that op's
    checks ``xfail`` (not strict: a buggy op fails some checks, not all).
    ``rtol`` is a number or a mapping by op name, as in
    :func:`verify.check_all`. Other keywords go to :func:`verify.check`
    (``max_examples``, ``from_numpy``, ``cases``, ...). Test ids are ``<op>-<property>``, with
    ``-<dtype>`` appended when more than one dtype is asked for.
    """
    import pytest

    expected = dict(expected_failures or {})
    selected = options.pop("properties", None)
    rtol = per_op(options.pop("rtol", None), list(candidates))
    params = []
    for name, cand in candidates.items():
        op, cand = get_op(name), _as_candidate(cand)
        mine = {**options, "rtol": rtol[name]}
        marks = [pytest.mark.xfail(reason=expected[name], strict=False)] if name in expected else []
        for prop in candidate_properties(op):
            if selected is not None and prop.name not in selected:
                continue
            for dtype in dtypes:
                if dtype in prop.dtypes:
                    test_id = _test_id(name, prop.name, *([dtype] if len(dtypes) > 1 else []))
                    params.append(pytest.param(_Check(op, prop, cand, dtype, mine),
                                               id=test_id, marks=marks))
    return pytest.mark.parametrize("check", params)


@dataclass(frozen=True)
class Teeth:
    """Planted-bug candidates for one op, and a correct independent one.

    ``correct`` must pass :func:`verify.check`; every candidate in
    ``mutants`` (a short description of the bug -> candidate) must fail it,
    at least on the properties named in ``caught_by[description]`` when
    given; together the mutants must fail every property of the op.
    ``options`` go to :func:`verify.check` for all of them (``cases``,
    ``max_examples``, ``dtype``).
    """

    correct: Candidate
    mutants: dict[str, Candidate]
    caught_by: dict[str, set] = field(default_factory=dict)
    options: dict = field(default_factory=dict)


def failing_properties(op, *, impl=None, among=None, profile="ci",
                       backend="numpy", dtype="float64") -> set:
    """Names of the properties of ``op`` (all, or those named in ``among``) that fail.

    For tests that plant a bug (with monkeypatch, or as ``impl``) and assert
    which checks catch it. ``op`` is an :class:`~verify.registry.Op` or its name.
    """
    op = get_op(op) if isinstance(op, str) else op
    return {p.name for p in properties_of(op)
            if (among is None or p.name in among) and dtype in p.dtypes
            and not run_property(op, p, backend, dtype, impl=impl, profile=profile).passed}
