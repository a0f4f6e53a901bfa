"""RedisInstances: the serving instances of a deployment, as each last reported itself (the console's push page).

One hash, ``<prefix>:instances``: instance id → JSON record (its host, process, push sockets, start and report
times). Each instance reports every few seconds (``syncsvc.runtime.serving``); a reader drops the records of
instances that stopped reporting long ago, so the hash holds the live instances and the recently gone ones only.
Nothing in it is secret. Driver errors become :class:`~syncsvc.errors.BackendUnavailableError`.
"""

from __future__ import annotations

from syncsvc.rediskeys import PREFIX
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient

INSTANCES = f"{PREFIX}:instances"


class RedisInstances:
    def __init__(self, client: RedisClient) -> None:
        self.client = client

    async def report(self, instance_id: str, record: bytes) -> None:
        async with backend():
            await self.client.hset(INSTANCES, instance_id, record)

    async def all(self) -> dict[str, bytes]:
        async with backend():
            records = await self.client.hgetall(INSTANCES)
        return {text(key): value if isinstance(value, bytes) else value.encode() for key, value in records.items()}

    async def forget(self, *instance_ids: str) -> None:
        if instance_ids:
            async with backend():
                await self.client.hdel(INSTANCES, *instance_ids)
