"""What RedisStore answers, typed: the scripts' results and the hashes they keep, decoded once, here.

Nothing outside ``store/`` reads a script's short field names (``sc``, ``live``, ``vv``, …): the store decodes each
reply into one of these. The names decoded are those of update_records.lua and delete_dataset.lua (see their headers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import orjson

from syncsvc.errors import StandingLostError
from syncsvc.model import DatasetState, Record


def record_from_stored(key: str, raw: bytes | str) -> Record:
    """A record from its stored JSON (see update_records.lua for the fields)."""
    stored = orjson.loads(raw)
    device = stored.get("d")
    # Positional and without per-field conversions: the scripts store integers (cjson), and a page holds up to 1,024.
    return Record(
        key,
        stored.get("v"),
        stored["sc"],
        stored["lm"],
        stored["lb"],
        None if device is None else int(device),
        stored["vv"],
        stored.get("nk"),
    )


@dataclass(frozen=True, slots=True)
class DatasetMeta:
    """A dataset's metadata hash: a live dataset, a deletion marker (not live), or every default for a name never
    written."""

    name: str
    live: bool = False
    sync_count: int = 0
    #: The sync count at which the dataset was last deleted (0 if never).
    purged_at: int = 0
    created_ms: int = 0
    modified_ms: int = 0
    #: The writer of the last commit; None before the first.
    modified_by: str | None = None
    record_count: int = 0
    #: Plaintext bytes of the live records' names and values (what the limits count).
    storage_bytes: int = 0
    version_vector: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, fields: Mapping[str, str]) -> DatasetMeta:
        """The metadata of dataset ``name`` from its hash's fields (all of them, or those a caller read)."""
        return cls(
            name=name,
            live=fields.get("live") == "1",
            sync_count=int(fields.get("sc", 0)),
            purged_at=int(fields.get("purged", 0)),
            created_ms=int(fields.get("created", 0)),
            modified_ms=int(fields.get("modified", 0)),
            modified_by=fields.get("modified_by"),
            record_count=int(fields.get("count", 0)),
            storage_bytes=int(fields.get("storage", 0)),
            version_vector=_vector(orjson.loads(fields.get("vv", "{}"))),
        )

    def state(self, merged: Sequence[str] = ()) -> DatasetState:
        return DatasetState(
            merged=tuple(merged),
            exists=self.live,
            sync_count=self.sync_count,
            purged_at=self.purged_at,
            modified_by=self.modified_by,
            version_vector=self.version_vector,
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """An identity's usage hash: the plaintext bytes its live datasets hold, and when that last changed (None:
    never)."""

    storage_bytes: int = 0
    modified_ms: int | None = None

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> Usage:
        modified = fields.get("modified")
        return cls(int(fields.get("storage", 0)), None if modified is None else int(modified))


# --- update_records.lua's outcomes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Committed:
    """Status "ok": the write is committed. With ``replayed`` (status "duplicate"): the writer re-sent its last
    committed request, and this is that request's result as first committed."""

    sync_count: int
    #: The records as written, in patch order, as stored (a name as its token, with the name in ``sealed_name``;
    #: values sealed).
    records: list[Record]
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class ConflictingRecord:
    #: The record's name as stored (a token where names are sealed).
    key: str
    #: The record as stored; None when there is none.
    stored: Record | None


@dataclass(frozen=True, slots=True)
class Conflict:
    """Status "conflict": some patches were not based on the records as stored. Nothing is written."""

    sync_count: int
    version_vector: dict[str, int]
    #: One per stale patch, in patch order.
    records: list[ConflictingRecord]


@dataclass(frozen=True, slots=True)
class OverLimit:
    """Status "limit": the write would take the identity or the dataset past a limit. Nothing is written."""

    which: Literal["datasets", "records", "bytes"]
    limit: int
    #: What the write would have made of it.
    value: int


@dataclass(frozen=True, slots=True)
class Stale:
    """Status "stale": the dataset is no longer at the sync count the write was planned on. Nothing is written."""

    sync_count: int


UpdateOutcome: TypeAlias = Committed | Conflict | OverLimit | Stale


@dataclass(frozen=True, slots=True)
class LastWrite:
    """A writer's last committed write to a dataset (update_records.lua's writers hash)."""

    #: The request's fingerprint: a re-send carries the same one.
    fingerprint: str
    #: What a re-send is answered: the write's result, replayed.
    result: Committed

    @classmethod
    def of(cls, raw: bytes | str) -> LastWrite:
        stored = orjson.loads(raw)
        return cls(stored["fp"], _committed(stored["result"], replayed=True))


def decode_update(raw: bytes | str) -> UpdateOutcome:
    """update_records.lua's JSON result, typed."""
    body = orjson.loads(raw)
    match body["status"]:
        case "ok" | "duplicate" as status:
            return _committed(body, replayed=status == "duplicate")
        case "conflict":
            return Conflict(int(body["sc"]), _vector(body["vv"]), [_conflicting(item) for item in body["conflicts"]])
        case "limit":
            return OverLimit(body["which"], int(body["limit"]), int(body["value"]))
        case "stale":
            return Stale(int(body["sc"]))
        case "revoked":
            raise StandingLostError("the caller's identity changed since it was admitted")
        case status:
            raise ValueError(f"update_records.lua answered an unknown status {status!r}")


def _committed(body: dict[str, Any], *, replayed: bool) -> Committed:
    records = [
        Record(
            key=stored["k"],
            value=stored.get("v"),
            sync_count=int(stored["sc"]),
            last_modified_ms=int(stored["lm"]),
            last_modified_by=stored["lb"],
            device_last_modified_ms=None if stored.get("d") is None else int(stored["d"]),
            version_vector=_vector(stored["vv"]),
            sealed_name=stored.get("nk"),
        )
        for stored in body["records"]
    ]
    return Committed(int(body["sc"]), records, replayed)


def _conflicting(item: dict[str, Any]) -> ConflictingRecord:
    stored = item["stored"]  # the record's stored JSON, or null
    return ConflictingRecord(item["k"], None if stored is None else record_from_stored(item["k"], stored))


def _vector(decoded: Any) -> dict[str, int]:
    """A version vector from its JSON; cjson encodes an empty table as ``[]``."""
    return {writer: int(counter) for writer, counter in decoded.items()} if isinstance(decoded, dict) else {}
