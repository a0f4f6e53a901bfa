"""The stream kit of the tests that read the Kafka stream: a streaming pool, a created topic, a read_committed reader,
a `syncsvc relay` process, a server with its relay in process; and the fixtures ``warm_kafka`` (the session broker,
warmed up) and ``relayed`` (a server running its own relay, 4 shards).

Registered once for the whole suite (``pytest_plugins`` in tests/conftest.py), so every module shares the one warmed
broker; the topics, checkpoint topics and transactional ids each test makes carry names of its own, since the
session broker outlives every deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis

from syncsvc import rediskeys
from syncsvc.config import Settings
from tests.conftest import Boto, make_settings, process_environment, serving
from tests.servers import SYNCSVC

#: The shard count of the stream tests' servers and relays (kept few, so relays start fast).
SHARDS = 4
#: Two shards per lane, so one relay transaction may carry several shards (tests that want it say so: the default
#: lane count of a server and a `syncsvc` process the suite starts is 4).
LANES = 2
ROLE = "arn:aws:iam::123456789012:role/streams"


def stream_settings(redis_url: str, kafka_bootstrap: str, *, relay: bool, **overrides: Any) -> Settings:
    """A server's settings on ``kafka_bootstrap`` with SHARDS shards, its relay on or off (``make_settings``)."""
    return make_settings(redis_url, shards=SHARDS, kafka_bootstrap=kafka_bootstrap, relay=relay, **overrides)


async def streaming_pool(boto: Boto, topic: str) -> str:
    """A new identity pool whose changes stream to ``topic``."""
    pool_id = await boto.new_pool()
    await boto.call(
        boto.sync,
        "set_identity_pool_configuration",
        IdentityPoolId=pool_id,
        CognitoStreams={"StreamName": topic, "RoleArn": ROLE, "StreamingStatus": "ENABLED"},
    )
    return pool_id


async def streamed_pool(endpoint: str, bootstrap: str) -> tuple[str, str]:
    """(topic, pool id): a new topic, created, and a new pool at ``endpoint`` streaming to it."""
    topic = f"changes-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic)
    return topic, await streaming_pool(Boto(endpoint), topic)


async def create_topic(bootstrap: str, topic: str) -> None:
    """Creates the stream topic before the test consumes it: a consumer that subscribes to a topic being created can
    miss partitions that were not ready when it looked."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
        async with asyncio.timeout(20):  # every partition there, with a leader (a fresh broker takes a moment)
            while not _led(await admin.describe_topics([topic]), 3):
                await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def _partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, once each has a leader (within 30 s)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        async with asyncio.timeout(30):
            while not _led(described := await admin.describe_topics([topic]), 1):
                await asyncio.sleep(0.1)
    finally:
        await admin.close()
    return [TopicPartition(topic, partition["partition"]) for partition in described[0]["partitions"]]


def _led(described: list[Any], partitions: int) -> bool:
    found = described[0]["partitions"]
    return len(found) >= partitions and all(partition["leader"] >= 0 for partition in found)


async def warm_up(bootstrap: str) -> None:
    """A fresh broker elects its transaction coordinator on the first transactional producer; do that before a relay
    under test starts, so it starts as fast as against a running broker."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="warm-up", enable_idempotence=True)
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send("syncsvc-warm-up", b"warm")
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def serving_with_relay(
    redis_url: str, kafka_bootstrap: str, *, run: str | None = None, **overrides: Any
) -> AsyncIterator[str]:
    """syncsvc with its relay on (API and relay in this process) on ``redis_url`` and ``kafka_bootstrap``
    (``make_settings`` with ``overrides``) while the block runs, the broker warmed up first; yields its endpoint. Its
    relay's checkpoint topic and transactional ids are named after ``run`` (``checkpoints-<run>``, ``relay-<run>``;
    a new name unless given): the session broker outlives this deployment."""
    await warm_up(kafka_bootstrap)
    own = run or uuid.uuid4().hex[:8]
    settings = make_settings(
        redis_url,
        relay=True,
        kafka_bootstrap=kafka_bootstrap,
        relay_checkpoint_topic=f"checkpoints-{own}",
        relay_transactional_prefix=f"relay-{own}",
        **overrides,
    )
    async with serving(settings) as endpoint:
        yield endpoint


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[Any]:
    """Every record a read_committed consumer sees on ``topic``, once ``expected`` arrived (or the timeout). The
    consumer is assigned every partition the topic has once each has a leader: one that subscribed instead would read
    only the partitions its first metadata listed, and right after a broker restart that can leave one out (and with
    it every change of the datasets it holds)."""
    partitions = await _partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    seen: list[Any] = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(timeout):
            while len(seen) < expected:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    seen += messages
        # a little more, to see any duplicate that would follow
        for messages in (await consumer.getmany(timeout_ms=1000)).values():
            seen += messages
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return seen


def relay_process(
    redis_url: str, kafka_bootstrap: str, *, run: str, stderr: int = asyncio.subprocess.DEVNULL, **settings: str
) -> Any:
    """`syncsvc relay` with SHARDS shards, plus SYNCSVC_* ``settings`` (a coroutine: await it for the process). Its
    checkpoint topic and transactional ids are named after ``run`` (``checkpoints-<run>``, ``relay-<run>``): relays of
    one deployment share a run; the session broker outlives it, and another test's leftovers (positions, a transaction
    left open by a relay it killed) stay out of this one's way."""
    own = {"SYNCSVC_RELAY_CHECKPOINT_TOPIC": f"checkpoints-{run}", "SYNCSVC_RELAY_TRANSACTIONAL_PREFIX": f"relay-{run}"}
    env = process_environment(SYNCSVC_SHARDS=str(SHARDS), **{**own, **settings})
    env.update(SYNCSVC_REDIS_URL=redis_url, SYNCSVC_KAFKA_BOOTSTRAP=kafka_bootstrap)
    return asyncio.create_subprocess_exec(SYNCSVC, "relay", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr)


async def published_somewhere(redis_client: Redis) -> bool:
    """Whether the relay has committed at least one batch to Kafka (it records its position after each)."""
    return any([await redis_client.exists(rediskeys.relay_position(shard)) for shard in range(SHARDS)])


@pytest.fixture(scope="session")
async def warm_kafka(kafka_bootstrap: str) -> str:
    """The session broker, warmed up (see :func:`warm_up`)."""
    await warm_up(kafka_bootstrap)
    return kafka_bootstrap


@pytest.fixture
async def relayed(redis_url: str, warm_kafka: str, redis_client: Redis) -> AsyncIterator[str]:
    """A server that runs its own relay, like `syncsvc serve` does (SHARDS shards), on a flushed Redis."""
    async with serving(stream_settings(redis_url, warm_kafka, relay=True)) as endpoint:
        yield endpoint
