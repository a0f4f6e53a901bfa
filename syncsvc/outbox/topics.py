"""The Kafka topics the relay writes to: created once each, sized for the largest change, replicated as the cluster
allows (:func:`replication`); and the checkpoint topic's keys (one compacted partition per shard)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from syncsvc.config import Settings

#: A change is at most a dataset (1 MB of keys and values) as JSON with escapes: topics and requests allow this much.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def checkpoint_key(shard: int) -> bytes:
    """The key of a shard's position in the checkpoint topic (on partition ``shard``)."""
    return f"shard-{shard}".encode()


class Topics:
    """Creates the topics the relay writes to, once each (stream topics sized for the largest change), replicated as
    :func:`replication` says."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._known: set[str] = set()
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()

    async def ensure(self, topics: Iterable[str], *, compacted: bool = False) -> None:
        missing = [topic for topic in topics if topic not in self._known]
        if not missing:
            return
        async with self._lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self._settings.kafka_bootstrap, request_timeout_ms=15_000)
                await admin.start()
                self._admin = admin
            factor, min_isr = replication(self._settings.stream_replication, await self._brokers(self._admin))
            config = {"max.message.bytes": str(MAX_MESSAGE_BYTES), "min.insync.replicas": str(min_isr)}
            if compacted:
                config["cleanup.policy"] = "compact"
            partitions = self._settings.shards if compacted else self._settings.stream_partitions
            for topic in missing:
                response = await self._admin.create_topics([NewTopic(topic, partitions, factor, topic_configs=config)])
                for _, code, *_ in response.topic_errors:
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise for_code(code)(f"cannot create topic {topic!r}")
                    if code and compacted:
                        await self._check_partitions(self._admin, topic, partitions)
                self._known.add(topic)

    @staticmethod
    async def _check_partitions(admin: AIOKafkaAdminClient, topic: str, wanted: int) -> None:
        """A checkpoint topic that exists already holds one partition per shard: one made for another shard count
        belongs to another deployment, and a position sent to a partition it lacks would never commit."""
        (described,) = await admin.describe_topics([topic])
        found = len(described["partitions"])
        if found < wanted:
            raise KafkaError(
                f"the checkpoint topic {topic!r} has {found} partitions but SYNCSVC_SHARDS is {wanted}: it belongs to "
                f"another deployment; name this one's with SYNCSVC_RELAY_CHECKPOINT_TOPIC"
            )

    async def _brokers(self, admin: AIOKafkaAdminClient) -> int:
        """How many live brokers the cluster reports; asked only when the replication factor is ``auto``."""
        if self._settings.stream_replication is not None:
            return 0
        return len((await admin.describe_cluster())["brokers"])

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()


def replication(configured: int | None, brokers: int) -> tuple[int, int]:
    """The replication factor and ``min.insync.replicas`` of a topic syncsvc creates: the configured factor, or for
    ``auto`` (None) 3 on a cluster of ``brokers`` >= 3, else one per broker; and a minimum ISR of 2 from a factor of 3
    on (1 below). With acks=all (the relay's producer) a committed change is then on two brokers at least, and a
    cluster of three keeps taking writes with one broker down; a factor of 2 keeps a minimum ISR of 1, since 2 would
    stop the stream whenever either broker is down."""
    factor = configured if configured is not None else max(1, min(brokers, 3))
    return factor, max(1, min(2, factor - 1))
