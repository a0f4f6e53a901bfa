"""Bulk publish: the current state of every dataset of a pool, one stream record per dataset (BulkPublish,
GetBulkPublishDetails and ``syncsvc bulk-publish``).

A bulk publish goes *through the outbox*, like any change: one script (snapshot_dataset.lua) reads a live dataset's
records and sync count and appends them, atomically, to its identity's shard outbox as one change, and the relay
publishes it in the Cognito Streams format. So a bulk publish gets what the relay gives live changes: each entry once
for read_committed consumers, per-dataset order relative to live changes (a snapshot is published after every change
it contains and before every later one), and no failure when Kafka is down (entries wait in the outbox). The walk
pauses while a shard's outbox holds ``MAX_BACKLOG`` entries, so a pool's data is never copied into Redis wholesale
while Kafka is slow or down. SUCCEEDED means every live dataset's state is in the outbox; it reaches the topic as
soon as the relay publishes it.

A job walks the pool's identities shard by shard, in id order, snapshots each identity's datasets, and then records
that identity as its cursor. It first counts the pool's live datasets (for progress). One worker runs a job: the one
holding the job's lease in Redis, renewed at every step. A worker that stops — cancelled by a shutdown (it gives the
lease back), killed, or cut off from Redis (the lease expires) — leaves the job IN_PROGRESS, and another worker claims
it and resumes after the cursor: the sweep of any ``syncsvc serve`` (at start and every ``SWEEP_SECONDS``), a
BulkPublish or GetBulkPublishDetails call, or ``syncsvc bulk-publish``.

Duplicates: the datasets of the identity a worker was on when it stopped are published again on resume, and a
dataset's bulk record repeats the state its live changes already carried. Cognito documents the same for its bulk
publish; consumers apply records idempotently (per key, the highest syncCount wins).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from syncsvc.background import every
from syncsvc.clock import Clock
from syncsvc.config import Settings
from syncsvc.errors import (
    AlreadyStreamedError,
    BackendUnavailableError,
    DuplicateRequestError,
    InvalidParameterError,
    ResourceNotFoundError,
)
from syncsvc.identity.pools import PoolDirectory
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store import RedisStore
from syncsvc.store.bulk import RedisBulkJobs
from syncsvc.store.outbox import RedisOutbox

log = logging.getLogger("syncsvc.bulk")

#: A worker renews its lease at every identity; a worker gone for this long is replaced.
LEASE_MS = 10_000
#: How often ``run`` looks for jobs whose worker is gone.
SWEEP_SECONDS = 10.0
#: Outbox entries of a shard (waiting for the relay, or published and not yet trimmed) from which the walk waits for
#: the relay before it adds more there: a bulk publish never piles a whole pool's data into Redis while Kafka is slow
#: or down.
MAX_BACKLOG = 1000
BACKLOG_POLL_SECONDS = 0.2
_POOLS_PAGE = 500


class BulkStatus(StrEnum):
    NOT_STARTED = "NOT_STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    FAILED = "FAILED"
    SUCCEEDED = "SUCCEEDED"


@dataclass(frozen=True, slots=True)
class BulkJob:
    """A pool's last bulk publish (what GetBulkPublishDetails shows), with its progress."""

    status: BulkStatus
    started_ms: int | None = None
    completed_ms: int | None = None
    failure: str | None = None
    #: Live datasets of the pool when the job started (None until counted).
    total: int | None = None
    #: Datasets appended to the outbox so far.
    done: int = 0
    #: The cursor: the last identity whose datasets are all appended (None: none yet).
    after: str | None = None
    #: The walk waits for the relay to publish a shard's outbox (see ``MAX_BACKLOG``).
    waiting: bool = False

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> BulkJob:
        """From the job hash (see keys.bulk_publish); NOT_STARTED when there is none."""
        if not fields:
            return cls(BulkStatus.NOT_STARTED)
        return cls(
            status=BulkStatus(fields["status"]),
            started_ms=_optional_int(fields.get("started")),
            completed_ms=_optional_int(fields.get("completed")),
            failure=fields.get("failure") or None,
            total=_optional_int(fields.get("total")),
            done=int(fields.get("done", 0)),
            after=fields.get("after") or None,
            waiting=fields.get("waiting") == "1",
        )

    @property
    def ended(self) -> bool:
        return self.status is not BulkStatus.IN_PROGRESS


class _WorkerStoppedError(Exception):
    """The worker stops without ending the job (``str()`` says why)."""


class _JobFailedError(Exception):
    """The job cannot complete; ``str()`` is its FailureMessage."""


class BulkPublisher:
    """The bulk publish use-cases, and the workers that run the jobs in this process (one asyncio task per job)."""

    def __init__(
        self,
        jobs: RedisBulkJobs,
        store: RedisStore,
        outbox: RedisOutbox,
        pools: PoolDirectory,
        settings: Settings,
        *,
        owner: str | None = None,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._jobs = jobs
        self._store = store
        self._outbox = outbox
        self._pools = pools
        self._settings = settings
        self.owner = owner or f"bulk-{uuid.uuid4()}"
        self._workers: dict[str, asyncio.Task[None]] = {}

    # --- the operations -----------------------------------------------------------------------------------------------

    async def start(self, pool_id: str) -> None:
        """BulkPublish: starts publishing every dataset of the pool, in the background (developer credentials only)."""
        if (await self._pools.configuration(pool_id)).streaming_topic is None:
            raise InvalidParameterError(
                f"BulkPublish needs streaming: identity pool '{pool_id}' has no CognitoStreams with StreamingStatus "
                f"ENABLED (see SetIdentityPoolConfiguration)"
            )
        window_ms = self._settings.bulk_publish_window_seconds * 1000
        outcome, completed = await self._jobs.start(
            pool_id, self.owner, lease_ms=LEASE_MS, now_ms=self._clock.now_ms(), window_ms=window_ms
        )
        if outcome == "duplicate":
            await self._adopt(pool_id)
            raise DuplicateRequestError(f"A bulk publish of identity pool '{pool_id}' is already in progress")
        if outcome == "streamed":
            last = completed or 0
            raise AlreadyStreamedError(
                f"The last bulk publish of identity pool '{pool_id}' succeeded at {_iso(last)}; the next one is "
                f"allowed from {_iso(last + window_ms)}"
            )
        log.info("bulk publish of pool %s: started", pool_id)
        self._spawn(pool_id, BulkJob(BulkStatus.IN_PROGRESS))

    async def details(self, pool_id: str) -> BulkJob:
        """GetBulkPublishDetails (developer credentials only). A job in progress whose worker is gone resumes here."""
        await self._pools.require(pool_id)
        job = BulkJob.of(await self._jobs.job(pool_id))
        if job.status is BulkStatus.IN_PROGRESS:
            await self._adopt(pool_id)
        return job

    async def run(self) -> None:
        """Until cancelled: resumes the jobs whose worker is gone, at once and every ``SWEEP_SECONDS``."""
        await every(SWEEP_SECONDS, "bulk publish sweep", self.sweep)

    async def sweep(self) -> None:
        """Claims every IN_PROGRESS job whose lease is free and resumes it here (pools read a page at a time)."""
        after = None
        while page := await self._store.list_pools(after=after, limit=_POOLS_PAGE):
            for pool_id in await self._jobs.in_progress(page):
                await self._adopt(pool_id)
            after = page[-1]

    async def close(self) -> None:
        """Stops this process's workers; each gives its lease back, so that another worker resumes its job at once."""
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    # --- workers ------------------------------------------------------------------------------------------------------

    async def _adopt(self, pool_id: str) -> None:
        """Resumes the pool's IN_PROGRESS job in this process if its lease is free (its worker is gone)."""
        if pool_id in self._workers:
            return
        fields = await self._jobs.claim(pool_id, self.owner, lease_ms=LEASE_MS)
        if fields is None or pool_id in self._workers:
            return
        job = BulkJob.of(fields)
        where = f"after identity {job.after}" if job.after else "from the start"
        log.info("bulk publish of pool %s: resuming %s (%d datasets done)", pool_id, where, job.done)
        self._spawn(pool_id, job)

    def _spawn(self, pool_id: str, job: BulkJob) -> None:
        self._workers[pool_id] = asyncio.create_task(self._work(pool_id, job), name=f"bulk-publish {pool_id}")

    async def _work(self, pool_id: str, job: BulkJob) -> None:
        try:
            done = await self._walk(pool_id, job)
            await self._finish(pool_id, BulkStatus.SUCCEEDED)
            log.info("bulk publish of pool %s: succeeded, %d datasets in the outbox", pool_id, done)
        except asyncio.CancelledError:
            await self._give_back(pool_id)
            raise
        except _WorkerStoppedError as exc:
            log.info("bulk publish of pool %s: this worker stops: %s", pool_id, exc)
        except _JobFailedError as exc:
            log.warning("bulk publish of pool %s: failed: %s", pool_id, exc)
            await self._finish(pool_id, BulkStatus.FAILED, str(exc))
        except BackendUnavailableError as exc:
            log.warning("bulk publish of pool %s: paused, %s; it resumes from its cursor", pool_id, exc.message)
        except Exception as exc:
            log.exception("bulk publish of pool %s: failed", pool_id)
            await self._finish(pool_id, BulkStatus.FAILED, f"Internal error ({type(exc).__name__}); see the logs")
        finally:
            if self._workers.get(pool_id) is asyncio.current_task():
                del self._workers[pool_id]

    async def _walk(self, pool_id: str, job: BulkJob) -> int:
        """Snapshots the datasets of every identity after the job's cursor; returns the datasets appended in all."""
        shards = self._settings.shards
        if job.total is None:
            total = 0
            async for batch in self._store.pool_members(pool_id, shards):
                total += await self._jobs.count_datasets([IdentityKeyspace.of(pool_id, i, shards) for i in batch])
                await self._keep(pool_id)
            await self._keep(pool_id, total=total)
        done = job.done
        async for batch in self._store.pool_members(pool_id, shards, after=job.after):
            for identity_id in batch:
                keyspace = IdentityKeyspace.of(pool_id, identity_id, shards)
                await self._wait_for_relay(pool_id, keyspace.shard)
                done += await self._jobs.snapshot(keyspace, await self._topic(pool_id))
                await self._keep(pool_id, after=identity_id, done=done)
        return done

    async def _wait_for_relay(self, pool_id: str, shard: int) -> None:
        """Returns once the shard's outbox holds fewer than ``MAX_BACKLOG`` entries, keeping the lease meanwhile."""
        if await self._outbox.backlog(shard) < MAX_BACKLOG:
            return
        log.info("bulk publish of pool %s: waiting for the relay to publish the outbox of shard %d", pool_id, shard)
        await self._keep(pool_id, waiting=1)
        while await self._outbox.backlog(shard) >= MAX_BACKLOG:
            await asyncio.sleep(BACKLOG_POLL_SECONDS)
            await self._keep(pool_id)
        await self._keep(pool_id, waiting=0)

    async def _topic(self, pool_id: str) -> str:
        """The pool's stream topic now (the configuration may change while the job runs)."""
        try:
            topic = (await self._pools.configuration(pool_id)).streaming_topic
        except ResourceNotFoundError:
            raise _WorkerStoppedError("the identity pool was deleted") from None
        if topic is None:
            raise _JobFailedError(
                "Streaming was turned off for the identity pool (StreamingStatus DISABLED) during the bulk publish"
            )
        return topic

    async def _keep(self, pool_id: str, **progress: str | int) -> None:
        if not await self._jobs.keep(pool_id, self.owner, lease_ms=LEASE_MS, **progress):
            raise _WorkerStoppedError("its lease went to another worker, or the job is gone with its pool")

    async def _finish(self, pool_id: str, status: BulkStatus, failure: str = "") -> None:
        try:
            ended = await self._jobs.finish(
                pool_id, self.owner, status=status, now_ms=self._clock.now_ms(), failure=failure
            )
        except BackendUnavailableError as exc:
            log.warning("bulk publish of pool %s: cannot record %s (%s); it resumes later", pool_id, status, exc)
            return
        if not ended:
            log.info("bulk publish of pool %s: not recorded as %s: another worker has the job", pool_id, status)

    async def _give_back(self, pool_id: str) -> None:
        try:
            await asyncio.shield(self._jobs.give_back(pool_id, self.owner))
        except BackendUnavailableError:
            log.info("bulk publish of pool %s: could not give the lease back; it expires by itself", pool_id)


def _iso(epoch_ms: int) -> str:
    return datetime.datetime.fromtimestamp(epoch_ms / 1000, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _optional_int(value: str | None) -> int | None:
    return None if value is None or value == "" else int(value)
