"""The relay: publishes each shard's outbox to Kafka in order, exactly once for read_committed consumers.

The shape is Kafka Connect's exactly-once source: transactional producers and a compacted checkpoint topic holding
each shard's position (key ``shard-<n>``, partition n). Shards are grouped into a few fixed *lanes* (lane k holds the
shards s with s % ``relay_lanes`` == k), and each lane has one transactional producer (``transactional.id`` =
``<prefix>-lane-<k>``): one transaction carries the pending changes of all the lane's shards and the new position of
each shard it advances, so the records and the positions commit together or not at all. A transaction costs several
broker round trips whatever it carries, so a few lanes publish far more changes per transaction than one producer per
shard would. On start a lane's worker first initialises its producer — which fences any older producer with the same
id (a zombie relay) and aborts its open transaction — and only then reads its shards' last committed positions back,
so it resumes exactly after what was published: no loss, no duplicate, after a kill -9 at any moment.

Fencing holds only while a shard always belongs to the same ``transactional.id``, so the lane count, like the shard
count, is fixed for a deployment's life: the first start records it in Redis and later starts refuse another value.
(Upgrading from the per-shard producers of earlier versions: stop every old relay before starting a new one, since
lane producers do not fence them.)

Which relay publishes a lane is decided by a lease in Redis (renewed while it works); any number of relays (inside
``syncsvc serve`` processes or ``syncsvc relay``) can run, and a lane is worked by one at a time. The worker reads its
shards with one pipelined round trip of non-blocking reads; while they are all empty it waits on one small watcher
per shard (a blocking read of one entry: a wake-up, shards live in different Redis Cluster slots). After Kafka
commits, the positions are recorded in Redis and the outboxes trimmed up to them, so outbox memory stays bounded.
Kafka being slow or down never fails a write: entries wait in the outbox and the worker retries with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from syncsvc import metrics, tracing
from syncsvc.clock import Clock
from syncsvc.config import Settings
from syncsvc.errors import BackendUnavailableError
from syncsvc.kms.envelope import Envelope, UnreadableValueError
from syncsvc.outbox.record import StreamRecord, stream_record
from syncsvc.outbox.topics import MAX_MESSAGE_BYTES, Topics, checkpoint_key
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.outbox import Entry, RedisOutbox

log = logging.getLogger("syncsvc.relay")

LEASE_MS = 10_000
START_POSITION = "0-0"
MAX_BACKOFF_SECONDS = 5.0
#: How long one Kafka step (start, one batch's transaction) may take before the relay gives up and starts over.
KAFKA_TIMEOUT_SECONDS = 10.0
REPORT_SECONDS = 60.0
#: How long a shard's watcher blocks on one read (below the Redis client's socket timeout).
WATCH_MS = 2_000
#: How long an idle lane waits for a watcher before it reads its shards again anyway.
IDLE_SECONDS = 1.0
#: How often a lane's worker reads its backlog for the metrics (``syncsvc.metrics``).
MEASURE_SECONDS = 10.0

#: Changes per shard, in outbox order.
Batch = dict[int, list[Entry]]
#: Turns a shard's outbox entries into the Kafka records that carry them (:meth:`Relay.records`).
Opener = Callable[[int, list[Entry]], Awaitable[list[StreamRecord]]]


class Relay:
    """Runs one worker per lane until cancelled. ``lag()`` tells what each shard still has to publish."""

    def __init__(
        self,
        outbox: RedisOutbox,
        settings: Settings,
        envelope: Envelope,
        *,
        clock: Clock,
        owner: str | None = None,
    ) -> None:
        self._outbox = outbox
        self._clock = clock
        self._settings = settings
        self._envelope = envelope
        self.owner = owner or f"relay-{uuid.uuid4()}"
        self._topics = Topics(settings)
        self.workers = [
            LaneWorker(
                lane,
                owner=self.owner,
                outbox=outbox,
                settings=settings,
                topics=self._topics,
                records=self.records,
                note=self.note,
            )
            for lane in range(settings.relay_lanes)
        ]

    async def run(self) -> None:
        log.info(
            "relay %s: publishing %d shards in %d lanes to %s",
            self.owner,
            self._settings.shards,
            len(self.workers),
            self._settings.kafka_bootstrap,
        )
        try:
            # A task group, not gather: cancelled, it waits until every worker has stopped (producer closed, lease
            # given back). gather would return at the first child's cancellation and leave the others running.
            async with asyncio.TaskGroup() as group:
                group.create_task(self._report())
                for worker in self.workers:
                    group.create_task(worker.run())
        finally:
            await self._topics.close()

    async def records(self, shard: int, entries: list[Entry]) -> list[StreamRecord]:
        """The Kafka records of outbox entries, values opened. An entry of an identity whose data keys were
        destroyed (deleted: crypto-shredded) cannot be opened and is left out, with a log line."""
        records = []
        for entry_id, fields in entries:
            keyspace = IdentityKeyspace.of(fields["pool"], fields["identity"], self._settings.shards)
            try:
                cipher = await self._envelope.cipher(keyspace, create=False)
                records.append(stream_record(shard, entry_id, fields, cipher))
            except UnreadableValueError as exc:
                log.warning("relay shard %d: change %s left out of the stream: %s", shard, entry_id, exc)
        return records

    def note(self, worker: LaneWorker, error: Exception | None) -> None:
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
            except Exception:  # a log line is not worth the relay: in a task group, raising would stop every lane
                log.exception("relay: could not read the outbox backlog")
                continue
            if waiting := {shard: count for shard, count in lag.items() if count > 1}:
                log.info("relay: %d changes waiting in the outbox, per shard %s", sum(waiting.values()), waiting)

    async def lag(self) -> dict[int, int]:
        """Entries still in each shard's outbox (published ones are trimmed right after their commit)."""
        return {shard: held for shard, (held, _) in (await self._outbox.shards(range(self._settings.shards))).items()}

    async def lanes(self) -> list[LaneStatus]:
        """Each lane's backlog and how long its oldest unpublished change has waited, read from Redis (whichever
        process holds the lane): the console's streams page."""
        now_ms = self._clock.now_ms()
        status = [LaneStatus(lane, 0, 0.0) for lane in range(self._settings.relay_lanes)]
        for shard, (held, oldest_ms) in (await self._outbox.shards(range(self._settings.shards))).items():
            lane = status[shard % self._settings.relay_lanes]
            lane.backlog += held
            if oldest_ms is not None:
                lane.behind_seconds = max(lane.behind_seconds, (now_ms - oldest_ms) / 1000)
        return status

    @property
    def healthy(self) -> bool:
        """No worker is currently failing to reach Kafka."""
        return not any(worker.failing for worker in self.workers)

    async def behind_seconds(self) -> float:
        """How long the oldest change not yet published has waited (0 when everything is published). Kafka trouble
        shows here even while a worker is still waiting on a request that will time out."""
        shards = await self._outbox.shards(range(self._settings.shards))
        waiting = [oldest for _, oldest in shards.values() if oldest is not None]
        return max(0.0, (self._clock.now_ms() - min(waiting)) / 1000) if waiting else 0.0


def _stop_if_cancelled() -> None:
    """Raises CancelledError when this task was asked to stop: a cancellation that a library answered with an error
    of its own (the Kafka client does, in places) still ends the worker instead of starting it over."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass(slots=True)
class LaneStatus:
    lane: int
    #: Entries its shards' outboxes hold (published ones are trimmed right after their commit).
    backlog: int
    #: How long its oldest unpublished change has waited (0: all published).
    behind_seconds: float


class LaneWorker:
    """Publishes the shards of one lane, all of them in each transaction: leased as ``owner``, read from ``outbox``,
    opened by ``records``, written to ``topics``; ``note`` hears whenever the worker starts or stops failing."""

    def __init__(
        self,
        lane: int,
        *,
        owner: str,
        outbox: RedisOutbox,
        settings: Settings,
        topics: Topics,
        records: Opener,
        note: Callable[[LaneWorker, Exception | None], None],
    ) -> None:
        self.lane = lane
        self._owner = owner
        self._outbox = outbox
        self._settings = settings
        self._topics = topics
        self._records = records
        self._note = note
        self.shards = list(range(lane, self._settings.shards, self._settings.relay_lanes))
        self.failing = False
        self._last_commit = -math.inf
        #: Each shard's last position committed to Kafka (set while the worker holds the lane).
        self._positions: dict[int, str] = {}
        #: Set by a watcher that saw a change; ``_rests`` counts the times the lane found nothing to publish.
        self._wake = asyncio.Event()
        self._rests = 0
        self._turn = 0
        self._rested = asyncio.Condition()
        lane_label = str(lane)
        self._committed = metrics.RELAY_TRANSACTIONS.labels(lane_label, "committed")
        self._aborted = metrics.RELAY_TRANSACTIONS.labels(lane_label, "aborted")
        self._published = metrics.RELAY_RECORDS.labels(lane_label)
        self._commit_seconds = metrics.RELAY_COMMIT_SECONDS.labels(lane_label)
        self._backlog = metrics.OUTBOX_BACKLOG.labels(lane_label)
        self._behind = metrics.RELAY_BEHIND_SECONDS.labels(lane_label)

    async def run(self) -> None:
        """Holds the lane's lease and publishes; on failure waits (1 s, doubling to 5 s) and starts over; cancelled,
        gives the lease back and ends."""
        backoff = 1.0
        try:
            while True:
                try:
                    if await self._outbox.lease("take", self.lane, self._owner, LEASE_MS):
                        await self._publish()
                        backoff = 1.0
                    else:
                        await asyncio.sleep(LEASE_MS / 2000)
                except (KafkaError, BackendUnavailableError, OSError, TimeoutError) as exc:
                    _stop_if_cancelled()
                    log.debug("relay lane %d: %s: %s; retrying in %.0f s", self.lane, type(exc).__name__, exc, backoff)
                    self._note(self, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                except Exception as exc:  # a bug or a key problem: one lane starts over, the other lanes go on
                    _stop_if_cancelled()
                    log.exception("relay lane %d failed; starting over in %.0f s", self.lane, MAX_BACKOFF_SECONDS)
                    self._note(self, exc)
                    await asyncio.sleep(MAX_BACKOFF_SECONDS)
        except asyncio.CancelledError:
            await self._give_back()
            raise

    async def _give_back(self) -> None:
        try:
            await asyncio.shield(self._outbox.lease("give", self.lane, self._owner, LEASE_MS))
        except BackendUnavailableError:
            log.info("relay lane %d: could not give the lease back; it expires by itself", self.lane)

    async def _publish(self) -> None:
        """Publishes while the lease is held; returns when it is lost."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            transactional_id=f"{self._settings.relay_transactional_prefix}-lane-{self.lane}",
            enable_idempotence=True,
            acks="all",
            max_request_size=MAX_MESSAGE_BYTES,
            request_timeout_ms=15_000,
        )
        watchers: list[asyncio.Task[None]] = []
        try:
            async with asyncio.timeout(3 * KAFKA_TIMEOUT_SECONDS):
                await producer.start()  # InitProducerId: fences an older producer of this lane, aborts its transaction
                await self._topics.ensure([self._settings.relay_checkpoint_topic], compacted=True)
                self._positions = await self._checkpoints()
            if not await self._outbox.lease("take", self.lane, self._owner, LEASE_MS):
                return  # starting took longer than the lease, and another relay has the lane now
            # what an earlier relay committed may not have been recorded in Redis
            await self._outbox.published({s: p for s, p in self._positions.items() if p != START_POSITION})
            log.debug("relay lane %d: resuming after %s", self.lane, self._positions)
            self._note(self, None)
            watchers = [asyncio.create_task(self._watch(shard)) for shard in self.shards]
            kept = measured = time.monotonic()
            while True:
                _stop_if_cancelled()
                if time.monotonic() - kept > LEASE_MS / 3000:
                    if not await self._outbox.lease("keep", self.lane, self._owner, LEASE_MS):
                        log.info("relay lane %d: lease lost; another relay publishes it now", self.lane)
                        return
                    kept = time.monotonic()
                if time.monotonic() - measured > MEASURE_SECONDS:
                    await self._measure()
                    measured = time.monotonic()
                for watcher in watchers:
                    if watcher.done():
                        watcher.result()  # a watcher only ends by failing: the lane starts over
                if batch := await self._gather():
                    await self._send(producer, batch)
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await self._stop(producer)
            self._backlog.set(0)  # the lane's next holder reports it
            self._behind.set(0)

    async def _measure(self) -> None:
        held, oldest_ms = await self._outbox.waiting(self._positions)
        self._backlog.set(held)
        self._behind.set(max(0.0, time.time() - oldest_ms / 1000) if oldest_ms is not None else 0.0)

    async def _gather(self) -> Batch:
        """The next batch: what the lane's shards hold after their positions; if the lane's last transaction is less
        than ``relay_linger_ms`` old, lets more gather until it is (up to ``relay_batch`` in all). A busy lane so
        publishes many changes per transaction, and a change to a quiet lane goes out at once. Empty (after up to
        IDLE_SECONDS) when there is nothing to publish."""
        room = self._settings.relay_batch
        self._wake.clear()  # before reading: a change a watcher sees from now on wakes the wait below
        batch = await self._read(self._positions, room)
        if not batch:
            async with self._rested:
                self._rests += 1
                self._rested.notify_all()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_SECONDS):
                    await self._wake.wait()
            return batch
        wait = self._last_commit + self._settings.relay_linger_ms / 1000 - time.monotonic()
        gathered = sum(map(len, batch.values()))
        if wait > 0 and gathered < room:
            await asyncio.sleep(wait)
            after = {shard: batch[shard][-1][0] if shard in batch else self._positions[shard] for shard in self.shards}
            for shard, entries in (await self._read(after, room - gathered)).items():
                batch.setdefault(shard, []).extend(entries)
        return batch

    async def _read(self, after: Mapping[int, str], room: int) -> Batch:
        """Up to ``room`` entries in all after ``after``, shared fairly: each shard is read up to an equal share, then
        the shards that filled theirs share what is left (so a backlog is not read many times over). Each read starts
        at the next shard, so with less room than shards none waits for ever."""
        batch: Batch = {}
        order = list(after)
        self._turn = (self._turn + 1) % len(order)
        wanting = {shard: after[shard] for shard in order[self._turn :] + order[: self._turn]}
        while wanting and room > 0:
            share = math.ceil(room / len(wanting))
            found = await self._outbox.read_many(wanting, count=share)
            wanting = {}
            for shard, entries in found.items():
                if kept := entries[:room]:
                    batch.setdefault(shard, []).extend(kept)
                    room -= len(kept)
                if len(kept) == share:  # the shard may hold more
                    wanting[shard] = kept[-1][0]
        return batch

    async def _watch(self, shard: int) -> None:
        """Wakes the lane when ``shard`` has a change after its position, then rests until the lane next finds
        nothing to publish: a busy lane reads all its shards anyway, so watchers cost nothing under load."""
        while True:
            _stop_if_cancelled()
            rests = self._rests
            if await self._outbox.read(shard, self._positions[shard], count=1, block_ms=WATCH_MS):
                self._wake.set()
                async with self._rested:
                    while self._rests == rests:
                        await self._rested.wait()

    async def _send(self, producer: AIOKafkaProducer, batch: Batch) -> None:
        """Publishes a batch and the positions it reaches in one transaction, then records them in Redis."""
        records = [record for shard, entries in batch.items() for record in await self._records(shard, entries)]
        positions = {shard: entries[-1][0] for shard, entries in batch.items()}
        # A step that cannot finish (Kafka gone) fails the batch; the next producer fences this one and resumes from
        # the checkpoints, so a batch is never half published nor published twice.
        async with asyncio.timeout(KAFKA_TIMEOUT_SECONDS):
            await self._topics.ensure({record.topic for record in records})
            started = time.perf_counter()
            try:
                with self._span(records):
                    await self._commit(producer, records, positions)
            except BaseException:
                self._aborted.inc()
                raise
        self._commit_seconds.observe(time.perf_counter() - started)
        self._committed.inc()
        self._published.inc(len(records))
        self._last_commit = time.monotonic()
        self._positions.update(positions)
        await self._outbox.published(positions)
        log.debug("relay lane %d: published %d changes up to %s", self.lane, len(records), positions)

    def _span(self, records: list[StreamRecord]) -> contextlib.AbstractContextManager[object]:
        """The transaction's span when traced, linked to the traced writes it publishes (the SDK keeps 128 links)."""
        if not tracing.enabled():
            return contextlib.nullcontext()
        parents = (value for record in records for name, value in record.headers if name == tracing.TRACEPARENT)
        links = [link for parent in parents if (link := tracing.link(parent.decode())) is not None]
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.batch.message_count": len(records),
            "syncsvc.lane": self.lane,
        }
        return tracing.span("relay publish", attributes, links=links[:128])

    async def _stop(self, producer: AIOKafkaProducer) -> None:
        try:
            async with asyncio.timeout(KAFKA_TIMEOUT_SECONDS):
                await producer.stop()
        except (KafkaError, OSError, TimeoutError) as exc:
            log.debug("relay lane %d: producer did not stop cleanly: %s", self.lane, exc)

    async def _commit(self, producer: AIOKafkaProducer, records: list[StreamRecord], positions: dict[int, str]) -> None:
        async with producer.transaction():
            # send() only queues a record; its future says whether Kafka took it. Every future is awaited inside the
            # transaction: a batch the producer gave up on (a partition without a leader past the request timeout)
            # raises here and aborts the transaction, instead of the transaction committing without it, checkpoint
            # included, which would lose those changes for good.
            sent = [
                await producer.send(record.topic, record.value, key=record.key, headers=record.headers)
                for record in records
            ]
            for shard, position in positions.items():
                sent.append(
                    await producer.send(
                        self._settings.relay_checkpoint_topic,
                        position.encode(),
                        key=checkpoint_key(shard),
                        partition=shard,
                    )
                )
            await asyncio.gather(*sent)

    async def _checkpoints(self) -> dict[int, str]:
        """The last position committed to the checkpoint topic for each of the lane's shards (read_committed), or
        the start."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            # One partition per shard, written only by its lane: the read waits only for this lane's own (already
            # fenced) transactions, never for another lane's transaction left open by a relay that died.
            partitions = [TopicPartition(self._settings.relay_checkpoint_topic, shard) for shard in self.shards]
            positions = dict.fromkeys(self.shards, START_POSITION)
            # The ends first: their lookup is retried quietly while a topic just created has no leaders yet, and
            # only partitions holding something are read (assigning an empty one would only make the consumer look
            # up a position to start from, logging an error each try until a leader is elected).
            ends = await consumer.end_offsets(partitions)
            partitions = [partition for partition in partitions if ends[partition] > 0]
            if not partitions:
                return positions
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            deadline = time.monotonic() + 30
            while [partition for partition in partitions if await consumer.position(partition) < ends[partition]]:
                if time.monotonic() > deadline:
                    raise KafkaError(f"could not read the checkpoint topic to offsets {ends} within 30 s")
                for partition, messages in (await consumer.getmany(*partitions, timeout_ms=1000)).items():
                    for message in messages:
                        if message.key == checkpoint_key(partition.partition) and message.value is not None:
                            positions[partition.partition] = message.value.decode()
            return positions
        finally:
            await consumer.stop()
