"""Push sync across instances: two `syncsvc serve` processes on one Redis. A change written through one wakes a
device whose socket is on the other, and a device's newer socket on one closes its older socket on the other."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType
from redis.asyncio import Redis

from tests.conftest import Boto
from tests.phones import Phone, nothing_waiting, notification, push_pool, receive, subscribed_pair
from tests.servers import syncsvc_process


@pytest.fixture
def instances(redis_url: str, redis_client: Redis, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two `syncsvc serve` processes on free ports, sharing the (flushed) session Redis and one public URL (as
    behind a load balancer: the tokens one issues name the issuer the other expects)."""
    with contextlib.ExitStack() as stack:
        one, two = (
            stack.enter_context(
                syncsvc_process(redis_url, tmp_path / name, {"SYNCSVC_PUBLIC_URL": "http://syncsvc.test"})
            )
            for name in ("one.log", "two.log")
        )
        yield one.url, two.url


@pytest.fixture
async def devices(instances: tuple[str, str]) -> AsyncIterator[tuple[Phone, Phone]]:
    """Two subscribed devices of one identity: the first talks to instance one, the second to instance two."""
    one, two = instances
    pool = await push_pool(Boto(one))
    async with aiohttp.ClientSession() as session:
        yield await subscribed_pair(session, pool, one, two)


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
