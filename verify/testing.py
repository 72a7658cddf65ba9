"""pytest integration: one test per (op, property, backend, dtype).

Used by refimpl's own tests (``tests/test_<module>.py``)::

    @pytest.mark.parametrize(*property_cases(module="householder"))
    def test_property(op, prop, backend, dtype):
        assert_property(op, prop, backend, dtype)

The profile comes from ``REFIMPL_VERIFY_PROFILE`` (default ``ci``;
``thorough`` for long runs).
"""

from __future__ import annotations

import os

from refimpl.backend import available_backends

from .engine import properties_of, run_property
from .registry import ops

__all__ = ["assert_property", "property_cases", "test_profile"]


def test_profile() -> str:
    return os.environ.get("REFIMPL_VERIFY_PROFILE", "ci")


test_profile.__test__ = False  # not a pytest test despite its name


def property_cases(*, module: str):
    """``(argnames, params)`` for ``pytest.mark.parametrize`` over one building block."""
    import pytest

    params = []
    for op in ops():
        if op.module != module:
            continue
        for prop in properties_of(op):
            for backend in available_backends(devices=True):
                for dtype in prop.dtypes:
                    test_id = f"{op.name}-{prop.name.replace(' ', '_')}-{backend}-{dtype}"
                    params.append(pytest.param(op, prop, backend, dtype, id=test_id))
    if not params:
        raise LookupError(f"no registered op belongs to module {module!r}")
    return "op,prop,backend,dtype", params


def assert_property(op, prop, backend, dtype) -> None:
    """Run one property; fail with the error, tolerance and smallest failing input."""
    r = run_property(op, prop, backend, dtype, profile=test_profile())
    assert r.passed, (
        f"{op.name}: {prop.name} failed on {backend} {dtype} after {r.examples} examples: "
        f"{r.message}\n  smallest failing input: {r.counterexample or '(none)'}"
    )
