"""Reports: a terminal table and JSON, from a list of engine results."""

from __future__ import annotations

import json
import platform

import numpy as np
import scipy

from .engine import Result

__all__ = ["format_table", "summary", "to_json"]

_COLUMNS = ("op", "property", "backend", "dtype", "examples", "max err / tol", "verdict")


def _row(r: Result) -> tuple[str, ...]:
    ratio = f"{r.max_error:.1e} / {r.tolerance:.0e}"
    return (r.op, r.property, r.backend, r.dtype, str(r.examples), ratio, r.verdict)


def format_table(results: list[Result]) -> str:
    """A plain-text table, one row per result, failures explained below it."""
    rows = [_COLUMNS] + [_row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failures = [r for r in results if not r.passed]
    for r in failures:
        lines += ["", f"FAIL {r.op} / {r.property} on {r.backend} {r.dtype}: {r.message}"]
        if r.counterexample:
            lines.append(f"     smallest failing input: {r.counterexample}")
    lines += ["", summary(results)]
    return "\n".join(lines)


def summary(results: list[Result]) -> str:
    failed = sum(not r.passed for r in results)
    seconds = sum(r.seconds for r in results)
    return f"{len(results) - failed} passed, {failed} failed ({seconds:.1f} s)"


def to_json(results: list[Result], **meta) -> str:
    """The same report as JSON, with the versions that produced it."""
    from refimpl import CONVENTION_VERSION, __version__

    payload = {
        "refimpl": __version__,
        "convention_version": CONVENTION_VERSION,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
        **meta,
        "results": [
            {
                "op": r.op, "property": r.property, "backend": r.backend, "dtype": r.dtype,
                "examples": r.examples, "max_error": r.max_error, "tolerance": r.tolerance,
                "verdict": r.verdict, "message": r.message, "counterexample": r.counterexample,
                "seconds": round(r.seconds, 4),
            }
            for r in results
        ],
        "summary": summary(results),
    }
    return json.dumps(payload, indent=2)
