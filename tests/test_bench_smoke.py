"""`make bench` in miniature: every system and workload of the benchmark run, seconds each, so it cannot rot.

The peers (Kinto, PouchDB Server) are left out: they install from apt/npm/PyPI on first use, which is the full
run's business. What is checked is that the run completes, measures what it claims and writes its report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report, soak
from bench.run import Plan, run


@pytest.mark.timeout(420)
def test_smoke_run_measures_every_workload_and_writes_the_report(kafka_bootstrap: str, tmp_path: Path) -> None:
    plan = Plan.smoke()
    run(plan, tmp_path, kafka=kafka_bootstrap)

    results = json.loads((tmp_path / "results.json").read_text())
    measured = {(point["system"], point["workload"]) for point in results["points"]}
    for system in ("floor", "syncsvc-1w", "syncsvc-2w"):
        assert {(system, workload) for workload in ("write", "delta", "pull")} <= measured
    assert ("redis-alone", "write") in measured
    for point in results["points"]:
        assert point["errors"] == 0, point
        assert point["requests"] > 0, point
        assert point["throughput"] > 0, point
        assert 0 < point["p50_ms"] <= point["p99_ms"] <= point["max_ms"], point
    paced = {row["system"] for row in results["paced"]}
    assert paced == {"syncsvc-1w", "syncsvc-2w", "floor (as syncsvc-1w)", "floor (as syncsvc-2w)"}
    rates = {row["system"]: row["rate"] for row in results["paced"]}
    assert rates["floor (as syncsvc-1w)"] == rates["syncsvc-1w"]  # the floor paced as syncsvc was
    assert all(point["cpu_ms"] > 0 for point in results["points"] + results["paced"])
    overloaded = {row["system"]: row for row in results["overload"]}
    assert set(overloaded) == {"syncsvc-1w", "syncsvc-2w"}
    for row in overloaded.values():  # offered 10x the peak past a bound of 128 in flight: some refused, some served
        peak = report.peak(results["points"], row["system"], "write")["throughput"]
        assert row["offered"] == plan.overload_factor * peak, row
        assert (row["admitted"] > 0, row["shed"] > 0, row["other"]) == (True, True, 0), row
        assert 0 < row["admitted_p50_ms"] <= row["admitted_p99_ms"] <= row["admitted_max_ms"], row
        assert row["answered_p99_ms"] > 0, row  # refusals included
        assert row["healthz_probes"] > 0, row

    assert set(results["push"]) == {"one instance", "two instances"}
    assert all(push["writes"] == plan.push_writes for push in results["push"].values())
    assert results["stream"]["writes"] == plan.stream_writes
    assert results["idle"]["devices_held"] == plan.idle_devices
    assert results["bulk"]["records"] == plan.bulk_identities * plan.bulk_datasets * plan.bulk_records

    text = (tmp_path / "results.md").read_text()
    for target in report.targets(results):
        assert f"| {target.name} | {target.goal} | {target.measured} |" in text
    assert "| syncsvc-1w | " in text.split("## Workload 1 at three times the peak (overload)")[1]
    for chart in ("throughput.png", "writes.png"):
        assert (tmp_path / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({chart})" in text


def _point(
    system: str, connections: int, throughput: float, p99: float = 1.0, workload: str = "write"
) -> dict[str, object]:
    return {
        "system": system,
        "workload": workload,
        "connections": connections,
        "throughput": throughput,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "generator_cpu": 0.1,
        "server_cpu": 0.5,
        "cpu_ms": 0.25,
    }


def test_peak_is_the_level_with_the_best_median_and_shows_its_spread() -> None:
    points = [_point("s", 4, 100), _point("s", 4, 300), _point("s", 4, 200), _point("s", 16, 250), _point("s", 16, 240)]
    best = report.peak(points, "s", "write")
    assert (best["connections"], best["throughput"]) == (16, 245)
    assert (best["low"], best["high"]) == (240, 250)
    assert report.peak(points, "other", "write") == {}


def test_targets_are_ratios_of_the_same_run() -> None:
    results = {
        "points": [
            _point("syncsvc-1w", 1, 1000, p99=1.0),  # p50 0.5 ms
            _point("syncsvc-1w", 64, 3000, p99=30.0),
            _point("syncsvc-2w", 64, 6000, p99=20.0),
            _point("floor", 64, 10000),
            _point("syncsvc-2w", 16, 800, p99=140.0, workload="pull"),
            _point("kinto", 16, 150, workload="pull"),
            _point("syncsvc-1w", 16, 3000, workload="delta"),
            _point("floor", 64, 10000, workload="delta"),
        ],
        "paced": [
            {"system": "syncsvc-2w", "p99_ms": 12.0, "throughput": 3000.0},
            {"system": "floor (as syncsvc-2w)", "p99_ms": 0.5, "throughput": 3000.0},
        ],
        "push": {"one instance": {"p99_ms": 0.5}},
        "stream": {"p99_ms": 200.0},
        "idle": {"devices_held": 20000, "rss_bytes": 900 << 20},
        "bulk": {"records_per_second": 49000.0},
    }
    verdicts = {target.name: (target.measured, target.met) for target in report.targets(results)}
    assert verdicts["writes, 1 worker vs the floor"] == ("0.30x (3,000/s vs 10,000/s)", False)
    assert verdicts["writes, 2 workers vs the floor"] == ("0.60x (6,000/s vs 10,000/s)", True)
    assert verdicts["write p99 at half peak, syncsvc-2w"] == ("12.0 ms at 3,000/s", False)
    assert "write p99 at half peak, floor (as syncsvc-2w)" not in verdicts  # the control is no target
    assert verdicts["write p99 at c=64, syncsvc-1w"] == ("30.0 ms at 3,000/s", False)
    assert verdicts["write p99 at c=64, syncsvc-2w"] == ("20.0 ms at 6,000/s", True)
    assert verdicts["idle UpdateRecords p50 (c=1, 1 worker)"] == ("0.50 ms", True)
    assert verdicts["cold full pull, 2 workers vs Kinto"] == ("5.33x (800/s vs 150/s)", True)
    assert verdicts["full pull p99 at c=16, syncsvc-2w"] == ("140 ms", True)
    assert verdicts["delta pull, 1 worker vs the floor"] == ("0.30x (3,000/s vs 10,000/s)", False)
    assert verdicts["push p99 (one instance)"] == ("0.50 ms", True)
    assert verdicts["stream p99"] == ("200.0 ms", False)
    assert verdicts["idle WebSocket devices"] == ("20,000 at 0.88 GiB", True)
    assert verdicts["bulk publish"] == ("49,000 records/s", False)


def test_idle_devices_short_of_the_target_are_projected_at_the_measured_cost() -> None:
    idle = {"devices_held": 19600, "rss_bytes": 700 << 20, "rss_per_device_bytes": 32 << 10}
    results = {"points": [], "paced": [], "push": {}, "stream": {}, "idle": idle, "bulk": {}}
    (target,) = [target for target in report.targets(results) if target.name == "idle WebSocket devices"]
    assert target.measured == "19,600 at 0.68 GiB; 20,000 would be 0.70 GiB"
    assert target.met is False


@pytest.mark.timeout(300)
def test_a_short_soak_loses_nothing_and_writes_its_report(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`make soak` in miniature: every write acknowledged reaches the stream and the other device, and the report
    judges each metric's growth."""
    result = soak.run(0.25, 20, 40.0, tmp_path, kafka=kafka_bootstrap)

    assert (result["failed_count"], result["never_streamed"]) == (0, 0), result["failed"]
    assert result["writes"] > 0
    assert result["phones_behind"] == 0  # each phone was told of its dataset's last sync count
    assert result["notifications"] > 0
    assert len(result["samples"]) >= 2
    assert set(result["growth"]) == {
        "rss_bytes",
        "open_files",
        "redis_bytes_per_identity",
        "outbox_backlog",
        "stream_lag_p99_ms",
    }
    assert json.loads((tmp_path / "soak.json").read_text())["writes"] == result["writes"]
    assert (tmp_path / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
