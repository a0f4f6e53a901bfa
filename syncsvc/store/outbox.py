"""RedisOutbox: what the relay needs from Redis — outbox entries, lane leases, the published positions, trimming."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from syncsvc import rediskeys
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient
from syncsvc.store.scripts import register

Entry = tuple[str, dict[str, str]]


class RedisOutbox:
    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._lease = register(client, "lease.lua", writes=False)  # a lost lease costs a takeover, fenced by Kafka

    async def read(self, shard: int, after: str, *, count: int, block_ms: int | None) -> list[Entry]:
        """Up to ``count`` entries after ``after``, waiting up to ``block_ms`` for the first one (None: no wait)."""
        async with backend():
            reply: Any = await self.client.xread({rediskeys.outbox(shard): after}, count=count, block=block_ms)
        return _entries(reply[0][1]) if reply else []

    async def read_many(self, after: Mapping[int, str], *, count: int) -> dict[int, list[Entry]]:
        """Up to ``count`` entries of each shard after its position in ``after``, without waiting, in one round trip
        (one read per shard: shards live in different Redis Cluster slots). Shards with none are left out."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            for shard, position in after.items():
                pipe.xread({rediskeys.outbox(shard): position}, count=count)
            replies: list[Any] = await pipe.execute()
        return {shard: _entries(reply[0][1]) for shard, reply in zip(after, replies, strict=True) if reply}

    async def waiting(self, positions: Mapping[int, str]) -> tuple[int, int | None]:
        """Of shards published up to ``positions``: the entries their outboxes hold (published ones are trimmed right
        after their commit: the backlog, give or take the last batch) and the epoch ms of the oldest entry after its
        shard's position (None: everything is published), in one round trip."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            for shard, position in positions.items():
                pipe.xlen(rediskeys.outbox(shard))
                pipe.xrange(rediskeys.outbox(shard), f"({position}", "+", count=1)
            replies: list[Any] = await pipe.execute()
        held = sum(int(length) for length in replies[0::2])
        stamps = [int(text(entries[0][0]).split("-")[0]) for entries in replies[1::2] if entries]
        return held, min(stamps, default=None)

    async def published(self, positions: Mapping[int, str]) -> None:
        """Records what Kafka committed for each shard and trims the entries before it (never the position itself),
        in one round trip."""
        if not positions:
            return
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            for shard, position in positions.items():
                pipe.set(rediskeys.relay_position(shard), position)
                pipe.xtrim(rediskeys.outbox(shard), minid=position, approximate=False)
            await pipe.execute()

    async def shards(self, shards: Sequence[int]) -> dict[int, tuple[int, int | None]]:
        """Each shard's (entries its outbox holds, epoch ms of its oldest entry after the published position or None
        when everything is published), in two round trips whatever the number of shards: the positions, then the
        outboxes (entry ids start with their time)."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            for shard in shards:
                pipe.get(rediskeys.relay_position(shard))
            positions: list[Any] = await pipe.execute()
            pipe = self.client.pipeline(transaction=False)
            for shard, position in zip(shards, positions, strict=True):
                pipe.xlen(rediskeys.outbox(shard))
                pipe.xrange(rediskeys.outbox(shard), "-" if position is None else f"({text(position)}", "+", count=1)
            replies: list[Any] = await pipe.execute()
        return {
            shard: (int(length), int(text(entries[0][0]).split("-")[0]) if entries else None)
            for shard, length, entries in zip(shards, replies[0::2], replies[1::2], strict=True)
        }

    async def backlog(self, shard: int) -> int:
        """Entries not yet trimmed (published or not): the shard's lag, give or take the last batch."""
        async with backend():
            return int(await self.client.xlen(rediskeys.outbox(shard)))

    async def lease(self, action: str, lane: int, owner: str, ttl_ms: int) -> bool:
        """``take`` / ``keep`` / ``give`` the lane's relay lease (see lease.lua)."""
        async with backend():
            held = await self._lease(keys=[rediskeys.relay_lane_lease(lane)], args=[action, owner, ttl_ms])
        return bool(held)

    async def check_lanes(self, lanes: int) -> int:
        """Records the relay lane count on first start; returns the recorded one (which the caller compares)."""
        async with backend():
            await self.client.hsetnx(rediskeys.META, "relay_lanes", lanes)
            recorded = await self.client.hget(rediskeys.META, "relay_lanes")
        return int(text(recorded or b"0"))


def _entries(raw: Any) -> list[Entry]:
    return [(text(entry_id), {text(k): text(v) for k, v in fields.items()}) for entry_id, fields in raw]
