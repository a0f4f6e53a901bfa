"""A pool's latest changes on its stream topic, read once (the console's streams page asks every few seconds).

Read as every consumer of the stream should read it (``read_committed``, no consumer group, so no offsets are
committed and no one is disturbed): the last ``per_partition`` records of each partition of the topic, up to the
offsets that were committed when the read began, keeping those keyed ``<pool>/…`` (pools may share a topic). So on a
topic shared with busier pools a pool shows fewer of its own changes; never another pool's. A topic that does not
exist yet (syncsvc creates it with the pool's first change) has no changes. Kafka unreachable or slow: KafkaError or
TimeoutError within ``timeout_seconds``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def recent_changes(
    bootstrap: str, topic: str, pool_id: str, *, per_partition: int = 20, timeout_seconds: float = 10.0
) -> list[dict[str, Any]]:
    """The pool's changes among each partition's last ``per_partition`` records, newest first, with their Kafka
    ``partition`` and ``offset`` added."""
    prefix = f"{pool_id}/".encode()
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_seconds):
        partitions = await _partitions(bootstrap, topic, timeout_seconds)
        if not partitions:
            return []
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            request_timeout_ms=int(timeout_seconds * 1000),
        )
        await consumer.start()
        try:
            consumer.assign(partitions)
            starts, ends = await consumer.beginning_offsets(partitions), await consumer.end_offsets(partitions)
            for partition in partitions:
                consumer.seek(partition, max(starts[partition], ends[partition] - per_partition))
            while [partition for partition in partitions if await consumer.position(partition) < ends[partition]]:
                for partition, messages in (await consumer.getmany(*partitions, timeout_ms=500)).items():
                    for message in messages:
                        if message.offset >= ends[partition]:
                            continue
                        if message.key is not None and message.key.startswith(prefix) and message.value is not None:
                            change = orjson.loads(message.value)
                            found.append({**change, "partition": partition.partition, "offset": message.offset})
        finally:
            await consumer.stop()
    found.sort(key=lambda change: (change.get("lastModifiedDate", 0), change["offset"]), reverse=True)
    return found


async def _partitions(bootstrap: str, topic: str, timeout_seconds: float) -> list[TopicPartition]:
    """Every partition of ``topic`` (none while it does not exist). Describes *all* topics: asking a broker that
    auto-creates topics for a missing one would create it with its defaults (as ``syncsvc stream tail`` explains)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_seconds * 1000))
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    numbers = [
        partition["partition"] for found in described if found["topic"] == topic for partition in found["partitions"]
    ]
    return [TopicPartition(topic, number) for number in sorted(numbers)]
