"""RedisDataKeys: where envelope encryption keeps its keys (``syncsvc.kms.envelope`` decides what they are).

* An identity's wrapped data keys live in one hash in the identity's slot (``IdentityKeyspace.data_keys``): ``v<n>``
  (data key version n, wrapped by the pool's master key), ``current`` (the version new values are sealed under) and
  ``names`` (present when the identity's record names are tokenised). Deleting the hash shreds the identity's data.
* A pool's master key id is the ``kms`` field of the pool's hash (``rediskeys.pool``), claimed with HSETNX so that
  instances racing to make it agree on one.

None of these writes waits for replicas (``syncsvc.store.scripts`` says why). Driver errors never leave this module
raw: they become :class:`~syncsvc.errors.BackendUnavailableError` (``syncsvc.store.backend``).
"""

from __future__ import annotations

from dataclasses import dataclass

from syncsvc import rediskeys
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient

#: The data key hash field that says the identity's record names are tokenised.
_NAMES_FIELD = "names"
_CURRENT_FIELD = "current"
#: The pool hash field holding the pool's master key id.
_MASTER_KEY_FIELD = "kms"


@dataclass(frozen=True, slots=True)
class WrappedDataKeys:
    """An identity's data keys as stored: wrapped, by version; empty when the identity has none (never had, or
    deleted)."""

    versions: dict[int, bytes]
    #: The version new values are sealed under (0 when there is none).
    current: int = 0
    #: Whether the identity's record names are stored as tokens.
    tokenised: bool = False


class RedisDataKeys:
    """Wrapped data keys by identity, and master key ids by pool."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    async def wrapped(self, keyspace: IdentityKeyspace) -> WrappedDataKeys:
        async with backend():
            fields = await self._client.hgetall(keyspace.data_keys)
        versions: dict[int, bytes] = {}
        current = 0
        tokenised = False
        for name, value in fields.items():
            field_name = text(name)
            if field_name == _CURRENT_FIELD:
                current = int(value)
            elif field_name == _NAMES_FIELD:
                tokenised = True
            elif field_name.startswith("v"):
                versions[int(field_name[1:])] = value if isinstance(value, bytes) else value.encode()
        return WrappedDataKeys(versions, current, tokenised)

    async def add_first(self, keyspace: IdentityKeyspace, wrapped: bytes) -> None:
        """Stores the identity's first data key (version 1, names tokenised) unless it has one: a concurrent first
        write elsewhere may have stored its own, which is then kept."""
        async with backend():
            pipe = self._client.pipeline(transaction=True)
            pipe.hsetnx(keyspace.data_keys, "v1", wrapped)
            pipe.hsetnx(keyspace.data_keys, _CURRENT_FIELD, 1)
            pipe.hsetnx(keyspace.data_keys, _NAMES_FIELD, 1)
            await pipe.execute()

    async def replace(self, keyspace: IdentityKeyspace, version: int, wrapped: bytes) -> None:
        """Stores data key ``version`` wrapped anew (the same data key under a newer backing key)."""
        async with backend():
            await self._client.hset(keyspace.data_keys, f"v{version}", wrapped)

    async def master_key_id(self, identity_pool_id: str) -> str | None:
        """The pool's master key id; None when the pool has none yet."""
        async with backend():
            stored = await self._client.hget(rediskeys.pool(identity_pool_id), _MASTER_KEY_FIELD)
        return None if stored is None else text(stored)

    async def claim_master_key(self, identity_pool_id: str, key_id: str) -> bool:
        """Records ``key_id`` as the pool's master key unless it has one; False when another was recorded first."""
        async with backend():
            return bool(await self._client.hsetnx(rediskeys.pool(identity_pool_id), _MASTER_KEY_FIELD, key_id))
