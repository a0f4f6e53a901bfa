"""RedisImports: how ``syncsvc import`` writes what it read from another Cognito Sync deployment, and reads it back.

Each dataset is one script, ``lua/import_dataset.lua`` (its header gives the rules: an exact copy with the source's
sync counts, or a record-by-record merge as one new change), so a dataset is imported whole or not at all, and a
re-run after a crash finds it done. A deletion the source made is ``lua/import_delete.lua``; an identity's profile
``lua/import_identity.lua``. The login index is :class:`~syncsvc.store.identities.RedisIdentityStore`'s, used as is.

Keys: only those of :class:`~syncsvc.rediskeys.IdentityKeyspace` and ``rediskeys.profile`` / ``pool_members``, all
in the identity's shard slot. The import's bookkeeping (the source sync count last imported, this deployment's sync
count right after it, whether that import was exact) is kept as fields of the dataset's own metadata hash
(:data:`BOOKKEEPING`), not under keys of its own: it is purged with the dataset and the identity (``purge_identity``
knows nothing of imports), and the scripts read and write it in the same atomic step as the dataset. The other
scripts write only their own fields of that hash, and ``DatasetMeta`` ignores these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import orjson

from syncsvc import rediskeys
from syncsvc.model import Login, Record
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient
from syncsvc.store.results import DatasetMeta, OverLimit, record_from_stored
from syncsvc.store.scripts import register

#: The version-vector writer of what an import writes (one dot per imported change, see import_dataset.lua).
IMPORT_WRITER = "syncsvc-import"
#: The import's fields in a dataset's metadata hash (see the module docstring).
BOOKKEEPING = ("import_src", "import_dst", "import_exact")

ImportStatus: TypeAlias = Literal["imported", "unchanged", "updated", "conflict"]


@dataclass(frozen=True, slots=True)
class StoredName:
    """A record's name as stored (a token, or a plain name) with its sealed name, if any."""

    key: str
    sealed_name: str | None


@dataclass(frozen=True, slots=True)
class Imported:
    """What a dataset import (or deletion) came to; nothing was written when ``written`` is 0 and the status is
    "unchanged" or "conflict" (the bookkeeping aside)."""

    status: ImportStatus
    #: The dataset's sync count afterwards.
    sync_count: int
    #: Records written.
    written: int = 0
    #: Records changed on both sides (or, for a dataset no import wrote, present on both), as stored.
    conflicts: tuple[StoredName, ...] = ()


ImportOutcome: TypeAlias = Imported | OverLimit


@dataclass(frozen=True, slots=True)
class SourceState:
    """The source dataset's own metadata, as import_dataset.lua takes it."""

    sync_count: int
    created_ms: int
    modified_ms: int
    modified_by: str


def _texts(reply: dict[bytes, bytes]) -> dict[str, str]:
    return {text(name): text(value) for name, value in reply.items()}


def _imported(raw: bytes | str) -> ImportOutcome:
    body = orjson.loads(raw)
    if body["status"] == "limit":
        return OverLimit(body["which"], int(body["limit"]), int(body["value"]))
    conflicts = tuple(StoredName(item["k"], item.get("nk")) for item in body.get("conflicts") or ())
    return Imported(body["status"], int(body["sc"]), int(body.get("written", 0)), conflicts)


class RedisImports:
    """The import's writes and reads of one deployment's Redis."""

    def __init__(self, client: RedisClient, *, shards: int) -> None:
        self.client = client
        self._shards = shards
        self._dataset = register(client, "import_dataset.lua")
        self._delete = register(client, "import_delete.lua")
        self._identity = register(client, "import_identity.lua")

    async def import_dataset(
        self,
        keyspace: IdentityKeyspace,
        dataset: str,
        source: SourceState,
        *,
        encoded_records: bytes,
        stamps: Sequence[tuple[int, str]],
        limits: tuple[int, int, int],
        now_ms: int,
        announce: bool,
        topic: str | None,
    ) -> ImportOutcome:
        """Runs import_dataset.lua. ``encoded_records``: every source record as ``encode_patches`` seals patches
        (each patch's SyncCount the record's own); ``stamps``: each record's (LastModifiedDate, LastModifiedBy);
        ``limits``: (datasets per identity, records per dataset, bytes per dataset)."""
        args: list[bytes | str | int] = [
            dataset,
            keyspace.identity_id,
            keyspace.identity_pool_id,
            source.sync_count,
            source.created_ms,
            source.modified_ms,
            source.modified_by,
            encoded_records,
            orjson.dumps([list(stamp) for stamp in stamps]),
            *limits,
            now_ms,
            "1" if announce else "0",
            topic or "",
            keyspace.push_channel,
            IMPORT_WRITER,
        ]
        async with backend():
            raw = await self._dataset(keys=keyspace.write_keys(dataset), args=args)
        return _imported(raw)

    async def delete_imported(self, keyspace: IdentityKeyspace, dataset: str, *, now_ms: int) -> Imported:
        """Runs import_delete.lua: deletes a dataset an import wrote, unless it changed here since."""
        async with backend():
            raw = await self._delete(keys=keyspace.write_keys(dataset), args=[dataset, now_ms, keyspace.push_channel])
        outcome = _imported(raw)
        assert isinstance(outcome, Imported)
        return outcome

    async def read_dataset(self, keyspace: IdentityKeyspace, dataset: str) -> tuple[DatasetMeta, list[Record]]:
        """The dataset's metadata and every stored record (tombstones included; names and values as stored), read in
        one atomic step."""
        async with backend():
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(keyspace.dataset(dataset))
            pipe.hgetall(keyspace.records(dataset))
            meta, stored = await pipe.execute()
        records = [record_from_stored(text(key), raw) for key, raw in stored.items()]
        return DatasetMeta.of(dataset, _texts(meta)), records

    async def live_datasets(self, keyspace: IdentityKeyspace) -> list[str]:
        """The names of the identity's live datasets, in name order."""
        async with backend():
            names = await self.client.zrangebylex(keyspace.datasets, "-", "+")
        return [text(name) for name in names]

    async def put_profile(
        self, identity_pool_id: str, identity_id: str, *, created_ms: int, modified_ms: int, logins: Sequence[Login]
    ) -> tuple[str, str | None]:
        """Runs import_identity.lua; returns (status, the other pool's id when the identity belongs to another)."""
        shard = rediskeys.shard_of(identity_id, self._shards)
        script_keys = [rediskeys.profile(identity_id, self._shards), rediskeys.pool_members(identity_pool_id, shard)]
        encoded = orjson.dumps([list(login) for login in logins])
        async with backend():
            reply = await self._identity(
                keys=script_keys, args=[identity_pool_id, identity_id, created_ms, modified_ms, encoded]
            )
        items = [text(item) for item in reply]
        return items[0], items[1] if len(items) > 1 else None
