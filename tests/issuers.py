"""What the tests of identity tokens build their token issuers from: the issuer settings they share, a frozen clock
they move by hand, and a key service like the server's (the test Redis, the suite's root key).
"""

from __future__ import annotations

import math
import time

import redis.asyncio as aioredis

from syncsvc.kms.material import RootKey
from syncsvc.kms.service import KeyService
from syncsvc.store.kms import RedisKeyStore
from tests.conftest import ROOT_KEY_FILE

ISSUER_URL = "https://sync.example.test"
ROTATION = 3600
MAX_LIFETIME = 86400


class Clock:
    """A frozen clock, started near real time (jwcrypto checks ``exp`` on the real one) at an epoch's start."""

    def __init__(self) -> None:
        self.now = math.floor(time.time() / ROTATION) * ROTATION + 10.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def epoch(self) -> int:
        return math.floor(self.now / ROTATION)


def key_service(redis_client: aioredis.Redis) -> KeyService:
    """A key service like the server's (same Redis, same root key)."""
    return KeyService(RedisKeyStore(redis_client), RootKey.from_file(ROOT_KEY_FILE), region="us-east-1", quota=1000)
