"""Datasets as the Cognito Sync tests drive them: ``DatasetRef`` (one dataset of one identity in one pool) and
``Device`` (one device syncing it through unmodified boto3, keeping its SyncSessionToken), record patches (``put``,
``rm``), the records and ListRecords pages to expect back (dates the server stamped compare equal to ``RECENT``),
boto3 errors read as (status, code, message), a NextToken tampered with, and the whole Redis database for "nothing
changed" assertions.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import ANY
from urllib.parse import quote

import orjson
import pytest
import redis.asyncio as aioredis
from botocore.exceptions import ClientError

from syncsvc.store.instances import INSTANCES
from tests.conftest import REGION, Boto


def label(value: str) -> str:
    """A rest-json URI label or query value, percent-encoded as botocore encodes it."""
    return quote(value, safe="-._~")


def new_identity() -> str:
    return f"{REGION}:{uuid.uuid4()}"


class Recent:
    """Equal to a timezone-aware datetime (boto3) or epoch seconds (raw JSON) within the last minute: a date the
    server stamped during the test."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int | float) and not isinstance(other, bool):
            other = datetime.fromtimestamp(other, UTC)
        if not isinstance(other, datetime) or other.tzinfo is None:
            return False
        return abs(datetime.now(UTC) - other) < timedelta(minutes=1)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<a date in the last minute>"


RECENT: Any = Recent()


def body(response: dict[str, Any]) -> dict[str, Any]:
    """A boto3 response without its ResponseMetadata (request id, headers), for whole-response asserts."""
    return {name: value for name, value in response.items() if name != "ResponseMetadata"}


def put(key: str, value: str, sync_count: int = 0, **extra: Any) -> dict[str, Any]:
    return {"Op": "replace", "Key": key, "Value": value, "SyncCount": sync_count, **extra}


def rm(key: str, sync_count: int, **extra: Any) -> dict[str, Any]:
    return {"Op": "remove", "Key": key, "SyncCount": sync_count, **extra}


def record(key: str, value: str | None, sync_count: int, by: str = "phone", **extra: Any) -> dict[str, Any]:
    """A Record as boto3 returns it (no Value for a tombstone)."""
    out: dict[str, Any] = {"Key": key}
    if value is not None:
        out["Value"] = value
    out.update(SyncCount=sync_count, LastModifiedDate=RECENT, LastModifiedBy=by, **extra)
    return out


def empty_page(sync_count: int = 0, **changes: Any) -> dict[str, Any]:
    """A ListRecords response (boto3 view) with no records; ``changes`` override members."""
    page: dict[str, Any] = {
        "Records": [],
        "Count": 0,
        "DatasetSyncCount": sync_count,
        "DatasetExists": False,
        "DatasetDeletedAfterRequestedSyncCount": False,
        "MergedDatasetNames": [],
        "SyncSessionToken": ANY,
    }
    return {**page, **changes}


def page(records: list[dict[str, Any]], sync_count: int, by: str = "phone", **changes: Any) -> dict[str, Any]:
    """A ListRecords response (boto3 view) of a live dataset last written by ``by``."""
    return empty_page(
        sync_count,
        Records=records,
        Count=len(records),
        DatasetExists=True,
        LastModifiedBy=by,
        **changes,
    )


async def fails(call: Awaitable[Any]) -> ClientError:
    """The ClientError a boto3 call raises (the test fails if it succeeds)."""
    with pytest.raises(ClientError) as caught:
        await call
    return caught.value


def error_of(exc: ClientError) -> tuple[int, str, str]:
    """(HTTP status, error code, message) of a boto3 ClientError."""
    error = exc.response["Error"]
    return exc.response["ResponseMetadata"]["HTTPStatusCode"], error["Code"], error["Message"]


@dataclass(frozen=True)
class DatasetRef:
    """One dataset of one identity in one pool."""

    pool: str
    identity: str
    name: str

    @property
    def params(self) -> dict[str, str]:
        return {"IdentityPoolId": self.pool, "IdentityId": self.identity, "DatasetName": self.name}

    @property
    def path(self) -> str:
        return f"/identitypools/{label(self.pool)}/identities/{label(self.identity)}/datasets/{label(self.name)}"

    def other(self, name: str) -> DatasetRef:
        return replace(self, name=name)


@dataclass
class Device:
    """One device syncing one dataset through unmodified boto3; keeps the SyncSessionToken of its last pull."""

    boto: Boto
    ref: DatasetRef
    device_id: str = "phone"
    token: str | None = None

    async def pull(self, **params: Any) -> dict[str, Any]:
        """ListRecords (response without metadata); remembers its SyncSessionToken."""
        listed = await self.boto.call(self.boto.sync, "list_records", **self.ref.params, **params)
        self.token = listed["SyncSessionToken"]
        return body(listed)

    async def push(self, *patches: dict[str, Any]) -> dict[str, Any]:
        """UpdateRecords with this device's id (pulls first for a session token if it has none)."""
        if self.token is None:
            await self.pull()
        updated = await self.boto.call(
            self.boto.sync,
            "update_records",
            **self.ref.params,
            DeviceId=self.device_id,
            RecordPatches=list(patches),
            SyncSessionToken=self.token,
        )
        return body(updated)

    async def describe(self) -> dict[str, Any]:
        return body(await self.boto.call(self.boto.sync, "describe_dataset", **self.ref.params))

    async def delete(self) -> dict[str, Any]:
        return body(await self.boto.call(self.boto.sync, "delete_dataset", **self.ref.params))

    def on(self, name: str) -> Device:
        """The same device on another dataset of the same identity."""
        return Device(self.boto, self.ref.other(name), self.device_id)

    def sibling(self, device_id: str) -> Device:
        """Another device of the same identity, on the same dataset."""
        return Device(self.boto, self.ref, device_id)


async def redis_state(client: aioredis.Redis) -> dict[bytes, Any]:
    """Every key in the test database with its whole contents (for "nothing changed" asserts), but the serving
    instances' own reports (``syncsvc.store.instances``: rewritten every few seconds, whatever the requests do)."""
    state: dict[bytes, Any] = {}
    async for key in client.scan_iter():
        if key == INSTANCES.encode():
            continue
        kind = await client.type(key)
        if kind == b"hash":
            state[key] = await client.hgetall(key)
        elif kind == b"zset":
            state[key] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            state[key] = await client.smembers(key)
        else:
            state[key] = (kind, await client.dump(key))
    return state


def forged(token: str, **claims: Any) -> str:
    """``token`` with some claims changed but its signature kept: what a client tampering with it would send."""
    encoded, _, mac = token.partition(".")
    decoded = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    changed = base64.urlsafe_b64encode(orjson.dumps({**decoded, **claims})).rstrip(b"=").decode()
    return f"{changed}.{mac}"


async def write(boto: Boto, names: dict[str, Any], values: dict[str, str], counts: dict[str, int] | None = None) -> Any:
    token = (await boto.call(boto.sync, "list_records", **names))["SyncSessionToken"]
    patches = [
        {"Op": "replace", "Key": key, "Value": value, "SyncCount": (counts or {}).get(key, 0)}
        for key, value in values.items()
    ]
    return await boto.call(boto.sync, "update_records", **names, SyncSessionToken=token, RecordPatches=patches)
