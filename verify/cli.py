"""``refimpl-verify``: run every registered op's properties and print a report.

Exit status 0 when everything passes, 1 when a property fails, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys

from refimpl.backend import available_backends, backend_namespace

from . import registry
from .engine import PROFILES, run_suite
from .report import format_table, to_json

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refimpl-verify",
        description="Check every refimpl op's properties (hypothesis) against independent "
        "ground truth: SciPy/LAPACK, dense definitions, central differences, autograd.",
    )
    p.add_argument("--backend", action="append", metavar="NAME",
                   help="backend to run on (repeatable; default numpy). Available here: "
                   + ", ".join(available_backends(devices=True)))
    p.add_argument("--profile", choices=tuple(PROFILES), default="ci",
                   help="examples per property: quick 8, ci 25 (both deterministic), thorough 300")
    p.add_argument("--op", action="append", metavar="NAME",
                   help="only this op (repeatable); see --list")
    p.add_argument("--dtype", action="append", choices=("float64", "float32"),
                   help="only this dtype (repeatable; default both)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--list", action="store_true", help="list the registered ops and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    return p


def _progress(total: int):
    count = [0]

    def show(op, prop, backend, dtype):
        count[0] += 1
        line = f"[{count[0]}/{total}] {op.name}: {prop.name} ({backend}, {dtype})"
        sys.stderr.write("\r\033[K" + line[:110])
        sys.stderr.flush()

    return show


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        ops = registry.ops(args.op)
        backends = args.backend or ["numpy"]
        for name in backends:
            backend_namespace(name)
    except (KeyError, ValueError, RuntimeError) as exc:
        print(f"refimpl-verify: error: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.list:
        for op in ops:
            print(f"{op.name}({', '.join(op.primals)})  [refimpl.{op.module}]\n    {op.convention}")
        return 0
    dtypes = tuple(args.dtype or ("float64", "float32"))
    from .engine import properties_of

    total = len(backends) * sum(
        sum(d in p.dtypes for d in dtypes) for op in ops for p in properties_of(op)
    )
    progress = None if args.no_progress or not sys.stderr.isatty() else _progress(total)
    results = run_suite(ops, backends, profile=args.profile, dtypes=dtypes, progress=progress)
    if progress:
        sys.stderr.write("\r\033[K")
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(to_json(results, profile=args.profile, backends=backends))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
