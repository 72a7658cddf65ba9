"""Shared benchmark set-up: one BLAS thread, and same-run ratio measurements.

Timings are only meaningful as ratios to a baseline measured in the same run
(``time / GEMM``, ``time / LAPACK``): the ``track_*`` benchmarks return such
ratios, computed from the best of several repeats of both sides.

Both sides are timed in CPU time of this process (``time.process_time``), not
wall time: with BLAS on one thread it is the work done, and it leaves out the
time other processes hold the core. On a shared 2-core machine under load,
wall-clock ratios of the same code varied by factors of 3 to 10 between runs.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402
import timeit  # noqa: E402

from threadpoolctl import threadpool_limits  # noqa: E402

# On 2-core machines two BLAS threads make small products 10-60x slower.
threadpool_limits(1)


#: asv's sampling of the ``time_`` benchmarks, which it reads from each benchmark's module
#: (every module imports these two names): one round of at most five samples or 2 s. asv's
#: default, two rounds of up to five samples or 10 s each, took the full suite to 20 minutes
#: of CPU on 2 cores. The ``track_`` ratios sample themselves (:func:`ratio`).
rounds = 1
repeat = (1, 5, 2.0)


def _timer(fn) -> timeit.Timer:
    return timeit.Timer(fn, timer=time.process_time)


def _calls_per_repeat(fn, min_seconds) -> int:
    """Calls per repeat to last about ``min_seconds``, from batches of 1, 10, 100, ... calls.

    Calibrates on a tenth of ``min_seconds`` (``timeit``'s ``autorange`` takes
    0.2 s per function, which over a hundred ratios is minutes of the run).
    """
    timer, number = _timer(fn), 1
    while (seconds := timer.timeit(number)) < min_seconds / 10:
        number *= 10
    return max(1, round(number * min_seconds / seconds))


def best_time(fn, min_seconds=0.05, repeat=5) -> float:
    """Best-of-``repeat`` CPU seconds per call of ``fn``, each repeat lasting about ``min_seconds``."""
    timer, number = _timer(fn), _calls_per_repeat(fn, min_seconds)
    return min(timer.repeat(repeat=repeat, number=number)) / number


def ratio(fn, baseline, min_seconds=0.05, repeat=5) -> float:
    """Best time of ``fn`` over best time of ``baseline``, their repeats alternating.

    Alternating keeps both sides in the same machine state (caches, clock,
    other load); timing one side in a tight loop first would flatter it.
    """
    timers = [(_timer(f), _calls_per_repeat(f, min_seconds)) for f in (fn, baseline)]
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, (timer, number) in enumerate(timers):
            best[i] = min(best[i], timer.timeit(number) / number)
    return best[0] / best[1]


def import_torch():
    """PyTorch pinned to one thread, as the BLAS above; ``None`` when it is not installed.

    The benchmarks that compare with PyTorch raise ``NotImplementedError`` in
    their ``setup`` then, which asv reports as skipped.
    """
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


def require_torch():
    torch = import_torch()
    if torch is None:
        raise NotImplementedError("PyTorch is not installed: peer skipped")
    return torch
