"""The outbox: a committed change is appended to its shard's stream in the same script, and only then."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError
from redis.asyncio import Redis

from syncsvc import rediskeys
from syncsvc.config import Settings
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.backend import text
from tests.conftest import Boto, envelope_of, opened_value

ROLE = "arn:aws:iam::123456789012:role/streams"


async def streaming_pool(boto: Boto, status: str = "ENABLED") -> str:
    pool_id = await boto.new_pool()
    await boto.call(
        boto.sync,
        "set_identity_pool_configuration",
        IdentityPoolId=pool_id,
        CognitoStreams={"StreamName": "changes", "RoleArn": ROLE, "StreamingStatus": status},
    )
    return pool_id


async def write(boto: Boto, names: dict[str, str], patches: list[dict[str, Any]], device: str = "phone") -> Any:
    token = (await boto.call(boto.sync, "list_records", **names))["SyncSessionToken"]
    return await boto.call(
        boto.sync, "update_records", **names, SyncSessionToken=token, DeviceId=device, RecordPatches=patches
    )


async def outbox(redis_client: Redis, settings: Settings, identity_id: str) -> list[dict[str, Any]]:
    shard = rediskeys.shard_of(identity_id, settings.shards)
    entries = await redis_client.xrange(rediskeys.outbox(shard))
    return [{text(k): text(v) for k, v in (fields or {}).items()} for _, fields in entries or []]


async def test_a_write_to_a_streaming_pool_is_in_the_outbox(
    boto: Boto, redis_client: Redis, settings: Settings
) -> None:
    names = {
        "IdentityPoolId": await streaming_pool(boto),
        "IdentityId": f"us-east-1:{uuid.uuid4()}",
        "DatasetName": "d",
    }
    patches = [
        {"Op": "replace", "Key": "a", "Value": "1", "SyncCount": 0, "DeviceLastModifiedDate": 1_700_000_000},
        {"Op": "remove", "Key": "b", "SyncCount": 0},
    ]
    written = await write(boto, names, patches)
    (entry,) = await outbox(redis_client, settings, names["IdentityId"])
    records = orjson.loads(entry.pop("records"))
    modified = int(entry.pop("lm"))
    assert modified == round(written["Records"][0]["LastModifiedDate"].timestamp() * 1000)
    assert entry == {
        "topic": "changes",
        "pool": names["IdentityPoolId"],
        "identity": names["IdentityId"],
        "dataset": "d",
        "sc": "1",
    }
    keyspace = IdentityKeyspace.of(names["IdentityPoolId"], names["IdentityId"], settings.shards)
    cipher = await envelope_of(redis_client, settings).cipher(keyspace, create=False)
    sealed = records[0].pop("v")
    assert (sealed.startswith("e1:"), await opened_value(redis_client, settings, keyspace, "d", "a", sealed)) == (
        True,
        "1",
    )
    opened_names = [cipher.open_name("d", record["k"], record.pop("nk")) for record in records]
    assert opened_names == ["a", "b"]
    assert records == [
        {"k": cipher.token("d", "a"), "op": "replace", "sc": 1, "lm": modified, "d": 1_700_000_000_000},
        {"k": cipher.token("d", "b"), "op": "remove", "sc": 1, "lm": modified},
    ]


async def test_a_pool_with_streaming_disabled_adds_nothing(boto: Boto, redis_client: Redis, settings: Settings) -> None:
    names = {
        "IdentityPoolId": await streaming_pool(boto, "DISABLED"),
        "IdentityId": f"us-east-1:{uuid.uuid4()}",
        "DatasetName": "d",
    }
    await write(boto, names, [{"Op": "replace", "Key": "a", "Value": "1", "SyncCount": 0}])
    assert await outbox(redis_client, settings, names["IdentityId"]) == []


async def test_a_rejected_or_repeated_write_adds_nothing(boto: Boto, redis_client: Redis, settings: Settings) -> None:
    names = {
        "IdentityPoolId": await streaming_pool(boto),
        "IdentityId": f"us-east-1:{uuid.uuid4()}",
        "DatasetName": "d",
    }
    patches = [{"Op": "replace", "Key": "a", "Value": "1", "SyncCount": 0}]
    await write(boto, names, patches)
    await write(boto, names, patches)  # the same write re-sent: the original result, nothing new
    with pytest.raises(ClientError, match="ResourceConflictException"):
        await write(boto, names, patches, device="tablet")  # a stale write from another device: a conflict
    assert [entry["sc"] for entry in await outbox(redis_client, settings, names["IdentityId"])] == ["1"]


async def test_each_commit_is_one_entry_in_commit_order(boto: Boto, redis_client: Redis, settings: Settings) -> None:
    names = {
        "IdentityPoolId": await streaming_pool(boto),
        "IdentityId": f"us-east-1:{uuid.uuid4()}",
        "DatasetName": "d",
    }
    for count in range(3):
        await write(boto, names, [{"Op": "replace", "Key": "k", "Value": str(count), "SyncCount": count}])
    entries = await outbox(redis_client, settings, names["IdentityId"])
    keyspace = IdentityKeyspace.of(names["IdentityPoolId"], names["IdentityId"], settings.shards)
    values = [orjson.loads(entry["records"])[0]["v"] for entry in entries]
    opened = [await opened_value(redis_client, settings, keyspace, "d", "k", value) for value in values]
    assert [(entry["sc"], value) for entry, value in zip(entries, opened, strict=True)] == [
        ("1", "0"),
        ("2", "1"),
        ("3", "2"),
    ]
