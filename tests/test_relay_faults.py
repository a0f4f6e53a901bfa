"""The stream through faults (issue 4): Kafka stopped during writes, Kafka missing at start-up, two relays at once.

Each test writes through syncsvc, checks that every write was acknowledged, and compares the topic with what was
acknowledged: every change exactly once, in per-dataset sync-count order.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from syncsvc.api.app import create_app
from tests.conftest import Boto, Raw, free_port, make_settings
from tests.kafka import KafkaBroker
from tests.test_relay import (  # noqa: F401 - fixtures: settings (4 shards), warm_kafka
    LANES,
    SHARDS,
    create_topic,
    read_topic,
    relay_process,
    settings,
    streaming_pool,
    warm_kafka,
    warm_up,
)

OUTAGE_SECONDS = 30.0


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of this test's own, which it may stop and start (not started yet)."""
    broker = KafkaBroker(tmp_path / "kafka")
    yield broker
    broker.stop()


@pytest.fixture
async def served(redis_url: str, own_kafka: KafkaBroker, redis_client: Redis) -> AsyncIterator[str]:
    """syncsvc with its relay, pointed at ``own_kafka`` (which the test starts when it wants)."""
    configured = make_settings(redis_url, shards=SHARDS, kafka_bootstrap=own_kafka.bootstrap, relay=True)
    server = TestServer(create_app(configured), host="127.0.0.1", port=free_port())
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


class Load:
    """Writers, one dataset each, that count what syncsvc acknowledged."""

    def __init__(self, raw: Raw, pool_id: str, writers: int) -> None:
        self.raw = raw
        self.paths = [
            f"/identitypools/{pool_id}/identities/us-east-1:{uuid.uuid4()}/datasets/d" for _ in range(writers)
        ]
        self.keys = [f"{pool_id}/{path.split('/')[4]}/d".encode() for path in self.paths]
        self.acknowledged = 0
        self.failed = 0
        self.sync_counts = dict.fromkeys(self.paths, 0)

    async def write(self, path: str, until: float) -> None:
        token = (await self.raw.send("GET", path + "/records"))[1]["SyncSessionToken"]
        while time.monotonic() < until:
            sync_count = self.sync_counts[path]
            patch = {"Op": "replace", "Key": "k", "Value": str(sync_count + 1), "SyncCount": sync_count}
            status, _, _ = await self.raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": [patch]})
            if status == 200:
                self.acknowledged += 1
                self.sync_counts[path] = sync_count + 1
            else:
                self.failed += 1
            await asyncio.sleep(0.02)

    def run(self, seconds: float) -> Any:
        until = time.monotonic() + seconds
        return asyncio.gather(*(self.write(path, until) for path in self.paths))


def check_stream(messages: list[Any], load: Load) -> None:
    """Every acknowledged change exactly once, in sync-count order per dataset."""
    per_dataset: dict[bytes, list[int]] = {key: [] for key in load.keys}
    for message in messages:
        per_dataset[message.key].append(orjson.loads(message.value)["syncCount"])
    distinct = {(key, count) for key, counts in per_dataset.items() for count in counts}
    print(  # the figures for a person (pytest -s): written, seen, lost, duplicated
        f"acknowledged {load.acknowledged}, failed {load.failed}, seen {len(messages)}, "
        f"lost {load.acknowledged - len(distinct)}, duplicated {len(messages) - len(distinct)}"
    )
    assert sum(len(counts) for counts in per_dataset.values()) == load.acknowledged
    for counts in per_dataset.values():
        assert counts == list(range(1, len(counts) + 1))


async def readiness(raw: Raw) -> str:
    status, body, _ = await raw.send("GET", "/readyz", sign=False)
    print("READY", status, body)
    assert status == 200
    return str(body["status"])


@pytest.mark.timeout(240)
async def test_kafka_stopped_during_writes_fails_no_write_and_loses_nothing(
    served: str, own_kafka: KafkaBroker, raw: Raw
) -> None:
    raw.endpoint = served
    await asyncio.to_thread(own_kafka.start)
    await warm_up(own_kafka.bootstrap)
    topic = f"changes-{uuid.uuid4().hex[:8]}"
    await create_topic(own_kafka.bootstrap, topic)
    load = Load(raw, await streaming_pool(Boto(served), topic), writers=3)

    before = load.run(3)
    await before
    await asyncio.to_thread(own_kafka.stop)
    during = load.run(OUTAGE_SECONDS)
    async with asyncio.timeout(OUTAGE_SECONDS):
        while await readiness(raw) != "degraded":
            await asyncio.sleep(0.2)
    await during
    assert load.failed == 0
    await asyncio.to_thread(own_kafka.start)
    messages = await read_topic(own_kafka.bootstrap, topic, load.acknowledged, timeout=150)
    check_stream(messages, load)
    assert await readiness(raw) == "ok"


@pytest.mark.timeout(180)
async def test_kafka_missing_at_start_up_degrades_readiness_then_drains(
    served: str, own_kafka: KafkaBroker, raw: Raw
) -> None:
    raw.endpoint = served
    topic = f"changes-{uuid.uuid4().hex[:8]}"
    load = Load(raw, await streaming_pool(Boto(served), topic), writers=2)
    await load.run(2)
    assert (load.failed, load.acknowledged > 0) == (0, True)
    async with asyncio.timeout(30):
        while await readiness(raw) != "degraded":
            await asyncio.sleep(0.2)
    await asyncio.to_thread(own_kafka.start)
    await create_topic(own_kafka.bootstrap, topic)
    messages = await read_topic(own_kafka.bootstrap, topic, load.acknowledged, timeout=90)
    check_stream(messages, load)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("overrides", [{"relay_lanes": LANES}])
async def test_two_relays_at_once_duplicate_and_reorder_nothing(
    raw: Raw,
    boto: Boto,
    redis_url: str,
    warm_kafka: str,  # noqa: F811
) -> None:
    topic = f"changes-{uuid.uuid4().hex[:8]}"
    await create_topic(warm_kafka, topic)
    load = Load(raw, await streaming_pool(boto, topic), writers=4)
    relays = [await relay_process(redis_url, warm_kafka, SYNCSVC_RELAY_LANES=str(LANES)) for _ in range(2)]
    try:
        await load.run(6)
        messages = await read_topic(warm_kafka, topic, load.acknowledged, timeout=90)
    finally:
        for relay in relays:
            relay.send_signal(signal.SIGTERM)
            await relay.wait()
    assert load.failed == 0
    check_stream(messages, load)
