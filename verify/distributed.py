r"""Verification campaigns as shards: run here, or on a Dask cluster, merged into one report.

A campaign (ops x properties x backends x dtypes, a profile, a campaign seed)
is cut into shards, one per (op, property, backend, dtype, seed range): a
property's examples are drawn in ranges of at most ``SHARD_EXAMPLES[profile]``,
range :math:`k` by hypothesis from its own seed

.. math::

    s_k = \operatorname{BLAKE2b}_{64}\bigl(s_{\text{campaign}}, \text{op}, \text{property},
          \text{backend}, \text{dtype}, k\bigr),

so that what a shard draws depends on the campaign and the shard, never on
where or in which order it runs. The serial engine
(:func:`verify.engine.run_suite`) runs the same shards one after the other:
a sharded run merges into the same results, apart from times and the
workers named in each result's ``shards`` records (docs/distributed.rst).

On Dask (:func:`run_on_dask`), a shard whose worker dies or that exceeds its
time limit is retried once, on another worker where there is one, and then
reported as an ``ERROR`` of that shard, never dropped; :func:`finished_rows`
reads a JSON report back so that a campaign can be resumed, running only the
rows that did not finish. CuPy shards go to the workers that declare a ``GPU``
resource, where any does (:func:`gpu_resources`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import secrets
import time
import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Callable

from .engine import PROFILES, Result, no_vjp_result, properties_of, run_property, tolerance_of
from .registry import get_op

__all__ = [
    "SHARD_EXAMPLES",
    "Campaign",
    "Shard",
    "ShardRun",
    "dask_client",
    "finished_rows",
    "gpu_resources",
    "merge",
    "run_on_dask",
    "run_serial",
    "run_shard",
    "shard_seed",
]

#: Examples per shard: a property of the ``thorough`` profile (300 examples) is three shards.
SHARD_EXAMPLES = {"quick": 8, "ci": 25, "thorough": 100}

INSTALL_HINT = 'pip install "refimpl[distributed]"'


def shard_seed(campaign_seed: int, op: str, prop: str, backend: str, dtype: str,
               chunk: int) -> int:
    """Hypothesis seed of one shard: 64 bits of BLAKE2b over the campaign seed and the shard."""
    text = repr((int(campaign_seed), op, prop, backend, dtype, int(chunk)))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Shard:
    """One task: ``examples`` examples of one property, drawn from ``seed``."""

    op: str
    property: str
    backend: str
    dtype: str
    chunk: int
    examples: int
    seed: int
    profile: str
    time_limit: float | None = None
    example_db: str | None = None

    @property
    def row(self) -> tuple[str, str, str, str]:
        """The report row (op, property, backend, dtype) the shard belongs to."""
        return (self.op, self.property, self.backend, self.dtype)

    @property
    def label(self) -> str:
        return f"{self.op}: {self.property} ({self.backend}, {self.dtype}) #{self.chunk}"


@dataclass(frozen=True)
class ShardRun:
    """What one shard reported, where it ran (a Dask worker's address, or ``local``), its
    duration in seconds and the attempts it took; an unfinished shard has ``result.error``."""

    shard: Shard
    result: Result
    worker: str
    seconds: float
    attempts: int = 1

    def record(self) -> dict:
        """The report's record of the shard (``Result.shards``)."""
        return dict(chunk=self.shard.chunk, examples=self.result.examples, seed=self.shard.seed,
                    worker=self.worker, seconds=round(self.seconds, 4), attempts=self.attempts,
                    error=self.result.error)


@dataclass(frozen=True)
class Campaign:
    """What a campaign runs: ops by name, backends, dtypes, a profile and its campaign seed.

    Build it with :meth:`new`, which draws the campaign seed where none is
    given. ``time_limit`` (seconds per shard) and ``example_db`` (hypothesis's
    example database, a directory or ``redis://HOST:PORT``) do not change
    what a shard draws.
    """

    ops: tuple[str, ...]
    backends: tuple[str, ...]
    dtypes: tuple[str, ...]
    profile: str
    seed: int
    time_limit: float | None = None
    example_db: str | None = None

    @classmethod
    def new(cls, ops, backends, dtypes=("float64", "float32"), *, profile="ci", seed=None,
            time_limit=None, example_db=None) -> Campaign:
        """A campaign; without ``seed``: 0 for the deterministic profiles (``quick``, ``ci``),
        a fresh one for ``thorough`` (recorded in the report, so that the run can be repeated)."""
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
        if time_limit is not None and not time_limit > 0:
            raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
        if seed is None:
            seed = 0 if PROFILES[profile]["derandomize"] else secrets.randbits(32)
        return cls(tuple(ops), tuple(backends), tuple(dtypes), profile, int(seed), time_limit,
                   example_db)

    @cached_property
    def rows(self) -> list[tuple[tuple, list[Shard]]]:
        """The report's rows in order, each with its shards (none for an op without a VJP)."""
        return [row for backend in self.backends for name in self.ops
                for row in self._rows_of(get_op(name), backend)]

    def _rows_of(self, op, backend):
        if op.vjp is None:
            yield (op.name, "vjp", backend, "-"), []
        for prop in properties_of(op):
            for dtype in self.dtypes:
                if dtype in prop.dtypes:
                    yield (op.name, prop.name, backend, dtype), self._shards(op.name, prop.name,
                                                                           backend, dtype)

    def _shards(self, op, prop, backend, dtype) -> list[Shard]:
        total, size = PROFILES[self.profile]["max_examples"], SHARD_EXAMPLES[self.profile]
        return [Shard(op, prop, backend, dtype, k, min(size, total - start),
                      shard_seed(self.seed, op, prop, backend, dtype, k), self.profile,
                      self.time_limit, self.example_db)
                for k, start in enumerate(range(0, total, size))]

    def shards(self, skip_rows=()) -> list[Shard]:
        """Every shard, in the serial order, except those of the rows in ``skip_rows``."""
        return [s for row, shards in self.rows if row not in skip_rows for s in shards]

    def meta(self) -> dict:
        """The campaign as the JSON report records it (what :func:`finished_rows` reads back)."""
        return dict(profile=self.profile, backends=list(self.backends), seed=self.seed,
                    ops=list(self.ops), dtypes=list(self.dtypes),
                    shard_examples=SHARD_EXAMPLES[self.profile])


# -- one shard ---------------------------------------------------------------------------------


def _where() -> str:
    """The Dask worker's address when inside one, else ``local``."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _database(location):
    if location is None:
        return None
    from hypothesis.database import DirectoryBasedExampleDatabase

    if location.startswith("redis://"):
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase

        return RedisExampleDatabase(redis.Redis.from_url(location))
    return DirectoryBasedExampleDatabase(location)


def _op_and_property(shard: Shard):
    op = get_op(shard.op)
    (prop,) = [p for p in properties_of(op) if p.name == shard.property]
    return op, prop


def run_shard(shard: Shard) -> ShardRun:
    """Run one shard where this is called (a Dask task, or the serial loop)."""
    op, prop = _op_and_property(shard)
    where = _where()
    start = time.perf_counter()
    with warnings.catch_warnings():
        if where != "local":
            # A worker's own threads (its event loop) use the `random` module while hypothesis
            # has seeded it for a draw, which hypothesis takes for a strategy's use; the draws
            # themselves come from hypothesis's own generator and stay the same.
            warnings.filterwarnings("ignore", "Do not use the `random` module inside strategies")
        result = run_property(op, prop, shard.backend, shard.dtype, profile=shard.profile,
                              max_examples=shard.examples, seed=shard.seed,
                              time_limit=shard.time_limit, database=_database(shard.example_db))
    return ShardRun(shard, result, where, time.perf_counter() - start)


def _unfinished(shard: Shard, why: str, worker="", attempts=1) -> ShardRun:
    op, prop = _op_and_property(shard)
    result = Result(shard.op, shard.property, shard.backend, shard.dtype, passed=False,
                    tolerance=tolerance_of(op, prop, shard.dtype), error=why, message=why)
    return ShardRun(shard, result, worker, 0.0, attempts)


# -- merging -----------------------------------------------------------------------------------


def _merge_row(runs: list[ShardRun]) -> Result:
    """One report row from its shards: examples and times summed, the largest error, the
    first unfinished shard's error, else the first failure's message and smallest input."""
    parts = [r.result for r in runs]
    base = next((p for p in parts if p.error), None) or next(
        (p for p in parts if not p.passed), parts[0])
    errors = [p.max_error for p in parts]
    return replace(base, examples=sum(p.examples for p in parts),
                   max_error=math.nan if any(map(math.isnan, errors)) else max(errors),
                   seconds=sum(p.seconds for p in parts), shards=[r.record() for r in runs])


def merge(campaign: Campaign, runs: dict, previous: dict | None = None) -> list[Result]:
    """The report's results from shard runs (``{shard: ShardRun}``), in the campaign's order.

    ``previous`` holds rows finished earlier (``{row: Result}``, from
    :func:`finished_rows`); a shard that is in neither is an ``ERROR``: it did not run.
    """
    previous = previous or {}
    results = []
    for row, shards in campaign.rows:
        if row in previous:
            results.append(previous[row])
        elif not shards:
            results.append(no_vjp_result(get_op(row[0]), row[2]))
        else:
            results.append(_merge_row([runs.get(s) or _unfinished(
                s, "did not run: the campaign was interrupted") for s in shards]))
    return results


def finished_rows(report_json: str) -> tuple[dict, dict]:
    """``(meta, {row: Result})`` from a JSON report: its campaign, and the rows that finished
    (every verdict but ``ERROR``), so that resuming runs only the others."""
    payload = json.loads(report_json)
    if "shard_examples" not in payload:
        raise ValueError("the JSON report does not record its campaign (written by a version "
                         "of refimpl-verify before resumable campaigns)")
    if payload["shard_examples"] != SHARD_EXAMPLES[payload["profile"]]:
        raise ValueError(f"the report cut its properties into shards of {payload['shard_examples']} "
                         f"examples, this version into {SHARD_EXAMPLES[payload['profile']]}: "
                         "its seeds would not be drawn again")
    rows = {}
    for r in payload["results"]:
        if r["verdict"] == "ERROR":
            continue
        rows[(r["op"], r["property"], r["backend"], r["dtype"])] = Result(
            r["op"], r["property"], r["backend"], r["dtype"], examples=r["examples"],
            max_error=r["max_error"], tolerance=r["tolerance"], passed=r["verdict"] != "FAIL",
            message=r["message"], counterexample=r["counterexample"], seconds=r["seconds"],
            skipped=r["verdict"] == "skip", reproducer=r["reproducer"],
            xfail=r["expected_failure"], not_applicable=r["verdict"] == "n/a",
            shards=r.get("shards", []))
    return payload, rows


# -- running -----------------------------------------------------------------------------------


def run_serial(campaign: Campaign, *, progress: Callable | None = None,
               previous: dict | None = None) -> list[Result]:
    """Every shard here, one after the other (``previous``: rows already finished).

    An interrupt (Ctrl-C) ends the run with a report in which the shards not
    run are errors, so that its JSON can be resumed.
    """
    runs = {}
    with contextlib.suppress(KeyboardInterrupt):
        for shard in campaign.shards(skip_rows=previous or ()):
            if progress:
                progress(shard)
            runs[shard] = run_shard(shard)
    return merge(campaign, runs, previous)


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"running a campaign on Dask needs dask.distributed: {INSTALL_HINT} "
                          f"({exc})") from None
    return distributed


@contextlib.contextmanager
def dask_client(jobs: int | None = None, scheduler: str | None = None, threads: int = 1):
    """A Dask client: on an existing cluster (``scheduler``, its address), else on a
    ``LocalCluster`` of ``jobs`` worker processes with one thread each.

    The local cluster's scheduler reports a shard whose worker died at the
    first death (``allowed-failures`` 0), so that :func:`run_on_dask`'s single
    retry is the only one; an existing cluster's scheduler keeps its own setting.
    """
    distributed = _import_distributed()
    if scheduler is not None:
        with distributed.Client(scheduler) as client:
            yield client
        return
    if jobs is None or jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs!r}")
    import dask

    blas = {name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                            "MKL_NUM_THREADS")}
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                     dashboard_address=":0", env=blas) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _outcome(future, shard: Shard, attempt: int) -> ShardRun:
    try:
        run = future.result()
    except Exception as exc:  # the worker died (KilledWorker), or the task could not run
        last = getattr(exc, "last_worker", None)
        return _unfinished(shard, f"{type(exc).__name__}: {exc}",
                           getattr(last, "address", ""), attempt)
    return replace(run, attempts=attempt)


def gpu_resources(shard: Shard, workers: dict) -> dict:
    """``{"GPU": 1}`` for a CuPy shard when some worker declares a ``GPU`` resource
    (``dask-worker --resources GPU=1``; ``workers``: the scheduler's worker info), else ``{}``."""
    gpus = any(info.get("resources", {}).get("GPU") for info in workers.values())
    return {"GPU": 1} if gpus and shard.backend.partition(":")[0] == "cupy" else {}


def run_on_dask(campaign: Campaign, client, *, progress: Callable | None = None,
                previous: dict | None = None) -> list[Result]:
    """Every shard as a Dask task on ``client``'s cluster; the results merged as serially.

    A shard that did not finish (its worker died, its time limit) is
    submitted once more, preferably to another worker; if that fails too,
    its row is an ``ERROR``. ``progress(shard)`` is called as each shard
    finishes.
    """
    from distributed import as_completed

    submitted = {}

    def submit(shard, attempt, avoid=""):
        workers = client.scheduler_info()["workers"]
        others = [w for w in workers if w != avoid] if avoid else []
        # another worker is a preference only: where none is left, the retry runs anywhere
        placement = dict(workers=others, allow_other_workers=True) if others else {}
        future = client.submit(run_shard, shard, pure=False, **placement,
                               resources=gpu_resources(shard, workers) or None,
                               key=f"shard-{'-'.join(shard.row)}-{shard.chunk}-{attempt}"
                               .replace(" ", "_"))
        submitted[future] = (shard, attempt)
        return future

    queue = as_completed([submit(s, 1) for s in campaign.shards(skip_rows=previous or ())])
    runs = {}
    try:
        for future in queue:
            shard, attempt = submitted.pop(future)
            run = _outcome(future, shard, attempt)
            if run.result.error and attempt == 1:
                queue.add(submit(shard, 2, avoid=run.worker))
                continue
            runs[shard] = run
            if progress:
                progress(shard)
    except KeyboardInterrupt:
        client.cancel(list(submitted))
    return merge(campaign, runs, previous)
