"""The stream on a three-broker Kafka cluster (issue 15): the topics syncsvc creates there are replicated three times
with a minimum ISR of two, and a broker killed with SIGKILL in the middle of a write load costs no change and
duplicates none.

The tests on the cluster are marked ``cluster``: three JVMs on top of the suite take a while to start (``pytest -m
"not cluster"`` leaves them out). The cluster is the session's ``kafka_cluster`` (tests/kafka.py); the fault test
kills one of its nodes and starts it again before it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from syncsvc.api.app import STALE_SECONDS
from syncsvc.config import Settings
from syncsvc.outbox.topics import replication
from tests.conftest import Boto, Raw, make_settings, serving
from tests.kafka import KafkaCluster
from tests.streams import SHARDS, streaming_pool, warm_up
from tests.write_load import WriteLoad, assert_exact

#: Bounds every wait on Kafka below (a step on three JVMs sharing two cores can take a while).
STEP_SECONDS = 60.0
#: How long the load writes; the kill comes once KILL_AFTER_WRITES of its writes committed.
LOAD_SECONDS = 30.0
KILL_AFTER_WRITES = 150
#: How long the relay may take, after the load, to publish everything with one broker down.
DRAIN_SECONDS = 120.0
#: A sample of /readyz this close to 0 counts as caught up (under load the oldest change is a batch old).
CAUGHT_UP_SECONDS = 1.0
#: Where the topic syncsvc creates gets its minimum ISR: a topic's own setting, not the broker's default.
TOPIC_CONFIG_SOURCE = 1


@dataclass
class Served:
    """syncsvc with its relay on the cluster, and clients for it."""

    endpoint: str
    settings: Settings
    raw: Raw
    boto: Boto


@pytest.fixture
async def served(redis_url: str, redis_client: Redis, kafka_cluster: KafkaCluster) -> AsyncIterator[Served]:
    """syncsvc (API and relay, in this process) on the suite's Redis and the three-broker cluster."""
    own = uuid.uuid4().hex[:8]  # the cluster outlives this test: its relay's checkpoints and producer ids are its own
    settings = make_settings(
        redis_url,
        shards=SHARDS,
        kafka_bootstrap=kafka_cluster.bootstrap,
        relay=True,
        relay_checkpoint_topic=f"checkpoints-{own}",
        relay_transactional_prefix=f"relay-{own}",
    )
    await warm_up(kafka_cluster.bootstrap)  # the transaction state topic exists before the relay's first producer
    async with serving(settings) as endpoint, aiohttp.ClientSession() as session:
        yield Served(endpoint, settings, Raw(endpoint, session), Boto(endpoint))


@dataclass
class Readiness:
    """/readyz sampled over time: (seconds since the kill, status, relay_behind_seconds)."""

    since: float
    samples: list[tuple[float, str, float]] = field(default_factory=list)

    async def sample(self, raw: Raw) -> tuple[str, float]:
        status, body, _ = await raw.send("GET", "/readyz", sign=False)
        assert status == 200, body  # Redis is up: Kafka trouble never makes the process unready
        self.samples.append((time.monotonic() - self.since, body["status"], body["relay_behind_seconds"]))
        return body["status"], body["relay_behind_seconds"]

    async def watch(self, raw: Raw, until: asyncio.Future[None]) -> None:
        """Samples every 0.25 s until ``until`` is done."""
        while not until.done():
            await self.sample(raw)
            await asyncio.sleep(0.25)

    @property
    def degraded_seconds(self) -> float:
        return 0.25 * sum(status == "degraded" for _, status, _ in self.samples)

    @property
    def peak_behind(self) -> float:
        return max(behind for _, _, behind in self.samples)

    @property
    def caught_up_after(self) -> float:
        """Seconds from the kill until the relay was caught up for good (every later sample close to 0)."""
        caught_up = 0.0
        for at, _, behind in self.samples:
            if behind >= CAUGHT_UP_SECONDS:
                caught_up = at
        return caught_up


@contextlib.asynccontextmanager
async def kafka_admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client on ``bootstrap``, started, for the block; STEP_SECONDS bounds the start and the block."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        async with asyncio.timeout(STEP_SECONDS):
            await admin.start()
            yield admin
    finally:
        await admin.close()


async def created_topic(bootstrap: str, topic: str) -> None:
    """Waits until ``topic`` exists (listing topics never creates one, unlike describing a missing one)."""
    async with kafka_admin(bootstrap) as admin:
        while topic not in await admin.list_topics():
            await asyncio.sleep(0.2)


async def replication_of(bootstrap: str, topic: str) -> dict[str, Any]:
    """The topic's partition count, replicas per partition, and min.insync.replicas with where it is set."""
    async with kafka_admin(bootstrap) as admin:
        (described,) = await admin.describe_topics([topic])
        (configs,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None})]
        )
    (entry,) = configs.to_object()["resources"][0]["config_entries"]
    return {
        "partitions": len(described["partitions"]),
        "replicas": {len(partition["replicas"]) for partition in described["partitions"]},
        "min.insync.replicas": (entry["config_value"], entry["config_source"]),
    }


async def transaction_coordinator(bootstrap: str, transactional_id: str) -> int:
    """The node id of the broker coordinating ``transactional_id``'s transactions."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        async with asyncio.timeout(STEP_SECONDS):
            await client.bootstrap()
            while True:
                try:
                    return int(await client.coordinator_lookup(CoordinationType.TRANSACTION, transactional_id))
                except KafkaError:  # not elected yet: the deadline bounds the retries
                    await asyncio.sleep(0.2)
    finally:
        await client.close()


async def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's leader."""
    async with kafka_admin(bootstrap) as admin:
        (described,) = await admin.describe_topics([topic])
    return {partition["partition"]: partition["leader"] for partition in described["partitions"]}


@pytest.mark.parametrize(
    ("configured", "brokers", "expected"),
    [(None, 1, (1, 1)), (None, 2, (2, 1)), (None, 3, (3, 2)), (None, 5, (3, 2)), (1, 3, (1, 1)), (5, 1, (5, 2))],
)
def test_replication_is_three_with_a_minimum_isr_of_two_from_three_brokers_unless_configured(
    configured: int | None, brokers: int, expected: tuple[int, int]
) -> None:
    assert replication(configured, brokers) == expected


@pytest.mark.cluster
@pytest.mark.timeout(300)  # the first test of the session to ask for the cluster also waits for it to start
async def test_topics_syncsvc_creates_on_three_brokers_have_three_replicas_and_a_minimum_isr_of_two(
    served: Served, kafka_cluster: KafkaCluster
) -> None:
    topic = f"changes-{uuid.uuid4().hex[:8]}"
    load = WriteLoad([served.endpoint], await streaming_pool(served.boto, topic), writers=1, max_writes=1)
    await load.run(5)
    await created_topic(kafka_cluster.bootstrap, topic)

    stream = await replication_of(kafka_cluster.bootstrap, topic)
    checkpoints = await replication_of(kafka_cluster.bootstrap, served.settings.relay_checkpoint_topic)

    assert stream == {
        "partitions": served.settings.stream_partitions,
        "replicas": {3},
        "min.insync.replicas": ("2", TOPIC_CONFIG_SOURCE),
    }
    assert checkpoints == {"partitions": SHARDS, "replicas": {3}, "min.insync.replicas": ("2", TOPIC_CONFIG_SOURCE)}


@pytest.mark.cluster
@pytest.mark.timeout(480)
async def test_a_broker_killed_during_writes_loses_and_duplicates_no_change(
    served: Served, kafka_cluster: KafkaCluster
) -> None:
    bootstrap, raw = kafka_cluster.bootstrap, served.raw
    topic = f"changes-{uuid.uuid4().hex[:8]}"
    load = WriteLoad([served.endpoint], await streaming_pool(served.boto, topic), writers=6)
    writing = asyncio.create_task(load.run(LOAD_SECONDS))
    victim: int | None = None
    try:
        await created_topic(bootstrap, topic)
        await load.wait_committed(KILL_AFTER_WRITES, timeout=STEP_SECONDS)
        # The broker coordinating lane 0's transactions (it also leads some of the topic's partitions, as a rule).
        victim = await transaction_coordinator(bootstrap, f"{served.settings.relay_transactional_prefix}-lane-0")
        led = sorted(partition for partition, leader in (await leaders(bootstrap, topic)).items() if leader == victim)
        await asyncio.to_thread(kafka_cluster.kill, victim)
        readiness = Readiness(since=time.monotonic())
        await readiness.watch(raw, writing)
        await writing
        # Everything published with the victim still down: two in-sync replicas are enough for every partition.
        async with asyncio.timeout(DRAIN_SECONDS):
            while await readiness.sample(raw) != ("ok", 0.0):
                await asyncio.sleep(0.25)
        check = await load.verify_topic(bootstrap, topic, timeout=STEP_SECONDS)
    finally:
        writing.cancel()
        if victim is not None:
            await asyncio.to_thread(kafka_cluster.restart, victim)

    print(  # the figures for a person (pytest -s)
        f"killed node {victim} (lane 0's transaction coordinator, leader of partitions {led}) after "
        f"{KILL_AFTER_WRITES} writes; writes acknowledged {len(load.acknowledged)}, on the topic {check.found}, "
        f"duplicates {check.duplicates}; relay caught up {readiness.caught_up_after:.1f} s after the kill (at most "
        f"{readiness.peak_behind:.1f} s behind), /readyz degraded for {readiness.degraded_seconds:.1f} s"
    )
    assert (load.failures, load.unresolved, load.refused) == ({}, [], [])  # Kafka trouble never fails a write
    assert_exact(load, check)  # every committed change once, in sync-count order per dataset, nothing else
    # /readyz tells the truth: degraded whenever a committed change waited past the threshold.
    assert all(status == "degraded" for _, status, behind in readiness.samples if behind >= STALE_SECONDS)
    assert await readiness.sample(raw) == ("ok", 0.0)
