"""Domain objects to AWS wire shapes, and AWS wire inputs to domain values.

The API speaks epoch *seconds* as JSON numbers (fractions allowed); the service keeps epoch milliseconds.
``VersionVector`` members are syncsvc extensions that AWS SDKs ignore.
"""

from __future__ import annotations

from typing import (
    Any,
    NotRequired,  # pydantic describes these TypedDicts on Python 3.11
    cast,
)

from typing_extensions import TypedDict

from syncsvc.model import Dataset, DatasetState, IdentityUsage, PoolUsage, Record


class RecordOut(TypedDict):
    Key: str
    Value: NotRequired[str]
    SyncCount: int
    LastModifiedDate: float
    LastModifiedBy: str
    DeviceLastModifiedDate: NotRequired[float]
    VersionVector: dict[str, int]


class DatasetOut(TypedDict):
    IdentityId: str
    DatasetName: str
    CreationDate: float
    LastModifiedDate: float
    LastModifiedBy: str
    DataStorage: int
    NumRecords: int
    SyncCount: int
    VersionVector: dict[str, int]


class IdentityUsageOut(TypedDict):
    IdentityId: str
    IdentityPoolId: str
    DatasetCount: int
    DataStorage: int
    LastModifiedDate: NotRequired[float]


class PoolUsageOut(TypedDict):
    IdentityPoolId: str
    SyncSessionsCount: int
    DataStorage: int
    LastModifiedDate: NotRequired[float]


def seconds(ms: int) -> float | int:
    """Epoch ms as epoch seconds: an int when whole, else a float with millisecond precision."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def ms_from_seconds(value: float) -> int:
    """Epoch seconds as epoch ms. ``value`` must be finite (checked where requests are parsed)."""
    return round(value * 1000)


def record(item: Record) -> RecordOut:
    """In the member order AWS answers: Key, Value, SyncCount, dates, LastModifiedBy, VersionVector."""
    wire: dict[str, Any] = {"Key": item.key}
    if item.value is not None:
        wire["Value"] = item.value
    wire["SyncCount"] = item.sync_count
    wire["LastModifiedDate"] = seconds(item.last_modified_ms)
    wire["LastModifiedBy"] = item.last_modified_by
    if item.device_last_modified_ms is not None:
        wire["DeviceLastModifiedDate"] = seconds(item.device_last_modified_ms)
    wire["VersionVector"] = item.version_vector
    return cast(RecordOut, wire)


def dataset(item: Dataset) -> DatasetOut:
    return {
        "IdentityId": item.identity_id,
        "DatasetName": item.name,
        "CreationDate": seconds(item.created_ms),
        "LastModifiedDate": seconds(item.modified_ms),
        "LastModifiedBy": item.modified_by,
        "DataStorage": item.storage_bytes,
        "NumRecords": item.num_records,
        "SyncCount": item.sync_count,
        "VersionVector": item.version_vector,
    }


def conflict(records: list[Record], state: DatasetState) -> dict[str, Any]:
    """The extra members of a ResourceConflictException body."""
    return {
        "Records": [record(item) for item in records],
        "DatasetSyncCount": state.sync_count,
        "VersionVector": state.version_vector,
    }


def identity_usage(item: IdentityUsage) -> IdentityUsageOut:
    wire: IdentityUsageOut = {
        "IdentityId": item.identity_id,
        "IdentityPoolId": item.identity_pool_id,
        "DatasetCount": item.dataset_count,
        "DataStorage": item.storage_bytes,
    }
    if item.modified_ms is not None:
        wire["LastModifiedDate"] = seconds(item.modified_ms)
    return wire


def pool_usage(item: PoolUsage) -> PoolUsageOut:
    wire: PoolUsageOut = {
        "IdentityPoolId": item.identity_pool_id,
        "SyncSessionsCount": item.sync_sessions,
        "DataStorage": item.storage_bytes,
    }
    if item.modified_ms is not None:
        wire["LastModifiedDate"] = seconds(item.modified_ms)
    return wire
