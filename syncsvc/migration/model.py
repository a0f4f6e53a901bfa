"""What an import moves, in the shape the source's public APIs give it: read by :mod:`syncsvc.migration.source`,
written by :mod:`syncsvc.migration.target`. Values are plaintext here; the target seals them on the way in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncsvc.model import Login


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as ListRecords gives it; ``value`` None is a tombstone (a removed record)."""

    key: str
    value: str | None
    sync_count: int
    last_modified_ms: int
    last_modified_by: str
    device_last_modified_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SourceDataset:
    """One dataset of one identity: its metadata (ListDatasets / ListRecords' DatasetSyncCount) and every record
    ListRecords(LastSyncCount=0) gives, tombstones included."""

    identity_id: str
    name: str
    sync_count: int
    created_ms: int
    last_modified_ms: int
    last_modified_by: str
    records: tuple[SourceRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceIdentity:
    """One identity (ListIdentities / DescribeIdentity). ``logins`` holds (provider, subject) pairs whose subject is
    known (developer user ids from LookupDeveloperIdentity, or an operator's mapping file); ``providers`` every
    provider name DescribeIdentity reported, subject known or not."""

    identity_id: str
    created_ms: int
    modified_ms: int
    providers: tuple[str, ...] = ()
    logins: tuple[Login, ...] = ()


@dataclass(frozen=True, slots=True)
class SourcePool:
    """The pool's settings: DescribeIdentityPool's members as the wire gives them (``description``), the Cognito
    Sync configuration (GetIdentityPoolConfiguration's PushSync / CognitoStreams members) and the Cognito Events
    (GetCognitoEvents: event name -> Lambda ARN)."""

    identity_pool_id: str
    description: dict[str, Any]
    sync_configuration: dict[str, Any] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)
