"""Push sync through a Redis restart: the hub resubscribes and catches its sockets up, so a change made while it was
reconnecting still reaches the device."""

from __future__ import annotations

from tests.phones import assert_a_change_across_reaches_the_device
from tests.redis_processes import RedisProcess


async def test_a_change_made_across_a_redis_restart_reaches_the_device(own_redis: RedisProcess) -> None:
    async def restart() -> None:
        own_redis.kill()
        own_redis.start()

    await assert_a_change_across_reaches_the_device(own_redis.url, restart)
