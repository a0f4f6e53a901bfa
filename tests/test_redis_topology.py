"""How syncsvc reaches Redis (issue 15): the URL forms, KMS keys moved to one cluster slot, and writes acknowledged
only once replicas confirmed them (SYNCSVC_REDIS_REPLICA_ACKS), on a real Redis Cluster."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from syncsvc import rediskeys
from syncsvc.runtime import StartupError, open_services
from syncsvc.store import connection
from syncsvc.store.connection import RedisClient, RedisUrlError, Topology
from tests.conftest import Raw, flushed_client, make_settings, serving

pytestmark = pytest.mark.cluster
NEW_POOL = {"IdentityPoolName": "acks", "AllowUnauthenticatedIdentities": True}


@pytest.mark.parametrize(
    ("url", "topology"),
    [
        ("redis://127.0.0.1:6379/0", Topology("single")),
        ("unix:///run/redis.sock", Topology("single")),
        (
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001/",
            Topology("cluster", (("10.0.0.1", 7000), ("10.0.0.2", 7001))),
        ),
        (
            "rediss+cluster://u:p%40ss@h1:7000",
            Topology("cluster", (("h1", 7000),), username="u", password="p@ss", tls=True),
        ),
        (
            "redis+sentinel://s1:26379,s2/syncsvc/2",
            Topology("sentinel", (("s1", 26379), ("s2", 26379)), "syncsvc", 2),
        ),
    ],
)
def test_each_url_form_names_its_topology(url: str, topology: Topology) -> None:
    assert connection.parse(url) == topology


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("memcached://h:1/", "unknown Redis URL scheme"),
        ("redis+cluster:///", "at least one host:port"),
        ("redis+cluster://h:1/3", "only database 0"),
        ("redis+sentinel://h:1/", "needs the service name"),
        ("redis+sentinel://h:1/svc/x", "must be a number"),
        ("redis+cluster://h:port/", "is not host:port"),
        ("unix+cluster:///tmp/s", "over TCP"),
    ],
)
def test_a_url_that_names_nothing_is_refused_with_the_reason(url: str, says: str) -> None:
    with pytest.raises(RedisUrlError, match=says):
        connection.parse(url)


async def test_a_burst_past_the_connection_bound_waits_for_connections_instead_of_failing(redis_url: str) -> None:
    """More commands at once than the client has connections: each holds its connection 0.2 s, the rest wait for
    one (a plain redis-py pool answered MaxConnectionsError, and the request a 503)."""
    client = connection.connect(redis_url)
    run = uuid.uuid4().hex
    try:
        burst = [client.blpop([f"burst-{run}-{n}"], timeout=0.2) for n in range(connection.MAX_CONNECTIONS + 44)]
        assert await asyncio.gather(*burst) == [None] * (connection.MAX_CONNECTIONS + 44)
    finally:
        await client.aclose()


async def test_a_bad_redis_url_stops_start_up_with_one_line(redis_url: str) -> None:
    with pytest.raises(StartupError, match="SYNCSVC_REDIS_URL: unknown Redis URL scheme"):
        async with open_services(make_settings("memcached://127.0.0.1:1/")):
            pass


async def test_kms_keys_stored_under_their_old_names_move_to_the_kms_slot_at_start_up(
    redis_url: str, redis_client: RedisClient
) -> None:
    if connection.parse(redis_url).kind == "cluster":
        pytest.skip("the old names were only ever written on one Redis; a cluster cannot hold them across slots")
    await redis_client.zadd(rediskeys.LEGACY_KMS_KEYS, {"k-1": 0, "k-2": 0})
    await redis_client.hset(rediskeys.legacy_kms_key("k-1"), mapping={"meta": "{}", "v1": "one"})
    await redis_client.hset(rediskeys.legacy_kms_key("k-2"), mapping={"meta": "{}", "v1": "two"})
    await redis_client.hset(rediskeys.LEGACY_KMS_ALIASES, "alias/mine", "k-2")
    async with open_services(make_settings(redis_url)):
        pass
    assert await redis_client.hget(rediskeys.kms_key("k-2"), "v1") == b"two"
    assert await redis_client.hget(rediskeys.KMS_ALIASES, "alias/mine") == b"k-2"
    assert sorted(await redis_client.zrange(rediskeys.KMS_KEYS, 0, -1)) == [b"k-1", b"k-2"]
    assert not await redis_client.exists(
        rediskeys.LEGACY_KMS_KEYS, rediskeys.LEGACY_KMS_ALIASES, rediskeys.legacy_kms_key("k-1")
    )


@pytest.fixture
async def cluster_client(redis_cluster_url: str) -> AsyncIterator[RedisClient]:
    async with flushed_client(redis_cluster_url) as client:
        yield client


@contextlib.asynccontextmanager
async def served_raw(url: str, **overrides: Any) -> AsyncIterator[Raw]:
    """A raw client of syncsvc on ``url`` (``make_settings`` with ``overrides``), served while the block runs."""
    async with serving(make_settings(url, **overrides)) as endpoint, aiohttp.ClientSession() as session:
        yield Raw(endpoint, session)


async def write_one(raw: Raw, pool_id: str, identity: str, value: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    path = f"/identitypools/{pool_id}/identities/us-east-1:{identity}/datasets/d"
    _, listed, _ = await raw.send("GET", path + "/records")
    patch = {"Op": "replace", "Key": "k", "Value": value, "SyncCount": 0}
    return await raw.send("POST", path, body={"SyncSessionToken": listed["SyncSessionToken"], "RecordPatches": [patch]})


async def test_with_one_replica_required_every_write_is_acknowledged_once_its_replica_has_it(
    redis_cluster_url: str, cluster_client: RedisClient
) -> None:
    assert isinstance(cluster_client, RedisCluster)
    async with served_raw(redis_cluster_url, redis_replica_acks=1) as raw:
        pool_id = (await raw.identity("CreateIdentityPool", NEW_POOL))[1]["IdentityPoolId"]
        identities = [str(uuid.uuid4()) for _ in range(12)]  # across every master
        for identity in identities:
            status, body, _ = await write_one(raw, pool_id, identity, "kept")
            assert status == 200, body
        held = dict.fromkeys(identities, 0)
        for host, port in connection.parse(redis_cluster_url).nodes:
            node = Redis(host=host, port=port, single_connection_client=True)
            if (await node.info("replication"))["role"] == "slave":
                await node.execute_command("READONLY")  # type: ignore[no-untyped-call] # this connection may read the replica's own slots
                for identity in identities:
                    keyspace = rediskeys.IdentityKeyspace.of(pool_id, f"us-east-1:{identity}", 64)
                    with contextlib.suppress(ResponseError):  # MOVED: another master's slot
                        held[identity] += await node.hlen(keyspace.records("d"))
            await node.aclose()
        assert held == dict.fromkeys(identities, 1), "every acknowledged write is on its master's replica"


async def test_a_write_fewer_replicas_confirmed_than_required_is_answered_503_not_acknowledged(
    redis_cluster_url: str, cluster_client: RedisClient
) -> None:
    async with served_raw(redis_cluster_url, redis_replica_acks=2, redis_replica_ack_timeout_ms=50) as raw:
        pool_id = await raw.identity("CreateIdentityPool", NEW_POOL)
        assert pool_id[0] == 503, "a pool is a write too: one replica each cannot confirm two"
        assert pool_id[1]["__type"] == "InternalErrorException"
        assert "1 of the 2 replicas required confirmed it within 50 ms" in pool_id[1]["message"]
        assert pool_id[2]["Retry-After"] == "1"
