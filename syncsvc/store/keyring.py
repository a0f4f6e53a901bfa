"""RedisKeyRing: the service's token-signing keys, in Redis so that every instance shares them.

The keys live in one hash (``keys.SIGNING_KEYS``): kid -> JSON ``{kid, alg, private_pem, created}``. A key is
created by whichever instance first needs it, with HSETNX: if two instances race, one write wins and the other reads
the winner's, so all instances sign with the same key without any other coordination. Which kid is needed when (the
rotation schedule) is the caller's business (``syncsvc.identity.issuer``).

Security note: the private keys sit in Redis as plain PEM, so whoever can read that hash can mint identity tokens.
A later issue wraps them with a KMS key (envelope encryption); until then, protect Redis accordingly.

Driver errors never leave this module raw: they become :class:`~syncsvc.errors.BackendUnavailableError`
(``syncsvc.store.backend``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import orjson
import redis.asyncio as aioredis

from syncsvc import keys
from syncsvc.errors import BackendUnavailableError
from syncsvc.store.backend import backend

log = logging.getLogger("syncsvc.keyring")


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One signing key as stored. ``created`` is when it was made (epoch seconds, the creator's clock)."""

    kid: str
    alg: str
    private_pem: str
    created: float

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes | str) -> StoredKey:
        stored = orjson.loads(raw)
        return cls(
            kid=str(stored["kid"]),
            alg=str(stored["alg"]),
            private_pem=str(stored["private_pem"]),
            created=float(stored["created"]),
        )


class RedisKeyRing:
    """The shared signing keys, by kid. Holds no state of its own: every call asks Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def ensure(
        self, kid: str, make_private_pem: Callable[[], Awaitable[str]], *, created: float, alg: str = "RS256"
    ) -> StoredKey:
        """The key ``kid``: the stored one, or else a new one made with ``make_private_pem`` and stored with HSETNX.

        When instances race, every one of them may make a key, but only the first write is kept and every caller
        gets that one back.
        """
        async with backend():
            raw = await self.client.hget(keys.SIGNING_KEYS, kid)
        if raw is not None:
            return StoredKey.decode(raw)
        made = StoredKey(kid=kid, alg=alg, private_pem=await make_private_pem(), created=created)
        async with backend():
            if await self.client.hsetnx(keys.SIGNING_KEYS, kid, made.encode()):
                return made
            raw = await self.client.hget(keys.SIGNING_KEYS, kid)
        if raw is None:  # pruned between our two calls: only possible for a key long out of use
            raise BackendUnavailableError(f"The signing key {kid} vanished while being created; retry")
        return StoredKey.decode(raw)

    async def load_all(self) -> list[StoredKey]:
        """Every stored key, oldest first. An entry that cannot be decoded is logged and skipped."""
        async with backend():
            stored = await self.client.hgetall(keys.SIGNING_KEYS)
        loaded = []
        for kid, raw in stored.items():
            try:
                loaded.append(StoredKey.decode(raw))
            except (ValueError, KeyError, TypeError):
                log.exception("skipping the undecodable signing key %r in %s", kid, keys.SIGNING_KEYS)
        return sorted(loaded, key=lambda key: (key.created, key.kid))

    async def prune(self, created_before: float) -> list[str]:
        """Deletes the keys created before ``created_before`` (epoch seconds); returns their kids."""
        stale = [key.kid for key in await self.load_all() if key.created < created_before]
        if stale:
            async with backend():
                await self.client.hdel(keys.SIGNING_KEYS, *stale)
        return stale
