"""Push sync state in Redis: registered devices and their dataset subscriptions, all in the identity's slot.

The notifications themselves are not stored: the write scripts announce every commit on the identity's sharded
Pub/Sub channel (``IdentityKeyspace.push_channel``), and a device that was away learns what it missed from the sync
counts (:meth:`RedisPushStore.catch_up`), which Redis holds anyway.
"""

from __future__ import annotations

import orjson

from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient
from syncsvc.store.scripts import register


class RedisPushStore:
    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._subscribe = register(client, "subscribe.lua")
        self._register_device = register(client, "register_device.lua")

    async def register_device(
        self, keyspace: IdentityKeyspace, device_id: str, platform: str, token: str, now_ms: int, *, limit: int
    ) -> bool:
        """Registers the device (a device registered again keeps its first registration and subscriptions); False
        when the identity already has ``limit`` other devices."""
        device = orjson.dumps({"platform": platform, "token": token, "created": now_ms})
        async with backend():
            done = await self._register_device(keys=[keyspace.devices], args=[device_id, device, limit])
        return bool(done)

    async def device_exists(self, keyspace: IdentityKeyspace, device_id: str) -> bool:
        async with backend():
            return bool(await self._client.hexists(keyspace.devices, device_id))

    async def subscribe(self, keyspace: IdentityKeyspace, device_id: str, dataset: str, *, on: bool, limit: int) -> int:
        """Subscribes (``on``) or unsubscribes the device: 1 done, 0 the device is not registered to the identity,
        -1 it already has ``limit`` other subscriptions."""
        script_keys = [keyspace.devices, keyspace.subscriptions(device_id), keyspace.subscribers(dataset)]
        async with backend():
            done = await self._subscribe(keys=script_keys, args=[device_id, dataset, "1" if on else "0", limit])
        return int(done)

    async def catch_up(self, keyspace: IdentityKeyspace, device_id: str) -> dict[str, int]:
        """The current sync count of every dataset the device subscribed to (0 for one never written)."""
        async with backend():
            names = sorted(text(name) for name in await self._client.smembers(keyspace.subscriptions(device_id)))
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                pipe.hget(keyspace.dataset(name), "sc")
            counts = await pipe.execute()
        return {name: int(count or 0) for name, count in zip(names, counts, strict=True)}
