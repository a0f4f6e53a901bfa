"""The test broker supports what the outbox relay relies on: transactions that read_committed consumers see once.

These pin the broker and client, not syncsvc: if one of them fails, the relay's exactly-once promise has no ground.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import ProducerFenced

# Each test finishes in a second or two; this bound on every step turns a hang into a failure at the step that hung.
STEP_SECONDS = 20


@pytest.fixture
async def topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A new one-partition topic, deleted after the test."""
    name = f"test-broker-{uuid.uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=10_000)
    try:
        async with asyncio.timeout(STEP_SECONDS):
            await admin.start()
            await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        yield name
        async with asyncio.timeout(STEP_SECONDS):
            await admin.delete_topics([name])
    finally:
        await admin.close()


async def started_producer(bootstrap: str, transactional_id: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=transactional_id,
        enable_idempotence=True,
        request_timeout_ms=10_000,
    )
    async with asyncio.timeout(STEP_SECONDS):
        await producer.start()  # also InitProducerId: registers the transactional id, fencing older holders
    return producer


async def read_all(bootstrap: str, topic: str, isolation_level: str) -> list[bytes]:
    """Every value a consumer with this isolation level sees in partition 0, up to the end it sees at the start.

    For read_committed the end is the last stable offset, so an open transaction would make this wait, not skip.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        request_timeout_ms=10_000,
    )
    partition = TopicPartition(topic, 0)
    values: list[bytes] = []
    async with asyncio.timeout(STEP_SECONDS):
        await consumer.start()
        try:
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            while await consumer.position(partition) < end:
                batches = await consumer.getmany(partition, timeout_ms=1000)
                values.extend(record.value for record in batches.get(partition, []))
        finally:
            await consumer.stop()
    return values


async def test_read_committed_consumer_sees_a_committed_transaction_exactly_once(
    kafka_bootstrap: str,
    topic: str,
) -> None:
    producer = await started_producer(kafka_bootstrap, f"tx-{uuid.uuid4().hex}")
    try:
        async with asyncio.timeout(STEP_SECONDS), producer.transaction():
            for number in range(3):
                await producer.send(topic, f"change-{number}".encode(), key=b"pool/identity/dataset")
    finally:
        await producer.stop()

    assert await read_all(kafka_bootstrap, topic, "read_committed") == [b"change-0", b"change-1", b"change-2"]


async def test_read_committed_consumer_never_sees_an_aborted_transaction(
    kafka_bootstrap: str,
    topic: str,
) -> None:
    producer = await started_producer(kafka_bootstrap, f"tx-{uuid.uuid4().hex}")
    try:
        async with asyncio.timeout(STEP_SECONDS):
            await producer.begin_transaction()
            await producer.send_and_wait(topic, b"aborted-0")
            await producer.send_and_wait(topic, b"aborted-1")
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send_and_wait(topic, b"committed")
    finally:
        await producer.stop()

    # The aborted records are in the log (read_uncommitted shows them); read_committed skips them.
    assert await read_all(kafka_bootstrap, topic, "read_uncommitted") == [b"aborted-0", b"aborted-1", b"committed"]
    assert await read_all(kafka_bootstrap, topic, "read_committed") == [b"committed"]


async def test_a_second_producer_with_the_same_transactional_id_fences_the_first(
    kafka_bootstrap: str,
    topic: str,
) -> None:
    transactional_id = f"tx-{uuid.uuid4().hex}"
    first = await started_producer(kafka_bootstrap, transactional_id)
    try:
        async with asyncio.timeout(STEP_SECONDS), first.transaction():
            await first.send_and_wait(topic, b"first")
        second = await started_producer(kafka_bootstrap, transactional_id)
        try:
            with pytest.raises(ProducerFenced):
                async with asyncio.timeout(STEP_SECONDS), first.transaction():
                    await first.send_and_wait(topic, b"zombie")
            async with asyncio.timeout(STEP_SECONDS), second.transaction():
                await second.send_and_wait(topic, b"second")
        finally:
            await second.stop()
    finally:
        await first.stop()
    # aiokafka leaves ProducerFenced in internal futures of the fenced producer that nothing awaits. Collect them
    # now, so that asyncio's "exception was never retrieved" is logged here, not from a later garbage collection
    # (on CPython 3.11.7 one that runs inside pytest's ast.parse crashes the run with "AST constructor recursion
    # depth mismatch").
    del first
    gc.collect()

    assert await read_all(kafka_bootstrap, topic, "read_committed") == [b"first", b"second"]
