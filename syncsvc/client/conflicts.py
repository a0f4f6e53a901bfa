"""Remote records, sync conflicts and their resolutions: Cognito's ``SyncConflict`` and its resolvers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from syncsvc.client.local import Record


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """A record as ListRecords / UpdateRecords return it (``value`` None: a tombstone). Dates are epoch seconds."""

    key: str
    value: str | None
    sync_count: int
    last_modified: float
    last_modified_by: str | None
    device_last_modified: float | None

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> RemoteRecord:
        device = wire.get("DeviceLastModifiedDate")
        return cls(
            key=wire["Key"],
            value=wire.get("Value"),
            sync_count=int(wire["SyncCount"]),
            last_modified=float(wire.get("LastModifiedDate", 0)),
            last_modified_by=wire.get("LastModifiedBy"),
            device_last_modified=None if device is None else float(device),
        )

    def as_local(self) -> Record:
        """The record as the local copy keeps an unmodified pulled record."""
        moment = self.device_last_modified if self.device_last_modified is not None else self.last_modified
        return Record(self.value, self.sync_count, False, moment)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What to keep for a conflicting key: ``value`` with ``sync_count`` (the remote one), pushed if ``modified``."""

    key: str
    value: str | None
    sync_count: int
    modified: bool


@dataclass(frozen=True, slots=True)
class SyncConflict:
    """A remote record that changed while the local copy of the same key was modified with another value."""

    key: str
    local: Record
    remote: RemoteRecord

    def resolve_with_remote(self) -> Resolution:
        """Keep the remote version; the local change is dropped."""
        return Resolution(self.key, self.remote.value, self.remote.sync_count, modified=False)

    def resolve_with_local(self) -> Resolution:
        """Keep the local value, based on the remote SyncCount so that the push is no longer stale."""
        return Resolution(self.key, self.local.value, self.remote.sync_count, modified=True)

    def resolve_with_value(self, value: str | None) -> Resolution:
        """Keep ``value`` (e.g. a merge of both; None removes the key), based on the remote SyncCount."""
        return Resolution(self.key, value, self.remote.sync_count, modified=True)

    def resolve_with_last_writer_wins(self) -> Resolution:
        """The later change wins: the server's LastModifiedDate against the local modification time (a tie keeps
        the remote version, which other devices already have)."""
        if self.local.device_last_modified > self.remote.last_modified:
            return self.resolve_with_local()
        return self.resolve_with_remote()


#: ``on_conflict(dataset, conflicts)``: one resolution per conflict (sync or async). A conflict left without a
#: resolution cancels the sync (``SyncClientError`` code ``SyncCancelled``) and nothing is changed.
ConflictHandler = Callable[[str, list[SyncConflict]], Sequence[Resolution] | Awaitable[Sequence[Resolution]]]


def last_writer_wins(dataset: str, conflicts: list[SyncConflict]) -> list[Resolution]:
    """The default conflict handler (Cognito's default callback)."""
    return [conflict.resolve_with_last_writer_wins() for conflict in conflicts]
