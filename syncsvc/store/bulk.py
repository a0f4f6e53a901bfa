"""RedisBulkJobs: what bulk publish needs from Redis — the job and its lease (bulk_publish.lua), dataset counts, and
dataset snapshots appended to the outbox (snapshot_dataset.lua)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from syncsvc import rediskeys
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient
from syncsvc.store.scripts import register


def _fields(flat: Sequence[Any]) -> dict[str, str]:
    items = [text(item) for item in flat]
    return dict(zip(items[::2], items[1::2], strict=True))


class RedisBulkJobs:
    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._job = register(client, "bulk_publish.lua")
        self._snapshot = register(client, "snapshot_dataset.lua")

    async def _act(self, action: str, pool_id: str, owner: str, lease_ms: int, *args: str | int) -> Any:
        async with backend():
            return await self._job(
                keys=[rediskeys.bulk_publish(pool_id), rediskeys.bulk_publish_lease(pool_id)],
                args=[action, owner, lease_ms, *args],
            )

    async def start(
        self, pool_id: str, owner: str, *, lease_ms: int, now_ms: int, window_ms: int
    ) -> tuple[str, int | None]:
        """("started" | "duplicate" | "streamed", completion ms of the last success when "streamed")."""
        reply = await self._act("start", pool_id, owner, lease_ms, now_ms, window_ms)
        return text(reply[0]), int(reply[1]) if len(reply) > 1 else None

    async def claim(self, pool_id: str, owner: str, *, lease_ms: int) -> dict[str, str] | None:
        """The job hash, with its lease now the owner's; None when no job in progress is free to claim."""
        reply = await self._act("claim", pool_id, owner, lease_ms)
        return _fields(reply) if reply else None

    async def keep(self, pool_id: str, owner: str, *, lease_ms: int, **progress: str | int) -> bool:
        """Records ``progress`` (fields of the job hash) and extends the lease; False when the lease is not ours."""
        pairs = [item for field, value in progress.items() for item in (field, value)]
        return bool(await self._act("keep", pool_id, owner, lease_ms, *pairs))

    async def finish(self, pool_id: str, owner: str, *, status: str, now_ms: int, failure: str = "") -> bool:
        return bool(await self._act("finish", pool_id, owner, 0, status, now_ms, failure))

    async def give_back(self, pool_id: str, owner: str) -> bool:
        return bool(await self._act("give", pool_id, owner, 0))

    async def job(self, pool_id: str) -> dict[str, str]:
        """The job hash (empty when no bulk publish ever started)."""
        async with backend():
            stored = await self.client.hgetall(rediskeys.bulk_publish(pool_id))
        return {text(field): text(value) for field, value in stored.items()}

    async def in_progress(self, pool_ids: Sequence[str]) -> list[str]:
        """Those of ``pool_ids`` whose job is IN_PROGRESS (one pipelined round trip)."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            for pool_id in pool_ids:
                pipe.hget(rediskeys.bulk_publish(pool_id), "status")
            statuses = await pipe.execute()
        return [pool_id for pool_id, status in zip(pool_ids, statuses, strict=True) if status == b"IN_PROGRESS"]

    async def count_datasets(self, identities: Sequence[IdentityKeyspace]) -> int:
        """Live datasets of these identities, summed (one pipelined round trip)."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            for keyspace in identities:
                pipe.zcard(keyspace.datasets)
            counts = await pipe.execute()
        return sum(int(count) for count in counts)

    async def snapshot(self, keyspace: IdentityKeyspace, topic: str) -> int:
        """Appends the state of each of the identity's live datasets to its shard's outbox (one entry per dataset,
        see snapshot_dataset.lua); returns how many were appended."""
        async with backend():
            names = [text(name) for name in await self.client.zrangebylex(keyspace.datasets, "-", "+")]
            if not names:
                return 0
            # Concurrent calls, not a pipeline: a cluster pipeline cannot carry EVALSHA (and its NOSCRIPT reload).
            appended = await asyncio.gather(
                *(
                    self._snapshot(
                        keys=[keyspace.dataset(name), keyspace.records(name), rediskeys.outbox(keyspace.shard)],
                        args=[name, keyspace.identity_id, keyspace.identity_pool_id, topic],
                    )
                    for name in names
                )
            )
        return sum(1 for entry_id in appended if entry_id)
