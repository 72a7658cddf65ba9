"""``refimpl-verify``: run every registered op's properties and print a report.

Commands (``refimpl-verify COMMAND --help`` for each)::

    refimpl-verify [run] [--backend NAME] [--op NAME] ...   refimpl's own suite (the default)
    refimpl-verify check pkg.module:callable --op NAME [--vjp pkg.module:callable]
    refimpl-verify list [--op NAME]                         ops, signatures, conventions
    refimpl-verify export-vectors --out DIR [--op NAME ...]

Exit status 0 when everything passes, 1 when a property fails, 2 for a usage
error (an unknown command, op, backend or framework, an import path that does
not resolve, an output file that cannot be written), reported before any
property runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import time

from refimpl.backend import available_backends, backend_namespace

from . import adapters, registry
from .candidate import DTYPES, Candidate, candidate_properties, check
from .engine import PROFILES, properties_of, run_suite
from .report import format_table, header, to_json, to_junit
from .vectors import _draw, export_vectors

__all__ = ["describe_op", "load_callable", "main"]

COMMANDS = ("run", "check", "list", "export-vectors", "errors")


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


# -- the parser --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors raised (exit status 2 from :func:`main`), not printed."""

    def error(self, message):
        raise UsageError(f"{message}\n(see '{self.prog} --help')")


def _reports(p):
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--junit", metavar="PATH", help="also write the report as JUnit XML")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="refimpl-verify",
        description="Check every refimpl op's properties (hypothesis) against independent "
        "ground truth: SciPy/LAPACK, dense definitions, central differences, autograd. "
        "Without a command, runs refimpl's own suite ('run').",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser("run", help="refimpl's own suite (the default command)",
                         description="Run every property of every registered op.")
    run.add_argument("--backend", action="append", metavar="NAME",
                     help="backend to run on (repeatable; default numpy). Available here: "
                     + ", ".join(available_backends(devices=True)))
    run.add_argument("--profile", choices=tuple(PROFILES), default="ci",
                     help="examples per property: quick 8, ci 25 (both deterministic), "
                     "thorough 300")
    run.add_argument("--op", action="append", metavar="NAME",
                     help="only this op (repeatable); see 'refimpl-verify list'")
    run.add_argument("--dtype", action="append", choices=DTYPES,
                     help="only this dtype (repeatable; default both)")
    run.add_argument("--seed", type=int, default=None,
                     help="hypothesis seed (default: the profile's; quick and ci are "
                     "deterministic without one)")
    run.add_argument("--threads", type=int, default=1, metavar="N",
                     help="BLAS threads during the run (default 1: on small products more "
                     "threads are slower and make timings meaningless)")
    _reports(run)
    run.add_argument("--list", action="store_true", help="list the ops (as 'list') and exit")
    run.add_argument("--no-progress", action="store_true", help="no progress on stderr")

    chk = sub.add_parser("check", help="check another framework's implementation of an op",
                         description="Check another framework's implementation of a registered "
                         "op against refimpl: ground truth, refimpl's forward and VJP, and the "
                         "op's invariants.")
    chk.add_argument("forward", metavar="pkg.module:callable",
                     help="forward(*primals, **params) taking and returning the framework's arrays")
    chk.add_argument("--op", required=True, help="registered op (see 'refimpl-verify list')")
    chk.add_argument("--vjp", metavar="pkg.module:callable",
                     help="vjp(*primals, *cotangents, **params); without it the gradient checks "
                     "are skipped")
    chk.add_argument("--dtype", choices=DTYPES, default="float64")
    chk.add_argument("--from-numpy", metavar="NAME", default=None,
                     help="framework of the candidate's arrays: numpy (default), torch[:DEVICE], "
                     "jax, cupy[:N], array_api_strict[:DEVICE], or pkg.module:callable")
    chk.add_argument("--to-numpy", metavar="pkg.module:callable", default=None,
                     help="conversion back to NumPy (default: recognises torch, JAX, CuPy, DLPack)")
    chk.add_argument("--max-examples", type=int, default=None, help="inputs per property (25)")
    chk.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    chk.add_argument("--rtol", type=float, default=None, help="replaces the op's tolerance")
    chk.add_argument("--atol", type=float, default=None, help="absolute floor of every error")
    chk.add_argument("--property", action="append", metavar="NAME", help="only this property")
    _reports(chk)

    err = sub.add_parser("errors", help="the error contract: bad inputs against every op",
                         description="Run the bad-input classes derived from every record "
                         "(wrong shapes and dtypes, NaN and inf, lists, mixed namespaces, devices "
                         "and precisions, views, extreme scales, bad cotangents) and report, per "
                         "class, clear errors naming the argument, correct results and failures.")
    err.add_argument("--op", action="append", metavar="NAME", help="only this op (repeatable)")
    err.add_argument("--seed", type=int, default=0, help="seed of the valid case (default 0)")
    err.add_argument("--json", metavar="PATH", help="also write every outcome as JSON")

    lst = sub.add_parser("list", help="the ops: signatures, conventions, checks",
                         description="Registered ops: signatures, conventions, checks.")
    lst.add_argument("--op", action="append", metavar="NAME", help="only this op (repeatable)")

    exp = sub.add_parser("export-vectors", help="golden vectors for frameworks outside Python",
                         description="Write golden vectors (one .npz per case and a manifest.json "
                         "with shapes, dtypes, tolerances, versions and SHA-256 hashes).")
    exp.add_argument("--out", required=True, metavar="DIR", help="output directory")
    exp.add_argument("--op", action="extend", nargs="+", metavar="NAME", help="only these ops")
    exp.add_argument("--examples", type=int, default=5, help="cases per op (default 5)")
    exp.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    return p


def _arguments(argv):
    """Parse; a command line that starts with an option (or is empty) is the 'run' command."""
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["run", *argv]
    return _parser().parse_args(argv)


# -- shared pieces -----------------------------------------------------------------------------


def _ops(names):
    try:
        return registry.ops(names)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def _writable(*paths):
    """Fail now, before a run of minutes, when a report could not be written afterwards."""
    for path in paths:
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write {path!r}: folder {folder!r} does not exist")
        if os.path.isdir(path) or not os.access(folder, os.W_OK) or (
                os.path.exists(path) and not os.access(path, os.W_OK)):
            raise UsageError(f"cannot write {path!r}: not a writable file path")


def _write(path, text):
    if path is not None:
        with open(path, "w") as fh:
            fh.write(text)


@contextlib.contextmanager
def _threads(n):
    from threadpoolctl import threadpool_limits

    if n < 1:
        raise UsageError(f"--threads must be at least 1, got {n}")
    with threadpool_limits(n):
        yield


class _Progress:
    """Progress on stderr with elapsed time and ETA (tqdm's meter).

    On a terminal, one line redrawn in place; in a log (CI), a plain line at
    most every ``interval`` seconds, so that a long run shows that it runs.
    """

    def __init__(self, total, interval=20.0):
        from tqdm import tqdm

        self.total, self.count, self.start = total, 0, time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, file=sys.stderr, unit="check", dynamic_ncols=True,
                        leave=False) if self.tty else None
        self.meter, self.interval, self.last = tqdm.format_meter, interval, self.start

    def __call__(self, op, prop, backend, dtype):
        self.count += 1
        label = f"{op.name}: {prop.name} ({backend}, {dtype})"
        if self.bar is not None:
            self.bar.set_description_str(label[:60], refresh=False)
            self.bar.update(1)
            return
        now = time.perf_counter()
        if now - self.last >= self.interval or self.count == 1:
            self.last = now
            meter = self.meter(self.count - 1, self.total, now - self.start, ncols=80, unit="check")
            print(f"{meter} {label}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# -- the commands ------------------------------------------------------------------------------


def _run(args) -> int:
    ops = _ops(args.op)
    if args.list:
        print("\n\n".join(describe_op(op) for op in ops))
        return 0
    backends = args.backend or ["numpy"]
    for name in backends:
        try:
            backend_namespace(name)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise UsageError(exc.args[0]) from None
    _writable(args.json, args.junit)
    dtypes = tuple(args.dtype or DTYPES)
    total = len(backends) * sum(sum(d in p.dtypes for d in dtypes)
                                for op in ops for p in properties_of(op))
    meta = dict(profile=args.profile, backends=backends, seed=args.seed, threads=args.threads)
    print(header(**meta), flush=True)
    progress = None if args.no_progress else _Progress(total)
    with _threads(args.threads):
        try:
            results = run_suite(ops, backends, profile=args.profile, dtypes=dtypes,
                                progress=progress, seed=args.seed)
        finally:
            if progress is not None:
                progress.close()
    print(format_table(results))
    _write(args.json, args.json and to_json(results, **meta))
    _write(args.junit, args.junit and to_junit(results))
    return 0 if all(r.passed for r in results) else 1


def _check(args) -> int:
    from_numpy = args.from_numpy
    if from_numpy is not None and from_numpy.partition(":")[0] not in adapters.FRAMEWORKS:
        from_numpy = load_callable(from_numpy)
    candidate = Candidate(
        load_callable(args.forward),
        vjp=args.vjp and load_callable(args.vjp),
        from_numpy=from_numpy,
        to_numpy=args.to_numpy and load_callable(args.to_numpy),
    )
    _ops([args.op])
    _writable(args.json, args.junit)
    try:
        report = check(candidate, args.op, dtype=args.dtype, max_examples=args.max_examples,
                       rtol=args.rtol, atol=args.atol, seed=args.seed, properties=args.property)
    except (KeyError, ValueError, TypeError, ImportError) as exc:
        raise UsageError(exc.args[0] if exc.args else str(exc)) from None
    print(report)
    _write(args.json, args.json and report.to_json())
    _write(args.junit, args.junit and report.to_junit())
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


def _list(args) -> int:
    print("\n\n".join(describe_op(op) for op in _ops(args.op)))
    return 0


def _export(args) -> int:
    names = [op.name for op in _ops(args.op)]
    manifest = export_vectors(args.out, names, examples=args.examples, seed=args.seed)
    print(f"wrote {len(manifest['files'])} cases for {len(names)} ops to {args.out}")
    return 0


def _errors(args) -> int:
    from .errors import check_errors, draw_case, format_errors, outcomes_json

    ops = _ops(args.op)
    _writable(args.json)
    outcomes = [o for op in ops for o in check_errors(op, draw_case(op, args.seed))]
    print(format_errors(outcomes))
    _write(args.json, args.json and outcomes_json(outcomes))
    return 1 if any(o.failed for o in outcomes) else 0


_COMMANDS = {"run": _run, "check": _check, "list": _list, "export-vectors": _export,
             "errors": _errors}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _arguments(argv)
        return _COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"refimpl-verify: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`refimpl-verify list | head`): stop quietly, as `cat` does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
