"""The developer hooks of a write: the pool's conflict policy and its sync trigger, run between an UpdateRecords
request and its commit.

A write that needs neither (no trigger for this caller, conflict policy ``reject``) never comes here: the service
commits it with one script call. A hooked write is planned on a snapshot of the dataset and committed only if the
dataset has not changed since (``planned_on`` of update_records.lua); a change in between plans it again, running
the hooks again, at most :data:`ATTEMPTS` times in all, after which the device gets ResourceConflictException and
syncs again.

The order, on each attempt:

1. a re-send of the writer's last committed request is answered with its first result (update_records.lua's rule:
   only when the request is now stale), and no hook runs;
2. stale patches go to the conflict policy: ``reject`` answers ResourceConflictException with the stored records,
   ``last-writer-wins`` keeps the later of the two versions, a registered handler decides (see ``spec.py``);
3. the sync trigger sees the write as resolved and its answer is what is stored (``events.planned_writes``);
4. the commit checks every limit on what is stored, as for any write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from syncsvc.clock import Clock
from syncsvc.errors import ResourceConflictError
from syncsvc.kms.envelope import IdentityCipher
from syncsvc.model import Caller, Limits, RecordPatch, WriteResult
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store import RedisStore
from syncsvc.store.redis import WriteSnapshot, encode_patches
from syncsvc.store.results import Stale
from syncsvc.triggers import events
from syncsvc.triggers.events import EventSource
from syncsvc.triggers.runner import TriggerRunner
from syncsvc.triggers.spec import LAST_WRITER_WINS, REJECT, CognitoIdentity
from syncsvc.write_results import record_conflict, result_of, written

#: Plans of one write, at most, while other writes keep changing its dataset.
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Hooks:
    """What a write runs: the sync trigger's name (None: no trigger) and the conflict policy (``reject``,
    ``last-writer-wins`` or a registered handler's name)."""

    trigger: str | None = None
    conflicts: str = REJECT

    @classmethod
    def of(cls, pool_events: dict[str, str], caller: Caller, *, developer_writes: bool) -> Hooks:
        """The hooks of a pool's Cognito Events for a write by ``caller``. As in Cognito, the sync trigger runs for
        writes made with identity credentials; ``developer_writes`` (SYNCSVC_TRIGGERS_ON_DEVELOPER_WRITES) adds
        writes made with developer credentials. The conflict policy applies to every write."""
        runs_trigger = not caller.is_developer or developer_writes
        return cls(
            trigger=pool_events.get(events.SYNC_TRIGGER) if runs_trigger else None,
            conflicts=pool_events.get(events.SYNC_CONFLICT) or REJECT,
        )

    @property
    def needed(self) -> bool:
        return self.trigger is not None or self.conflicts != REJECT


@dataclass(frozen=True, slots=True)
class HookedWrite:
    """One UpdateRecords request, checked and ready to plan (see ``SyncService.update_records``)."""

    keyspace: IdentityKeyspace
    source: EventSource
    patches: Sequence[RecordPatch]
    writer: str
    fingerprint: str
    topic: str | None
    #: Opens and seals the identity's record values (values at rest are encrypted).
    cipher: IdentityCipher


class WriteHooks:
    """Plans and commits hooked writes; see the module docstring for the order of things."""

    def __init__(self, store: RedisStore, runner: TriggerRunner, limits: Limits, clock: Clock) -> None:
        self._store = store
        self._runner = runner
        self._limits = limits
        self._clock = clock

    async def commit(self, write: HookedWrite, hooks: Hooks) -> WriteResult:
        dataset = write.source.dataset
        for _ in range(ATTEMPTS):
            snapshot = _opened(await self._store.write_snapshot(write.keyspace, dataset, writer=write.writer), write)
            stale = [patch for patch in write.patches if events.is_stale(patch, snapshot.records.get(patch.key))]
            last = snapshot.last_write
            if stale and last is not None and last.fingerprint == write.fingerprint:
                return written(dataset, last.result, write.cipher)
            planned = await self._plan(write, hooks, snapshot, stale)
            if not planned:  # every change was dropped by the hooks: nothing to commit
                return WriteResult(records=[], sync_count=snapshot.sync_count)
            outcome = await self._store.update_records(
                write.keyspace,
                dataset,
                writer=write.writer,
                encoded_patches=encode_patches(planned, write.cipher, dataset),
                fingerprint=write.fingerprint,
                now_ms=self._clock.now_ms(),
                limits=self._limits,
                topic=write.topic,
                planned_on=snapshot.sync_count,
            )
            if not isinstance(outcome, Stale):
                return result_of(dataset, outcome, write.cipher, planned)
        raise ResourceConflictError(
            f"Dataset '{dataset}' changed {ATTEMPTS} times while its hooks ran; sync again and retry"
        )

    async def _plan(
        self, write: HookedWrite, hooks: Hooks, snapshot: WriteSnapshot, stale: list[RecordPatch]
    ) -> list[RecordPatch]:
        patches = list(write.patches)
        if stale:
            resolved = await self._resolve(write, hooks.conflicts, snapshot, stale)
            patches = events.resolved_patches(patches, resolved, snapshot.records)
        if hooks.trigger is None or not patches:
            return patches
        event = events.sync_trigger_event(write.source, patches, snapshot.records)
        answer = await self._runner.invoke(hooks.trigger, event, identity=_identity(write.source))
        return events.planned_writes(hooks.trigger, answer, write.source, patches, snapshot.records, self._limits)

    async def _resolve(
        self, write: HookedWrite, policy: str, snapshot: WriteSnapshot, stale: list[RecordPatch]
    ) -> dict[str, str | None]:
        """Stale key → the value to store (None deletes); a stale key left out keeps its stored record."""

        def conflict(note: str = "") -> ResourceConflictError:
            pairs = [(patch.key, patch.sync_count, snapshot.records.get(patch.key)) for patch in stale]
            return record_conflict(
                pairs, sync_count=snapshot.sync_count, version_vector=snapshot.version_vector, note=note
            )

        if policy == REJECT:
            raise conflict()
        if policy == LAST_WRITER_WINS:
            return events.last_writer_wins(stale, snapshot.records, self._clock.now_ms())
        event = events.conflict_event(write.source, stale, snapshot.records)
        answer = await self._runner.invoke(
            policy,
            event,
            identity=_identity(write.source),
            label="Conflict handler",
            on_rejected=lambda message: conflict(f"conflict handler '{policy}': {message}"),
        )
        return events.resolutions(policy, answer, stale, self._limits)


def _opened(snapshot: WriteSnapshot, write: HookedWrite) -> WriteSnapshot:
    """The snapshot with its records' names and values opened, by name (the hooks see them as devices wrote them)."""
    dataset = write.source.dataset
    records = write.cipher.open_records(dataset, list(snapshot.records.values()))
    return replace(snapshot, records={record.key: record for record in records})


def _identity(source: EventSource) -> CognitoIdentity:
    return CognitoIdentity(source.identity_id, source.identity_pool_id)
