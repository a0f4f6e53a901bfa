"""What the tests of identity tokens build their token issuers from: the issuer settings they share, a clock they
move by hand (:class:`~syncsvc.clock.ManualClock`) and a key service like the server's (the test Redis, the suite's
root key).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from syncsvc.clock import SYSTEM, Clock, ManualClock
from syncsvc.kms.keyservice import KeyService
from syncsvc.kms.root import RootKey
from syncsvc.store.kms import RedisKeyStore
from tests.conftest import ROOT_KEY_FILE

ISSUER_URL = "https://sync.example.test"
ROTATION = 3600
MAX_LIFETIME = 86400


def issuer_clock() -> ManualClock:
    """A clock that moves only when told, started near real time (jwcrypto checks ``exp`` on the real one), ten
    seconds into an epoch."""
    epoch_ms = ROTATION * 1000
    return ManualClock(SYSTEM.now_ms() // epoch_ms * epoch_ms + 10_000)


def seconds(clock: Clock) -> float:
    """The clock's time in epoch seconds (the unit of JWT times)."""
    return clock.now_ms() / 1000


def epoch(clock: Clock) -> int:
    """The rotation epoch the clock is in (its signing key is ``k<epoch>``)."""
    return clock.now_ms() // (ROTATION * 1000)


def key_service(redis_client: aioredis.Redis) -> KeyService:
    """A key service like the server's (same Redis, same root key)."""
    return KeyService(RedisKeyStore(redis_client), RootKey.from_file(ROOT_KEY_FILE), region="us-east-1", quota=1000)
