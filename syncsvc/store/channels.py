"""Sharded Pub/Sub (SSUBSCRIBE / SPUBLISH) on whichever topology the store runs: the push hub's and `syncsvc watch`'s
one way to listen to identity channels, and the hub's way to announce on them.

On one Redis (or a Sentinel-managed primary) it is one Pub/Sub connection. On a cluster a sharded channel lives on the
master of its slot, so the client keeps one connection per master that owns a subscribed channel and follows a
channel to its new master after a failover or resharding (redis-py's ``ClusterPubSub``); a message published while a
channel's master was down is lost, as with any Pub/Sub, which is why the hub catches sockets up after an outage.

Driver errors never leave this module raw: they become :class:`~syncsvc.errors.BackendUnavailableError`
(``syncsvc.store.backend``).
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio.cluster import RedisCluster

from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient

log = logging.getLogger(__name__)


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
        async with backend():
            await self._pubsub.ssubscribe(*channels)

    async def unsubscribe(self, *channels: str) -> None:
        async with backend():
            await self._pubsub.sunsubscribe(*channels)

    async def publish(self, channel: str, data: bytes) -> None:
        """Announces ``data`` on ``channel`` (SPUBLISH, on an ordinary connection: not this one's Pub/Sub)."""
        async with backend():
            await self._client.spublish(channel, data)

    async def message(self, wait_seconds: float) -> tuple[str, bytes] | None:
        """The next message as (channel, data), waiting up to ``wait_seconds``; None when none came. Connection
        failures are raised (after which the caller may :meth:`reconnect`)."""
        async with backend():
            if self._cluster:
                message = await self._pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=wait_seconds)
            else:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=wait_seconds)
        if message is None or message["type"] != "smessage":
            return None
        data = message["data"]
        return text(message["channel"]), data if isinstance(data, bytes) else data.encode()

    async def reconnect(self) -> None:
        """Drops the Pub/Sub connection (it may be half dead after an outage) for a new one subscribed to nothing;
        the cluster's masters are counted afresh."""
        try:
            await self._pubsub.aclose()
        except Exception as exc:  # closing what may already be broken: whatever it says, a new connection follows
            log.debug("closing a broken Pub/Sub connection failed: %r", exc)
        self._pubsub = self._client.pubsub()
        self._masters = self._current_masters()

    async def close(self) -> None:
        async with backend():
            await self._pubsub.aclose()
