"""What a campaign on a local Dask cluster costs, piece by piece (docs/distributed.rst).

    OPENBLAS_NUM_THREADS=1 python asv_benchmarks/dask_overhead.py JOBS OP [OP ...]

Times, on the quick profile and float64: loading the registry, the serial
run, starting a ``LocalCluster`` of JOBS worker processes, Dask's own cost
per task (empty tasks), the campaign on cold workers and again on warm ones.
Not an asv benchmark: a cluster's start is timed once, in seconds.
"""

import sys
import time

from verify.distributed import Campaign, dask_client, run_on_dask, run_serial


class _Clock:
    def __init__(self):
        self.last = time.perf_counter()

    def lap(self, what, extra=""):
        now = time.perf_counter()
        print(f"{what:52s}{now - self.last:7.1f} s {extra}", flush=True)
        self.last = now
        return now


def _shards_seconds(results):
    return f"(shards {sum(r.seconds for r in results):.1f} s)"


def main(jobs, ops, empty_tasks=200):
    clock = _Clock()
    campaign = Campaign.new(ops, ["numpy"], ("float64",), profile="quick")
    clock.lap("loading the registry (every op module)", f"({len(campaign.shards())} shards)")
    clock.lap("serial run", _shards_seconds(run_serial(campaign)))
    with dask_client(jobs) as client:
        clock.lap(f"starting a LocalCluster of {jobs} worker processes")
        client.gather([client.submit(len, [i], pure=False) for i in range(empty_tasks)])
        start = clock.last
        now = clock.lap(f"{empty_tasks} empty tasks")
        print(f"{'Dask cost per task':52s}{(now - start) / empty_tasks * 1e3:7.0f} ms")
        clock.lap("the campaign on cold workers (first imports)",
                  _shards_seconds(run_on_dask(campaign, client)))
        clock.lap("the campaign again on the same, warm, workers",
                  _shards_seconds(run_on_dask(campaign, client)))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
