"""Reports: a terminal table, JSON and JUnit XML, from a list of engine results."""

from __future__ import annotations

import json
import platform
import xml.etree.ElementTree as ET

import numpy as np
import scipy

from .engine import Result

__all__ = ["format_table", "header", "summary", "to_json", "to_junit", "versions"]

_COLUMNS = ("op", "property", "backend", "dtype", "examples", "max err / tol", "verdict")


def _tolerance(r: Result) -> str:
    """The tolerance, then each per-output override: ``1e-08 (dV 1e-06)``."""
    overrides = ", ".join(f"{k} {v:.0e}" for k, v in r.tolerances.items())
    return f"{r.tolerance:.0e}" + (f" ({overrides})" if overrides else "")


def _row(r: Result) -> tuple[str, ...]:
    ratio = "-" if r.not_applicable else f"{r.max_error:.1e} / {_tolerance(r)}"
    return (r.op, r.property, r.backend, r.dtype, str(r.examples), ratio, r.verdict)


def versions() -> dict:
    """The versions a report depends on: refimpl, its conventions, Python and the libraries."""
    import array_api_compat
    import hypothesis

    from refimpl import CONVENTION_VERSION, __version__

    return {"refimpl": __version__, "convention_version": CONVENTION_VERSION,
            "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "hypothesis": hypothesis.__version__,
            "array_api_compat": array_api_compat.__version__}


def header(*, profile, backends, seed=None, threads=None) -> str:
    """The report's first lines: what ran, where, and with which versions."""
    from .engine import PROFILES

    v = versions()
    examples = PROFILES[profile]["max_examples"]
    mode = "fresh draws" if seed is None and not PROFILES[profile]["derandomize"] else (
        f"seed {seed}" if seed is not None else "deterministic")
    lines = [
        f"refimpl-verify: refimpl {v['refimpl']} (conventions {v['convention_version']}), "
        f"profile {profile} ({examples} examples per property, {mode}), "
        f"backends {', '.join(backends)}" + (f", {threads} BLAS thread(s)" if threads else ""),
        "versions: " + ", ".join(f"{k} {v[k]}" for k in ("python", "numpy", "scipy", "hypothesis",
                                                        "array_api_compat")),
    ]
    return "\n".join(lines)


def format_table(results: list[Result]) -> str:
    """A plain-text table, one row per result, failures explained below it."""
    rows = [_COLUMNS] + [_row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failures = [r for r in results if not r.passed]
    for r in failures:
        lines += ["", f"{r.verdict} {r.op} / {r.property} on {r.backend} {r.dtype}: {r.message}"]
        if r.xfail:
            lines.append(f"     expected failure: {r.xfail}")
        if r.counterexample:
            lines.append(f"     smallest failing input: {r.counterexample}")
        if r.reproducer:
            lines += ["     reproduce with:"] + ["       " + x for x in r.reproducer.splitlines()]
    lines += ["", summary(results)]
    return "\n".join(lines)


def summary(results: list[Result]) -> str:
    """``"N passed, M failed (T s)"``, plus unfinished, not run, skipped and expected failures
    when there are any."""
    counts = {v: sum(r.verdict == v for r in results)
              for v in ("pass", "FAIL", "ERROR", "not run", "skip", "xfail", "n/a")}
    seconds = sum(r.seconds for r in results)
    words = (("ERROR", "did not finish"), ("not run", "not run (no example ran: not a pass)"),
             ("skip", "skipped"), ("xfail", "expected failures"), ("n/a", "ops without a VJP"))
    extra = "".join(f", {counts[v]} {word}" for v, word in words if counts[v])
    return f"{counts['pass']} passed, {counts['FAIL']} failed{extra} ({seconds:.1f} s)"


def to_json(results: list[Result], **meta) -> str:
    """The same report as JSON, with the versions that produced it."""
    payload = {
        **versions(),
        **meta,
        "results": [
            {
                "op": r.op, "property": r.property, "backend": r.backend, "dtype": r.dtype,
                "examples": r.examples, "max_error": r.max_error, "tolerance": r.tolerance,
                "tolerances": r.tolerances,
                "verdict": r.verdict, "message": r.message, "counterexample": r.counterexample,
                "reproducer": r.reproducer, "expected_failure": r.xfail,
                "seconds": round(r.seconds, 4), "shards": r.shards,
            }
            for r in results
        ],
        "summary": summary(results),
    }
    return json.dumps(payload, indent=2)


def to_junit(results: list[Result], name: str = "refimpl-verify") -> str:
    """JUnit XML for CI systems: one ``testsuite`` per op, one ``testcase`` per result."""
    root = ET.Element("testsuites", name=name)
    for op in dict.fromkeys(r.op for r in results):
        mine = [r for r in results if r.op == op]
        suite = ET.SubElement(
            root, "testsuite", name=op, tests=str(len(mine)),
            failures=str(sum(r.verdict in ("FAIL", "not run") for r in mine)),
            errors=str(sum(r.verdict == "ERROR" for r in mine)),
            skipped=str(sum(r.verdict in ("skip", "xfail", "n/a") for r in mine)),
            time=f"{sum(r.seconds for r in mine):.3f}",
        )
        for r in mine:
            case = ET.SubElement(suite, "testcase", classname=f"{op}.{r.backend}.{r.dtype}",
                                 name=r.property, time=f"{r.seconds:.3f}")
            detail = (f"max error {r.max_error:.3g}, tolerance {_tolerance(r)}, "
                      f"{r.examples} examples")
            if r.verdict in ("FAIL", "not run"):
                text = "\n".join(x for x in (r.counterexample, r.reproducer) if x)
                ET.SubElement(case, "failure", message=r.message, type="PropertyFailed").text = text
            elif r.verdict == "ERROR":
                ET.SubElement(case, "error", message=r.error, type="ShardError")
            elif r.verdict in ("skip", "xfail", "n/a"):
                ET.SubElement(case, "skipped", message=r.xfail or r.message)
            ET.SubElement(case, "system-out").text = detail
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
