"""How syncsvc reaches Redis: one URL, three topologies, one client type for the rest of ``store/``.

``SYNCSVC_REDIS_URL`` takes one of:

* ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS, ``unix:///path``): one Redis.
* ``redis+cluster://[user:password@]host:port[,host:port…]/`` (``rediss+cluster://``): a Redis Cluster; the listed
  nodes are where discovery starts (any of them, masters or replicas), the client follows the cluster's slot map.
* ``redis+sentinel://[user:password@]host:port[,host:port…]/service-name[/db]`` (``rediss+sentinel://``): one
  primary with replicas watched by Redis Sentinel; the listed hosts are the sentinels, the credentials the data
  nodes'. After a failover the client asks the sentinels again and follows the new primary without a restart. It
  asks when a connection breaks (the primary died) or the node answers READONLY (it was turned into a replica): a
  primary replaced while still alive (``SENTINEL FAILOVER``, a network partition) keeps taking writes on the
  connections it has until Sentinel turns it into a replica, about 10 s later, and those writes are lost with it.

Whatever the topology, the client never sends a command twice behind the caller's back: retries after a connection
error are off (a Lua write that reached the server before the connection broke must not run again). A cluster
client still follows MOVED and ASK redirections, which the server sends *instead of* running the command, so
resharding is transparent. A connection error, a failover window (CLUSTERDOWN, a demoted primary's READONLY) or a
timeout becomes :class:`~syncsvc.errors.BackendUnavailableError` (503 + Retry-After, see ``backend.py``): clients
retry, and every write is either idempotent (UpdateRecords carries its writer's fingerprint) or all-or-nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

#: The client every store module takes: one node (or a Sentinel-managed primary) or a cluster.
RedisClient: TypeAlias = aioredis.Redis | RedisCluster

#: Per-connection settings of every client (data nodes and sentinels).
_SOCKET: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 2}
#: Connections per client (per node for a cluster): a bound on sockets. On one node a burst past it waits for a free
#: connection (up to the socket timeout, then ConnectionError: 503 + Retry-After) instead of failing at once: a soak
#: whose 400 phones opened their push sockets together met redis-py's plain pool answering MaxConnectionsError. The
#: cluster and Sentinel clients have no waiting pool in redis-py: there the in-flight bound
#: (``Settings.max_requests_in_flight``) has to stay below it.
MAX_CONNECTIONS = 256


class RedisUrlError(ValueError):
    """``SYNCSVC_REDIS_URL`` cannot be understood; ``str()`` says why, without the password."""


@dataclass(frozen=True, slots=True)
class Topology:
    """What a URL names: ``kind`` is "single", "cluster" or "sentinel"."""

    kind: str
    #: (host, port) of the cluster's startup nodes or of the sentinels; empty for "single".
    nodes: tuple[tuple[str, int], ...] = ()
    #: The Sentinel service (the monitored primary's name).
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse(url: str) -> Topology:
    """The topology ``url`` names (see the module docstring for the forms)."""
    scheme, _, _ = url.partition("://")
    base, _, flavour = scheme.partition("+")
    if base not in ("redis", "rediss", "unix") or flavour not in ("", "cluster", "sentinel"):
        raise RedisUrlError(
            f"unknown Redis URL scheme {scheme!r}: use redis://, rediss://, unix://, redis+cluster:// or "
            f"redis+sentinel://"
        )
    if not flavour:
        return Topology("single")
    if base == "unix":
        raise RedisUrlError(f"{scheme}:// is not a form: a cluster or sentinels are reached over TCP")
    split = urlsplit(url)
    netloc = split.netloc.rpartition("@")[2]
    nodes = tuple(_host_port(part, 26379 if flavour == "sentinel" else 6379) for part in netloc.split(",") if part)
    if not nodes:
        raise RedisUrlError(f"{scheme}:// needs at least one host:port")
    path = [part for part in split.path.split("/") if part]
    username = unquote(split.username) if split.username else None
    password = unquote(split.password) if split.password else None
    if flavour == "cluster":
        if path and path != ["0"]:
            raise RedisUrlError("a Redis Cluster has only database 0: end the URL with / or /0")
        return Topology("cluster", nodes, username=username, password=password, tls=base == "rediss")
    if not path or len(path) > 2:
        raise RedisUrlError("redis+sentinel:// needs the service name: redis+sentinel://host:port,…/mymaster[/db]")
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise RedisUrlError(f"the database must be a number, not {path[1]!r}") from None
    return Topology("sentinel", nodes, path[0], db, username, password, base == "rediss")


def _host_port(part: str, default: int) -> tuple[str, int]:
    host, sep, port = part.rpartition(":")
    if not sep:
        return part, default
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise RedisUrlError(f"{part!r} is not host:port") from None


def connect(url: str) -> RedisClient:
    """A client for ``url``; it connects on first use."""
    topology = parse(url)
    no_retries = Retry(NoBackoff(), 0)
    if topology.kind == "single":
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            **_SOCKET,
            health_check_interval=15,
            retry=no_retries,
            max_connections=MAX_CONNECTIONS,
            timeout=_SOCKET["socket_timeout"],
        )
        return aioredis.Redis.from_pool(pool)
    credentials: dict[str, Any] = {"username": topology.username, "password": topology.password}
    if topology.kind == "cluster":
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in topology.nodes],
            **credentials,
            **_SOCKET,
            ssl=topology.tls,
            retry=no_retries,
            max_connections=MAX_CONNECTIONS,
        )
    sentinel = Sentinel(
        topology.nodes,
        sentinel_kwargs={**_SOCKET, "ssl": topology.tls},
        **credentials,
        **_SOCKET,
        ssl=topology.tls,
    )
    client: _SentinelPrimary = sentinel.master_for(
        topology.service,
        redis_class=_SentinelPrimary,
        db=topology.db,
        health_check_interval=15,
        retry=no_retries,
        max_connections=MAX_CONNECTIONS,
    )
    client.sentinels = sentinel
    return client


class _SentinelPrimary(aioredis.Redis):
    """The client of a Sentinel-managed primary: closing it closes its connections to the sentinels too (redis-py
    leaves them to the garbage collector)."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinels is not None:
                await self.sentinels.aclose()


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)
