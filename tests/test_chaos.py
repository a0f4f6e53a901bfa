"""The short chaos run of `make test` (issue 21): 40 s of random ListRecords / UpdateRecords / DeleteDataset by
nine devices of three identities (boto3, boto3 re-sending with its DeviceId, the reference client) through two
`syncsvc serve` instances, while the nemesis kills an instance, kills the relay, kill -9s Redis and restarts it from
its AOF, pauses Kafka and closes push sockets — each at least once, on a fixed seed. The checker (chaos/checker.py,
its own tests in tests/test_chaos_checker.py) must find no anomaly; a failure names the file the whole history was
written to.

The run starts every process it uses (its own Redis with AOF fsynced on every write, its own Kafka broker, the
`syncsvc` processes) in the test's tmp_path, where their logs stay. `make chaos` is the long run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.nemesis import KINDS
from chaos.run import Options, run
from tests.redis_processes import require

SEED = 21
SECONDS = 40.0
#: Seconds between two faults: the five kinds start within the first 25 s (an instance's restart alone takes up to
#: 8 s on a loaded machine), so each runs under load.
INTERVAL = 5.0


@pytest.mark.timeout(240)
async def test_under_every_fault_nothing_acknowledged_is_lost_doubled_or_left_unnotified(tmp_path: Path) -> None:
    require("redis-server")
    history_file = tmp_path / "history.jsonl"
    report, history = await run(
        Options(SECONDS, SEED, interval=INTERVAL, history_out=history_file, folder=tmp_path / "run")
    )
    print(report.summary())
    examples = [f"{anomaly.check}: {anomaly.detail}" for anomaly in report.anomalies[:10]]
    assert report.anomalies == [], f"{len(report.anomalies)} anomalies (history in {history_file}): {examples}"
    assert set(report.figures["faults_by_kind"]) >= set(KINDS), report.figures
    assert report.figures["writes_acknowledged"] > 100, report.figures
    assert report.figures["conflicts_refused"] > 0, report.figures
    assert history.stream_complete
