"""The stream through faults (issue 4): Kafka stopped during writes, Kafka missing at start-up, two relays at once.

Each test writes through syncsvc, checks that every write was acknowledged, and compares the topic with what was
acknowledged: every change exactly once, in per-dataset sync-count order.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from syncsvc.config import Settings
from tests.conftest import Boto, Raw, serving
from tests.kafka import KafkaBroker
from tests.streams import LANES, create_topic, relay_process, stream_settings, streaming_pool, warm_up
from tests.write_load import WriteLoad, assert_exact

OUTAGE_SECONDS = 30.0


@pytest.fixture
def settings(redis_url: str, kafka_bootstrap: str, overrides: dict[str, Any]) -> Settings:
    """A server whose outbox the test relays itself (4 shards)."""
    return stream_settings(redis_url, kafka_bootstrap, relay=False, **overrides)


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of this test's own, which it may stop and start (not started yet)."""
    broker = KafkaBroker(tmp_path / "kafka")
    yield broker
    broker.stop()


@pytest.fixture
async def served(redis_url: str, own_kafka: KafkaBroker, redis_client: Redis) -> AsyncIterator[str]:
    """syncsvc with its relay, pointed at ``own_kafka`` (which the test starts when it wants)."""
    async with serving(stream_settings(redis_url, own_kafka.bootstrap, relay=True)) as endpoint:
        yield endpoint


async def readiness(raw: Raw) -> str:
    status, body, _ = await raw.send("GET", "/readyz", sign=False)
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
    load = WriteLoad([served], await streaming_pool(Boto(served), topic), writers=3)

    await load.run(3)
    await asyncio.to_thread(own_kafka.stop)
    async with load.running(OUTAGE_SECONDS), asyncio.timeout(OUTAGE_SECONDS):
        while await readiness(raw) != "degraded":
            await asyncio.sleep(0.2)
    assert (load.failures, load.applied) == ({}, [])
    await asyncio.to_thread(own_kafka.start)
    assert_exact(load, await load.verify_topic(own_kafka.bootstrap, topic, timeout=150))
    assert await readiness(raw) == "ok"


@pytest.mark.timeout(180)
async def test_kafka_missing_at_start_up_degrades_readiness_then_drains(
    served: str, own_kafka: KafkaBroker, raw: Raw
) -> None:
    raw.endpoint = served
    topic = f"changes-{uuid.uuid4().hex[:8]}"
    load = WriteLoad([served], await streaming_pool(Boto(served), topic), writers=2)
    await load.run(2)
    assert (load.failures, load.applied, len(load.acknowledged) > 0) == ({}, [], True)
    async with asyncio.timeout(30):
        while await readiness(raw) != "degraded":
            await asyncio.sleep(0.2)
    await asyncio.to_thread(own_kafka.start)
    await create_topic(own_kafka.bootstrap, topic)
    assert_exact(load, await load.verify_topic(own_kafka.bootstrap, topic, timeout=90))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("overrides", [{"relay_lanes": LANES}])
async def test_two_relays_at_once_duplicate_and_reorder_nothing(
    endpoint: str,
    boto: Boto,
    redis_url: str,
    warm_kafka: str,
) -> None:
    topic = f"changes-{uuid.uuid4().hex[:8]}"
    await create_topic(warm_kafka, topic)
    load = WriteLoad([endpoint], await streaming_pool(boto, topic), writers=4)
    run = uuid.uuid4().hex[:8]  # one deployment: both relays share its checkpoint topic and transactional ids
    relays = [await relay_process(redis_url, warm_kafka, run=run, SYNCSVC_RELAY_LANES=str(LANES)) for _ in range(2)]
    try:
        await load.run(6)
        check = await load.verify_topic(warm_kafka, topic, timeout=90)
    finally:
        for relay in relays:
            relay.send_signal(signal.SIGTERM)
            await relay.wait()
    assert (load.failures, load.applied) == ({}, [])
    assert_exact(load, check)
