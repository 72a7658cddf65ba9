"""Shared benchmark set-up: one BLAS thread, and same-run ratio measurements.

Timings are only meaningful as ratios to a baseline measured in the same run
(``time / GEMM``, ``time / LAPACK``): the ``track_*`` benchmarks return such
ratios, computed from the best of several repeats of both sides.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import timeit  # noqa: E402

from threadpoolctl import threadpool_limits  # noqa: E402

# On 2-core machines two BLAS threads make small products 10-60x slower.
threadpool_limits(1)


def best_time(fn, min_seconds=0.2, repeat=5) -> float:
    """Best-of-``repeat`` seconds per call of ``fn``, each repeat lasting >= ``min_seconds``."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * min_seconds / 0.2))
    return min(timer.repeat(repeat=repeat, number=number)) / number


def ratio(fn, baseline, **kwargs) -> float:
    """``best_time(fn) / best_time(baseline)``, measured back to back in one process."""
    return best_time(fn, **kwargs) / best_time(baseline, **kwargs)
