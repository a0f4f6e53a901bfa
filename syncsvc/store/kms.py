"""Master keys in Redis: metadata and root-wrapped material per key, the key index and aliases.

A key's hash (``rediskeys.kms_key``) holds ``meta`` (JSON), ``v<n>`` (backing key version n, wrapped) and ``rev`` (its
revision: every change adds one). Changes and deletions are compare-and-set on ``rev`` (``kms_update_key.lua``,
``kms_delete_key.lua``), so concurrent changes of one key through several instances never lose one another.

The same hash holds the key's access rules, so that one HGETALL reads a key with everything that decides who may use
it, and deleting the key deletes them: ``policy`` (its key policy document, absent = the default policy),
``g:<grant id>`` (one grant, JSON) and ``grants`` (how many grants). Grants and policies change without moving
``rev`` (they are not part of the key's metadata). ``rot:<n>`` records the rotation that made version n (JSON: date
and type, written with the version by ``kms_update_key.lua``); the key's tags are part of ``meta``.

A key for imported material (Origin EXTERNAL) also holds ``v0``: not a backing key, but the secret its material's
commitment is keyed with (root-wrapped like a backing key, so a root key rotation moves it too); ``commit``: that
commitment, kept from the first import on; and ``imp:<expiry ms>:<token id>``: the private half of an import wrapping
key, sealed by the root key, until its token is used or expires (``kms_import_*.lua``).

Nothing here is ever key material in the clear: ``syncsvc.kms.keyservice`` wraps and unwraps with the root key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from syncsvc import rediskeys
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient
from syncsvc.store.scripts import register

#: What a compare-and-set did: written; stale (the key changed since it was read: nothing done); gone (no such key).
WriteStatus = Literal["written", "stale", "gone"]
_WRITE_STATUSES: dict[int, WriteStatus] = {1: "written", 0: "stale", -1: "gone"}
#: What an import did: as :data:`WriteStatus`, or token_used (its wrapping key is gone: used or expired), or
#: other_material (the key holds the commitment of different material).
ImportStatus = Literal["written", "stale", "gone", "token_used", "other_material"]
_IMPORT_STATUSES: dict[int, ImportStatus] = {**_WRITE_STATUSES, -2: "token_used", -3: "other_material"}


@dataclass(frozen=True, slots=True)
class StoredMasterKey:
    meta: dict[str, Any]
    #: version -> wrapped material
    versions: dict[int, bytes]
    revision: int
    #: The key policy document as stored (None: the default policy).
    policy: str | None = None
    #: grant id -> grant (JSON)
    grants: dict[str, bytes] = field(default_factory=dict)
    #: backing-key version -> the rotation that made it (JSON: date, type)
    rotations: dict[int, bytes] = field(default_factory=dict)


class RedisKeyStore:
    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._create = register(client, "create_kms_key.lua")
        self._update = register(client, "kms_update_key.lua")
        self._delete = register(client, "kms_delete_key.lua")
        self._create_alias = register(client, "kms_create_alias.lua")
        self._update_alias = register(client, "kms_update_alias.lua")
        self._delete_alias = register(client, "kms_delete_alias.lua")
        self._create_grant = register(client, "kms_create_grant.lua")
        self._delete_grant = register(client, "kms_delete_grant.lua")
        self._put_policy = register(client, "kms_put_policy.lua")
        self._compare_and_set = register(client, "compare_and_set.lua")
        self._import_create = register(client, "kms_import_create.lua")
        self._import_parameters = register(client, "kms_import_parameters.lua")
        self._import_material = register(client, "kms_import_material.lua")
        self._import_delete = register(client, "kms_import_delete.lua")

    async def move_legacy_layout(self) -> int:
        """Moves KMS keys stored under their names of before the ``{kms}`` hash tag (one Redis only: a cluster never
        held them) to the current names; returns how many keys moved. Each RENAME is atomic and the index moves
        last, so a start-up interrupted half-way finishes the move on the next one."""
        async with backend():
            if not await self._client.exists(rediskeys.LEGACY_KMS_KEYS):
                return 0
            key_ids = [text(key_id) for key_id in await self._client.zrangebylex(rediskeys.LEGACY_KMS_KEYS, "-", "+")]
            moved = 0
            for key_id in key_ids:
                if await self._client.exists(rediskeys.legacy_kms_key(key_id)):
                    await self._client.rename(rediskeys.legacy_kms_key(key_id), rediskeys.kms_key(key_id))
                    moved += 1
            if await self._client.exists(rediskeys.LEGACY_KMS_ALIASES):
                await self._client.rename(rediskeys.LEGACY_KMS_ALIASES, rediskeys.KMS_ALIASES)
            await self._client.rename(rediskeys.LEGACY_KMS_KEYS, rediskeys.KMS_KEYS)
        return moved

    async def create(self, key_id: str, meta: dict[str, Any], wrapped: bytes, *, quota: int) -> bool:
        """Stores a new key with its first backing key; False when the quota of keys is reached."""
        async with backend():
            stored = await self._create(
                keys=[rediskeys.kms_key(key_id), rediskeys.KMS_KEYS], args=[key_id, orjson.dumps(meta), wrapped, quota]
            )
        return bool(stored)

    async def create_external(self, key_id: str, meta: dict[str, Any], commitment_secret: bytes, *, quota: int) -> bool:
        """Stores a new key without material and with its (root-wrapped) commitment secret; False when the quota of
        keys is reached."""
        async with backend():
            stored = await self._import_create(
                keys=[rediskeys.kms_key(key_id), rediskeys.KMS_KEYS],
                args=[key_id, orjson.dumps(meta), commitment_secret, quota],
            )
        return bool(stored)

    async def add_wrapping_key(self, key_id: str, field_name: str, sealed: bytes, *, now_ms: int) -> WriteStatus:
        """Keeps an import wrapping key's sealed private half in field ``field_name`` (``imp:<expiry>:<token id>``),
        dropping the key's expired ones; ``gone`` when the key does not exist."""
        async with backend():
            done = await self._import_parameters(keys=[rediskeys.kms_key(key_id)], args=[field_name, sealed, now_ms])
        return _WRITE_STATUSES[int(done)]

    async def wrapping_key(self, key_id: str, wrapping_field: str) -> bytes | None:
        """The sealed private half of an import wrapping key (None: used, expired or never made)."""
        async with backend():
            sealed = await self._client.hget(rediskeys.kms_key(key_id), wrapping_field)
        if sealed is None:
            return None
        return sealed if isinstance(sealed, bytes) else sealed.encode()

    async def import_material(
        self,
        key_id: str,
        meta: dict[str, Any],
        *,
        revision: int,
        wrapped: bytes,
        commitment: bytes,
        wrapping_field: str,
    ) -> ImportStatus:
        """Stores imported material as backing key 1 with ``meta`` and its commitment, using up the token's wrapping
        key, if the key's revision is still ``revision`` (see ``kms_import_material.lua``)."""
        async with backend():
            done = await self._import_material(
                keys=[rediskeys.kms_key(key_id)],
                args=[str(revision), orjson.dumps(meta), wrapped, commitment, wrapping_field],
            )
        return _IMPORT_STATUSES[int(done)]

    async def delete_material(self, key_id: str, meta: dict[str, Any], *, revision: int) -> WriteStatus:
        """Removes imported material (backing key 1) and stores ``meta``, if the key's revision is still
        ``revision``; the commitment stays."""
        async with backend():
            done = await self._import_delete(keys=[rediskeys.kms_key(key_id)], args=[str(revision), orjson.dumps(meta)])
        return _WRITE_STATUSES[int(done)]

    async def load(self, key_id: str) -> StoredMasterKey | None:
        async with backend():
            fields = await self._client.hgetall(rediskeys.kms_key(key_id))
        if not fields:
            return None
        meta: dict[str, Any] = {}
        versions: dict[int, bytes] = {}
        revision = 0
        policy: str | None = None
        grants: dict[str, bytes] = {}
        rotations: dict[int, bytes] = {}
        for name, value in fields.items():
            member = text(name)
            raw = value if isinstance(value, bytes) else value.encode()
            if member == "meta":
                meta = orjson.loads(value)
            elif member == "rev":
                revision = int(value)
            elif member == "policy":
                policy = text(value)
            elif member.startswith("g:"):
                grants[member[2:]] = raw
            elif member.startswith("rot:"):
                rotations[int(member[4:])] = raw
            elif member.startswith("v"):
                versions[int(member[1:])] = raw
        return StoredMasterKey(meta, versions, revision, policy, grants, rotations)

    async def update(
        self,
        key_id: str,
        meta: dict[str, Any],
        *,
        revision: int | None,
        new_version: tuple[int, bytes] | None = None,
        rotation: bytes = b"",
    ) -> WriteStatus:
        """Replaces a key's metadata (and adds a backing key version, with the ``rotation`` that made it, if any) if
        its revision is still ``revision`` (None: whatever it is). A version that exists already is never overwritten
        (``stale``)."""
        version_field, wrapped = (f"v{new_version[0]}", new_version[1]) if new_version else ("", b"")
        rotation_field = f"rot:{new_version[0]}" if new_version and rotation else ""
        expected = "" if revision is None else str(revision)
        async with backend():
            done = await self._update(
                keys=[rediskeys.kms_key(key_id)],
                args=[expected, orjson.dumps(meta), version_field, wrapped, rotation_field, rotation],
            )
        return _WRITE_STATUSES[int(done)]

    async def delete(self, key_id: str, *, revision: int | None = None) -> WriteStatus:
        """Removes a key, its material and its aliases for good, if its revision is still ``revision`` (None:
        whatever it is)."""
        expected = "" if revision is None else str(revision)
        async with backend():
            done = await self._delete(
                keys=[rediskeys.kms_key(key_id), rediskeys.KMS_KEYS, rediskeys.KMS_ALIASES], args=[key_id, expected]
            )
        return _WRITE_STATUSES[int(done)]

    async def replace_version(self, key_id: str, version: int, old: bytes, new: bytes) -> bool:
        """Replaces a backing key's wrapped material (the same material, wrapped anew: a root key rotation) if it is
        still ``old``; False when it is not (the key was deleted meanwhile)."""
        async with backend():
            return bool(await self._compare_and_set(keys=[rediskeys.kms_key(key_id)], args=[f"v{version}", old, new]))

    async def count(self) -> int:
        async with backend():
            return int(await self._client.zcard(rediskeys.KMS_KEYS))

    async def key_ids(self, *, after: str | None, limit: int) -> list[str]:
        """Key ids in order, the first ``limit`` after ``after``."""
        start = f"({after}" if after is not None else "-"
        async with backend():
            return [text(key_id) for key_id in await self._client.zrangebylex(rediskeys.KMS_KEYS, start, "+", 0, limit)]

    async def owners(self, key_ids: Sequence[str]) -> list[str | None]:
        """Each key's ``owner`` (``""`` for a key made through the KMS API), None for a key that does not exist; one
        round trip."""
        async with backend():
            pipe = self._client.pipeline(transaction=False)
            for key_id in key_ids:
                pipe.hget(rediskeys.kms_key(key_id), "meta")
            metas = await pipe.execute()
        return [None if meta is None else str(orjson.loads(meta).get("owner", "")) for meta in metas]

    async def alias_target(self, alias: str) -> str | None:
        async with backend():
            target = await self._client.hget(rediskeys.KMS_ALIASES, alias)
        return None if target is None else text(target)

    async def create_alias(self, alias: str, key_id: str) -> WriteStatus:
        """``written``; ``stale`` when the alias exists already; ``gone`` when the key does not exist."""
        async with backend():
            done = await self._create_alias(
                keys=[rediskeys.kms_key(key_id), rediskeys.KMS_ALIASES], args=[alias, key_id]
            )
        return _WRITE_STATUSES[int(done)]

    async def update_alias(self, alias: str, key_id: str, *, current: str) -> WriteStatus:
        """``written``; ``stale`` when the alias is gone or no longer names ``current``; ``gone`` when the key does
        not exist."""
        async with backend():
            done = await self._update_alias(
                keys=[rediskeys.kms_key(key_id), rediskeys.KMS_ALIASES], args=[alias, key_id, current]
            )
        return _WRITE_STATUSES[int(done)]

    async def delete_alias(self, alias: str) -> bool:
        """Whether there was such an alias (now removed)."""
        async with backend():
            return bool(await self._delete_alias(keys=[rediskeys.KMS_ALIASES], args=[alias]))

    async def aliases(self) -> dict[str, str]:
        """Every alias: name -> key id."""
        async with backend():
            return {
                text(name): text(target) for name, target in (await self._client.hgetall(rediskeys.KMS_ALIASES)).items()
            }

    async def add_grant(self, key_id: str, grant_id: str, grant: bytes, *, quota: int) -> WriteStatus:
        """``written``; ``stale`` when the key has ``quota`` grants already; ``gone`` when the key does not exist."""
        async with backend():
            done = await self._create_grant(keys=[rediskeys.kms_key(key_id)], args=[f"g:{grant_id}", grant, quota])
        return _WRITE_STATUSES[int(done)]

    async def remove_grant(self, key_id: str, grant_id: str) -> WriteStatus:
        """``written``; ``stale`` when the key has no such grant; ``gone`` when the key does not exist."""
        async with backend():
            done = await self._delete_grant(keys=[rediskeys.kms_key(key_id)], args=[f"g:{grant_id}"])
        return _WRITE_STATUSES[int(done)]

    async def put_policy(self, key_id: str, policy: str) -> WriteStatus:
        """``written``, or ``gone`` when the key does not exist."""
        async with backend():
            done = await self._put_policy(keys=[rediskeys.kms_key(key_id)], args=[policy])
        return _WRITE_STATUSES[int(done)]
