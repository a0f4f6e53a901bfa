"""A Sentinel-managed primary killed with SIGKILL under load (issue 15, fault test 3): the sentinels promote a replica,
syncsvc follows it without a restart, and nothing it acknowledged is lost from the store or doubled on the stream.

Each test starts a deployment of its own (tests/redis_sentinel.py: a primary, two replicas, three sentinels), since it
kills the primary. The servers ask for at least one replica's confirmation of every write before acknowledging it
(``redis_replica_acks=1``), and for every replica's that the primary lists as online: replication is asynchronous, so
without that a write the primary acknowledged just before its death may never reach the replica that takes over
(Sentinel picks it by a replication offset it polled earlier, not by which replica confirmed). A floor of one is what
survives the loss of the primary: two would fail every write until the killed node came back. (A primary replaced
while still alive is another case, in which acknowledged writes are lost: see syncsvc/store/connection.py.)
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Raw, make_settings, serving
from tests.phones import assert_a_change_across_reaches_the_device
from tests.redis_processes import RedisNode, started
from tests.redis_sentinel import RedisSentinelProcesses
from tests.streams import SHARDS, serving_with_relay, streamed_pool
from tests.write_load import WriteLoad

pytestmark = pytest.mark.cluster

WRITERS = 8
#: Seconds of load before the kill, and in all (the failover takes 2 to 3 s of it).
LOAD_BEFORE_KILL = 2.0
LOAD_SECONDS = 10.0
#: Writes must be acknowledged again within this many seconds of the kill.
RESUME_WITHIN = 15.0


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[RedisSentinelProcesses]:
    with started(RedisSentinelProcesses(tmp_path / "sentinel")) as processes:
        yield processes


@pytest.fixture
async def served(deployment: RedisSentinelProcesses, kafka_bootstrap: str) -> AsyncIterator[str]:
    """syncsvc with its relay on the deployment, writes confirmed by one replica."""
    async with serving_with_relay(deployment.url, kafka_bootstrap, shards=SHARDS, redis_replica_acks=1) as endpoint:
        yield endpoint


@pytest.mark.timeout(80)
async def test_a_killed_primary_is_replaced_and_no_acknowledged_write_is_lost_or_doubled(
    served: str, deployment: RedisSentinelProcesses, kafka_bootstrap: str
) -> None:
    topic, pool_id = await streamed_pool(served, kafka_bootstrap)
    load = WriteLoad([served], pool_id, WRITERS, settle=20)
    async with asyncio.TaskGroup() as group:  # a failure below cancels the load
        group.create_task(load.run(LOAD_SECONDS))
        await asyncio.sleep(LOAD_BEFORE_KILL)  # a steady load, not an event: how long it runs before the kill
        old = deployment.primary()
        await asyncio.to_thread(old.kill)
        killed_at = time.monotonic()
        promotion = group.create_task(promoted(deployment, old))
        # The writes answered so far, and at most one in flight per writer (whose answer may arrive after the kill):
        # only an acknowledgement past those proves that writes go through again.
        before = len(load.acknowledged) + WRITERS
        resumed_at = await load.wait_for(
            lambda: len(load.acknowledged) > before, RESUME_WITHIN, "no write was acknowledged after the kill"
        )
        new, promoted_at = await promotion

    missing = await load.verify_stored(served)
    stream = await load.verify_topic(kafka_bootstrap, topic, timeout=30)
    print(  # the figures for a person (pytest -s)
        f"\nprimary {old.address} killed; {new.address} promoted within {promoted_at - killed_at:.2f} s; first "
        f"write acknowledged {resumed_at - killed_at:.2f} s after the kill; {load.figures()}"
    )
    assert resumed_at - killed_at < RESUME_WITHIN
    assert (load.unresolved, load.refused, missing) == ([], [], [])
    assert (stream.missing, stream.duplicates, stream.out_of_order, stream.unexpected) == ([], 0, [], [])


async def promoted(deployment: RedisSentinelProcesses, old: RedisNode) -> tuple[RedisNode, float]:
    """The node the sentinels promote in place of ``old``, and when it answered as the primary (within 0.1 s)."""
    new = await asyncio.to_thread(deployment.wait_for_new_primary, old)
    return new, time.monotonic()


@pytest.mark.timeout(40)
async def test_a_change_made_across_a_failover_reaches_the_device(deployment: RedisSentinelProcesses) -> None:
    async def kill_the_primary() -> None:
        await asyncio.to_thread(deployment.primary().kill)

    await assert_a_change_across_reaches_the_device(deployment.url, kill_the_primary)


@pytest.mark.timeout(40)
async def test_what_is_answered_waits_for_every_online_replica_not_only_the_required_number(
    deployment: RedisSentinelProcesses,
) -> None:
    """One replica required, two online: a write one of them has not confirmed is not acknowledged, since Sentinel
    might promote exactly that one; nor is a page of records showing it, which a device would take as stored."""
    settings = make_settings(deployment.url, redis_replica_acks=1, redis_replica_ack_timeout_ms=200)
    async with serving(settings) as endpoint, aiohttp.ClientSession() as session:
        raw = Raw(endpoint, session)
        new_pool = {"IdentityPoolName": "all", "AllowUnauthenticatedIdentities": True}
        status, created, _ = await raw.identity("CreateIdentityPool", new_pool)
        assert status == 200, created  # both replicas confirmed it (and the primary listed both as online)
        path = f"/identitypools/{created['IdentityPoolId']}/identities/us-east-1:{uuid.uuid4()}/datasets/d"
        _, empty, _ = await raw.send("GET", path + "/records")
        assert (await write(raw, path, "first", empty))[0] == 200  # the identity, its data key and the dataset exist
        _, before, _ = await raw.send("GET", path + "/records")
        lagging = deployment.nodes[2]  # a replica: the first node is the primary at start
        assert lagging.process is not None
        lagging.process.send_signal(signal.SIGSTOP)  # still connected, so still online to the primary; confirms nothing
        try:
            status, refused, headers = await write(raw, path, "unconfirmed", before)
            listed = await raw.send("GET", path + "/records")
        finally:
            lagging.process.send_signal(signal.SIGCONT)
        assert status == 503, refused
        assert refused["__type"] == "InternalErrorException"
        assert "1 of the 2 replicas required confirmed it within 200 ms" in refused["message"]
        assert headers["Retry-After"] == "1"
        assert listed[0] == 503, listed
        assert listed[1]["message"].startswith("The records read are on the Redis primary but 1 of the 2 replicas")
        _, shown, _ = await raw.send("GET", path + "/records")  # both replicas have it now: it may be shown
        assert [record["Value"] for record in shown["Records"]] == ["unconfirmed"]
        status, stored, _ = await write(raw, path, "confirmed", shown)
        assert status == 200, stored


async def write(raw: Raw, path: str, value: str, listed: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Replaces record ``k`` of the dataset at ``path`` with ``value``, in the sync session of ``listed`` (the
    dataset's ListRecords answer)."""
    counts = {record["Key"]: record["SyncCount"] for record in listed["Records"]}
    patch = {"Op": "replace", "Key": "k", "Value": value, "SyncCount": counts.get("k", 0)}
    return await raw.send("POST", path, body={"SyncSessionToken": listed["SyncSessionToken"], "RecordPatches": [patch]})
