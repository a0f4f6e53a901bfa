"""RedisRates: per-second call counters for rate limits (GetId and token calls per pool, writes per identity and per
pool).

A limit is a fixed one-second window, the way Cognito states its quotas ("N calls per second"): the first call of a
wall-clock second creates the window's counter, which expires two seconds later, so a window holds one key per
limited scope. Fixed windows let a burst of up to twice the limit straddle a second boundary; that is the price of one
INCR per limit instead of a sorted set per scope, and it still bounds every scope's sustained rate.

Every call counts, including those refused: a client that keeps hammering stays refused until it slows down. All the
counters of one call are bumped in one pipeline (one round trip per node in a cluster, where each scope's key has its
own slot). Counting is bookkeeping: a Redis too full to keep a counter lets the call through, and whatever the call
itself writes is refused there as it would be without a limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncsvc import rediskeys
from syncsvc.errors import StoreOutOfMemoryError
from syncsvc.store.backend import backend
from syncsvc.store.connection import RedisClient

_WINDOW_TTL_SECONDS = 2  # the window's second, plus one for clocks of different instances that disagree a little


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``per_second`` calls of ``operation`` per second for ``scope`` (a pool id or an identity id)."""

    scope: str
    operation: str
    per_second: int


class RedisRates:
    def __init__(self, client: RedisClient) -> None:
        self.client = client

    async def exceeded(self, rates: Sequence[Rate], *, now_ms: int) -> Rate | None:
        """Counts one call against each of ``rates`` (those with ``per_second`` 0 are off and not counted); the first
        whose window now holds more than its limit, or None when the call is within all of them."""
        counted = [rate for rate in rates if rate.per_second]
        if not counted:
            return None
        second = now_ms // 1000
        try:
            async with backend():
                pipe = self.client.pipeline(transaction=False)
                for rate in counted:
                    key = rediskeys.rate(rate.scope, rate.operation, second)
                    pipe.incr(key)
                    pipe.expire(key, _WINDOW_TTL_SECONDS)
                replies = await pipe.execute()
        except StoreOutOfMemoryError:
            return None
        for rate, count in zip(counted, replies[::2], strict=True):
            if int(count) > rate.per_second:
                return rate
        return None
