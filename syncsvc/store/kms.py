"""Master keys in Redis: metadata and root-wrapped material per key, the key index and aliases.

Nothing here is ever key material in the clear: ``syncsvc.kms.service`` wraps and unwraps with the root key.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from syncsvc import keys
from syncsvc.store.backend import backend, register, text


class RedisKeyStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._create = register(client, "create_kms_key.lua")
        self._replace_if_exists = register(client, "replace_if_exists.lua")

    async def create(self, key_id: str, meta: dict[str, Any], wrapped: bytes, *, quota: int) -> bool:
        """Stores a new key with its first backing key; False when the quota of keys is reached."""
        async with backend():
            stored = await self._create(
                keys=[keys.kms_key(key_id), keys.KMS_KEYS], args=[key_id, orjson.dumps(meta), wrapped, quota]
            )
        return bool(stored)

    async def load(self, key_id: str) -> tuple[dict[str, Any], dict[int, bytes]] | None:
        """(metadata, version -> wrapped material) of a key, or None."""
        async with backend():
            fields = await self._client.hgetall(keys.kms_key(key_id))
        if not fields:
            return None
        meta: dict[str, Any] = {}
        versions: dict[int, bytes] = {}
        for name, value in fields.items():
            field = text(name)
            if field == "meta":
                meta = orjson.loads(value)
            elif field.startswith("v"):
                versions[int(field[1:])] = value if isinstance(value, bytes) else value.encode()
        return meta, versions

    async def save_meta(
        self, key_id: str, meta: dict[str, Any], *, new_version: tuple[int, bytes] | None = None
    ) -> bool:
        """Replaces a key's metadata (and adds a backing key version) if the key still exists."""
        async with backend():
            if new_version is not None:
                pipe = self._client.pipeline(transaction=True)
                pipe.hset(keys.kms_key(key_id), f"v{new_version[0]}", new_version[1])
                pipe.hset(keys.kms_key(key_id), "meta", orjson.dumps(meta))
                await pipe.execute()
                return True
            return bool(await self._replace_if_exists(keys=[keys.kms_key(key_id)], args=["meta", orjson.dumps(meta)]))

    async def delete(self, key_id: str) -> None:
        """Removes a key, its material and its aliases for good."""
        async with backend():
            aliases = [
                name
                for name, target in (await self._client.hgetall(keys.KMS_ALIASES)).items()
                if text(target) == key_id
            ]
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(keys.kms_key(key_id))
            pipe.zrem(keys.KMS_KEYS, key_id)
            if aliases:
                pipe.hdel(keys.KMS_ALIASES, *aliases)
            await pipe.execute()

    async def key_ids(self, *, after: str | None, limit: int) -> list[str]:
        start = f"({after}" if after is not None else "-"
        async with backend():
            return [text(key_id) for key_id in await self._client.zrangebylex(keys.KMS_KEYS, start, "+", 0, limit)]

    async def alias_target(self, alias: str) -> str | None:
        async with backend():
            target = await self._client.hget(keys.KMS_ALIASES, alias)
        return None if target is None else text(target)

    async def create_alias(self, alias: str, key_id: str) -> bool:
        """False when the alias exists already."""
        async with backend():
            return bool(await self._client.hsetnx(keys.KMS_ALIASES, alias, key_id))

    async def aliases(self) -> dict[str, str]:
        async with backend():
            return {text(name): text(target) for name, target in (await self._client.hgetall(keys.KMS_ALIASES)).items()}
