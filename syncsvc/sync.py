"""The Cognito Sync use-cases of an identity's data: pull, push, describe, delete, usage, and merges (pool-wide
operations: ``syncsvc.pool_sync``).

It holds a caller to its own identity's data (``syncsvc.access.DataAccess``; which operations a caller may call at
all is the operation tables' rule), checks the pool and the inputs, asks the store, and turns the store's outcomes
into domain results or domain errors. It knows nothing of HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from syncsvc import metrics
from syncsvc.access import DataAccess
from syncsvc.clock import Clock
from syncsvc.config import Settings
from syncsvc.errors import (
    InvalidParameterError,
    LimitExceededError,
    RateExceededError,
    ResourceNotFoundError,
)
from syncsvc.identity.pools import PoolDirectory
from syncsvc.kms.envelope import Envelope
from syncsvc.model import (
    Caller,
    Dataset,
    DatasetState,
    IdentityUsage,
    Limits,
    Op,
    Record,
    RecordPatch,
    WriteResult,
    check_dataset_name,
)
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store import RedisStore
from syncsvc.store.rates import Rate, RedisRates
from syncsvc.store.redis import encode_patches
from syncsvc.store.results import DatasetMeta, OverLimit
from syncsvc.tokens import TokenSigner
from syncsvc.triggers.events import EventSource
from syncsvc.triggers.runner import TriggerRunner
from syncsvc.write_hooks import HookedWrite, Hooks, WriteHooks
from syncsvc.write_results import limit_error, result_of

_SESSION = "SyncSessionToken"
_MAX_LIST_RECORDS = 1024
_MAX_LIST_DATASETS = 1024


@dataclass(frozen=True, slots=True)
class ListRecordsResult:
    dataset: DatasetState
    records: list[Record]
    #: True when the dataset was deleted after the caller's lastSyncCount: the caller should drop its copy.
    deleted_after_requested: bool
    session_token: str
    next_token: str | None


def writer_of(identity_id: str, device_id: str | None, client_context: str | None) -> str:
    """The version-vector writer of a write: the DeviceId, else the Client-Context installation id, else the
    identity itself (so every device that sends neither shares one writer entry)."""
    if device_id:
        return device_id
    if client_context:
        try:
            context = orjson.loads(base64.b64decode(client_context, validate=True))
            installation = context.get("client", {}).get("installation_id")
        except (binascii.Error, ValueError, AttributeError):
            installation = None
        if isinstance(installation, str) and 1 <= len(installation) <= 256:
            return installation
    return identity_id


class SyncService:
    """The Cognito Sync operations, callable from any front end."""

    def __init__(
        self,
        store: RedisStore,
        pools: PoolDirectory,
        signer: TokenSigner,
        settings: Settings,
        runner: TriggerRunner,
        envelope: Envelope,
        access: DataAccess,
        clock: Clock,
        rates: RedisRates,
    ) -> None:
        self._access = access
        self._rates = rates
        self._clock = clock
        self._store = store
        self._pools = pools
        self._signer = signer
        self._settings = settings
        self._limits = Limits(
            max_datasets=settings.max_datasets_per_identity,
            max_records=settings.max_records_per_dataset,
            max_bytes=settings.max_dataset_bytes,
            max_value_bytes=settings.max_value_bytes,
        )
        self._envelope = envelope
        self._hooks = WriteHooks(store, runner, self._limits, clock)

    # --- records -----------------------------------------------------------------------------------------------------

    async def list_records(
        self,
        caller: Caller,
        pool_id: str,
        identity_id: str,
        dataset: str,
        *,
        last_sync_count: int | None,
        max_results: int | None,
        next_token: str | None,
        session_token: str | None,
    ) -> ListRecordsResult:
        """ListRecords: the records changed after ``last_sync_count`` (all when absent), one page at a time."""
        check_dataset_name(dataset)
        keyspace = await self._access.authorize(caller, pool_id, identity_id)
        since = _non_negative("LastSyncCount", last_sync_count or 0)
        limit = page_size(max_results, default=_MAX_LIST_RECORDS, most=_MAX_LIST_RECORDS)
        bound = {"p": pool_id, "i": identity_id, "d": dataset}
        cursor = None
        if next_token:
            claims = self._signer.open("ListRecords", next_token, name="NextToken")
            if {k: claims.get(k) for k in bound} != bound:
                raise InvalidParameterError("NextToken not valid for these inputs")
            since, cursor = int(claims["n"]), str(claims["c"])
        new_session = not session_token and not next_token  # a session starts on its first page
        if session_token:
            self.check_session(session_token, pool_id, identity_id, dataset)
        else:
            session_token = self._signer.seal(_SESSION, bound, self._settings.sync_session_ttl_seconds)
        state, stored, cursor = await self._store.list_records(
            keyspace,
            dataset,
            after_sync_count=since,
            cursor=cursor,
            limit=limit,
            new_session=new_session,
            standing=caller.standing,
        )
        cipher = await self._envelope.cipher(keyspace) if stored else None
        records = cipher.open_records(dataset, stored) if cipher else []
        # Pages follow the change log's order: SyncCount, then the names as stored (tokens, in no meaningful order);
        # within a page, records that share a SyncCount are given by name.
        records.sort(key=lambda record: (record.sync_count, record.key))
        next_out = None
        if cursor is not None:
            next_out = self._signer.seal("ListRecords", {**bound, "n": since, "c": cursor})
        return ListRecordsResult(
            dataset=state,
            records=records,
            deleted_after_requested=0 < since < state.purged_at,
            session_token=session_token,
            next_token=next_out,
        )

    def check_session(self, token: str, pool_id: str, identity_id: str, dataset: str) -> None:
        claims = self._signer.open(_SESSION, token, name="SyncSessionToken")
        if (claims.get("p"), claims.get("i"), claims.get("d")) != (pool_id, identity_id, dataset):
            raise InvalidParameterError("SyncSessionToken not valid for these inputs")

    async def update_records(
        self,
        caller: Caller,
        pool_id: str,
        identity_id: str,
        dataset: str,
        *,
        patches: Sequence[RecordPatch],
        session_token: str,
        device_id: str | None,
        client_context: str | None,
    ) -> WriteResult:
        """UpdateRecords: applies every patch or none; raises RecordConflictError, LimitExceededError, …"""
        check_dataset_name(dataset)
        keyspace = await self._access.authorize(caller, pool_id, identity_id)
        self.check_session(session_token, pool_id, identity_id, dataset)
        self._check_patches(patches)
        if not patches:  # nothing to write: no new sync count, no change to stream
            await self._store.require_standing(keyspace, caller.standing)
            meta = await self._store.dataset_meta(keyspace, dataset)
            return WriteResult(records=[], sync_count=meta.sync_count)
        await self._within_write_rates(pool_id, identity_id)
        writer = writer_of(identity_id, device_id, client_context)
        fingerprint = hashlib.sha256(writer.encode() + b"\0" + encode_patches(patches)).hexdigest()
        cipher = await self._envelope.cipher(keyspace)
        config = await self._pools.configuration(pool_id)
        hooks = Hooks.of(config.Events or {}, caller, developer_writes=self._settings.triggers_on_developer_writes)
        if hooks.needed:
            await self._store.require_standing(keyspace, caller.standing)
            source = EventSource(self._settings.region, pool_id, identity_id, dataset)
            write = HookedWrite(keyspace, source, patches, writer, fingerprint, config.streaming_topic, cipher)
            return await self._hooks.commit(write, hooks)
        outcome = await self._store.update_records(
            keyspace,
            dataset,
            writer=writer,
            encoded_patches=encode_patches(patches, cipher, dataset),
            fingerprint=fingerprint,
            now_ms=self._clock.now_ms(),
            limits=self._limits,
            topic=config.streaming_topic,
            standing=caller.standing,
        )
        return result_of(dataset, outcome, cipher, patches)

    async def _within_write_rates(self, pool_id: str, identity_id: str) -> None:
        """Counts a write (UpdateRecords with patches, DeleteDataset) against the identity's and the pool's write
        rates; RateExceededError, before anything is written, when it is one too many. Both off (0) by default: no
        counting, no round trip."""
        exceeded = await self._rates.exceeded(
            [
                Rate(identity_id, "IdentityWrites", self._settings.writes_per_identity_per_second),
                Rate(pool_id, "PoolWrites", self._settings.writes_per_pool_per_second),
            ],
            now_ms=self._clock.now_ms(),
        )
        if exceeded is not None:
            metrics.RATE_LIMITED.labels(exceeded.operation).inc()
            whose = "identity" if exceeded.operation == "IdentityWrites" else "identity pool"
            raise RateExceededError(f"Rate exceeded: at most {exceeded.per_second} writes per second per {whose}")

    def _check_patches(self, patches: Sequence[RecordPatch]) -> None:
        seen: set[str] = set()
        for index, patch in enumerate(patches):
            where = f"RecordPatches[{index}]"
            if patch.key in seen:
                raise InvalidParameterError(f"{where}: key '{patch.key[:100]}' appears more than once")
            seen.add(patch.key)
            if len(patch.key) > self._limits.max_key_length:
                raise LimitExceededError(
                    f"{where}: the key is {len(patch.key)} characters; the limit is {self._limits.max_key_length}"
                )
            if patch.op is Op.REPLACE:
                if patch.value is None:
                    raise InvalidParameterError(f"{where}: a replace needs a Value (use Op 'remove' to delete)")
                size = len(patch.value.encode())
                if size > self._limits.max_value_bytes:
                    raise LimitExceededError(
                        f"{where}: the value is {size} bytes; the limit is {self._limits.max_value_bytes}"
                    )

    # --- datasets ----------------------------------------------------------------------------------------------------

    async def describe_dataset(self, caller: Caller, pool_id: str, identity_id: str, dataset: str) -> Dataset:
        check_dataset_name(dataset)
        keyspace = await self._access.authorize(caller, pool_id, identity_id)
        meta = await self._store.dataset_meta(keyspace, dataset)
        if not meta.live:
            raise ResourceNotFoundError(f"Dataset '{dataset}' does not exist.")
        return _dataset(identity_id, meta)

    async def delete_dataset(self, caller: Caller, pool_id: str, identity_id: str, dataset: str) -> Dataset:
        check_dataset_name(dataset)
        keyspace = await self._access.authorize(caller, pool_id, identity_id)
        await self._within_write_rates(pool_id, identity_id)
        meta = await self._store.delete_dataset(keyspace, dataset, now_ms=self._clock.now_ms())
        if meta is None:
            raise ResourceNotFoundError(f"Dataset '{dataset}' does not exist.")
        return _dataset(identity_id, meta)

    async def list_datasets(
        self,
        caller: Caller,
        pool_id: str,
        identity_id: str,
        *,
        max_results: int | None,
        next_token: str | None,
    ) -> tuple[list[Dataset], str | None]:
        keyspace = await self._access.authorize(caller, pool_id, identity_id)
        limit = page_size(max_results, default=64, most=_MAX_LIST_DATASETS)
        after = None
        if next_token:
            claims = self._signer.open("ListDatasets", next_token, name="NextToken")
            if (claims.get("p"), claims.get("i")) != (pool_id, identity_id):
                raise InvalidParameterError("NextToken not valid for these inputs")
            after = str(claims["a"])
        metas = await self._store.list_datasets(keyspace, after=after, limit=limit + 1)
        more = len(metas) > limit
        page = [_dataset(identity_id, meta) for meta in metas[:limit]]
        token = None
        if more:
            token = self._signer.seal("ListDatasets", {"p": pool_id, "i": identity_id, "a": page[-1].name})
        return page, token

    # --- usage -------------------------------------------------------------------------------------------------------

    async def describe_identity_usage(self, caller: Caller, pool_id: str, identity_id: str) -> IdentityUsage:
        keyspace = await self._access.authorize(caller, pool_id, identity_id)
        count, usage = await self._store.identity_usage(keyspace)
        return IdentityUsage(
            identity_pool_id=pool_id,
            identity_id=identity_id,
            dataset_count=count,
            storage_bytes=usage.storage_bytes,
            modified_ms=usage.modified_ms,
        )

    # --- merges -------------------------------------------------------------------------------------------------------

    async def merge_datasets(self, pool_id: str, source_id: str, destination_id: str) -> list[str]:
        """Copies every live dataset of ``source_id`` into ``destination_id`` as ``<name>.<source id>`` (Cognito's
        merged datasets, reported by ListRecords in MergedDatasetNames). Each copy is one atomic write; a copy that
        already exists (a merge retried after a crash) is kept as it is. Checks the dataset limit first, so a merge
        that cannot fit copies nothing."""
        shards = self._settings.shards
        source, destination = (
            IdentityKeyspace.of(pool_id, source_id, shards),
            IdentityKeyspace.of(pool_id, destination_id, shards),
        )
        names = [meta.name for meta in await self._store.list_datasets(source, after=None, limit=100_000)]
        present = {meta.name for meta in await self._store.list_datasets(destination, after=None, limit=100_000)}
        total = len(present | {merged_name(name, source_id) for name in names})
        if total > self._limits.max_datasets:
            raise LimitExceededError(
                f"Merging would give identity {destination_id} {total} datasets; "
                f"the limit is {self._limits.max_datasets}"
            )
        topic = (await self._pools.configuration(pool_id)).streaming_topic
        merged = []
        source_cipher, destination_cipher = (
            await self._envelope.cipher(source),
            await self._envelope.cipher(destination),
        )
        for name in names:
            target = merged_name(name, source_id)
            records = source_cipher.open_records(name, await self._all_live_records(source, name))
            patches = [RecordPatch(Op.REPLACE, r.key, r.value, 0, r.device_last_modified_ms) for r in records]
            outcome = await self._store.update_records(
                destination,
                target,
                writer=f"merge:{source_id}",
                encoded_patches=encode_patches(patches, destination_cipher, target),
                fingerprint=hashlib.sha256(encode_patches(patches)).hexdigest(),
                now_ms=self._clock.now_ms(),
                limits=self._limits,
                topic=topic,
            )
            if isinstance(outcome, OverLimit):
                raise limit_error(target, outcome)
            merged.append(target)
        return merged

    async def _all_live_records(self, keyspace: IdentityKeyspace, dataset: str) -> list[Record]:
        records: list[Record] = []
        cursor = None
        while True:
            _, page, cursor = await self._store.list_records(keyspace, dataset, cursor=cursor, limit=_MAX_LIST_RECORDS)
            records += [record for record in page if record.value is not None]
            if cursor is None:
                return records


def merged_name(name: str, source_id: str) -> str:
    """``<name>.<source identity id>``, with the name shortened when needed to stay within 128 characters."""
    return f"{name[: 128 - len(source_id) - 1]}.{source_id}"


# --- helpers --------------------------------------------------------------------------------------------------------


def page_size(max_results: int | None, *, default: int, most: int) -> int:
    """MaxResults: ``default`` when absent; 0 or less is invalid (not "absent"); more than ``most`` is ``most``."""
    if max_results is None:
        return default
    if max_results < 1:
        raise InvalidParameterError(f"MaxResults must be at least 1, not {max_results}")
    return min(max_results, most)


def _non_negative(name: str, value: int) -> int:
    if value < 0:
        raise InvalidParameterError(f"{name} must not be negative, not {value}")
    return value


def _dataset(identity_id: str, meta: DatasetMeta) -> Dataset:
    return Dataset(
        identity_id=identity_id,
        name=meta.name,
        created_ms=meta.created_ms,
        modified_ms=meta.modified_ms,
        modified_by=meta.modified_by or "",
        storage_bytes=meta.storage_bytes,
        num_records=meta.record_count,
        sync_count=meta.sync_count,
        version_vector=meta.version_vector,
    )
