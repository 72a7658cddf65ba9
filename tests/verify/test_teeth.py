"""The checks have teeth: for every registered op, planted-bug candidates fail and a correct one passes.

Entries live in ``tests/<family>/teeth_<member>.py``, each a dict ``TEETH = {op name: Teeth(...)}``
(:class:`verify.testing.Teeth`); this file collects them. A registered op without an
entry fails ``test_every_registered_op_has_teeth``.
"""

import functools

import pytest
from _loading import TESTS, load_module

import verify
from verify.candidate import candidate_properties



def _load_teeth() -> dict:
    table = {}
    for path in sorted(TESTS.glob("*/teeth_*.py")):
        module = load_module(path)
        overlap = set(table) & set(module.TEETH)
        assert not overlap, f"{path.name} repeats teeth for {sorted(overlap)}"
        table.update(module.TEETH)
    return table


TEETH = _load_teeth()
_EXAMPLES = 10


@functools.lru_cache(maxsize=None)
def _report(op_name, mutant=None, dtype="float64"):
    teeth = TEETH[op_name]
    candidate = teeth.correct if mutant is None else teeth.mutants[mutant]
    # Verdicts, not minimal inputs: a failing property stops at its first failing example.
    options = {"max_examples": _EXAMPLES, "dtype": dtype, "shrink": False, **teeth.options}
    return verify.check(candidate, op_name, **options)


def test_every_registered_op_has_teeth():
    missing = [op.name for op in verify.list_ops() if op.name not in TEETH]
    assert not missing, f"add Teeth entries (tests/<family>/teeth_<member>.py) for {missing}"
    unknown = sorted(set(TEETH) - {op.name for op in verify.list_ops()})
    assert not unknown, f"teeth for ops that are not registered: {unknown}"


def _grouped(names):
    """One xdist group per op, so that its cached reports are computed once, by one worker."""
    return [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in names]


@pytest.mark.parametrize("op_name", _grouped(sorted(TEETH)))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correct_independent_implementation_passes(op_name, dtype):
    report = _report(op_name, dtype=dtype)
    assert report.passed, str(report)
    assert not any(r.skipped for r in report.results), "the correct candidate must have a vjp"


@pytest.mark.parametrize("op_name, mutant", [
    pytest.param(op, m, marks=pytest.mark.xdist_group(op)) for op in sorted(TEETH)
    for m in TEETH[op].mutants])
def test_planted_bug_is_reported(op_name, mutant):
    report = _report(op_name, mutant)
    assert not report.passed, f"planted bug {mutant!r} was not caught:\n{report}"
    failed = {r.property for r in report.failures}
    assert TEETH[op_name].caught_by.get(mutant, set()) <= failed, str(report)
    for r in report.failures:
        assert r.counterexample and (r.reproducer or not r.extra.get("case")), r


@pytest.mark.parametrize("op_name", _grouped(sorted(TEETH)))
def test_every_check_is_failed_by_some_planted_bug(op_name):
    killed = {r.property for m in TEETH[op_name].mutants for r in _report(op_name, m).failures}
    never = [p.name for p in candidate_properties(verify.get_op(op_name)) if p.name not in killed]
    assert not never, f"no planted bug makes these checks fail: {never}"
