"""RedisInstances: the serving instances of a deployment, as each last reported itself (the console's push page).

One hash, ``<prefix>:instances``: instance id → JSON record (its host, process, push sockets, start and report
times, ``at`` in epoch seconds). Each instance reports every few seconds (``syncsvc.runtime.serving``) and, in the
same round trip, reads the others; it drops the records of instances silent for over :data:`FORGET_SECONDS`, so the
hash holds the live instances and the recently gone ones only, however often they restart. Nothing in it is secret.
Driver errors become :class:`~syncsvc.errors.BackendUnavailableError`.
"""

from __future__ import annotations

import orjson

from syncsvc.rediskeys import PREFIX
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient

INSTANCES = f"{PREFIX}:instances"
#: A record not renewed for this long is dropped.
FORGET_SECONDS = 3600.0


class RedisInstances:
    def __init__(self, client: RedisClient) -> None:
        self.client = client

    async def report(self, instance_id: str, record: bytes, *, now: float) -> None:
        """Writes this instance's record; drops those not renewed for :data:`FORGET_SECONDS`."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(INSTANCES, instance_id, record)
            pipe.hgetall(INSTANCES)
            _, records = await pipe.execute()
            stale = [key for key, value in records.items() if now - float(orjson.loads(value)["at"]) > FORGET_SECONDS]
            if stale:
                await self.client.hdel(INSTANCES, *stale)

    async def all(self) -> dict[str, bytes]:
        async with backend():
            records = await self.client.hgetall(INSTANCES)
        return {text(key): value if isinstance(value, bytes) else value.encode() for key, value in records.items()}
