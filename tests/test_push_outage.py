"""Push sync through a Redis restart: the hub resubscribes and catches its sockets up, so a change made while it was
reconnecting still reaches the device."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from tests.conftest import Boto, make_settings, serving
from tests.test_outage import RedisProcess, own_redis  # noqa: F401 - own_redis: fixture
from tests.test_push import PUSH_SYNC, Phone, nothing_waiting, notification, receive


async def test_a_change_made_across_a_redis_restart_reaches_the_device(
    own_redis: RedisProcess,  # noqa: F811 - the fixture imported above
) -> None:
    async def restart() -> None:
        own_redis.kill()
        own_redis.start()

    await assert_a_change_across_reaches_the_device(own_redis.url, restart)


async def assert_a_change_across_reaches_the_device(redis_url: str, fault: Callable[[], Awaitable[None]]) -> None:
    """A server on ``redis_url``, a phone listening on its socket and a tablet of the same identity: a change the
    tablet makes after ``fault`` (once the server reaches Redis again) is pushed to the phone, as one made before."""
    async with serving(make_settings(redis_url)) as endpoint, aiohttp.ClientSession() as session:
        boto = Boto(endpoint)
        pool = await boto.new_pool()
        await boto.call(boto.sync, "set_identity_pool_configuration", IdentityPoolId=pool, PushSync=PUSH_SYNC)
        phone = await Phone.guest(session, endpoint, pool)
        tablet = phone.sibling()
        for device, name in ((phone, "phone"), (tablet, "tablet")):
            await device.register(name)
            await device.subscribe()
        async with await phone.connect() as ws:
            assert await nothing_waiting(ws)
            first = await tablet.write("before")
            assert await receive(ws) == notification(phone, first)
            await fault()
            later = await written_once_redis_answers(tablet, "during")
            assert await receive(ws, timeout=15) == notification(phone, later)


async def written_once_redis_answers(phone: Phone, value: str) -> int:
    """Writes as soon as the server reaches the restarted Redis (its pooled connections died with the old one)."""
    async with asyncio.timeout(15):
        while True:
            try:
                return await phone.write(value)
            except AssertionError:  # a 503 while the server reconnects
                await asyncio.sleep(0.05)
