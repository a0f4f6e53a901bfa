"""Identity changes and merged datasets: what the local copy becomes when the device's identity changes, and how the
merged copies of another identity's datasets are folded into this identity's own.

When a guest G signs in with a login another identity D already has, the server merges G into D: each dataset
``<name>`` of G is copied into D as ``<name>.<G>`` (Cognito's merged datasets; ListRecords of D's ``<name>``
reports them in MergedDatasetNames) and G is deleted. The same copies arrive after MergeDeveloperIdentities.

**The local copy, on an identity change (G → D): rebase.** Its sync counts were G's and mean nothing for D's
datasets, so none survives: every dataset restarts at last sync count 0. Nothing of G's is lost either:

* each dataset's records, exactly as they were (synced, unsynced, removals), are kept aside under the dataset's
  merged name (``LocalState.unfolded[name]["<name>.<G>"]``): they are the newest state of G's data, newer than the
  server's copy by any change this device had not pushed yet;
* the dataset itself keeps G's live values for reading, as unmodified records of SyncCount 0 (known locally, not
  on D's server): the next pull of D's ``<name>`` replaces those D also has, and the fold below pushes the others;
* a dataset deleted locally and not yet on the server is kept aside as deleted: its merged copy is deleted
  without being folded, and D's own dataset of that name is left alone;
* the device id and subscriptions were G's: register the device and subscribe again.

**Merged copies: folded by ``synchronize``, automatically.** When the sync of ``<name>`` finds merged copies
(reported by its pull, or kept aside by a rebase), it folds each into ``<name>`` right after its pull and before its
push, then deletes the copy on the server once the push has succeeded. Automatic because a merged copy is of no use
as it is (an app reads ``<name>``; the copy counts against the 20-dataset limit of the identity; it is reported only
to the pull of ``<name>``), and the sync that sees it already holds the dataset's lock and a fresh pull, so the fold
costs one ListRecords per copy and no extra UpdateRecords. ``SyncClient(merge_policy=None)`` turns it off (the names
are then only reported, as before); :meth:`SyncClient.merge_datasets` folds on demand.

The fold of one copy (G's newest state: the server's copy, overlaid with the copy kept aside, the later write of each
key winning) into the local ``<name>``, which has just been pulled:

* a key only in the copy is added, as a local change, and pushed;
* a key both sides have with the same value: nothing (pushed if the local record is a rebased one, not yet on D);
* a key with different values is a :class:`MergeConflict`, given to the merge policy. The default,
  :func:`fold_last_writer_wins`, keeps the value written last on its device: DeviceLastModifiedDate, which the
  server's copy keeps from the original write (its LastModifiedDate is the time of the merge, which would make the
  copy win every key); a tie keeps the local value, which D's other devices already have;
* a removal in the copy removes nothing: G's removals are of G's records, never of D's.

The fold is idempotent: folding the same copy again changes nothing (every key it added or chose now holds the copy's
value; every key where the local value won still wins), so a crash anywhere — before the push, between the push and
the deletion of the copy — is repaired by the next sync, which folds again (a no-op), pushes what was not pushed, and
deletes the copy. A copy is deleted only after a push carrying its fold succeeded, so nothing is lost; records are
keyed, so nothing is duplicated. A policy of one's own should decide from the two records alone, so that a fold
repeated after a crash decides the same way.

This module is pure (no I/O): the sync run (:mod:`syncsvc.client.algorithm`) makes the calls, SyncClient the
identity change.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from syncsvc.client.conflicts import Resolution
from syncsvc.client.errors import SYNC_CANCELLED, SyncClientError
from syncsvc.client.local import DELETED, LocalDataset, LocalState, Record

MAX_NAME = 128
#: The identity id at the end of a merged dataset's name: ``<region>:<uuid>``.
_IDENTITY_ID = re.compile(r"[a-z0-9-]+:[0-9a-f-]+")


def merged_name(dataset: str, identity_id: str) -> str:
    """The name the server gives the copy of ``dataset`` merged from ``identity_id``: ``<dataset>.<identity id>``,
    the dataset's name shortened when needed to stay within 128 characters (as the server shortens it)."""
    return f"{dataset[: MAX_NAME - len(identity_id) - 1]}.{identity_id}"


def merged_copies(dataset: str, names: Sequence[str]) -> list[str]:
    """The MergedDatasetNames of ``dataset`` that are merged copies of it (``<dataset>.<identity id>``); the server
    reports every dataset whose name starts with ``<dataset>.``, which may include datasets of the app's own."""
    prefix = dataset + "."
    return [name for name in names if name.startswith(prefix) and _IDENTITY_ID.fullmatch(name[len(prefix) :])]


def rebase(state: LocalState, new_identity_id: str) -> None:
    """The local copy of ``state.identity_id``'s datasets, made the local copy of ``new_identity_id``'s (see the
    module docstring): sync counts dropped, records kept aside for the fold, device registration forgotten."""
    old = state.identity_id
    datasets: dict[str, LocalDataset] = {}
    for name, local in state.datasets.items():
        aside = state.unfolded.setdefault(name, {})
        if local.last_sync_count == DELETED:
            aside[merged_name(name, old)] = LocalDataset(last_sync_count=DELETED)
            continue
        aside[merged_name(name, old)] = LocalDataset(records=dict(local.records))
        datasets[name] = LocalDataset(
            records={
                key: Record(record.value, 0, False, record.device_last_modified)
                for key, record in local.records.items()
                if record.value is not None
            }
        )
    state.datasets = datasets
    state.identity_id = new_identity_id
    state.device_id = None
    state.subscriptions = set()


def newest(kept: Mapping[str, Record], copied: Mapping[str, Record]) -> dict[str, Record]:
    """G's newest state from the records kept aside and the server's copy: per key, the later write (a tie keeps
    the record kept aside)."""
    merged = dict(copied)
    for key, record in kept.items():
        theirs = merged.get(key)
        if theirs is None or record.device_last_modified >= theirs.device_last_modified:
            merged[key] = record
    return merged


@dataclass(frozen=True, slots=True)
class MergeConflict:
    """A key that a merged copy (``merged_dataset``) and the local dataset hold with different values. ``merged``
    is the copy's record (its ``device_last_modified`` is when the value was written on its device)."""

    key: str
    merged_dataset: str
    local: Record
    merged: Record

    def resolve_with_local(self) -> Resolution:
        """Keep the local value (pushed if the server does not have it yet: a rebased record)."""
        pending = self.local.modified or self.local.sync_count == 0
        return Resolution(self.key, self.local.value, self.local.sync_count, pending)

    def resolve_with_merged(self) -> Resolution:
        """Take the merged copy's value (pushed)."""
        return Resolution(self.key, self.merged.value, self.local.sync_count, modified=True)

    def resolve_with_value(self, value: str | None) -> Resolution:
        """Keep ``value`` (e.g. a combination of both; None removes the key), pushed."""
        return Resolution(self.key, value, self.local.sync_count, modified=True)

    def resolve_with_last_writer_wins(self) -> Resolution:
        """The value written last on its device wins; a tie keeps the local one."""
        if self.merged.device_last_modified > self.local.device_last_modified:
            return self.resolve_with_merged()
        return self.resolve_with_local()

    def record_for(self, resolution: Resolution, now: float) -> Record:
        """The local record a resolution of this conflict makes (dated as the value it keeps, else ``now``)."""
        if resolution.value == self.local.value and resolution.modified == self.local.modified:
            return self.local
        if resolution.value == self.merged.value:
            moment = self.merged.device_last_modified
        elif resolution.value == self.local.value:
            moment = self.local.device_last_modified
        else:
            moment = now
        return Record(resolution.value, self.local.sync_count, resolution.modified, moment)


#: ``merge_policy(dataset, conflicts)``: one resolution per :class:`MergeConflict` (sync or async), from its
#: ``resolve_with_local()``, ``resolve_with_merged()``, ``resolve_with_value(v)``. A conflict left without one
#: cancels the sync (``SyncClientError`` code ``SyncCancelled``), and nothing is pushed or deleted.
MergePolicy = Callable[[str, list[MergeConflict]], Sequence[Resolution] | Awaitable[Sequence[Resolution]]]


def fold_last_writer_wins(dataset: str, conflicts: list[MergeConflict]) -> list[Resolution]:
    """The default merge policy: per key, the value written last on its device."""
    return [conflict.resolve_with_last_writer_wins() for conflict in conflicts]


@dataclass
class Fold:
    """The fold of one merged copy into the local dataset, planned: ``changes`` to make without asking (key ->
    (the local record seen, the record to store)), and the ``conflicts`` for the merge policy."""

    changes: dict[str, tuple[Record | None, Record]]
    conflicts: list[MergeConflict]

    @classmethod
    def plan(cls, local: LocalDataset, merged_dataset: str, copy: Mapping[str, Record]) -> Fold:
        changes: dict[str, tuple[Record | None, Record]] = {}
        conflicts: list[MergeConflict] = []
        for key, theirs in copy.items():
            if theirs.value is None:
                continue  # a removal in the copy removes nothing here
            mine = local.records.get(key)
            if mine is None:
                changes[key] = (None, Record(theirs.value, 0, True, theirs.device_last_modified))
            elif mine.value == theirs.value:
                if mine.sync_count == 0 and not mine.modified:  # a rebased record, not on the server yet
                    changes[key] = (mine, mine._replace(modified=True))
            else:
                conflicts.append(MergeConflict(key, merged_dataset, mine, theirs))
        return cls(changes, conflicts)

    def apply(self, local: LocalDataset, resolutions: Sequence[Resolution], now: float) -> None:
        """Stores the changes and what the resolutions keep in ``local``. One resolution per conflict: one for a key
        not in conflict is a ValueError, a conflict left without one cancels (SyncClientError ``SyncCancelled``). A
        record changed meanwhile (the policy may be async) keeps its change."""
        by_key = {conflict.key: conflict for conflict in self.conflicts}
        chosen = {resolution.key: resolution for resolution in resolutions}
        if unknown := chosen.keys() - by_key.keys():
            raise ValueError(f"resolutions for keys that are not in merge conflict: {sorted(unknown)}")
        if missing := by_key.keys() - chosen.keys():
            raise SyncClientError(SYNC_CANCELLED, f"merge conflicts left unresolved: {sorted(missing)}", 0)
        decided = dict(self.changes)
        decided.update((key, (c.local, c.record_for(chosen[key], now))) for key, c in by_key.items())
        for key, (seen, stored) in decided.items():
            if local.records.get(key) == seen:
                local.records[key] = stored
