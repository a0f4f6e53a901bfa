"""RedisStore: datasets, records, identity pools and usage on Redis, the system of record.

Every write of user data is one Lua script (see ``lua/*.lua`` for each script's KEYS, ARGV and results), so it is
atomic and all-or-nothing. Replies are decoded here, once, into the types of ``results.py``: callers give plain values
and never see a script's field names or a Redis range bound. Driver errors never leave this module raw: a Redis that
cannot be reached becomes :class:`~syncsvc.errors.BackendUnavailableError` (503 + Retry-After, see ``backend.py``).
Connection retries are off on purpose: a write is never sent twice behind the caller's back; clients retry, and the
writers hash makes a re-sent UpdateRecords idempotent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import NoScriptError, RedisError

from syncsvc import rediskeys, tracing
from syncsvc.errors import StandingLostError
from syncsvc.model import DatasetState, Limits, Op, Record, RecordPatch, RecordSealer, Standing
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store import connection
from syncsvc.store.backend import backend, out_of_memory, text
from syncsvc.store.connection import RedisClient
from syncsvc.store.identities import stands
from syncsvc.store.results import DatasetMeta, LastWrite, UpdateOutcome, Usage, decode_update, record_from_stored
from syncsvc.store.scripts import Durability, confirmed, durability_of, register, set_durability

_MEMBER_PREFIX = 20  # digits of the sync count at the front of a change-log member
_SNAPSHOT_FIELDS = ("sc", "live", "vv")  # of the dataset hash, as a write planned in Python reads them


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    """A flat HGETALL-style reply from a script as a dict of str."""
    items = [text(item) if isinstance(item, bytes) else str(item) for item in flat]
    return dict(zip(items[::2], items[1::2], strict=True))


def _texts(reply: Mapping[Any, Any]) -> dict[str, str]:
    """An HGETALL reply as a dict of str."""
    return {text(name): text(value) for name, value in reply.items()}


def encode_patches(patches: Sequence[RecordPatch], sealer: RecordSealer | None = None, dataset: str = "") -> bytes:
    """Patches as update_records.lua's ARGV[8] takes them. With ``sealer`` (the identity's cipher), as stored: each
    name as its token ``k`` with the name sealed in ``nk`` (its plaintext size in ``kn``, for the limits), each value
    sealed in ``v`` (its plaintext size in ``n``). Without: the plaintext form, which fingerprints a request."""
    return orjson.dumps([_patch_argument(patch, sealer, dataset) for patch in patches])


def _patch_argument(patch: RecordPatch, sealer: RecordSealer | None, dataset: str) -> dict[str, Any]:
    encoded: dict[str, Any] = {"k": patch.key, "op": patch.op.value, "sc": patch.sync_count}
    if sealer is not None:
        sealed_name = sealer.seal_name(dataset, patch.key)
        if sealed_name is not None:
            encoded["k"] = sealer.token(dataset, patch.key)
            encoded["nk"] = sealed_name
            encoded["kn"] = len(patch.key.encode())
    if patch.op is Op.REPLACE and patch.value is not None:
        encoded["v"] = sealer.seal(dataset, patch.key, patch.value) if sealer else patch.value
        encoded["n"] = len(patch.value.encode())
    if patch.device_last_modified_ms is not None:
        encoded["d"] = patch.device_last_modified_ms
    if patch.version_vector is not None:
        encoded["vv"] = patch.version_vector
    return encoded


@dataclass(frozen=True, slots=True)
class WriteSnapshot:
    """A dataset at one instant, for a write planned outside the script (sync triggers, conflict handlers)."""

    sync_count: int
    version_vector: dict[str, int]
    #: Every stored record by key, tombstones (value None) included; empty while the dataset is not live.
    records: dict[str, Record]
    #: The writer's last committed write to this dataset, None before its first.
    last_write: LastWrite | None


class RedisStore:
    """Owns the connection pool and the registered scripts. Create with :meth:`connect`, end with :meth:`close`."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._update = register(client, "update_records.lua")
        # What a page shows is confirmed by the replicas like a write (its fence, see list_records.lua): a write
        # answered 503 for want of confirmation must not reach a device as stored, then vanish in a failover.
        self._list = register(client, "list_records.lua", subject="The records read are on")
        self._delete = register(client, "delete_dataset.lua")
        self._replace_if_exists = register(client, "replace_if_exists.lua")
        self._compare_and_set = register(client, "compare_and_set.lua")

    @classmethod
    def connect(cls, url: str, durability: Durability | None = None) -> RedisStore:
        """A store on ``url`` (one Redis, a cluster or a Sentinel-managed primary: see ``connection.py``), whose
        writes wait for ``durability`` (see ``scripts.py``)."""
        client = connection.connect(url)
        if durability is not None:
            set_durability(client, durability)
        return cls(client)

    async def close(self) -> None:
        await self.client.aclose()

    # --- deployment-wide facts --------------------------------------------------------------------------------------

    async def ping(self) -> None:
        async with backend():
            await self.client.ping()

    async def check_shards(self, shards: int) -> int:
        """Records the shard count on first start; returns the recorded one (which the caller compares)."""
        async with backend():
            await self.client.hsetnx(rediskeys.META, "shards", shards)
            recorded = await self.client.hget(rediskeys.META, "shards")
        return int(text(recorded or b"0"))

    async def record_root_key(self, old_check: str, new_check: str) -> bool:
        """Records ``new_check`` as the root key's check value if the recorded one is still ``old_check``."""
        return await self.compare_and_set(rediskeys.META, "root_key_check", old_check, new_check)

    async def check_root_key(self, check_value: str) -> str:
        """Records the root key's check value on first start; returns the recorded one (which the caller compares)."""
        async with backend():
            await self.client.hsetnx(rediskeys.META, "root_key_check", check_value)
            recorded = await self.client.hget(rediskeys.META, "root_key_check")
        return text(recorded or b"")

    async def token_secret(self, candidate: bytes) -> bytes:
        """The deployment's token secret as stored (sealed by the root key): ``candidate`` when none was yet, so every
        instance ends up with the first one stored."""
        async with backend():
            await self.client.set(rediskeys.TOKEN_SECRET, candidate, nx=True)
            stored = await self.client.get(rediskeys.TOKEN_SECRET)
        return stored if isinstance(stored, bytes) else b""

    async def stored_token_secret(self) -> bytes | None:
        """The token secret as stored (sealed), None when none was made yet."""
        async with backend():
            stored = await self.client.get(rediskeys.TOKEN_SECRET)
        return stored if isinstance(stored, bytes) else None

    async def replace_token_secret(self, old: bytes, new: bytes) -> bool:
        """Stores ``new`` unless the token secret is no longer ``old`` (another instance replaced it first)."""
        return await self.compare_and_set(rediskeys.TOKEN_SECRET, "", old, new)

    async def compare_and_set(self, key: str, field: str, old: bytes | str, new: bytes | str) -> bool:
        """Replaces the string ``key`` (or the hash field ``field`` of it) by ``new`` if it is still ``old``."""
        async with backend():
            return bool(await self._compare_and_set(keys=[key], args=[field, old, new]))

    # --- datasets and records ---------------------------------------------------------------------------------------

    async def update_records(
        self,
        keyspace: IdentityKeyspace,
        dataset: str,
        *,
        writer: str,
        encoded_patches: bytes,
        fingerprint: str,
        now_ms: int,
        limits: Limits,
        topic: str | None = None,
        planned_on: int | None = None,
        standing: Standing | None = None,
    ) -> UpdateOutcome:
        """Runs update_records.lua; ``encoded_patches`` is the ARGV JSON for ``patches`` (see the script). With a
        ``topic`` the committed change also goes to the shard's outbox, in the same script. With ``planned_on`` (a
        dataset sync count) it commits only if the dataset is still at that count, else the status is "stale". With
        ``standing``, only while the caller's identity still stands so (else StandingLostError, nothing written)."""
        args: list[bytes | str | int] = [
            dataset,
            now_ms,
            writer,
            fingerprint,
            limits.max_datasets,
            limits.max_records,
            limits.max_bytes,
        ]
        async with backend():
            raw = await self._update(
                keys=[*keyspace.write_keys(dataset), keyspace.profile],
                args=[
                    *args,
                    encoded_patches,
                    keyspace.identity_id,
                    topic or "",
                    keyspace.identity_pool_id,
                    "" if planned_on is None else planned_on,
                    keyspace.push_channel,
                    *_standing_args(keyspace, standing),
                    tracing.traceparent(),
                ],
            )
        return decode_update(raw)

    async def require_standing(self, keyspace: IdentityKeyspace, standing: Standing | None) -> None:
        """The folded identity check of :class:`~syncsvc.model.Standing` made on its own (for a path of an operation
        that folds it but runs no script that checks it); StandingLostError when it no longer holds."""
        if standing is None:
            return
        _standing_args(keyspace, standing)  # its own identity only
        async with backend():
            pool, gen, rev = await self.client.hmget(keyspace.profile, ["pool", "gen", "rev"])
        if not stands(standing, pool, gen, rev):
            raise StandingLostError("the caller's identity changed since it was admitted")

    async def list_records(
        self,
        keyspace: IdentityKeyspace,
        dataset: str,
        *,
        limit: int,
        after_sync_count: int = 0,
        cursor: str | None = None,
        new_session: bool = False,
        standing: Standing | None = None,
    ) -> tuple[DatasetState, list[Record], str | None]:
        """One page of the records changed after ``after_sync_count``, or with ``cursor`` (as a previous page
        returned it) the page after that one (see list_records.lua); returns the cursor of the next page, None after
        the last. ``new_session`` counts a sync session for the pool in the same script, best-effort: while Redis is
        out of memory the page is answered and the session not counted. With ``standing``, only while the caller's
        identity still stands so (else StandingLostError). A pull from the start (the full pull of a new device)
        reads the records hash whole in the same MULTI rather than through the script (list_records.lua ARGV[9]):
        Redis copies a megabyte through Lua in ~2 ms, during which it serves no one, as a plain HGETALL in ~0.2 ms."""
        script_keys = [
            keyspace.dataset(dataset),
            keyspace.records(dataset),
            keyspace.changes(dataset),
            keyspace.pool_sessions,
            keyspace.datasets,
            keyspace.profile,
        ]
        start = f"[{after_sync_count + 1:0{_MEMBER_PREFIX}d}" if cursor is None else f"({cursor}"
        fence = _fence(self.client)
        # A pull from the start without a fence reads the records hash whole beside the script (see ARGV[9]).
        whole = after_sync_count == 0 and cursor is None and fence == "0"
        args = [start, limit, "1" if new_session else "0", f"{dataset}.", fence, *_standing_args(keyspace, standing)]
        args.append("0" if whole else "1")
        async with backend():
            if whole:
                try:
                    page, by_token = await self._page_and_records(script_keys, args)
                except RedisError as exc:
                    if not out_of_memory(exc):
                        raise
                    # Redis refuses a MULTI with a script while it is out of memory: the script alone reads (ARGV[9])
                    whole, args[-1] = False, "1"
            if not whole:
                page = await self._list(keys=script_keys, args=args)
        if len(page) == 1:
            raise StandingLostError("the caller's identity changed since it was admitted")
        meta, members, stored, more, merged = page
        if whole:
            stored = [by_token[member[_MEMBER_PREFIX:]] for member in members]
        records = [
            record_from_stored(text(member[_MEMBER_PREFIX:]), raw) for member, raw in zip(members, stored, strict=True)
        ]
        state = DatasetMeta.of(dataset, _pairs(meta)).state(merged=[text(name) for name in merged])
        return state, records, text(members[-1]) if more else None

    async def _page_and_records(self, keys: list[str], args: list[Any]) -> tuple[list[Any], dict[bytes, bytes]]:
        """list_records.lua without the page's records, and the records hash, in one MULTI (one snapshot)."""
        try:
            return await self._multi_page(keys, args)
        except NoScriptError:  # a node that never saw the script (a restart, a failover): load it, once more
            await self._list.load()
            return await self._multi_page(keys, args)

    async def _multi_page(self, keys: list[str], args: list[Any]) -> tuple[list[Any], dict[bytes, bytes]]:
        pipe = self.client.pipeline(transaction=True)
        self._list.queue(pipe, keys=keys, args=args)
        pipe.hgetall(keys[1])
        page, by_token = await pipe.execute()
        return page, by_token

    async def write_snapshot(self, keyspace: IdentityKeyspace, dataset: str, *, writer: str) -> WriteSnapshot:
        """The dataset as a write planned in Python sees it: one atomic read (MULTI) of its sync count, every stored
        record (tombstones included) and ``writer``'s last committed write (see update_records.lua)."""
        async with backend():
            pipe = self.client.pipeline(transaction=True)
            pipe.hmget(keyspace.dataset(dataset), _SNAPSHOT_FIELDS)
            pipe.hgetall(keyspace.records(dataset))
            pipe.hget(keyspace.writers(dataset), writer)
            values, stored, last = await pipe.execute()
        meta = DatasetMeta.of(
            dataset, {name: text(value) for name, value in zip(_SNAPSHOT_FIELDS, values, strict=True) if value}
        )
        return WriteSnapshot(
            sync_count=meta.sync_count,
            version_vector=meta.version_vector,
            records={text(key): record_from_stored(text(key), raw) for key, raw in stored.items()} if meta.live else {},
            last_write=LastWrite.of(last) if last else None,
        )

    async def dataset_meta(self, keyspace: IdentityKeyspace, dataset: str) -> DatasetMeta:
        """The dataset's metadata: live, a deletion marker, or every default for a name never written."""
        async with backend():
            meta = await self.client.hgetall(keyspace.dataset(dataset))
        return DatasetMeta.of(dataset, _texts(meta))

    async def delete_dataset(self, keyspace: IdentityKeyspace, dataset: str, *, now_ms: int) -> DatasetMeta | None:
        """Deletes a live dataset; returns its metadata as it was, or None when there was no live dataset."""
        async with backend():
            meta = await self._delete(keys=keyspace.write_keys(dataset), args=[dataset, now_ms, keyspace.push_channel])
        return DatasetMeta.of(dataset, _pairs(meta)) if meta else None

    async def list_datasets(self, keyspace: IdentityKeyspace, *, after: str | None, limit: int) -> list[DatasetMeta]:
        """Metadata of up to ``limit`` live datasets named after ``after`` (all when None), in name order."""
        start = f"({after}" if after is not None else "-"
        async with backend():
            names = await self.client.zrangebylex(keyspace.datasets, start, "+", start=0, num=limit)
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(keyspace.dataset(text(name)))
            metas = await pipe.execute()
        return [DatasetMeta.of(text(name), _texts(meta)) for name, meta in zip(names, metas, strict=True)]

    async def identity_usage(self, keyspace: IdentityKeyspace) -> tuple[int, Usage]:
        """(live dataset count, usage) of one identity."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            pipe.zcard(keyspace.datasets)
            pipe.hgetall(keyspace.usage)
            count, usage = await pipe.execute()
        return int(count), Usage.of(_texts(usage))

    async def pool_sessions(self, identity_pool_id: str, shards: int) -> int:
        """Sync sessions of the pool, summed over its per-shard counters."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            for shard in range(shards):
                pipe.get(rediskeys.pool_sessions(identity_pool_id, shard))
            counts = await pipe.execute()
        return sum(int(count) for count in counts if count is not None)

    async def pool_members(
        self, identity_pool_id: str, shards: int, *, after: str | None = None
    ) -> AsyncIterator[list[str]]:
        """The pool's identity ids, shard by shard, in batches of at most 500 (never one long command). With
        ``after`` (an identity id: a resume cursor), only those that come after it in this order."""
        first = 0 if after is None else rediskeys.shard_of(after, shards)
        for shard in range(first, shards):
            key = rediskeys.pool_members(identity_pool_id, shard)
            start = f"({after}" if after is not None and shard == first else "-"
            while True:
                async with backend():
                    batch = [text(item) for item in await self.client.zrangebylex(key, start, "+", 0, 500)]
                if not batch:
                    break
                yield batch
                start = f"({batch[-1]}"

    async def usage_of(self, identities: Sequence[IdentityKeyspace]) -> list[Usage]:
        """The usage of each identity, in order (one pipeline)."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            for keyspace in identities:
                pipe.hgetall(keyspace.usage)
            replies = await pipe.execute()
        return [Usage.of(_texts(reply)) for reply in replies]

    async def purge_identity(self, keyspace: IdentityKeyspace) -> None:
        """Deletes every key of one identity (all in one slot, so one DEL)."""
        async with backend():
            names = [text(name) for name in await self.client.smembers(keyspace.every_dataset)]
            devices = [text(device) for device in await self.client.hkeys(keyspace.devices)]
            every_key = keyspace.all_keys(names, devices)
            await confirmed(self.client, every_key[0], lambda pipe: pipe.delete(*every_key))

    # --- identity pools ---------------------------------------------------------------------------------------------

    async def put_pool(self, identity_pool_id: str, description: dict[str, Any], *, create: bool) -> bool:
        """Stores a pool's description; with ``create`` only if new, else only if it exists. True if stored."""
        key = rediskeys.pool(identity_pool_id)
        encoded = orjson.dumps(description)
        async with backend():
            if create:
                (stored,) = await confirmed(self.client, key, lambda pipe: pipe.hsetnx(key, "desc", encoded))
                if stored:
                    await confirmed(
                        self.client, rediskeys.POOLS, lambda pipe: pipe.zadd(rediskeys.POOLS, {identity_pool_id: 0})
                    )
                return bool(stored)
            return bool(await self._replace_if_exists(keys=[key], args=["desc", encoded]))

    async def get_pool(self, identity_pool_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(description, Sync configuration) of a pool, or None. The configuration is ``{}`` until one is set."""
        async with backend():
            desc, config = await self.client.hmget(rediskeys.pool(identity_pool_id), ["desc", "sync"])
        if desc is None:
            return None
        return dict(orjson.loads(desc)), dict(orjson.loads(config)) if config else {}

    async def put_sync_configuration(self, identity_pool_id: str, config: dict[str, Any]) -> bool:
        """Stores a pool's Sync configuration (push sync, streams) if the pool exists. True if stored."""
        async with backend():
            stored = await self._replace_if_exists(
                keys=[rediskeys.pool(identity_pool_id)], args=["sync", orjson.dumps(config)]
            )
        return bool(stored)

    async def list_pools(self, *, after: str | None, limit: int) -> list[str]:
        start = f"({after}" if after is not None else "-"
        async with backend():
            ids = await self.client.zrangebylex(rediskeys.POOLS, start, "+", start=0, num=limit)
        return [text(pool_id) for pool_id in ids]

    async def delete_pool(self, identity_pool_id: str) -> bool:
        """Removes the pool itself and its bulk publish job (its identities' data is purged by the caller). True if
        it existed."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(rediskeys.pool(identity_pool_id))
            pipe.zrem(rediskeys.POOLS, identity_pool_id)
            pipe.delete(rediskeys.bulk_publish(identity_pool_id), rediskeys.bulk_publish_lease(identity_pool_id))
            removed, _, _ = await pipe.execute()
        return bool(removed)

    async def forget_pool_members(self, identity_pool_id: str, shards: int) -> None:
        """Deletes the pool's per-shard member sets and session counters."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            for shard in range(shards):
                pipe.delete(
                    rediskeys.pool_members(identity_pool_id, shard), rediskeys.pool_sessions(identity_pool_id, shard)
                )
            await pipe.execute()


def _standing_args(keyspace: IdentityKeyspace, standing: Standing | None) -> list[str | int]:
    """The scripts' three arguments of a folded identity check (pool, generation, revision; "" checks nothing)."""
    if standing is None:
        return ["", "", ""]
    if standing.identity_id != keyspace.identity_id:
        raise ValueError("a caller's standing is checked on its own identity only")
    return [standing.identity_pool_id, standing.generation, "" if standing.revision is None else standing.revision]


def _fence(client: RedisClient) -> str:
    """list_records.lua's ARGV[5]: fence the page when replicas must confirm what is answered."""
    return "1" if durability_of(client).replicas > 0 else "0"
