"""Domain objects to AWS wire shapes, and AWS wire inputs to domain values.

The API speaks epoch *seconds* as JSON numbers (fractions allowed); the service keeps epoch milliseconds.
``VersionVector`` members are syncsvc extensions that AWS SDKs ignore.
"""

from __future__ import annotations

from typing import Any

from syncsvc.model import Dataset, DatasetState, IdentityUsage, PoolUsage, Record


def seconds(ms: int) -> float | int:
    """Epoch ms as epoch seconds: an int when whole, else a float with millisecond precision."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def ms_from_seconds(value: float) -> int:
    """Epoch seconds as epoch ms. ``value`` must be finite (checked where requests are parsed)."""
    return round(value * 1000)


def record(item: Record) -> dict[str, Any]:
    wire: dict[str, Any] = {"Key": item.key}
    if item.value is not None:
        wire["Value"] = item.value
    wire["SyncCount"] = item.sync_count
    wire["LastModifiedDate"] = seconds(item.last_modified_ms)
    wire["LastModifiedBy"] = item.last_modified_by
    if item.device_last_modified_ms is not None:
        wire["DeviceLastModifiedDate"] = seconds(item.device_last_modified_ms)
    wire["VersionVector"] = item.version_vector
    return wire


def dataset(item: Dataset) -> dict[str, Any]:
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


def identity_usage(item: IdentityUsage) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "IdentityId": item.identity_id,
        "IdentityPoolId": item.identity_pool_id,
        "DatasetCount": item.dataset_count,
        "DataStorage": item.storage_bytes,
    }
    if item.modified_ms is not None:
        wire["LastModifiedDate"] = seconds(item.modified_ms)
    return wire


def pool_usage(item: PoolUsage) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "IdentityPoolId": item.identity_pool_id,
        "SyncSessionsCount": item.sync_sessions,
        "DataStorage": item.storage_bytes,
    }
    if item.modified_ms is not None:
        wire["LastModifiedDate"] = seconds(item.modified_ms)
    return wire
