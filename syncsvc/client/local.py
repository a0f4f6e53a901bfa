"""The device's local copy: per dataset its records and last sync count, in memory, optionally in a JSON file; and
the locks that let one sync at a time change a dataset (:class:`DatasetLocks`).

The file is replaced atomically (a temporary file in the same folder, then ``os.replace``), in a worker thread so
the event loop never blocks on the disk. Its shape::

    {"version": 1, "identity_pool_id": "...", "identity_id": "...", "installation_id": "...", "device_id": null,
     "subscriptions": ["settings"],
     "datasets": {"settings": {"last_sync_count": 3, "records": {"theme": ["dark", 3, false, 1700000000.5]}}},
     "unfolded": {"settings": {"settings.us-east-1:…": {"last_sync_count": 0, "records": {...}}}}}

``unfolded`` (absent in files written before identity changes existed) holds, per dataset, the local copies of
another identity's datasets this device had before its identity changed, under their merged names, until a sync
folds them (see :mod:`syncsvc.client.merges`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson

FORMAT_VERSION = 1
#: ``last_sync_count`` of a dataset deleted locally and not yet deleted on the server.
DELETED = -1


class Record(NamedTuple):
    """One record of the local copy. ``value`` None is a removal; ``sync_count`` is the last SyncCount known from
    the server (0 for a key the server has never had); ``modified`` means a local change not pushed yet;
    ``device_last_modified`` is when it was last changed, epoch seconds (the server's date for pulled records)."""

    value: str | None
    sync_count: int
    modified: bool
    device_last_modified: float


@dataclass
class LocalDataset:
    last_sync_count: int = 0
    records: dict[str, Record] = field(default_factory=dict)


@dataclass
class LocalState:
    """Everything the client keeps between runs."""

    identity_pool_id: str
    identity_id: str
    installation_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    device_id: str | None = None
    subscriptions: set[str] = field(default_factory=set)
    datasets: dict[str, LocalDataset] = field(default_factory=dict)
    #: dataset name -> {merged name: the local copy of the other identity's dataset}, waiting to be folded into it
    unfolded: dict[str, dict[str, LocalDataset]] = field(default_factory=dict)

    def dataset(self, name: str) -> LocalDataset:
        """The local dataset, created empty on first use."""
        return self.datasets.setdefault(name, LocalDataset())

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": FORMAT_VERSION,
                "identity_pool_id": self.identity_pool_id,
                "identity_id": self.identity_id,
                "installation_id": self.installation_id,
                "device_id": self.device_id,
                "subscriptions": sorted(self.subscriptions),
                "datasets": {name: _dataset_json(data) for name, data in self.datasets.items()},
                "unfolded": {
                    name: {merged: _dataset_json(data) for merged, data in copies.items()}
                    for name, copies in self.unfolded.items()
                },
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> LocalState:
        document: dict[str, Any] = orjson.loads(raw)
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported local state version {document.get('version')!r}")
        return cls(
            identity_pool_id=document["identity_pool_id"],
            identity_id=document["identity_id"],
            installation_id=document["installation_id"],
            device_id=document.get("device_id"),
            subscriptions=set(document.get("subscriptions", [])),
            datasets={name: _dataset_of(data) for name, data in document.get("datasets", {}).items()},
            unfolded={
                name: {merged: _dataset_of(data) for merged, data in copies.items()}
                for name, copies in document.get("unfolded", {}).items()
            },
        )


def _dataset_json(data: LocalDataset) -> dict[str, Any]:
    return {
        "last_sync_count": data.last_sync_count,
        "records": {key: list(record) for key, record in data.records.items()},
    }


def _dataset_of(data: dict[str, Any]) -> LocalDataset:
    return LocalDataset(
        last_sync_count=int(data["last_sync_count"]),
        records={
            key: Record(value, int(count), bool(modified), float(moment))
            for key, (value, count, modified, moment) in data["records"].items()
        },
    )


def read_state(path: Path) -> LocalState | None:
    """The state saved at ``path``, or None when there is no file yet. (Called once, at start-up.)"""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return LocalState.from_json(raw)


def _write_atomically(path: Path, data: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class StateFile:
    """The file of a :class:`LocalState`. Hold :attr:`lock` around taking the snapshot and writing it, so that a
    later save never loses to an earlier one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = asyncio.Lock()

    async def write(self, state: LocalState) -> None:
        """Writes ``state`` as it is now, in a worker thread."""
        await asyncio.to_thread(_write_atomically, self.path, state.to_json())


class DatasetLocks:
    """One lock per dataset: the syncs of a dataset run one at a time; :meth:`every` holds them all."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def __call__(self, dataset: str) -> asyncio.Lock:
        return self._locks.setdefault(dataset, asyncio.Lock())

    @asynccontextmanager
    async def every(self) -> AsyncIterator[None]:
        """Holds every dataset's lock (waiting for the syncs running), including those a sync starting meanwhile
        takes. The block must not await, so that no sync starts during it."""
        held: list[str] = []
        try:
            while waiting := sorted(self._locks.keys() - set(held)):
                for name in waiting:
                    await self._locks[name].acquire()
                    held.append(name)
            yield
        finally:
            for name in held:
                self._locks[name].release()
