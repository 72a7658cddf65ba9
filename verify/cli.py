"""``refimpl-verify``: run every registered op's properties and print a report.

Subcommands::

    refimpl-verify [--backend NAME] [--op NAME] ...      refimpl's own suite
    refimpl-verify check pkg.module:callable --op NAME [--vjp pkg.module:callable]
    refimpl-verify list                                  ops, signatures, conventions
    refimpl-verify export-vectors --out DIR [--op NAME ...]

Exit status 0 when everything passes, 1 when a property fails, 2 for a usage
error (an unknown op or backend, an import path that does not resolve).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from refimpl.backend import available_backends, backend_namespace

from . import adapters, registry
from .candidate import Candidate, candidate_properties, check
from .engine import PROFILES, run_suite
from .report import format_table, to_json, to_junit
from .vectors import _draw, export_vectors

__all__ = ["load_callable", "main"]


class UsageError(Exception):
    """Bad command line: reported on stderr with exit status 2."""


def load_callable(path: str):
    """``"pkg.module:name"`` (or ``"pkg.module:Class.attr"``) to the object it names."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{path!r} is not an import path of the form pkg.module:callable")
    if os.getcwd() not in sys.path:  # as `python -m`, so that local modules resolve
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r} (from {path!r}): {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{path!r} does not resolve: {obj.__name__!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{path!r} is a {type(obj).__name__}, not a callable")
    return obj


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refimpl-verify",
        description="Check every refimpl op's properties (hypothesis) against independent "
        "ground truth: SciPy/LAPACK, dense definitions, central differences, autograd.",
        epilog="Other commands: 'refimpl-verify check pkg.module:callable --op NAME' checks "
        "another framework's implementation; 'refimpl-verify list' lists the ops; "
        "'refimpl-verify export-vectors --out DIR' writes golden vectors. "
        "See 'refimpl-verify COMMAND --help'.",
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
    p.add_argument("--junit", metavar="PATH", help="also write the report as JUnit XML")
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


def _write(path, text):
    with open(path, "w") as fh:
        fh.write(text)


def _suite(argv) -> int:
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
        print("\n\n".join(describe_op(op) for op in ops))
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
        _write(args.json, to_json(results, profile=args.profile, backends=backends))
    if args.junit:
        _write(args.junit, to_junit(results))
    return 0 if all(r.passed for r in results) else 1


def _check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refimpl-verify check",
        description="Check another framework's implementation of a registered op against "
        "refimpl: ground truth, refimpl's forward and VJP, and the op's invariants.",
    )
    p.add_argument("forward", metavar="pkg.module:callable",
                   help="forward(*primals, **params) taking and returning the framework's arrays")
    p.add_argument("--op", required=True, help="registered op (see 'refimpl-verify list')")
    p.add_argument("--vjp", metavar="pkg.module:callable",
                   help="vjp(*primals, cotangent, **params); without it gradient checks are skipped")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--from-numpy", metavar="NAME", default=None,
                   help="framework of the candidate's arrays: numpy (default), torch[:DEVICE], "
                   "jax, cupy[:N], array_api_strict[:DEVICE], or pkg.module:callable")
    p.add_argument("--to-numpy", metavar="pkg.module:callable", default=None,
                   help="conversion back to NumPy (default: recognises torch, JAX, CuPy, DLPack)")
    p.add_argument("--max-examples", type=int, default=None, help="inputs per property (25)")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    p.add_argument("--rtol", type=float, default=None, help="replaces the op's tolerance")
    p.add_argument("--atol", type=float, default=None, help="absolute floor of every error")
    p.add_argument("--property", action="append", metavar="NAME", help="only this property")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--junit", metavar="PATH", help="also write the report as JUnit XML")
    return p


def _check(argv) -> int:
    args = _check_parser().parse_args(argv)
    from_numpy = args.from_numpy
    if from_numpy is not None and from_numpy.partition(":")[0] not in adapters.FRAMEWORKS:
        from_numpy = load_callable(from_numpy)
    candidate = Candidate(
        load_callable(args.forward),
        vjp=args.vjp and load_callable(args.vjp),
        from_numpy=from_numpy,
        to_numpy=args.to_numpy and load_callable(args.to_numpy),
    )
    try:
        report = check(candidate, args.op, dtype=args.dtype, max_examples=args.max_examples,
                       rtol=args.rtol, atol=args.atol, seed=args.seed, properties=args.property)
    except (KeyError, ValueError, TypeError, ImportError) as exc:
        raise UsageError(exc.args[0] if exc.args else str(exc)) from None
    print(report)
    if args.json:
        _write(args.json, report.to_json())
    if args.junit:
        _write(args.junit, report.to_junit())
    return 0 if report.passed else 1


def describe_op(op) -> str:
    """Signature, module, VJP, convention, tolerances and candidate checks of one op."""
    (case,) = _draw(op, 1, 0)
    params = "".join(f", {k}=..." for k in case.params if k not in op.options)
    required = [p.name for p in op.primals if not p.optional]
    optional = "".join(f", {p.name}=None" for p in op.primals if p.optional)
    if op.vjp is None:
        vjp = "    vjp: none (no gradient checks)"
    else:
        diff = op.differentiable_outputs
        cotangents = "cotangent" if len(diff) == 1 else ", ".join(f"d{o.name}" for o in diff)
        vjp = (f"    vjp({', '.join(required)}, {cotangents}{optional}{params})"
               f" -> ({', '.join(p.name for p in op.primals if p.is_differentiable)})")
    tol = ", ".join(f"{k} {v:g}" for k, v in op.tolerance.items())
    outputs = ", ".join(o.name if o.dtype == "float" else f"{o.name}: {o.dtype}" for o in op.outputs)
    checks = "; ".join(p.name for p in candidate_properties(op))
    section = f" (docs/conventions.rst: {op.section})" if op.section else ""
    return "\n".join([
        f"{op.name}({', '.join(required)}{optional}{params}) -> {outputs}  [refimpl.{op.module}]",
        vjp,
        f"    convention{section}: {op.convention}",
        f"    tolerance (normwise relative): {tol}",
        f"    candidate checks: {checks}",
    ])


def _list(argv) -> int:
    p = argparse.ArgumentParser(prog="refimpl-verify list",
                                description="Registered ops: signatures, conventions, checks.")
    p.add_argument("--op", action="append", metavar="NAME", help="only this op (repeatable)")
    args = p.parse_args(argv)
    print("\n\n".join(describe_op(op) for op in _ops(args.op)))
    return 0


def _export(argv) -> int:
    p = argparse.ArgumentParser(
        prog="refimpl-verify export-vectors",
        description="Write golden vectors (one .npz per case and a manifest.json with shapes, "
        "dtypes, tolerances, versions and SHA-256 hashes) for frameworks outside Python.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--op", action="extend", nargs="+", metavar="NAME", help="only these ops")
    p.add_argument("--examples", type=int, default=5, help="cases per op (default 5)")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    args = p.parse_args(argv)
    names = [op.name for op in _ops(args.op)]
    manifest = export_vectors(args.out, names, examples=args.examples, seed=args.seed)
    print(f"wrote {len(manifest['files'])} cases for {len(names)} ops to {args.out}")
    return 0


def _ops(names):
    try:
        return registry.ops(names)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


_COMMANDS = {"check": _check, "list": _list, "export-vectors": _export}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv and argv[0] in _COMMANDS:
            return _COMMANDS[argv[0]](argv[1:])
        return _suite(argv)
    except UsageError as exc:
        print(f"refimpl-verify: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
