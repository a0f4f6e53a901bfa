"""Push sync across instances: two `syncsvc serve` processes on one Redis. A change written through one wakes a
device whose socket is on the other, and a device's newer socket on one closes its older socket on the other."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import WSMsgType
from redis.asyncio import Redis

from tests.conftest import Boto, free_port
from tests.test_push import PUSH_SYNC, Phone, nothing_waiting, notification, receive
from tests.test_serve import SYNCSVC, environment, wait_until_serving


@pytest.fixture
def instances(redis_url: str, redis_client: Redis) -> Iterator[tuple[str, str]]:
    """Two `syncsvc serve` processes on free ports, sharing the (flushed) session Redis and one public URL (as
    behind a load balancer: the tokens one issues name the issuer the other expects)."""
    processes, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            process = subprocess.Popen(
                [SYNCSVC, "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=environment(redis_url, SYNCSVC_PUBLIC_URL="http://syncsvc.test"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            processes.append(process)
            urls.append(f"http://127.0.0.1:{port}")
            wait_until_serving(urls[-1], process)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)


@pytest.fixture
async def devices(instances: tuple[str, str]) -> AsyncIterator[tuple[Phone, Phone]]:
    """Two subscribed devices of one identity: the first talks to instance one, the second to instance two."""
    one, two = instances
    boto = Boto(one)
    pool = await boto.new_pool()
    await boto.call(boto.sync, "set_identity_pool_configuration", IdentityPoolId=pool, PushSync=PUSH_SYNC)
    async with aiohttp.ClientSession() as session:
        phone = await Phone.guest(session, one, pool)
        tablet = Phone(session, two, pool, phone.identity, phone.token)
        await phone.register("phone-token")
        await tablet.register("tablet-token")
        await phone.subscribe()
        await tablet.subscribe()
        yield phone, tablet


async def test_a_change_through_one_instance_wakes_a_device_on_the_other(devices: tuple[Phone, Phone]) -> None:
    phone, tablet = devices
    async with await phone.connect() as phone_ws, await tablet.connect() as tablet_ws:
        assert await nothing_waiting(phone_ws)
        assert await nothing_waiting(tablet_ws)
        counts = [await tablet.write(f"v{n}") for n in range(10)]
        assert [await receive(phone_ws) for _ in counts] == [notification(phone, count) for count in counts]
        sync_count = await phone.write("from the phone")
        assert await receive(tablet_ws) == notification(tablet, sync_count)
        assert await nothing_waiting(phone_ws)


async def test_a_newer_socket_on_one_instance_closes_the_older_on_the_other(devices: tuple[Phone, Phone]) -> None:
    phone, tablet = devices
    elsewhere = Phone(phone.session, tablet.endpoint, phone.pool, phone.identity, phone.token)
    elsewhere.device_id = phone.device_id
    async with await phone.connect() as older, await elsewhere.connect() as newer:
        closed = await older.receive(timeout=5)
        assert (closed.type, closed.data) == (WSMsgType.CLOSE, 4009)
        assert await nothing_waiting(newer)
