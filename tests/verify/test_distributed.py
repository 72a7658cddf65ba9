"""Campaigns as shards: the serial and the sharded runs draw the same examples and merge into
the same report; unfinished shards are errors, never dropped; a report can be resumed."""

import importlib.util
import json
import math
import random

import pytest

from verify import distributed
from verify.distributed import Campaign, ShardRun, finished_rows, merge, run_serial, run_shard
from verify.engine import Result
from verify.report import format_table, summary, to_json, to_junit

OPS = ["householder_matrix", "householder_product"]


def comparable(results):
    """The JSON report without what differs between runs: times, workers and attempts."""
    rows = json.loads(to_json(results))["results"]
    for row in rows:
        del row["seconds"]
        for shard in row["shards"]:
            del shard["seconds"], shard["worker"], shard["attempts"]
    return rows


@pytest.fixture(scope="module")
def campaign():
    return Campaign.new(OPS, ["numpy"], ("float64",), profile="quick")


@pytest.fixture(scope="module")
def serial(campaign):
    return run_serial(campaign)


def test_shards_in_any_order_merge_into_the_serial_report(campaign, serial):
    shards = campaign.shards()
    random.Random(0).shuffle(shards)
    runs = {s: run_shard(s) for s in shards}
    assert comparable(merge(campaign, runs)) == comparable(serial)
    assert all(r.verdict == "pass" and r.shards[0]["worker"] == "local" for r in serial)


def test_a_property_in_several_seed_ranges(monkeypatch):
    monkeypatch.setitem(distributed.SHARD_EXAMPLES, "quick", 3)
    campaign = Campaign.new(OPS[:1], ["numpy"], ("float64",), profile="quick", seed=5)
    row, shards = campaign.rows[0]
    assert [s.examples for s in shards] == [3, 3, 2] and len({s.seed for s in shards}) == 3
    (first, *_), again = run_serial(campaign), run_serial(campaign)
    assert first.examples == 8 and len(first.shards) == 3
    assert comparable([first]) == comparable(again[:1])


def test_shard_seeds_depend_on_the_campaign_seed_and_the_shard_only():
    a = Campaign.new(OPS, ["numpy"], ("float64", "float32"), profile="ci", seed=7)
    b = Campaign.new(OPS[::-1], ["numpy"], ("float32", "float64"), profile="ci", seed=7)
    seeds = {s.row: s.seed for s in a.shards()}
    assert seeds == {s.row: s.seed for s in b.shards()}
    assert len(set(seeds.values())) == len(seeds)
    c = Campaign.new(OPS, ["numpy"], ("float64", "float32"), profile="ci", seed=8)
    assert not set(seeds.values()) & {s.seed for s in c.shards()}


def test_the_thorough_profile_draws_a_fresh_campaign_seed_and_records_it():
    seeds = {Campaign.new(OPS, ["numpy"], profile="thorough").seed for _ in range(3)}
    assert len(seeds) > 1
    assert Campaign.new(OPS, ["numpy"], profile="quick").seed == 0
    assert Campaign.new(OPS, ["numpy"], profile="quick").meta()["seed"] == 0


def _part(examples, max_error, passed=True, error="", message=""):
    result = Result("op", "p", "numpy", "float64", examples=examples, max_error=max_error,
                    passed=passed, error=error, message=message, seconds=1.0)
    return ShardRun(None, result, "w", 1.0)


@pytest.mark.parametrize("parts, verdict, message, max_error", [
    ([_part(3, 1e-3), _part(3, 2e-3)], "pass", "", 2e-3),
    ([_part(3, 1e-3), _part(1, 9.0, False, message="too far"), _part(3, 1e-3)], "FAIL",
     "too far", 9.0),
    ([_part(1, 9.0, False, message="too far"), _part(0, 0.0, False, "worker died", "w")],
     "ERROR", "w", 9.0),
    ([_part(3, math.nan, False, message="nan"), _part(3, 1.0)], "FAIL", "nan", math.nan),
])
def test_a_row_merges_its_shards(parts, verdict, message, max_error, monkeypatch):
    monkeypatch.setattr(ShardRun, "record", lambda self: {})
    merged = distributed._merge_row(parts)
    assert merged.verdict == verdict and merged.message == message
    assert merged.examples == sum(p.result.examples for p in parts) and merged.seconds == len(parts)
    assert merged.max_error == max_error or math.isnan(merged.max_error) and math.isnan(max_error)


def test_a_shard_past_its_time_limit_is_an_error_in_every_format():
    campaign = Campaign.new(OPS[:1], ["numpy"], ("float64",), profile="quick", time_limit=1e-9)
    results = run_serial(campaign)
    assert {r.verdict for r in results} == {"ERROR"}
    assert "exceeded its time limit of 1e-09 s" in results[0].message
    assert f"0 passed, 0 failed, {len(results)} did not finish" in summary(results)
    assert "ERROR householder_matrix" in format_table(results)
    assert to_junit(results).count("<error ") == len(results)


def test_an_interrupted_campaign_reports_the_rest_as_errors(campaign, monkeypatch):
    done = []

    def interrupt_after_two(shard):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(shard)

    results = run_serial(campaign, progress=interrupt_after_two)
    assert [r.verdict for r in results[:2]] == ["pass", "pass"]
    assert {r.verdict for r in results[2:]} == {"ERROR"}
    assert "interrupted" in results[2].error


def test_resume_runs_only_what_did_not_finish(campaign, serial, monkeypatch):
    report = json.loads(to_json(serial, **campaign.meta()))
    report["results"][1].update(verdict="ERROR", message="worker died")
    meta, rows = finished_rows(json.dumps(report))
    assert meta["seed"] == campaign.seed and len(rows) == len(serial) - 1
    ran = []
    results = run_serial(campaign, previous=rows, progress=ran.append)
    assert [s.row for s in ran] == [campaign.rows[1][0]]
    assert comparable(results) == comparable(serial)


def test_a_report_without_its_campaign_cannot_be_resumed(serial):
    with pytest.raises(ValueError, match="does not record its campaign"):
        finished_rows(to_json(serial))


# -- on a Dask cluster -------------------------------------------------------------------------


on_one_cluster = pytest.mark.xdist_group("dask-cluster")  # one cluster, not one per xdist worker


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    with distributed.dask_client(jobs=2) as client:
        yield client


def _kill_a_busy_worker(client, killed):
    """A progress callback: at the first finished shard, SIGKILL a worker running one."""
    import os
    import signal

    def on_finished(shard):
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        address = busy[0]
        os.kill(client.run(os.getpid, workers=[address])[address], signal.SIGKILL)
        killed.append(address)

    return on_finished


@on_one_cluster
def test_a_shard_that_fails_twice_is_reported_not_dropped(client):
    campaign = Campaign.new(OPS[:1], ["numpy"], ("float64",), profile="quick", time_limit=1e-9)
    results = distributed.run_on_dask(campaign, client)
    assert len(results) == len(campaign.rows) and {r.verdict for r in results} == {"ERROR"}
    assert {s["attempts"] for r in results for s in r.shards} == {2}


@on_one_cluster
def test_a_killed_worker_does_not_change_the_report(client, campaign, serial):
    killed = []
    results = distributed.run_on_dask(campaign, client,
                                      progress=_kill_a_busy_worker(client, killed))
    assert killed
    assert comparable(results) == comparable(serial)
    records = [s for r in results for s in r.shards]
    assert any(s["attempts"] == 2 for s in records)  # the killed worker's shard, run again
    assert {s["worker"] for s in records} - {"local"} and killed[0] not in {
        s["worker"] for s in records if s["attempts"] == 2}


def test_jobs_without_dask_says_how_to_install_it(monkeypatch, capsys):
    import builtins

    from verify.cli import main

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.partition(".")[0] in ("dask", "distributed"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    assert main(["run", "--op", OPS[0], "--jobs", "2"]) == 2
    assert 'pip install "refimpl[distributed]"' in capsys.readouterr().err


@on_one_cluster
def test_the_command_line_on_a_cluster_and_resumed(client, tmp_path, capsys):
    from verify.cli import main

    first, resumed = tmp_path / "first.json", tmp_path / "resumed.json"
    assert main(["run", "--op", OPS[0], "--profile", "quick", "--dtype", "float64", "--seed", "4",
                 "--no-progress", "--scheduler", client.scheduler.address,
                 "--json", str(first)]) == 0
    report = json.loads(first.read_text())
    assert {s["worker"] for r in report["results"] for s in r["shards"]} <= set(
        client.scheduler_info()["workers"])
    report["results"][0].update(verdict="ERROR")
    first.write_text(json.dumps(report))
    capsys.readouterr()
    assert main(["run", "--resume", str(first), "--json", str(resumed)]) == 0
    assert "seed 4" in capsys.readouterr().out
    again = json.loads(resumed.read_text())
    assert again["results"][0]["shards"][0]["worker"] == "local"  # run again, here
    assert [r["shards"] for r in again["results"][1:]] == [
        r["shards"] for r in report["results"][1:]]  # kept as they were


@pytest.mark.parametrize("argv, message", [
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], "give one of them"),
    (["--time-limit", "0"], "--time-limit must be a positive"),
    (["--resume", "/no/such/report.json"], "cannot resume from"),
    (["--resume", "r.json", "--op", OPS[0]], "--op cannot be given with it"),
    (["--example-db", "redis://127.0.0.1:1"], 'pip install "refimpl[redis]"'),
])
def test_usage_errors_of_a_campaign(argv, message, capsys):
    from verify.cli import main

    if "redis" in message and importlib.util.find_spec("redis") is not None:
        pytest.skip("the redis client is installed here")

    assert main(["run", "--op", OPS[0], *argv] if "--resume" not in argv else ["run", *argv]) == 2
    assert message in capsys.readouterr().err


# -- hypothesis's example database, shared by the workers --------------------------------------


@pytest.fixture
def wrong_from_d4(monkeypatch):
    """Plant a bug in householder_matrix that only inputs with d >= 4 reach."""
    from refimpl.linalg import householder as hh

    original = hh._dense_matrix

    def wrong(wy):
        U = original(wy)
        return 1.5 * U if U.shape[-1] >= 4 else U

    monkeypatch.setattr(hh, "_dense_matrix", wrong)


def _replays_the_failure_first(location):
    """A failure saved by one shard is the first example of a shard that would miss it."""
    from dataclasses import replace

    found = run_shard(distributed.Shard("householder_matrix", "matches ground truth", "numpy",
                                        "float64", 0, 25, 1, "quick", example_db=location))
    assert found.result.verdict == "FAIL" and "shape (1, 4)" in found.result.counterexample
    one_example = replace(found.shard, examples=1, seed=2, example_db=None)
    assert run_shard(one_example).result.verdict == "pass"  # alone, one example misses it
    replayed = run_shard(replace(one_example, example_db=location)).result
    assert replayed.verdict == "FAIL" and replayed.counterexample == found.result.counterexample


def test_a_failure_found_once_is_replayed_first_from_a_directory(wrong_from_d4, tmp_path):
    _replays_the_failure_first(str(tmp_path / "examples"))


def test_a_failure_found_once_is_replayed_first_from_redis(wrong_from_d4, tmp_path):
    import shutil
    import socket
    import subprocess
    import time

    pytest.importorskip("redis")
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        _replays_the_failure_first(f"redis://127.0.0.1:{port}/0")
    finally:
        redis.terminate()
        redis.wait()


def test_a_report_cut_into_other_shards_cannot_be_resumed(campaign, serial):
    report = json.loads(to_json(serial, **campaign.meta()))
    report["shard_examples"] = 4
    with pytest.raises(ValueError, match="shards of 4 examples"):
        finished_rows(json.dumps(report))


def test_cupy_shards_ask_for_a_gpu_where_workers_declare_one():
    shard = distributed.Shard("linear", "matches ground truth", "cupy:1", "float32", 0, 8, 1,
                              "quick")
    with_gpu = {"tcp://a": {"resources": {"GPU": 1}}, "tcp://b": {"resources": {}}}
    without = {"tcp://a": {"resources": {}}, "tcp://b": {}}
    assert distributed.gpu_resources(shard, with_gpu) == {"GPU": 1}
    assert distributed.gpu_resources(shard, without) == {}
    from dataclasses import replace

    assert distributed.gpu_resources(replace(shard, backend="numpy"), with_gpu) == {}
