"""ImportTarget: writes what ``syncsvc import`` read from a Cognito Sync deployment into this one, so that devices
keep syncing against the new endpoint with the identity ids, sync counts and dates they hold.

It may touch: the pools (:class:`~syncsvc.identity.pools.PoolDirectory`, with its validation), identity profiles
and the login index (:class:`~syncsvc.store.identities.RedisIdentityStore`), the identities' data keys
(:class:`~syncsvc.kms.envelope.Envelope`) and the import's scripts (:class:`~syncsvc.store.imports.RedisImports`).

Decisions (each also where it is implemented):

* **Events.** A source event's Lambda ARN must be mapped to a trigger name of this deployment (``triggers``); unmapped
  ARNs raise :class:`UnmappedTriggersError` listing them all, before anything is written. A ``SyncConflict`` policy
  that needs no code (``reject``, ``last-writer-wins``: a syncsvc source) is kept as it is.
* **Logins whose subject is unknown** (``SourceIdentity.providers`` not covered by ``logins``) are stored as logins
  with the subject :data:`PENDING_SUBJECT` (""), and not in the login index. No verified login has an empty subject
  (Logins values are 1+ characters, an OIDC token without ``sub`` is refused), so such an entry matches no one and
  leads no GetId to the identity; yet the identity is *authenticated* (``IdentityProfile.authenticated``: it has
  logins), so guest credentials do not open it, and DescribeIdentity / ListIdentities report the provider. A later
  import that knows the subject replaces the entry. (One visible trace: LookupDeveloperIdentity lists "" for a
  developer provider imported so.)
* **Datasets** are written by one script each (``store/lua/import_dataset.lua``, whose header has the rules): an exact
  copy (source sync counts, dates, writers, tombstones; values and names sealed as UpdateRecords seals them), or,
  once devices wrote here, a merge: the source's records changed since the last pass go in as one new change here
  (the next sync count, so devices' cursors stay valid), except records devices changed here since the source last
  agreed with them (each record an import writes is marked so; a device's write drops the mark), which are conflicts,
  listed, never overwritten, and listed again by any later pass that brings another source change of them.
  Imported records carry a one-dot version vector ``{"syncsvc-import": their sync count}``: a device sending the
  vector it read here descends from it, and one that read an older import does not (a dataset replaced by a later
  pass is not silently overwritten by a stale vector). Exact copies go to no outbox (they are not new changes;
  BulkPublish streams them on request); merges do, when the pool streams, and wake push subscribers like any write.
  ``delta`` does not change the rules, which are safe on any pass: it makes an exact replacement announce itself to
  push subscribers, so devices connected here during the cut-over pull it.
* **Limits** are checked before anything is written: a source dataset over this deployment's limits raises
  LimitExceededError naming the identity and dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from syncsvc.clock import Clock
from syncsvc.config import Settings
from syncsvc.errors import InvalidParameterError, LimitExceededError, ResourceConflictError, ResourceNotFoundError
from syncsvc.identity.pools import IdentityPool, IdentityPoolSpec, PoolDirectory, SyncConfiguration
from syncsvc.kms.envelope import Envelope
from syncsvc.migration.model import SourceDataset, SourceIdentity, SourcePool, SourceRecord
from syncsvc.model import MAX_STORED_INTEGER, Limits, Login, Op, RecordPatch, check_dataset_name, check_identity_id
from syncsvc.pool_sync import CONFLICT_POLICIES
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store import RedisStore
from syncsvc.store.identities import RedisIdentityStore
from syncsvc.store.imports import Imported, ImportStatus, RedisImports, SourceState
from syncsvc.store.redis import encode_patches
from syncsvc.store.results import OverLimit
from syncsvc.triggers.events import SYNC_CONFLICT, SYNC_TRIGGER
from syncsvc.triggers.registry import TriggerError, TriggerRegistry, resolve_arn
from syncsvc.write_results import limit_error

#: The subject of a login whose provider the source named but whose subject it did not give (see the docstring).
PENDING_SUBJECT = ""
_EVENT_KINDS = (SYNC_TRIGGER, SYNC_CONFLICT)
_Model = TypeVar("_Model", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class DatasetOutcome:
    """What importing (or deleting) one dataset came to."""

    identity_id: str
    name: str
    #: "imported" (new here), "updated" (replaced or merged), "unchanged" (nothing written), or "conflict"
    #: (``conflicts`` changed on both sides and kept as they are here; other changes may have been written).
    status: ImportStatus
    #: The dataset's sync count here afterwards.
    sync_count: int
    #: Records written here.
    written: int = 0
    #: The record names changed on both sides, in name order.
    conflicts: tuple[str, ...] = ()


class UnmappedTriggersError(InvalidParameterError):
    """The source pool's Cognito Events name Lambda functions that ``triggers`` does not map."""

    def __init__(self, arns: list[str]) -> None:
        super().__init__(f"No trigger is mapped for the Lambda functions of the source's Cognito Events: {arns}")
        self.arns = tuple(arns)


def default_limits() -> Limits:
    """Cognito's limits, as ``Settings`` defaults them (without reading the environment)."""
    fields = Settings.model_fields
    return Limits(
        max_datasets=fields["max_datasets_per_identity"].default,
        max_records=fields["max_records_per_dataset"].default,
        max_bytes=fields["max_dataset_bytes"].default,
        max_value_bytes=fields["max_value_bytes"].default,
    )


class ImportTarget:
    """Writes a source pool's settings, identities and datasets here. Every method is safe to re-run."""

    def __init__(
        self,
        *,
        store: RedisStore,
        pools: PoolDirectory,
        envelope: Envelope,
        shards: int,
        clock: Clock,
        limits: Limits | None = None,
        registry: TriggerRegistry | None = None,
    ) -> None:
        """``limits``: this deployment's (``SyncService``'s, from Settings); Cognito's defaults when None.
        ``registry``: when given, every mapped trigger name must be registered in it."""
        self._store = store
        self._pools = pools
        self._envelope = envelope
        self._shards = shards
        self._clock = clock
        self._limits = limits or default_limits()
        self._registry = registry
        self._identities = RedisIdentityStore(store.client, shards=shards)
        self._imports = RedisImports(store.client, shards=shards)

    # --- the pool -----------------------------------------------------------------------------------------------------

    async def put_pool(
        self, pool: SourcePool, *, into: str | None = None, triggers: Mapping[str, str] | None = None
    ) -> str:
        """Creates the pool with the source's id (or updates ``into``, or the pool of that id when it exists) with
        the source's settings, Sync configuration and Cognito Events (Lambda ARN -> trigger name by ``triggers``).
        The pool's settings become the source's whole (as UpdateIdentityPool); configuration members and events the
        source does not give are left as they are here (as SetIdentityPoolConfiguration and SetCognitoEvents leave
        them). Everything is checked before anything is written. Returns the pool's id here."""
        pool_id = into or pool.identity_pool_id
        members = _members(pool.description, IdentityPoolSpec) | {"IdentityPoolId": pool_id}
        settings = _checked(IdentityPool, members, pool.identity_pool_id)
        sync = _members(pool.sync_configuration, SyncConfiguration) | {"Events": self._events(pool, triggers or {})}
        change = _checked(SyncConfiguration, {k: v for k, v in sync.items() if v}, pool.identity_pool_id)
        found = await self._store.get_pool(pool_id)
        if found is None and into is not None:
            raise ResourceNotFoundError(f"IdentityPool '{into}' not found.")
        SyncConfiguration.model_validate(found[1] if found else {}).merged(change)  # refused before writing
        created = found is None and await self._store.put_pool(pool_id, settings.wire(), create=True)
        if not created:  # it exists (or was made meanwhile): its settings become the source's
            await self._pools.update(settings)
        if change.model_dump(exclude_none=True):
            await self._pools.configure(pool_id, change)
        return pool_id

    def _events(self, pool: SourcePool, triggers: Mapping[str, str]) -> dict[str, str]:
        unknown = sorted(kind for kind in pool.events if kind not in _EVENT_KINDS)
        if unknown:
            raise InvalidParameterError(f"Unknown Cognito Events {unknown}; the event types are {list(_EVENT_KINDS)}")
        mapped: dict[str, str] = {}
        unmapped = []
        for kind, arn in pool.events.items():
            if kind == SYNC_CONFLICT and arn in CONFLICT_POLICIES:  # a policy, not code: kept as it is
                mapped[kind] = arn
            elif arn in triggers:
                mapped[kind] = triggers[arn]
            elif arn:
                unmapped.append(arn)
        if unmapped:
            raise UnmappedTriggersError(sorted(set(unmapped)))
        return {kind: self._trigger(kind, name) for kind, name in mapped.items()}

    def _trigger(self, kind: str, name: str) -> str:
        """The trigger name stored for an event (a name, or a Lambda ARN ending in one: as SetCognitoEvents)."""
        if kind == SYNC_CONFLICT and name in CONFLICT_POLICIES:
            return name
        if self._registry is None:
            return resolve_arn(name)
        try:
            return self._registry.resolve(name)
        except TriggerError:
            raise InvalidParameterError(f"Events.{kind}: no trigger named '{name}' is registered here") from None

    # --- identities ---------------------------------------------------------------------------------------------------

    async def put_identity(self, pool_id: str, identity: SourceIdentity) -> None:
        """Registers the identity with its id and dates, its known logins linked in the login index (a login linked
        to another identity: ResourceConflictError naming it, nothing written), its providers of unknown subject
        kept as pending logins (see the module docstring). Re-running with the same input changes nothing; a login
        the source gained since is added, none is ever removed."""
        identity_id = identity.identity_id
        check_identity_id(identity_id)
        await self._pools.require(pool_id)
        known = list(dict.fromkeys((provider, subject) for provider, subject in identity.logins))
        if any(not provider or not subject for provider, subject in known):
            raise InvalidParameterError(f"Identity {identity_id}: a login needs a provider and a subject")
        pending = sorted(set(identity.providers) - {provider for provider, _ in known} - {""})
        profile = await self._identities.get(identity_id)
        if profile is not None and profile.identity_pool_id != pool_id:
            raise ResourceConflictError(f"Identity {identity_id} exists in identity pool {profile.identity_pool_id}")
        owners = await self._identities.owners(pool_id, known)
        for login, owner in zip(known, owners, strict=True):
            if owner is None:
                owner = await self._identities.claim(pool_id, login, identity_id)
            if owner != identity_id:
                raise ResourceConflictError(f"{_login(login)} is already linked to identity {owner}, not {identity_id}")
        logins = [*known, *((provider, PENDING_SUBJECT) for provider in pending)]
        status, other = await self._imports.put_profile(
            pool_id, identity_id, created_ms=identity.created_ms, modified_ms=identity.modified_ms, logins=logins
        )
        if status == "other":
            raise ResourceConflictError(f"Identity {identity_id} exists in identity pool {other}")

    # --- datasets -----------------------------------------------------------------------------------------------------

    async def put_dataset(self, pool_id: str, dataset: SourceDataset, *, delta: bool = False) -> DatasetOutcome:
        """Imports one dataset whole, or merges what changed at the source since the last import (see the module
        docstring and import_dataset.lua). LimitExceededError when the source dataset is over this deployment's
        limits, InvalidParameterError when it is not consistent; nothing is written then."""
        check_identity_id(dataset.identity_id)
        check_dataset_name(dataset.name)
        config = await self._pools.configuration(pool_id)
        self._check(dataset)
        keyspace = IdentityKeyspace.of(pool_id, dataset.identity_id, self._shards)
        cipher = await self._envelope.cipher(keyspace)
        patches = [
            RecordPatch(
                Op.REPLACE if record.value is not None else Op.REMOVE,
                record.key,
                record.value,
                record.sync_count,
                record.device_last_modified_ms,
            )
            for record in dataset.records
        ]
        limits = self._limits
        outcome = await self._imports.import_dataset(
            keyspace,
            dataset.name,
            SourceState(dataset.sync_count, dataset.created_ms, dataset.last_modified_ms, dataset.last_modified_by),
            encoded_records=encode_patches(patches, cipher, dataset.name),
            stamps=[(record.last_modified_ms, record.last_modified_by) for record in dataset.records],
            limits=(limits.max_datasets, limits.max_records, limits.max_bytes),
            now_ms=self._clock.now_ms(),
            announce=delta,
            topic=config.streaming_topic,
        )
        if isinstance(outcome, OverLimit):
            raise LimitExceededError(f"Identity {dataset.identity_id}: {limit_error(dataset.name, outcome).message}")
        return await self._outcome(keyspace, dataset.name, outcome)

    async def delete_dataset(self, pool_id: str, identity_id: str, name: str, *, delta: bool) -> DatasetOutcome:
        """The source deleted a dataset an earlier pass imported: deleted here as DeleteDataset deletes (a marker,
        so devices learn of it), unless it changed here since that import ("conflict", the names changed here
        listed). "unchanged" when no import wrote it or it is already deleted. ``delta`` changes nothing: a deletion
        is announced to push subscribers on every pass, as DeleteDataset's is."""
        check_identity_id(identity_id)
        check_dataset_name(name)
        await self._pools.require(pool_id)
        keyspace = IdentityKeyspace.of(pool_id, identity_id, self._shards)
        return await self._outcome(
            keyspace, name, await self._imports.delete_imported(keyspace, name, now_ms=self._clock.now_ms())
        )

    async def read_dataset(self, pool_id: str, identity_id: str, name: str) -> SourceDataset | None:
        """The dataset as stored here, in the source's shape: names and values opened, tombstones included, records
        in (sync count, name) order; None when it is not live here."""
        check_identity_id(identity_id)
        check_dataset_name(name)
        keyspace = IdentityKeyspace.of(pool_id, identity_id, self._shards)
        meta, stored = await self._imports.read_dataset(keyspace, name)
        if not meta.live:
            return None
        cipher = await self._envelope.cipher(keyspace, create=False) if stored else None
        records = cipher.open_records(name, stored) if cipher else []
        records.sort(key=lambda record: (record.sync_count, record.key))
        return SourceDataset(
            identity_id=identity_id,
            name=name,
            sync_count=meta.sync_count,
            created_ms=meta.created_ms,
            last_modified_ms=meta.modified_ms,
            last_modified_by=meta.modified_by or "",
            records=tuple(
                SourceRecord(
                    r.key, r.value, r.sync_count, r.last_modified_ms, r.last_modified_by, r.device_last_modified_ms
                )
                for r in records
            ),
        )

    async def list_dataset_names(self, pool_id: str, identity_id: str) -> list[str]:
        """The identity's live datasets here, in name order."""
        check_identity_id(identity_id)
        return await self._imports.live_datasets(IdentityKeyspace.of(pool_id, identity_id, self._shards))

    # --- helpers ------------------------------------------------------------------------------------------------------

    async def _outcome(self, keyspace: IdentityKeyspace, name: str, imported: Imported) -> DatasetOutcome:
        conflicts: list[str] = []
        if imported.conflicts:
            cipher = await self._envelope.cipher(keyspace, create=False)
            conflicts = [cipher.open_name(name, item.key, item.sealed_name) for item in imported.conflicts]
        return DatasetOutcome(
            identity_id=keyspace.identity_id,
            name=name,
            status=imported.status,
            sync_count=imported.sync_count,
            written=imported.written,
            conflicts=tuple(sorted(conflicts)),
        )

    def _check(self, dataset: SourceDataset) -> None:
        """Consistency and this deployment's limits, before anything is sealed or written."""
        where = f"Dataset '{dataset.name}' of identity {dataset.identity_id}"
        limits = self._limits
        numbers = (dataset.sync_count, dataset.created_ms, dataset.last_modified_ms)
        if not all(0 <= number <= MAX_STORED_INTEGER for number in numbers):
            raise InvalidParameterError(f"{where}: its sync count or a date is out of range")
        if len({record.key for record in dataset.records}) < len(dataset.records):
            raise InvalidParameterError(f"{where}: a record name is given twice")
        count = size = 0
        for record in dataset.records:
            _check_record(where, record, dataset.sync_count, limits)
            if record.value is not None:
                count, size = count + 1, size + len(record.key.encode()) + len(record.value.encode())
        if count > limits.max_records:
            raise LimitExceededError(f"{where} holds {count} records; this deployment's limit is {limits.max_records}")
        if size > limits.max_bytes:
            raise LimitExceededError(f"{where} holds {size} bytes; this deployment's limit is {limits.max_bytes}")


def _check_record(where: str, record: SourceRecord, dataset_sync_count: int, limits: Limits) -> None:
    name = f"{where}: record '{record.key[:100]}'"
    if not record.key or not 0 <= record.sync_count <= dataset_sync_count:
        raise InvalidParameterError(f"{name} has no name, or a sync count above its dataset's")
    dates = (record.last_modified_ms, record.device_last_modified_ms or 0)
    if not all(0 <= date <= MAX_STORED_INTEGER for date in dates):
        raise InvalidParameterError(f"{name} has a date out of range")
    if len(record.key) > limits.max_key_length:
        raise LimitExceededError(f"{name}: its name is longer than {limits.max_key_length} characters")
    if record.value is not None and len(record.value.encode()) > limits.max_value_bytes:
        raise LimitExceededError(f"{name}: its value is over {limits.max_value_bytes} bytes")


def _members(given: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """The members of a source's answer that ``model`` accepts (the id, ResponseMetadata and the like left out)."""
    return {name: value for name, value in given.items() if name in model.model_fields and value is not None}


def _checked(model: type[_Model], members: dict[str, Any], source: str) -> _Model:
    try:
        return model.model_validate(members)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidParameterError(f"The settings of source pool {source} do not fit here: {problems}") from None


def _login(login: Login) -> str:
    provider, subject = login
    return f"The login of '{provider}' with subject '{subject[:128]}'"
