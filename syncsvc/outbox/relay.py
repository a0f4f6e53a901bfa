"""The relay: publishes each shard's outbox to Kafka in order, exactly once for read_committed consumers.

The shape is Kafka Connect's exactly-once source: per shard one transactional producer (``transactional.id`` =
``<prefix>-<shard>``) and a compacted checkpoint topic. Each batch of outbox entries and the shard's new position go
to Kafka in *one* transaction, so the records and the position commit together or not at all. On start the worker
first initialises its producer — which fences any older producer with the same id (a zombie relay) and aborts its
open transaction — and only then reads the last committed position back, so it resumes exactly after what was
published: no loss, no duplicate, after a kill -9 at any moment.

Which relay publishes a shard is decided by a lease in Redis (renewed while it works); any number of relays (inside
``syncsvc serve`` processes or ``syncsvc relay``) can run, and a shard is worked by one at a time. After Kafka
commits, the position is recorded in Redis and the outbox is trimmed up to it, so outbox memory stays bounded.
Kafka being slow or down never fails a write: entries wait in the outbox and the worker retries with backoff.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from syncsvc.config import Settings
from syncsvc.errors import BackendUnavailableError
from syncsvc.keys import IdentityKeys
from syncsvc.kms.envelope import Envelope, UnreadableValueError
from syncsvc.outbox.record import StreamRecord, stream_record
from syncsvc.store.outbox import RedisOutbox

log = logging.getLogger("syncsvc.relay")

LEASE_MS = 10_000
#: A change is at most a dataset (1 MB of keys and values) as JSON with escapes: topics and requests allow this much.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
START_POSITION = "0-0"
MAX_BACKOFF_SECONDS = 5.0
#: How long one Kafka step (start, one batch's transaction) may take before the relay gives up and starts over.
KAFKA_TIMEOUT_SECONDS = 10.0
REPORT_SECONDS = 60.0


class Relay:
    """Runs one worker per shard until cancelled. ``lag()`` tells what each shard still has to publish."""

    def __init__(
        self, outbox: RedisOutbox, settings: Settings, envelope: Envelope, *, owner: str | None = None
    ) -> None:
        self._outbox = outbox
        self._settings = settings
        self._envelope = envelope
        self.owner = owner or f"relay-{uuid.uuid4()}"
        self._topics = Topics(settings)
        self.workers = [ShardWorker(shard, self) for shard in range(settings.shards)]

    async def run(self) -> None:
        log.info("relay %s: publishing %d shards to %s", self.owner, len(self.workers), self._settings.kafka_bootstrap)
        try:
            await asyncio.gather(self._report(), *(worker.run() for worker in self.workers))
        finally:
            await self._topics.close()

    async def records(self, shard: int, entries: list[tuple[str, dict[str, str]]]) -> list[StreamRecord]:
        """The Kafka records of outbox entries, values opened. An entry of an identity whose data keys were
        destroyed (deleted: crypto-shredded) cannot be opened and is left out, with a log line."""
        records = []
        for entry_id, fields in entries:
            ik = IdentityKeys.of(fields["pool"], fields["identity"], self._settings.shards)
            try:
                cipher = await self._envelope.cipher(ik, create=False)
                records.append(
                    stream_record(shard, entry_id, fields, functools.partial(cipher.open, fields["dataset"]))
                )
            except UnreadableValueError as exc:
                log.warning("relay shard %d: change %s left out of the stream: %s", shard, entry_id, exc)
        return records

    def note(self, worker: ShardWorker, error: Exception | None) -> None:
        """A worker's state changed: logs one line when the relay as a whole starts or stops failing."""
        was_healthy = self.healthy
        worker.failing = error is not None
        if was_healthy and error is not None:
            log.warning(
                "relay: Kafka at %s unreachable (%s: %s); changes wait in the outbox and are published when it returns",
                self._settings.kafka_bootstrap,
                type(error).__name__,
                error,
            )
        elif not was_healthy and self.healthy:
            log.info("relay: Kafka at %s reachable again; publishing", self._settings.kafka_bootstrap)

    async def _report(self) -> None:
        """Logs the outbox backlog once a minute while there is one (the same figure /readyz shows)."""
        while True:
            await asyncio.sleep(REPORT_SECONDS)
            try:
                lag = await self.lag()
            except BackendUnavailableError:
                continue
            if waiting := {shard: count for shard, count in lag.items() if count > 1}:
                log.info("relay: %d changes waiting in the outbox, per shard %s", sum(waiting.values()), waiting)

    async def lag(self) -> dict[int, int]:
        """Entries still in each shard's outbox (published ones are trimmed right after their commit)."""
        return {shard: await self._outbox.backlog(shard) for shard in range(self._settings.shards)}

    @property
    def healthy(self) -> bool:
        """No worker is currently failing to reach Kafka."""
        return not any(worker.failing for worker in self.workers)

    async def behind_seconds(self) -> float:
        """How long the oldest change not yet published has waited (0 when everything is published). Kafka trouble
        shows here even while a worker is still waiting on a request that will time out."""
        oldest = [await self._outbox.oldest_unpublished(shard) for shard in range(self._settings.shards)]
        waiting = [stamp for stamp in oldest if stamp is not None]
        return max(0.0, time.time() - min(waiting) / 1000) if waiting else 0.0


class ShardWorker:
    def __init__(self, shard: int, relay: Relay) -> None:
        self.shard = shard
        self._relay = relay
        self._outbox = relay._outbox
        self._settings = relay._settings
        self._checkpoint_key = f"shard-{shard}".encode()
        self.failing = False

    async def run(self) -> None:
        """Holds the shard's lease and publishes; on failure waits (1 s, doubling to 5 s) and starts over."""
        backoff = 1.0
        while True:
            try:
                if await self._outbox.lease("take", self.shard, self._relay.owner, LEASE_MS):
                    await self._publish()
                    backoff = 1.0
                else:
                    await asyncio.sleep(LEASE_MS / 2000)
            except asyncio.CancelledError:
                await self._give_back()
                raise
            except (KafkaError, BackendUnavailableError, OSError, TimeoutError) as exc:
                log.debug("relay shard %d: %s: %s; retrying in %.0f s", self.shard, type(exc).__name__, exc, backoff)
                self._relay.note(self, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception as exc:  # a bug or a key problem: one shard starts over, the other shards go on
                log.exception("relay shard %d failed; starting over in %.0f s", self.shard, MAX_BACKOFF_SECONDS)
                self._relay.note(self, exc)
                await asyncio.sleep(MAX_BACKOFF_SECONDS)

    async def _give_back(self) -> None:
        try:
            await asyncio.shield(self._outbox.lease("give", self.shard, self._relay.owner, LEASE_MS))
        except BackendUnavailableError:
            log.info("relay shard %d: could not give the lease back; it expires by itself", self.shard)

    async def _publish(self) -> None:
        """Publishes while the lease is held; returns when it is lost."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            transactional_id=f"{self._settings.relay_transactional_prefix}-{self.shard}",
            enable_idempotence=True,
            acks="all",
            max_request_size=MAX_MESSAGE_BYTES,
            request_timeout_ms=15_000,
        )
        try:
            async with asyncio.timeout(3 * KAFKA_TIMEOUT_SECONDS):
                await producer.start()  # InitProducerId: fences an older producer of this shard, aborts its transaction
                await self._relay._topics.ensure([self._settings.relay_checkpoint_topic], compacted=True)
                position = await self._checkpoint()
            if not await self._outbox.lease("take", self.shard, self._relay.owner, LEASE_MS):
                return  # starting took longer than the lease, and another relay has the shard now
            if position != START_POSITION:  # what an earlier relay committed may not have been recorded in Redis
                await self._outbox.published(self.shard, position)
            log.debug("relay shard %d: resuming after %s", self.shard, position)
            self._relay.note(self, None)
            kept = time.monotonic()
            while True:
                if time.monotonic() - kept > LEASE_MS / 3000:
                    if not await self._outbox.lease("keep", self.shard, self._relay.owner, LEASE_MS):
                        log.info("relay shard %d: lease lost; another relay publishes it now", self.shard)
                        return
                    kept = time.monotonic()
                entries = await self._outbox.read(self.shard, position, count=self._settings.relay_batch, block_ms=500)
                if entries:
                    records = await self._relay.records(self.shard, entries)
                    position = entries[-1][0]
                    # A step that cannot finish (Kafka gone) fails the batch; the next producer fences this one and
                    # resumes from the checkpoint, so a batch is never half published nor published twice.
                    async with asyncio.timeout(KAFKA_TIMEOUT_SECONDS):
                        await self._relay._topics.ensure({record.topic for record in records})
                        await self._commit(producer, records, position)
                    await self._outbox.published(self.shard, position)
                    log.debug("relay shard %d: published %d changes up to %s", self.shard, len(records), position)
        finally:
            await self._stop(producer)

    async def _stop(self, producer: AIOKafkaProducer) -> None:
        try:
            async with asyncio.timeout(KAFKA_TIMEOUT_SECONDS):
                await producer.stop()
        except (KafkaError, OSError, TimeoutError) as exc:
            log.debug("relay shard %d: producer did not stop cleanly: %s", self.shard, exc)

    async def _commit(self, producer: AIOKafkaProducer, records: list[StreamRecord], position: str) -> None:
        async with producer.transaction():
            for record in records:
                await producer.send(record.topic, record.value, key=record.key, headers=record.headers)
            await producer.send(
                self._settings.relay_checkpoint_topic, position.encode(), key=self._checkpoint_key, partition=self.shard
            )

    async def _checkpoint(self) -> str:
        """The last position committed to the checkpoint topic for this shard (read_committed), or the start."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            # One partition per shard: a shard's read waits only for its own (already fenced) transactions, never
            # for another shard's transaction left open by a relay that died.
            partition = TopicPartition(self._settings.relay_checkpoint_topic, self.shard)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            position = START_POSITION
            deadline = time.monotonic() + 30
            while await consumer.position(partition) < end:
                if time.monotonic() > deadline:
                    raise KafkaError(f"could not read the checkpoint topic to offset {end} within 30 s")
                batches = await consumer.getmany(partition, timeout_ms=1000)
                for message in batches.get(partition, []):
                    if message.key == self._checkpoint_key and message.value is not None:
                        position = message.value.decode()
            return position
        finally:
            await consumer.stop()


class Topics:
    """Creates the topics the relay writes to, once each (stream topics sized for the largest change)."""

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
            config = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
            if compacted:
                config["cleanup.policy"] = "compact"
            partitions = self._settings.shards if compacted else self._settings.stream_partitions
            for topic in missing:
                response = await self._admin.create_topics(
                    [NewTopic(topic, partitions, self._settings.stream_replication, topic_configs=config)]
                )
                for _, code, *_ in response.topic_errors:
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise for_code(code)(f"cannot create topic {topic!r}")
                self._known.add(topic)

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()
