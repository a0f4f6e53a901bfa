"""Fault test 5 (issue 15): three `syncsvc serve` instances and two standalone relays, one process killed with SIGKILL
in the middle of a load.

The instances (their relays off) share the suite's Redis and Kafka and one public URL, as stateless instances behind
a load balancer do; two `syncsvc relay` processes share the relay lanes, the first holding them all and the second
waiting for their leases. The load's writers fail over between instances as devices do (tests/write_load.py).

* An instance killed: no write its clients were told of, or found committed when they retried elsewhere, is lost;
  every change is on the topic exactly once, in order; a device whose socket was on it reconnects to another
  instance and catches up on what another device wrote meanwhile.
* The relay holding the lanes killed: once its leases run out the other relay takes them over, and the topic still
  carries every change exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from redis.asyncio import Redis

from syncsvc import rediskeys
from tests.conftest import Boto, free_port
from tests.phones import Phone, notification, push_pool, receive, resume, subscribed_pair
from tests.servers import SYNCSVC, environment
from tests.streams import SHARDS, create_topic, published_somewhere, relay_process, streaming_pool
from tests.write_load import WriteLoad, assert_exact

pytestmark = pytest.mark.cluster

INSTANCES = 3
LANES = 2
WRITERS = 6
#: Seconds the load writes; the fault comes once the load has committed KILL_AFTER writes (a second or two in).
LOAD_SECONDS = 8.0
KILL_AFTER = WRITERS * 25
#: One issuer for every instance: a token one issues is accepted by the others.
PUBLIC_URL = "http://syncsvc.test"
CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


@dataclass
class Instance:
    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, sockets cut by the kernel."""
        self.process.kill()
        self.process.wait(timeout=10)


@dataclass
class Deployment:
    instances: list[Instance] = field(default_factory=list)
    #: `syncsvc relay` processes (asyncio.subprocess.Process): the first holds every lane, the second stands by.
    relays: list[Any] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [instance.url for instance in self.instances]

    async def stop(self) -> None:
        for process in [instance.process for instance in self.instances] + self.relays:
            if process.returncode is None:
                process.terminate()
        async with asyncio.timeout(30):
            for instance in self.instances:
                await asyncio.to_thread(instance.process.wait)
            for relay in self.relays:
                await relay.wait()


@pytest.fixture
def run() -> str:
    """This test's names in Kafka: stream topic, relay checkpoint topic and transactional ids."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
async def deployment(
    redis_url: str,
    warm_kafka: str,
    redis_client: Redis,
    run: str,
    tmp_path: Path,
) -> AsyncIterator[Deployment]:
    """INSTANCES `syncsvc serve` processes (relays off) and two `syncsvc relay` processes on the (flushed) session
    Redis and Kafka, started together; the second relay only once the first holds every lane's lease, so that it
    waits to take over a lane whose lease runs out. Each process logs to a file in the test's tmp_path."""
    started = Deployment()
    try:
        for index in range(INSTANCES):
            started.instances.append(serve(redis_url, warm_kafka, tmp_path / f"serve-{index}.log"))
        for index in range(2):
            with (tmp_path / f"relay-{index}.log").open("wb") as log:  # the child keeps its own descriptor
                started.relays.append(
                    await relay_process(
                        redis_url, warm_kafka, run=run, stderr=log.fileno(), SYNCSVC_RELAY_LANES=str(LANES)
                    )
                )
            async with asyncio.timeout(30):
                while len(await lease_owners(redis_client)) < LANES:
                    await asyncio.sleep(0.05)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            for instance in started.instances:
                await serving(instance, session)
        yield started
    finally:
        await started.stop()


def serve(redis_url: str, kafka_bootstrap: str, log_file: Path) -> Instance:
    """A `syncsvc serve` process on a free port, its relay off (not waited for)."""
    env = environment(
        redis_url,
        SYNCSVC_PUBLIC_URL=PUBLIC_URL,
        SYNCSVC_KAFKA_BOOTSTRAP=kafka_bootstrap,
        SYNCSVC_SHARDS=str(SHARDS),
        SYNCSVC_RELAY_LANES=str(LANES),
        SYNCSVC_POOL_CACHE_SECONDS="0",  # the stream pool, configured through one instance, is streamed by all at once
    )
    port = free_port()
    with log_file.open("wb") as log:  # the child keeps its own descriptor
        command = [SYNCSVC, "serve", "--host", "127.0.0.1", "--port", str(port)]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    return Instance(f"http://127.0.0.1:{port}", process)


async def serving(instance: Instance, session: aiohttp.ClientSession) -> None:
    """Returns once ``instance`` answers /readyz: within 60 s (several processes start at once on a small machine)."""
    async with asyncio.timeout(60):
        while True:
            assert instance.process.poll() is None, f"syncsvc serve exited with {instance.process.returncode}"
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(instance.url + "/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


async def lease_owners(redis_client: Redis) -> dict[int, bytes | str]:
    """Which relay holds each lane's lease (lanes without a holder left out)."""
    owners = {lane: await redis_client.get(rediskeys.relay_lane_lease(lane)) for lane in range(LANES)}
    return {lane: owner for lane, owner in owners.items() if owner is not None}


def taken_over(owners: dict[int, bytes | str], before: dict[int, bytes | str]) -> bool:
    """Every lane held, and by none of the relays that held lanes ``before``."""
    return len(owners) == LANES and not set(owners.values()) & set(before.values())


async def reconnect(phone: Phone, urls: list[str], lost: str) -> aiohttp.ClientWebSocketResponse:
    """The device's socket again, on the first instance after ``lost`` (round robin) that takes it."""
    start = urls.index(lost) + 1
    async with asyncio.timeout(20):
        for url in urls[start:] + urls[:start]:
            phone.endpoint = url
            try:
                return await phone.connect()
            except aiohttp.ClientError:
                continue
    raise AssertionError("no instance took the device's socket")


@pytest.mark.timeout(120)
async def test_an_instance_killed_mid_load_loses_no_write_and_its_device_catches_up_on_another(
    deployment: Deployment,
    warm_kafka: str,
    run: str,
) -> None:
    urls, victim = deployment.urls, deployment.instances[0]
    boto, topic = Boto(urls[1]), f"changes-{run}"
    await create_topic(warm_kafka, topic)
    load = WriteLoad(urls, await streaming_pool(boto, topic), WRITERS)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        phone, tablet = await subscribed_pair(session, await push_pool(boto), victim.url, urls[2])
        ws = await phone.connect()  # on the victim (closed with the session, if not by the kill)
        held = await tablet.write("before")
        assert await receive(ws) == notification(phone, held)
        async with load.running(LOAD_SECONDS):
            started = time.monotonic()
            await load.wait_committed(KILL_AFTER)
            killed_at = time.monotonic()
            victim.kill()
            assert (await ws.receive(timeout=10)).type in CLOSED
            meanwhile = await tablet.write("meanwhile")
            async with await reconnect(phone, urls, victim.url) as ws:
                await resume(ws, settings=held)
                resumed = {"action": "resumed", "syncCounts": {"settings": meanwhile}}
                assert [await receive(ws), await receive(ws)] == [notification(phone, meanwhile), resumed]
                after = await tablet.write("after")
                assert await receive(ws) == notification(phone, after)
    missing = await load.verify_stored(urls[1])
    check = await load.verify_topic(warm_kafka, topic, timeout=60)
    print(f"instance killed {killed_at - started:.1f} s into the load; the device resumed on {phone.endpoint}")
    assert_exact(load, check)
    assert (missing, load.unresolved, load.refused) == ([], [], [])
    assert all(load.committed_since(killed_at)), "a writer stopped at the kill"
    assert any(failure.startswith("UpdateRecords") for failure in load.failures), "no write was cut by the kill"


@pytest.mark.timeout(120)
async def test_a_relay_killed_mid_load_hands_its_lanes_to_the_other_and_the_topic_stays_exact(
    deployment: Deployment,
    warm_kafka: str,
    redis_client: Redis,
    run: str,
) -> None:
    urls, holder = deployment.urls, deployment.relays[0]
    topic = f"changes-{run}"
    await create_topic(warm_kafka, topic)
    load = WriteLoad(urls, await streaming_pool(Boto(urls[0]), topic), WRITERS)
    held_by = await lease_owners(redis_client)
    async with load.running(LOAD_SECONDS):
        await load.wait_committed(KILL_AFTER)
        async with asyncio.timeout(30):  # the holder has published part of the load: kill it in the middle
            while not await published_somewhere(redis_client):
                await asyncio.sleep(0.02)
        holder.kill()
        await holder.wait()
        killed_at = time.monotonic()
        async with asyncio.timeout(60):  # its leases run out (LEASE_MS), and the other relay takes every lane
            while not taken_over(await lease_owners(redis_client), held_by):
                await asyncio.sleep(0.1)
        takeover_seconds = time.monotonic() - killed_at
    missing = await load.verify_stored(urls[0])
    check = await load.verify_topic(warm_kafka, topic, timeout=60)
    print(f"lanes taken over {takeover_seconds:.1f} s after the kill")
    assert_exact(load, check)
    assert (missing, load.failures, load.applied, load.unresolved) == ([], {}, [], [])
