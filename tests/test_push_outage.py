"""Push sync through a Redis restart: the hub resubscribes and catches its sockets up, so a change made while it was
reconnecting still reaches the device."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.test_utils import TestServer

from syncsvc.api.app import create_app
from tests.conftest import Boto, free_port, make_settings
from tests.test_outage import RedisProcess, own_redis  # noqa: F401 - own_redis: fixture
from tests.test_push import PUSH_SYNC, Phone, nothing_waiting, notification, receive


async def test_a_change_made_across_a_redis_restart_reaches_the_device(
    own_redis: RedisProcess,  # noqa: F811 - the fixture imported above
) -> None:
    server = TestServer(create_app(make_settings(own_redis.url)), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        endpoint = str(server.make_url("")).rstrip("/")
        boto = Boto(endpoint)
        pool = await boto.new_pool()
        await boto.call(boto.sync, "set_identity_pool_configuration", IdentityPoolId=pool, PushSync=PUSH_SYNC)
        async with aiohttp.ClientSession() as session:
            phone = await Phone.guest(session, endpoint, pool)
            tablet = phone.sibling()
            for device, name in ((phone, "phone"), (tablet, "tablet")):
                await device.register(name)
                await device.subscribe()
            async with await phone.connect() as ws:
                assert await nothing_waiting(ws)
                first = await tablet.write("before")
                assert await receive(ws) == notification(phone, first)
                own_redis.kill()
                own_redis.start()
                later = await written_once_redis_answers(tablet, "during")
                assert await receive(ws, timeout=15) == notification(phone, later)
    finally:
        await server.close()


async def written_once_redis_answers(phone: Phone, value: str) -> int:
    """Writes as soon as the server reaches the restarted Redis (its pooled connections died with the old one)."""
    async with asyncio.timeout(15):
        while True:
            try:
                return await phone.write(value)
            except AssertionError:  # a 503 while the server reconnects
                await asyncio.sleep(0.05)
