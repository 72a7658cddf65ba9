"""Campaigns as shards: the serial and the sharded runs draw the same examples and merge into
the same report; unfinished shards are errors, never dropped; a report can be resumed."""

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
    """The JSON report without what differs between runs: times and workers."""
    rows = json.loads(to_json(results))["results"]
    for row in rows:
        del row["seconds"]
        for shard in row["shards"]:
            del shard["seconds"], shard["worker"]
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
