"""``syncsvc import verify``: the source and the destination compared dataset by dataset, every difference named.

For every identity the source lists: the dataset names on each side, then for each dataset both have, its sync
count and every record's key, value, sync count, LastModifiedDate, DeviceLastModifiedDate and LastModifiedBy (dates
to the millisecond). Nothing is written anywhere. A source still taking writes differs by what it took since the
import: verify after the delta pass, once devices use the destination, for a clean answer. Identities without any
dataset have nothing to compare.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from syncsvc.migration.model import SourceDataset, SourceRecord
from syncsvc.migration.report import Display
from syncsvc.migration.source import CognitoSource

#: Record members compared, as (label, attribute).
_MEMBERS = (
    ("Value", "value"),
    ("SyncCount", "sync_count"),
    ("LastModifiedDate (ms)", "last_modified_ms"),
    ("DeviceLastModifiedDate (ms)", "device_last_modified_ms"),
    ("LastModifiedBy", "last_modified_by"),
)


def differences(source: SourceDataset, destination: SourceDataset) -> list[str]:
    """How ``destination`` differs from ``source`` (one line each; empty when they agree)."""
    lines = []
    if source.sync_count != destination.sync_count:
        lines.append(f"DatasetSyncCount: source {source.sync_count}, destination {destination.sync_count}")
    theirs = {record.key: record for record in destination.records}
    ours = {record.key: record for record in source.records}
    for key in sorted(ours.keys() - theirs.keys()):
        lines.append(f"record {key!r}: missing at the destination")
    for key in sorted(theirs.keys() - ours.keys()):
        lines.append(f"record {key!r}: only at the destination")
    for key in sorted(ours.keys() & theirs.keys()):
        lines.extend(f"record {key!r}: {line}" for line in _record_differences(ours[key], theirs[key]))
    return lines


def _record_differences(source: SourceRecord, destination: SourceRecord) -> list[str]:
    lines = []
    for label, attribute in _MEMBERS:
        ours, theirs = getattr(source, attribute), getattr(destination, attribute)
        if ours != theirs:
            lines.append(f"{label}: source {_short(ours)}, destination {_short(theirs)}")
    return lines


def _short(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


class DatasetReader(Protocol):
    """The reading half of the destination (``syncsvc.migration.target.ImportTarget``)."""

    async def read_dataset(self, pool_id: str, identity_id: str, name: str) -> SourceDataset | None: ...

    async def list_dataset_names(self, pool_id: str, identity_id: str) -> list[str]: ...


@dataclass(slots=True)
class VerifyReport:
    identities: int = 0
    datasets: int = 0
    records: int = 0
    differences: int = 0


class Verifier:
    """Compares the source pool with the destination pool ``pool_id``."""

    def __init__(
        self, source: CognitoSource, target: DatasetReader, pool_id: str, display: Display, *, concurrency: int = 8
    ) -> None:
        self.source = source
        self.target = target
        self.pool_id = pool_id
        self.display = display
        self.report = VerifyReport()
        self._gate = asyncio.Semaphore(max(concurrency, 1))

    async def run(self) -> VerifyReport:
        self.display.phase("verify (identities)")
        token: str | None = None
        while True:
            page = await self.source.identity_page(token)
            await asyncio.gather(*(self._identity(identity.identity_id) for identity in page.identities))
            token = page.next_token
            if token is None:
                return self.report

    def _differ(self, identity_id: str, name: str, line: str) -> None:
        self.report.differences += 1
        self.display.note(f"difference: identity {identity_id} dataset {name}: {line}")

    async def _identity(self, identity_id: str) -> None:
        async with self._gate:
            summaries = await self.source.datasets(identity_id)
            held = set(await self.target.list_dataset_names(self.pool_id, identity_id))
            for summary in summaries:
                self.report.datasets += 1
                if summary.name not in held:
                    self._differ(identity_id, summary.name, "missing at the destination")
                    continue
                ours = await self.source.dataset(identity_id, summary)
                theirs = await self.target.read_dataset(self.pool_id, identity_id, summary.name)
                self.report.records += len(ours.records)
                if theirs is None:
                    self._differ(identity_id, summary.name, "missing at the destination")
                    continue
                for line in differences(ours, theirs):
                    self._differ(identity_id, summary.name, line)
            for name in sorted(held - {summary.name for summary in summaries}):
                self._differ(identity_id, name, "only at the destination (the source does not list it)")
            self.report.identities += 1
            self.display.advance()
