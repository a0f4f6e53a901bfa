"""Sharded Pub/Sub (SSUBSCRIBE / SPUBLISH) on whichever topology the store runs: the push hub's and `syncsvc watch`'s
one way to listen to identity channels.

On one Redis (or a Sentinel-managed primary) it is one Pub/Sub connection. On a cluster a sharded channel lives on the
master of its slot, so the client keeps one connection per master that owns a subscribed channel and follows a
channel to its new master after a failover or resharding (redis-py's ``ClusterPubSub``); a message published while a
channel's master was down is lost, as with any Pub/Sub, which is why the hub catches sockets up after an outage.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from syncsvc.store.backend import text
from syncsvc.store.connection import RedisClient


class ShardedChannels:
    """Subscriptions to sharded channels and the messages published on them."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._pubsub: Any = client.pubsub()
        self._masters = self._current_masters()

    def masters_changed(self) -> bool:
        """True (once) when the cluster's set of masters changed since the last call: a failover moved channels to a
        new master, and what was published while the old one was dying is lost. Always False on one Redis (a
        Sentinel failover breaks the connection instead, which :meth:`message` raises)."""
        masters = self._current_masters()
        changed = masters != self._masters
        self._masters = masters
        return changed

    def _current_masters(self) -> frozenset[str]:
        if isinstance(self._client, RedisCluster):
            return frozenset(node.name for node in self._client.get_primaries())
        return frozenset()

    async def subscribe(self, *channels: str) -> None:
        await self._pubsub.ssubscribe(*channels)

    async def unsubscribe(self, *channels: str) -> None:
        await self._pubsub.sunsubscribe(*channels)

    async def message(self, wait_seconds: float) -> tuple[str, bytes] | None:
        """The next message as (channel, data), waiting up to ``wait_seconds``; None when none came. Connection
        failures are raised (the caller reconnects with a new instance)."""
        if self._cluster:
            message = await self._pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=wait_seconds)
        else:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=wait_seconds)
        if message is None or message["type"] != "smessage":
            return None
        data = message["data"]
        return text(message["channel"]), data if isinstance(data, bytes) else data.encode()

    async def close(self) -> None:
        await self._pubsub.aclose()
