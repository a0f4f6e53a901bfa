"""RedisOutbox: what the relay needs from Redis — outbox entries, shard leases, the published position, trimming."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from syncsvc import keys
from syncsvc.store.backend import backend, register, text

Entry = tuple[str, dict[str, str]]


class RedisOutbox:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._lease = register(client, "lease.lua")

    async def read(self, shard: int, after: str, *, count: int, block_ms: int) -> list[Entry]:
        """Up to ``count`` entries after ``after``, waiting up to ``block_ms`` for the first one."""
        async with backend():
            reply: Any = await self.client.xread({keys.outbox(shard): after}, count=count, block=block_ms)
        if not reply:
            return []
        entries = reply[0][1]
        return [(text(entry_id), {text(k): text(v) for k, v in fields.items()}) for entry_id, fields in entries]

    async def published(self, shard: int, position: str) -> None:
        """Records what Kafka committed and trims the entries before it (never the position itself)."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            pipe.set(keys.relay_position(shard), position)
            pipe.xtrim(keys.outbox(shard), minid=position, approximate=False)
            await pipe.execute()

    async def oldest_unpublished(self, shard: int) -> int | None:
        """Epoch ms of the oldest entry after the published position (entry ids start with their time), or None."""
        async with backend():
            position = await self.client.get(keys.relay_position(shard))
            start = "-" if position is None else f"({text(position)}"
            entries: Any = await self.client.xrange(keys.outbox(shard), start, "+", count=1)
        return int(text(entries[0][0]).split("-")[0]) if entries else None

    async def backlog(self, shard: int) -> int:
        """Entries not yet trimmed (published or not): the shard's lag, give or take the last batch."""
        async with backend():
            return int(await self.client.xlen(keys.outbox(shard)))

    async def lease(self, action: str, shard: int, owner: str, ttl_ms: int) -> bool:
        """``take`` / ``keep`` / ``give`` the shard's relay lease (see lease.lua)."""
        async with backend():
            held = await self._lease(keys=[keys.relay_lease(shard)], args=[action, owner, ttl_ms])
        return bool(held)
