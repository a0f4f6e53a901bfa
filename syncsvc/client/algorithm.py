"""One ``synchronize`` of one dataset: Cognito's client sync algorithm (reference §2.5), step by step.

1. A dataset deleted locally is deleted on the server (DeleteDataset; ResourceNotFound is fine), then forgotten.
2. Pull: ListRecords(lastSyncCount) following NextToken; keep the SyncSessionToken, DatasetSyncCount, DatasetExists,
   DatasetDeletedAfterRequestedSyncCount and MergedDatasetNames.
3. Merged names go to the client (attribute + callback). A dataset deleted on the server since the last sync
   (DatasetDeletedAfterRequestedSyncCount, or DatasetExists false while the client held a count) goes to
   ``on_dataset_deleted``, and the pull starts again from 0.
4. A pulled record collides with a local change when the local copy is modified, its value differs and its
   SyncCount differs; collisions go to the conflict handler, the rest is stored; last sync count = DatasetSyncCount.
5. Push: UpdateRecords of the local changes (Op remove for None) with their last known SyncCount.
6. A push refused with ResourceConflictException lowers the last sync count to the largest patch SyncCount and
   restarts from 1, ``max_retries`` times at most.

With a merge policy, between 4 and 5 the merged copies of the dataset (``<name>.<identity id>``: reported by the
pull, or kept aside when the device's identity changed) are folded into it, and after 5 deleted on the server (see
:mod:`syncsvc.client.merges`).

A run sees the client only through :class:`Device`, the few members it reads and calls (``SyncClient`` is one).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from syncsvc.client.conflicts import ConflictHandler, RemoteRecord, Resolution, SyncConflict
from syncsvc.client.errors import SYNC_CANCELLED, SyncClientError, SyncRetriesExceededError
from syncsvc.client.local import DELETED, LocalDataset, LocalState, Record
from syncsvc.client.merges import Fold, MergeConflict, MergePolicy, merged_copies, newest
from syncsvc.client.transport import SyncTransport, client_context

log = logging.getLogger("syncsvc.client")

CONFLICT = "ResourceConflictException"
NOT_FOUND = "ResourceNotFoundException"
#: key -> (the local record the decision was based on, the record to store)
Decisions = dict[str, tuple[Record | None, Record]]


class Device(Protocol):
    """One identity's datasets on one device, as a sync uses them: the local copy, the calls to the server, the
    sync options and the app's hooks."""

    @property
    def state(self) -> LocalState: ...

    @property
    def transport(self) -> SyncTransport: ...

    @property
    def max_retries(self) -> int:
        """ResourceConflictException restarts of one sync before it gives up."""

    @property
    def page_size(self) -> int:
        """ListRecords MaxResults."""

    def clock(self) -> float:
        """Now, epoch seconds: the modification time of a record a conflict resolution changes."""

    def dataset_path(self, dataset: str) -> str: ...

    def last_sync_count(self, dataset: str) -> int: ...

    def note_merged(self, dataset: str, merged: list[str]) -> None:
        """Told the MergedDatasetNames of each pull."""

    def on_dataset_deleted(self, dataset: str) -> bool:
        """Told the dataset was deleted on the server; True drops the local copy, False pushes its values again."""

    async def before_push(self, dataset: str, patches: list[dict[str, Any]]) -> None:
        """Told the patches an UpdateRecords is about to send (it may change them)."""


@dataclass
class SyncResult:
    """What one ``synchronize`` did. ``pulled``: every record ListRecords returned (all attempts); ``pushed``: the
    records UpdateRecords stored; ``conflicts``: those given to the conflict handler; ``sync_count``: the local last
    sync count afterwards; ``deleted_remotely``: the dataset had been deleted on the server since the last sync;
    ``attempts``: 1 plus the restarts after a ResourceConflictException; ``merged_datasets``: the MergedDatasetNames
    of the last pull; ``folded``: the merged copies folded into the dataset and then deleted on the server;
    ``merge_conflicts``: those given to the merge policy."""

    dataset: str
    sync_count: int = 0
    pulled: list[RemoteRecord] = field(default_factory=list)
    pushed: list[RemoteRecord] = field(default_factory=list)
    conflicts: list[SyncConflict] = field(default_factory=list)
    merged_datasets: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    merge_conflicts: list[MergeConflict] = field(default_factory=list)
    deleted_remotely: bool = False
    attempts: int = 0


@dataclass
class Pull:
    """The ListRecords pages of one pull, folded."""

    records: list[RemoteRecord]
    sync_count: int
    exists: bool
    deleted_after: bool
    merged: list[str]
    session_token: str


class SyncRun:
    """One synchronize of ``dataset`` by ``device`` (which holds the dataset's lock meanwhile); merged copies are
    folded with ``merge_policy``, or left alone without one."""

    def __init__(
        self, device: Device, dataset: str, handler: ConflictHandler, merge_policy: MergePolicy | None = None
    ) -> None:
        self.device = device
        self.dataset = dataset
        self.handler = handler
        self.merge_policy = merge_policy
        self.result = SyncResult(dataset)

    @property
    def local(self) -> LocalDataset:
        return self.device.state.dataset(self.dataset)

    async def run(self) -> SyncResult:
        last: SyncClientError | None = None
        for attempt in range(1, self.device.max_retries + 2):
            self.result.attempts = attempt
            try:
                await self._attempt()
            except SyncClientError as exc:
                if exc.code != CONFLICT:
                    raise
                log.info("dataset %s: %s; restarting the sync (attempt %d)", self.dataset, exc.message, attempt)
                last = exc
                continue
            self.result.sync_count = self.device.last_sync_count(self.dataset)
            return self.result
        assert last is not None
        raise SyncRetriesExceededError(self.dataset, self.result.attempts, last)

    async def _attempt(self) -> None:
        since = self.local.last_sync_count
        if since == DELETED:
            await self._delete_remotely()
            return
        pull = await self._pull(since)
        if pull.deleted_after or (not pull.exists and since != 0):
            self.result.deleted_remotely = True
            self._forget_deleted()
            pull = await self._pull(0)
        await self._merge(pull)
        folded = [] if self.merge_policy is None else await self._fold(self.merge_policy, pull.merged)
        await self._push(pull.session_token)
        await self._drop(folded)

    # --- deletion -----------------------------------------------------------------------------------------------

    async def _delete_remotely(self) -> None:
        await self._delete(self.dataset)
        self.device.state.datasets.pop(self.dataset, None)

    async def _delete(self, dataset: str) -> None:
        """DeleteDataset; one already gone is fine."""
        try:
            await self.device.transport.call("DELETE", self.device.dataset_path(dataset))
        except SyncClientError as exc:
            if exc.code != NOT_FOUND:
                raise

    def _forget_deleted(self) -> None:
        """The dataset was deleted on the server: drop the local copy, or keep its values as new local changes."""
        local = self.local
        if self.device.on_dataset_deleted(self.dataset):
            local.records = {}
        else:
            local.records = {
                key: Record(record.value, 0, True, record.device_last_modified)
                for key, record in local.records.items()
                if record.value is not None
            }
        local.last_sync_count = 0

    # --- pull ---------------------------------------------------------------------------------------------------

    async def _pull(self, since: int) -> Pull:
        """ListRecords(lastSyncCount=since) of the dataset, every page; its merged names told to the device."""
        pull = await self._list(self.dataset, since)
        self.result.pulled += pull.records
        self.result.merged_datasets = pull.merged
        self.device.note_merged(self.dataset, pull.merged)
        return pull

    async def _list(self, dataset: str, since: int) -> Pull:
        """ListRecords(lastSyncCount=since) of ``dataset``, every page."""
        query = {"lastSyncCount": str(since), "maxResults": str(self.device.page_size)}
        target = self.device.dataset_path(dataset) + "/records"
        page = await self.device.transport.call("GET", target, query=query)
        session_token: str = page["SyncSessionToken"]
        records = [RemoteRecord.from_wire(item) for item in page.get("Records", [])]
        while page.get("NextToken"):
            more = {**query, "nextToken": page["NextToken"], "syncSessionToken": session_token}
            page = await self.device.transport.call("GET", target, query=more)
            records += [RemoteRecord.from_wire(item) for item in page.get("Records", [])]
        return Pull(
            records=records,
            sync_count=int(page.get("DatasetSyncCount", 0)),
            exists=bool(page.get("DatasetExists", True)),
            deleted_after=bool(page.get("DatasetDeletedAfterRequestedSyncCount", False)),
            merged=list(page.get("MergedDatasetNames") or []),
            session_token=session_token,
        )

    # --- merge --------------------------------------------------------------------------------------------------

    async def _merge(self, pull: Pull) -> None:
        """Stores the pulled records locally; the ones colliding with local changes through the handler.

        Nothing is stored before the handler has answered; a record changed locally while it ran keeps the local
        change (its push is then refused as stale and the sync restarts with it in conflict)."""
        local = self.local
        latest = {remote.key: remote for remote in sorted(pull.records, key=lambda item: item.sync_count)}
        decided: Decisions = {}
        conflicts: list[SyncConflict] = []
        for key, remote in latest.items():
            mine = local.records.get(key)
            if mine is None or not mine.modified or mine.value == remote.value:
                decided[key] = (mine, remote.as_local())
            elif mine.sync_count != remote.sync_count:  # else the remote version is the base of the local change
                conflicts.append(SyncConflict(key, mine, remote))
        if conflicts:
            self.result.conflicts += conflicts
            decided.update(self._resolved(conflicts, await _ask(self.handler, self.dataset, conflicts)))
        for key, (seen, stored) in decided.items():
            if local.records.get(key) == seen:
                local.records[key] = stored
        local.last_sync_count = pull.sync_count

    def _resolved(self, conflicts: list[SyncConflict], resolutions: Sequence[Resolution]) -> Decisions:
        """The records the resolutions keep; one resolution per conflict is required."""
        by_key = {conflict.key: conflict for conflict in conflicts}
        chosen = {resolution.key: resolution for resolution in resolutions}
        if unknown := chosen.keys() - by_key.keys():
            raise ValueError(f"resolutions for keys that are not in conflict: {sorted(unknown)}")
        if missing := by_key.keys() - chosen.keys():
            raise SyncClientError(SYNC_CANCELLED, f"conflicts left unresolved: {sorted(missing)}", 0)
        decided: Decisions = {}
        for key, resolution in chosen.items():
            conflict = by_key[key]
            if not resolution.modified:
                moment = conflict.remote.as_local().device_last_modified
            elif resolution.value == conflict.local.value:
                moment = conflict.local.device_last_modified
            else:
                moment = self.device.clock()
            decided[key] = (
                conflict.local,
                Record(resolution.value, resolution.sync_count, resolution.modified, moment),
            )
        return decided

    # --- merged copies (syncsvc.client.merges) ---------------------------------------------------------------------

    async def _fold(self, policy: MergePolicy, reported: list[str]) -> list[str]:
        """Folds every merged copy of the dataset into the local copy: those the pull reported and those kept aside
        when the device's identity changed. Returns their names, to delete once the push is through."""
        kept = self.device.state.unfolded.get(self.dataset, {})
        names = [*kept, *(name for name in merged_copies(self.dataset, reported) if name not in kept)]
        for name in names:
            aside = kept.get(name)
            if aside is not None and aside.last_sync_count == DELETED:
                continue  # deleted on this device before its identity changed: the copy goes unfolded
            copied = {record.key: record.as_local() for record in (await self._list(name, 0)).records}
            fold = Fold.plan(self.local, name, copied if aside is None else newest(aside.records, copied))
            resolutions = await _ask(policy, self.dataset, fold.conflicts) if fold.conflicts else []
            self.result.merge_conflicts += fold.conflicts
            fold.apply(self.local, resolutions, self.device.clock())
        return names

    async def _drop(self, folded: list[str]) -> None:
        """Deletes the folded copies on the server and forgets those kept aside (after the push that carried them)."""
        for name in folded:
            await self._delete(name)
            kept = self.device.state.unfolded.get(self.dataset, {})
            kept.pop(name, None)
            if not kept:
                self.device.state.unfolded.pop(self.dataset, None)
            self.result.folded.append(name)

    # --- push ---------------------------------------------------------------------------------------------------

    async def _push(self, session_token: str) -> None:
        """UpdateRecords of the local changes; on a conflict, lowers the last sync count to re-pull (step 6)."""
        local = self.local
        sent = {key: record for key, record in local.records.items() if record.modified}
        if not sent:
            return
        patches = [patch_of(key, record) for key, record in sent.items()]
        await self.device.before_push(self.dataset, patches)
        state = self.device.state
        body: dict[str, Any] = {"SyncSessionToken": session_token, "RecordPatches": patches}
        if state.device_id is not None:
            body["DeviceId"] = state.device_id
        headers = {"x-amz-Client-Context": client_context(state.installation_id)}
        try:
            answer = await self.device.transport.call(
                "POST", self.device.dataset_path(self.dataset), body=body, headers=headers
            )
        except SyncClientError as exc:
            if exc.code == CONFLICT:
                local.last_sync_count = min(local.last_sync_count, max(record.sync_count for record in sent.values()))
            raise
        written = [RemoteRecord.from_wire(item) for item in answer.get("Records", [])]
        self.result.pushed += written
        self._stored(sent, written)

    def _stored(self, sent: dict[str, Record], written: list[RemoteRecord]) -> None:
        """Adopts what the server stored (a trigger may have changed it); a record changed locally while the push
        was on its way stays modified, now based on the new SyncCount."""
        local = self.local
        for remote in written:
            current = local.records.get(remote.key)
            if current is None or current == sent.get(remote.key):
                local.records[remote.key] = remote.as_local()
            else:
                local.records[remote.key] = current._replace(sync_count=remote.sync_count)
        if written and max(remote.sync_count for remote in written) == local.last_sync_count + 1:
            local.last_sync_count += 1  # else another write came in between: the next pull brings it


Conflict = TypeVar("Conflict")


async def _ask(
    handler: Callable[[str, list[Conflict]], Sequence[Resolution] | Awaitable[Sequence[Resolution]]],
    dataset: str,
    conflicts: list[Conflict],
) -> Sequence[Resolution]:
    """A conflict handler's or merge policy's resolutions (awaited when it is async)."""
    answer = handler(dataset, list(conflicts))
    if inspect.isawaitable(answer):
        return await answer
    return answer


def patch_of(key: str, record: Record) -> dict[str, Any]:
    """The RecordPatch pushing a local change."""
    patch: dict[str, Any] = {
        "Op": "replace" if record.value is not None else "remove",
        "Key": key,
        "SyncCount": record.sync_count,
        "DeviceLastModifiedDate": round(record.device_last_modified, 3),
    }
    if record.value is not None:
        patch["Value"] = record.value
    return patch
