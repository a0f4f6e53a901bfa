"""A Redis Cluster master killed with SIGKILL under load (issue 15, fault test 2): its replica is promoted, writes
resume, and nothing syncsvc acknowledged is lost from the store or doubled on the stream.

The test starts a cluster of its own (tests/redis_cluster.py: three masters, two replicas each), since it kills one.
The server asks one replica to confirm every write (``redis_replica_acks=1``): replication is asynchronous, so without
that a write the killed master acknowledged just before its death may never reach the replica that takes over. Two
replicas each, because the promoted replica must itself have one to confirm writes: with a single replica per master,
the killed master's slots would refuse writes (503) until it came back as a replica. The server runs the default 64
shards, so the writers' identities land on every master.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from syncsvc import rediskeys
from tests.redis_cluster import NODE_TIMEOUT_MS, RedisClusterProcesses
from tests.redis_processes import RedisNode, started
from tests.streams import serving_with_relay, streamed_pool
from tests.write_load import WriteLoad

pytestmark = pytest.mark.cluster

WRITERS = 9
#: Seconds of load before the kill, and in all (the failover takes the node timeout and an election of it).
LOAD_BEFORE_KILL = 2.0
LOAD_SECONDS = 12.0
#: Writes to the killed master's slots must be acknowledged again within this many seconds of the kill.
RESUME_WITHIN = 15.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisClusterProcesses]:
    with started(RedisClusterProcesses(tmp_path / "cluster", replicas=2)) as processes:
        yield processes


@pytest.fixture
async def served(cluster: RedisClusterProcesses, kafka_bootstrap: str) -> AsyncIterator[str]:
    """syncsvc with its relay on the cluster, writes confirmed by one replica."""
    async with serving_with_relay(cluster.url, kafka_bootstrap, redis_replica_acks=1) as endpoint:
        yield endpoint


def master_of(cluster: RedisClusterProcesses, key: str) -> RedisNode:
    """The master serving ``key``'s slot now."""
    slot = cluster.nodes[0].client().cluster("keyslot", key)
    for node in cluster.current_masters():
        for start, end in node_slots(node):
            if start <= slot <= end:
                return node
    raise AssertionError(f"no live master serves slot {slot}")


def node_slots(node: RedisNode) -> list[tuple[int, int]]:
    described: bytes = node.client().execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
    for line in described.decode().splitlines():
        parts = line.split()
        if "myself" in parts[2]:
            ranges = [part.split("-") for part in parts[8:] if not part.startswith("[")]
            return [(int(r[0]), int(r[-1])) for r in ranges]
    return []


@pytest.mark.timeout(90)
async def test_a_killed_master_is_replaced_and_no_acknowledged_write_is_lost_or_doubled(
    served: str, cluster: RedisClusterProcesses, kafka_bootstrap: str
) -> None:
    topic, pool_id = await streamed_pool(served, kafka_bootstrap)
    victim = master_of(cluster, rediskeys.outbox(0))
    for _ in range(50):  # writers' identities are random: with 9 over 3 masters, none on the victim 3% of the time
        load = WriteLoad([served], pool_id, WRITERS, settle=20)
        on_victim = [
            index
            for index, writer in enumerate(load.writers)
            if master_of(cluster, rediskeys.IdentityKeyspace.of(pool_id, writer.path.split("/")[4], 64).usage) is victim
        ]
        if on_victim:
            break
    assert on_victim, "some writers' identities live on the master the test kills"
    async with asyncio.TaskGroup() as group:  # a failure below cancels the load
        group.create_task(load.run(LOAD_SECONDS))
        await asyncio.sleep(LOAD_BEFORE_KILL)  # a steady load, not an event: how long it runs before the kill
        await asyncio.to_thread(victim.kill)
        killed_at = time.monotonic()
        resumed_at = await load.wait_for(
            lambda: any(load.committed_since(killed_at)[index] for index in on_victim),
            RESUME_WITHIN,
            "no write to the killed master's slots was acknowledged",
        )
        await asyncio.to_thread(cluster.wait_until_healthy, 1)  # the promoted replica, with the other one
        promoted_after = time.monotonic() - killed_at

    missing = await load.verify_stored(served)
    check = await load.verify_topic(kafka_bootstrap, topic, timeout=60)
    figures = {
        **load.figures(),
        "writers_on_killed_master": len(on_victim),
        "kill_to_promoted_s": round(promoted_after, 3),
        "kill_to_first_write_on_its_slots_s": round(resumed_at - killed_at, 3),
        "node_timeout_s": NODE_TIMEOUT_MS / 1000,
    }
    print(f"\nRedis Cluster master killed: {figures}")
    assert (load.unresolved, load.refused, missing) == ([], [], [])
    assert (check.missing, check.duplicates, check.out_of_order, check.unexpected) == ([], 0, [], [])
    assert len(load.committed) > 50, figures
