"""RedisKeyRing: the service's token-signing keys, in Redis so that every instance shares them.

Each signing key is a KMS asymmetric key (RSA_2048, SIGN_VERIFY, ``syncsvc.kms``): its private key is stored only
wrapped by the root key and never leaves the key service, which signs on our behalf. The ring itself holds one hash
(``rediskeys.SIGNING_KEYS``): kid -> JSON ``{kid, alg, key_id, public_pem, created}``, the KMS key id and the public key
only, so reading that hash does not let anyone mint identity tokens.

A key is created by whichever instance first needs it, with HSETNX: if two instances race, one write wins and the
other reads the winner's (and discards the KMS key it made), so all instances sign with the same key without any
other coordination. Which kid is needed when (the rotation schedule) is the caller's business
(``syncsvc.identity.issuer``). Entries from before the keys moved into KMS (with a ``private_pem``) are skipped,
replaced when their kid is needed again, and deleted by the next prune.

Driver errors never leave this module raw: they become :class:`~syncsvc.errors.BackendUnavailableError`
(``syncsvc.store.backend``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import orjson

from syncsvc import rediskeys
from syncsvc.errors import BackendUnavailableError
from syncsvc.store.backend import backend
from syncsvc.store.connection import RedisClient
from syncsvc.store.scripts import confirmed

log = logging.getLogger("syncsvc.keyring")

#: Replaces a field that still holds the old-format entry we read (or that has gone since): 1 when it wrote.
_REPLACE_LEGACY = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == false or current == ARGV[2] then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
    return 1
end
return 0
"""


class LegacyKeyError(ValueError):
    """An entry in the format from before the signing keys moved into KMS (a plain ``private_pem``)."""


@dataclass(frozen=True, slots=True)
class StoredSigningKey:
    """One signing key as stored: its KMS key id and its public key (PEM SubjectPublicKeyInfo). ``created`` is when
    it was made (epoch seconds, the creator's clock)."""

    kid: str
    alg: str
    key_id: str
    public_pem: str
    created: float

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes | str) -> StoredSigningKey:
        stored = orjson.loads(raw)
        if "private_pem" in stored and "key_id" not in stored:
            raise LegacyKeyError(f"signing key {stored.get('kid')!r} is from before the keys moved into KMS")
        return cls(
            kid=str(stored["kid"]),
            alg=str(stored["alg"]),
            key_id=str(stored["key_id"]),
            public_pem=str(stored["public_pem"]),
            created=float(stored["created"]),
        )


class RedisKeyRing:
    """The shared signing keys, by kid. Holds no state of its own: every call asks Redis.

    ``discard`` removes a KMS key at once (``KeyService.discard``): the key an instance made but lost the race
    with, and the keys of pruned entries.
    """

    def __init__(self, client: RedisClient, discard: Callable[[str], Awaitable[None]]) -> None:
        self.client = client
        self._discard = discard

    async def ensure(
        self, kid: str, make: Callable[[], Awaitable[tuple[str, str]]], *, created: float, alg: str = "RS256"
    ) -> StoredSigningKey:
        """The key ``kid``: the stored one, or else a new one made with ``make`` (which creates the KMS key and
        returns its id and public PEM) and stored with HSETNX.

        When instances race, every one of them may make a key, but only the first write is kept and every caller
        gets that one back; the losers discard the KMS keys they made.
        """
        async with backend():
            raw = await self.client.hget(rediskeys.SIGNING_KEYS, kid)
        legacy: bytes | str | None = None
        if raw is not None:
            try:
                return StoredSigningKey.decode(raw)
            except LegacyKeyError:
                legacy = raw  # replaced below, exactly as an absent key would be created
        key_id, public_pem = await make()
        made = StoredSigningKey(kid=kid, alg=alg, key_id=key_id, public_pem=public_pem, created=created)
        # Should Redis fail here, the KMS key may or may not be stored: it is left alone (an unused key is harmless).
        async with backend():
            if legacy is None:
                (stored,) = await confirmed(
                    self.client,
                    rediskeys.SIGNING_KEYS,
                    lambda pipe: pipe.hsetnx(rediskeys.SIGNING_KEYS, kid, made.encode()),
                )
            else:
                stored = await self.client.eval(_REPLACE_LEGACY, 1, rediskeys.SIGNING_KEYS, kid, legacy, made.encode())
            if stored:
                return made
            raw = await self.client.hget(rediskeys.SIGNING_KEYS, kid)
        await self._discard_quietly(key_id)  # another instance stored its key first: ours was never used
        if raw is None:  # pruned between our two calls: only possible for a key long out of use
            raise BackendUnavailableError(f"The signing key {kid} vanished while being created; retry")
        return StoredSigningKey.decode(raw)

    async def load_all(self) -> list[StoredSigningKey]:
        """Every stored key, oldest first. An entry that cannot be decoded is logged and skipped (quietly for one
        from before the keys moved into KMS)."""
        return (await self._load())[0]

    async def _load(self) -> tuple[list[StoredSigningKey], list[str]]:
        """(the stored keys oldest first, the kids of the entries from before the keys moved into KMS)."""
        async with backend():
            stored = await self.client.hgetall(rediskeys.SIGNING_KEYS)
        loaded, legacy = [], []
        for kid, raw in stored.items():
            try:
                loaded.append(StoredSigningKey.decode(raw))
            except LegacyKeyError:
                legacy.append(kid.decode() if isinstance(kid, bytes) else str(kid))
            except (ValueError, KeyError, TypeError):
                log.exception("skipping the undecodable signing key %r in %s", kid, rediskeys.SIGNING_KEYS)
        return sorted(loaded, key=lambda key: (key.created, key.kid)), legacy

    async def prune(self, created_before: float) -> list[str]:
        """Deletes the keys created before ``created_before`` (epoch seconds), their KMS keys included, and every
        entry from before the keys moved into KMS; returns the deleted kids."""
        loaded, legacy = await self._load()
        stale = [key for key in loaded if key.created < created_before]
        deleted = [key.kid for key in stale] + legacy
        if deleted:
            async with backend():
                await self.client.hdel(rediskeys.SIGNING_KEYS, *deleted)
        for key in stale:
            await self._discard_quietly(key.key_id)
        return deleted

    async def _discard_quietly(self, key_id: str) -> None:
        try:
            await self._discard(key_id)
        except Exception:  # a KMS key left behind is harmless (and unused): never fail the caller for it
            log.exception("could not discard the KMS key %s of a signing key", key_id)
