"""Cognito Sync dataset semantics: limits, DescribeDataset / ListDatasets / DeleteDataset, input checks, usage.

Record-level behaviour (sync counts, conflicts, version vectors, paging of records) is in ``test_sync_records.py``;
the helpers both use are in ``tests/datasets.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from botocore.config import Config

from syncsvc.api.app import create_app
from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION, Boto, free_port, make_settings
from tests.datasets import (
    RECENT,
    DatasetRef,
    Device,
    body,
    empty_page,
    error_of,
    fails,
    forged,
    new_identity,
    page,
    put,
    record,
    redis_state,
    rm,
)

UNKNOWN_POOL = "us-east-1:00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def pool(boto: Boto) -> str:
    return await boto.new_pool()


def without_retries(boto: Boto) -> Boto:
    """``boto`` with a Sync client that makes one attempt only. botocore retries LimitExceededException after a
    random back-off of up to a second; the limit tests check a single failed call (one test checks the retry)."""
    boto.sync = boto3.client(
        "cognito-sync",
        endpoint_url=boto.sync.meta.endpoint_url,
        region_name=REGION,
        aws_access_key_id=DEVELOPER_KEY,
        aws_secret_access_key=DEVELOPER_SECRET,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=20),
    )
    return boto


@pytest.fixture
def phone(boto: Boto, pool: str) -> Device:
    return Device(without_retries(boto), DatasetRef(pool, new_identity(), "settings"), "phone")


@pytest.fixture
async def small(redis_url: str, redis_client: aioredis.Redis) -> AsyncIterator[Device]:
    """A device on a server with small limits: 3 records and 100 bytes per dataset, values of at most 40 bytes."""
    del redis_client  # flushes the database
    settings = make_settings(redis_url, max_records_per_dataset=3, max_dataset_bytes=100, max_value_bytes=40)
    server = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    boto = without_retries(Boto(str(server.make_url("")).rstrip("/")))
    yield Device(boto, DatasetRef(await boto.new_pool(), new_identity(), "settings"), "phone")
    await server.close()


def dataset(device: Device, *, storage: int, records: int, name: str | None = None) -> dict[str, Any]:
    """A Dataset as boto3 returns it, last written by ``device``."""
    return {
        "IdentityId": device.ref.identity,
        "DatasetName": name or device.ref.name,
        "CreationDate": RECENT,
        "LastModifiedDate": RECENT,
        "LastModifiedBy": device.device_id,
        "DataStorage": storage,
        "NumRecords": records,
    }


async def list_datasets(device: Device, **params: Any) -> dict[str, Any]:
    listed = await device.boto.call(
        device.boto.sync,
        "list_datasets",
        IdentityPoolId=device.ref.pool,
        IdentityId=device.ref.identity,
        **params,
    )
    return body(listed)


async def identity_usage(device: Device) -> dict[str, Any]:
    usage = await device.boto.call(
        device.boto.sync,
        "describe_identity_usage",
        IdentityPoolId=device.ref.pool,
        IdentityId=device.ref.identity,
    )
    return body(usage)


async def pool_usage(device: Device) -> dict[str, Any]:
    usage = await device.boto.call(device.boto.sync, "describe_identity_pool_usage", IdentityPoolId=device.ref.pool)
    return body(usage)


# --- DescribeDataset and ListDatasets ---------------------------------------------------------------------------------


async def test_describe_dataset_returns_its_figures(phone: Device) -> None:
    await phone.push(put("a", "12345"), put("bb", "6"), rm("c", 0))

    assert await phone.describe() == {"Dataset": dataset(phone, storage=len("a12345bb6"), records=2)}


async def test_describe_missing_dataset_is_not_found(phone: Device) -> None:
    error = await fails(phone.describe())

    assert error_of(error) == (404, "ResourceNotFoundException", "Dataset 'settings' does not exist.")


async def test_list_datasets_of_an_identity_without_data_is_empty(phone: Device) -> None:
    assert await list_datasets(phone) == {"Datasets": [], "Count": 0}


async def test_list_datasets_lists_live_datasets_in_name_order(phone: Device) -> None:
    for name in ("zeta", "alpha", "mid:dle"):
        await phone.on(name).push(put("k", name))

    assert await list_datasets(phone) == {
        "Datasets": [
            dataset(phone, storage=len("kalpha"), records=1, name="alpha"),
            dataset(phone, storage=len("kmid:dle"), records=1, name="mid:dle"),
            dataset(phone, storage=len("kzeta"), records=1, name="zeta"),
        ],
        "Count": 3,
    }


async def test_list_datasets_pages_return_every_dataset_once(phone: Device) -> None:
    for name in ("e", "d", "c", "b", "a"):
        await phone.on(name).push(put("k", "v"))

    pages: list[list[str]] = []
    params: dict[str, Any] = {"MaxResults": 2}
    while True:
        listed = await list_datasets(phone, **params)
        pages.append([item["DatasetName"] for item in listed["Datasets"]])
        assert listed["Count"] == len(pages[-1])
        if "NextToken" not in listed:
            break
        params["NextToken"] = listed["NextToken"]

    assert pages == [["a", "b"], ["c", "d"], ["e"]]


async def test_list_datasets_tampered_next_token_is_invalid(phone: Device) -> None:
    for name in ("a", "b", "c"):
        await phone.on(name).push(put("k", "v"))
    first = await list_datasets(phone, MaxResults=1)

    error = await fails(list_datasets(phone, MaxResults=1, NextToken=forged(first["NextToken"], a="")))

    assert error_of(error) == (400, "InvalidParameterException", "NextToken is not a valid token")


async def test_list_datasets_next_token_of_another_identity_is_invalid(phone: Device) -> None:
    for name in ("a", "b"):
        await phone.on(name).push(put("k", "v"))
    first = await list_datasets(phone, MaxResults=1)
    stranger = Device(phone.boto, replace(phone.ref, identity=new_identity()))

    error = await fails(list_datasets(stranger, MaxResults=1, NextToken=first["NextToken"]))

    assert error_of(error) == (400, "InvalidParameterException", "NextToken not valid for these inputs")


@pytest.mark.parametrize("max_results", [0, -1])
async def test_list_datasets_max_results_below_one_is_invalid(phone: Device, max_results: int) -> None:
    error = await fails(list_datasets(phone, MaxResults=max_results))

    assert error_of(error) == (400, "InvalidParameterException", f"MaxResults must be at least 1, not {max_results}")


# --- limits -----------------------------------------------------------------------------------------------------------


async def test_twenty_first_dataset_exceeds_the_limit_and_writes_nothing(
    phone: Device, redis_client: aioredis.Redis
) -> None:
    for n in range(20):
        await phone.on(f"ds-{n:02d}").push(put("k", "v"))
    extra = phone.on("ds-20")
    await extra.pull()
    before = await redis_state(redis_client)

    error = await fails(extra.push(put("k", "v")))

    assert error_of(error) == (
        400,
        "LimitExceededException",
        "An identity may hold at most 20 datasets; 'ds-20' would be one more",
    )
    assert await redis_state(redis_client) == before
    assert await extra.pull() == empty_page()
    assert error_of(await fails(extra.describe()))[1] == "ResourceNotFoundException"
    assert (await list_datasets(phone))["Count"] == 20
    assert (await identity_usage(phone))["IdentityUsage"]["DatasetCount"] == 20


async def test_existing_dataset_can_still_be_written_at_the_dataset_limit(phone: Device) -> None:
    for n in range(20):
        await phone.on(f"ds-{n:02d}").push(put("k", "v"))

    assert await phone.on("ds-07").push(put("k", "w", 1)) == {"Records": [record("k", "w", 2)]}


async def test_deleted_dataset_no_longer_counts_toward_the_dataset_limit(phone: Device) -> None:
    for n in range(20):
        await phone.on(f"ds-{n:02d}").push(put("k", "v"))
    extra = phone.on("ds-20")
    await fails(extra.push(put("k", "v")))

    await phone.on("ds-00").delete()

    assert await extra.push(put("k", "v")) == {"Records": [record("k", "v", 1)]}
    assert (await identity_usage(phone))["IdentityUsage"]["DatasetCount"] == 20


async def test_record_over_the_record_limit_is_refused_and_writes_nothing(
    small: Device, redis_client: aioredis.Redis
) -> None:
    await small.push(put("a", "1"), put("b", "2"), put("c", "3"))
    before = await redis_state(redis_client)

    error = await fails(small.push(put("b", "22", 1), put("d", "4")))

    assert error_of(error) == (400, "LimitExceededException", "Dataset 'settings' would hold 4 records; the limit is 3")
    assert await redis_state(redis_client) == before
    assert await small.pull() == page([record("a", "1", 1), record("b", "2", 1), record("c", "3", 1)], 1)
    assert await small.describe() == {"Dataset": dataset(small, storage=len("a1b2c3"), records=3)}


async def test_limit_failure_retried_by_botocore_still_writes_nothing(
    boto: Boto, pool: str, redis_client: aioredis.Redis
) -> None:
    device = Device(boto, DatasetRef(pool, new_identity(), "settings"))  # botocore's default: LimitExceeded is retried
    await device.pull()
    before = await redis_state(redis_client)

    error = await fails(device.push(put("k" * 1025, "v")))

    assert (error_of(error)[1], error.response["ResponseMetadata"]["RetryAttempts"]) == ("LimitExceededException", 1)
    assert await redis_state(redis_client) == before


async def test_replacing_records_at_the_record_limit_is_allowed(small: Device) -> None:
    await small.push(put("a", "1"), put("b", "2"), put("c", "3"))

    assert await small.push(put("a", "11", 1), put("c", "33", 1)) == {
        "Records": [record("a", "11", 2), record("c", "33", 2)]
    }


async def test_removing_a_record_frees_room_for_another(small: Device) -> None:
    await small.push(put("a", "1"), put("b", "2"), put("c", "3"))
    await fails(small.push(put("d", "4")))

    await small.push(rm("a", 1))
    written = await small.push(put("d", "4"))

    assert written == {"Records": [record("d", "4", 3)]}
    assert await small.describe() == {"Dataset": dataset(small, storage=len("b2c3d4"), records=3)}


async def test_remove_and_add_in_one_update_fits_the_record_limit(small: Device) -> None:
    await small.push(put("a", "1"), put("b", "2"), put("c", "3"))

    written = await small.push(rm("a", 1), put("d", "4"))

    assert written == {"Records": [record("a", None, 2), record("d", "4", 2)]}


async def test_dataset_over_the_byte_limit_is_refused_and_writes_nothing(
    small: Device, redis_client: aioredis.Redis
) -> None:
    await small.push(put("a", "x" * 39), put("b", "y" * 39))  # 80 bytes
    before = await redis_state(redis_client)

    error = await fails(small.push(put("c", "z" * 20)))  # 101 bytes

    assert error_of(error) == (
        400,
        "LimitExceededException",
        "Dataset 'settings' would hold 101 bytes; the limit is 100",
    )
    assert await redis_state(redis_client) == before
    assert await small.pull() == page([record("a", "x" * 39, 1), record("b", "y" * 39, 1)], 1)
    assert await small.describe() == {"Dataset": dataset(small, storage=80, records=2)}
    assert await small.push(put("c", "z" * 19)) == {"Records": [record("c", "z" * 19, 2)]}  # exactly 100 bytes


async def test_byte_limit_counts_utf8_bytes(small: Device) -> None:
    await small.push(put("a", "€" * 13), put("b", "€" * 13))  # 2 * (1 + 39) = 80 bytes

    error = await fails(small.push(put("c", "é" * 10)))  # 80 + 1 + 20 = 101 bytes

    assert error_of(error) == (
        400,
        "LimitExceededException",
        "Dataset 'settings' would hold 101 bytes; the limit is 100",
    )


async def test_removing_a_record_frees_bytes(small: Device) -> None:
    await small.push(put("a", "x" * 39), put("b", "y" * 39))
    await fails(small.push(put("c", "z" * 39)))

    await small.push(rm("a", 1))

    assert await small.push(put("c", "z" * 39)) == {"Records": [record("c", "z" * 39, 3)]}
    assert await small.describe() == {"Dataset": dataset(small, storage=80, records=2)}


async def test_value_over_max_value_bytes_is_refused_and_writes_nothing(
    small: Device, redis_client: aioredis.Redis
) -> None:
    await small.pull()
    before = await redis_state(redis_client)

    error = await fails(small.push(put("ok", "1"), put("big", "€" * 14)))  # 42 bytes, 14 characters

    assert error_of(error) == (
        400,
        "LimitExceededException",
        "RecordPatches[1]: the value is 42 bytes; the limit is 40",
    )
    assert await redis_state(redis_client) == before
    assert await small.pull() == empty_page()
    assert error_of(await fails(small.describe()))[1] == "ResourceNotFoundException"
    assert await small.push(put("big", "€" * 13)) == {"Records": [record("big", "€" * 13, 1)]}


async def test_value_over_the_default_one_mebibyte_is_refused(phone: Device) -> None:
    error = await fails(phone.push(put("k", "x" * (1024 * 1024 + 1))))

    assert error_of(error) == (
        400,
        "LimitExceededException",
        "RecordPatches[0]: the value is 1048577 bytes; the limit is 1048576",
    )
    assert await phone.pull() == empty_page()


async def test_key_longer_than_1024_characters_is_refused_and_writes_nothing(
    phone: Device, redis_client: aioredis.Redis
) -> None:
    await phone.push(put("k", "v"))
    before = await redis_state(redis_client)

    error = await fails(phone.push(put("k" * 1025, "v")))

    assert error_of(error) == (
        400,
        "LimitExceededException",
        "RecordPatches[0]: the key is 1025 characters; the limit is 1024",
    )
    assert await redis_state(redis_client) == before
    assert await phone.pull() == page([record("k", "v", 1)], 1)
    assert await phone.describe() == {"Dataset": dataset(phone, storage=len("kv"), records=1)}
    assert await phone.push(put("k" * 1024, "v")) == {"Records": [record("k" * 1024, "v", 2)]}


async def test_key_of_1024_characters_is_accepted(phone: Device) -> None:
    key = "é" * 1024  # 1,024 characters, 2,048 bytes

    assert await phone.push(put(key, "v")) == {"Records": [record(key, "v", 1)]}


# --- DeleteDataset ----------------------------------------------------------------------------------------------------


async def test_delete_dataset_returns_the_dataset_as_it_was(phone: Device) -> None:
    await phone.push(put("a", "1"), put("b", "22"))

    assert await phone.delete() == {"Dataset": dataset(phone, storage=len("a1b22"), records=2)}


async def test_deleted_dataset_is_not_found(phone: Device) -> None:
    await phone.push(put("a", "1"))
    await phone.delete()

    described, deleted = await fails(phone.describe()), await fails(phone.delete())

    not_found = (404, "ResourceNotFoundException", "Dataset 'settings' does not exist.")
    assert (error_of(described), error_of(deleted)) == (not_found, not_found)


async def test_delete_of_a_missing_dataset_is_not_found(phone: Device) -> None:
    error = await fails(phone.delete())

    assert error_of(error) == (404, "ResourceNotFoundException", "Dataset 'settings' does not exist.")


async def test_list_records_after_delete_reports_deleted_after_requested_sync_count(phone: Device) -> None:
    await phone.push(put("a", "1"))
    await phone.push(put("b", "2"))
    await phone.delete()

    listed = await phone.pull(LastSyncCount=2)

    assert listed == empty_page(
        3, DatasetExists=False, DatasetDeletedAfterRequestedSyncCount=True, LastModifiedBy="phone"
    )


async def test_list_records_after_delete_from_zero_is_not_deleted_after_requested(phone: Device) -> None:
    await phone.push(put("a", "1"))
    await phone.delete()

    listed = await phone.pull()

    assert (listed["DatasetExists"], listed["DatasetDeletedAfterRequestedSyncCount"], listed["Records"]) == (
        False,
        False,
        [],
    )


async def test_update_after_delete_recreates_the_dataset_with_a_higher_sync_count(phone: Device) -> None:
    await phone.push(put("a", "1"), put("b", "2"))
    await phone.push(put("a", "11", 1))
    await phone.delete()

    written = await phone.push(put("a", "new"))

    assert written == {"Records": [record("a", "new", 4)]}
    assert await phone.pull() == page([record("a", "new", 4)], 4, DatasetDeletedAfterRequestedSyncCount=False)
    assert await phone.describe() == {"Dataset": dataset(phone, storage=len("anew"), records=1)}


async def test_update_after_delete_with_an_old_sync_count_is_a_conflict(phone: Device) -> None:
    await phone.push(put("a", "1"))
    await phone.delete()

    error = await fails(phone.push(put("a", "2", 1)))

    assert error_of(error) == (409, "ResourceConflictException", "Current SyncCount for: a is: 0 not: 1")


async def test_deleted_dataset_leaves_list_datasets_and_usage(phone: Device) -> None:
    await phone.on("keep").push(put("k", "v"))
    await phone.push(put("gone", "12345"))

    await phone.delete()

    assert await list_datasets(phone) == {
        "Datasets": [dataset(phone, storage=len("kv"), records=1, name="keep")],
        "Count": 1,
    }
    usage = (await identity_usage(phone))["IdentityUsage"]
    assert (usage["DatasetCount"], usage["DataStorage"]) == (1, len("kv"))


# --- unknown pools and bad inputs -------------------------------------------------------------------------------------

OPERATIONS: dict[str, dict[str, Any]] = {
    "list_records": {"IdentityId": new_identity(), "DatasetName": "ds"},
    "update_records": {
        "IdentityId": new_identity(),
        "DatasetName": "ds",
        "SyncSessionToken": "token",
        "RecordPatches": [put("k", "v")],
    },
    "describe_dataset": {"IdentityId": new_identity(), "DatasetName": "ds"},
    "delete_dataset": {"IdentityId": new_identity(), "DatasetName": "ds"},
    "list_datasets": {"IdentityId": new_identity()},
    "describe_identity_usage": {"IdentityId": new_identity()},
    "describe_identity_pool_usage": {},
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_unknown_pool_is_not_found(boto: Boto, operation: str) -> None:
    error = await fails(boto.call(boto.sync, operation, IdentityPoolId=UNKNOWN_POOL, **OPERATIONS[operation]))

    assert error_of(error) == (404, "ResourceNotFoundException", f"IdentityPool '{UNKNOWN_POOL}' not found.")


@pytest.mark.parametrize("operation", sorted(name for name, params in OPERATIONS.items() if "IdentityId" in params))
async def test_bad_identity_id_is_invalid(boto: Boto, pool: str, operation: str) -> None:
    params = {**OPERATIONS[operation], "IdentityId": "not-an-identity"}

    error = await fails(boto.call(boto.sync, operation, IdentityPoolId=pool, **params))

    assert error_of(error) == (
        400,
        "InvalidParameterException",
        "IdentityId 'not-an-identity' is not of the form <region>:<uuid>",
    )


@pytest.mark.parametrize(
    "identity_id",
    ["us-east-1:ABCDEF00-0000", "us-east-1:" + "0" * 46, "us-east-1", ":abc"],
    ids=["upper-case", "56-characters", "no-colon", "no-region"],
)
async def test_malformed_identity_ids_are_invalid(phone: Device, identity_id: str) -> None:
    device = Device(phone.boto, replace(phone.ref, identity=identity_id))

    error = await fails(device.pull())

    assert error_of(error) == (
        400,
        "InvalidParameterException",
        f"IdentityId '{identity_id}' is not of the form <region>:<uuid>",
    )


@pytest.mark.parametrize("operation", sorted(name for name, params in OPERATIONS.items() if "DatasetName" in params))
@pytest.mark.parametrize("name", ["bad name!", "x" * 129], ids=["bad-characters", "129-characters"])
async def test_bad_dataset_name_is_invalid(boto: Boto, pool: str, operation: str, name: str) -> None:
    params = {**OPERATIONS[operation], "DatasetName": name}

    error = await fails(boto.call(boto.sync, operation, IdentityPoolId=pool, **params))

    assert error_of(error) == (
        400,
        "InvalidParameterException",
        f"DatasetName '{name}' must be 1-128 characters of a-z, A-Z, 0-9, '_', '.', ':' and '-'",
    )


async def test_dataset_name_of_128_allowed_characters_is_accepted(phone: Device) -> None:
    name = ("Aa0_.:-" * 19)[:128]
    device = phone.on(name)

    assert await device.push(put("k", "v")) == {"Records": [record("k", "v", 1)]}
    assert (await device.describe())["Dataset"]["DatasetName"] == name


# --- usage ------------------------------------------------------------------------------------------------------------


async def test_identity_usage_counts_live_datasets_and_bytes(phone: Device) -> None:
    await phone.on("one").push(put("k", "vv"))
    await phone.on("two").push(put("key", "välue"))

    assert await identity_usage(phone) == {
        "IdentityUsage": {
            "IdentityId": phone.ref.identity,
            "IdentityPoolId": phone.ref.pool,
            "DatasetCount": 2,
            "DataStorage": len("kvvkeyvälue".encode()),
            "LastModifiedDate": RECENT,
        }
    }


async def test_identity_usage_of_an_identity_without_data_is_zero(phone: Device) -> None:
    assert await identity_usage(phone) == {
        "IdentityUsage": {
            "IdentityId": phone.ref.identity,
            "IdentityPoolId": phone.ref.pool,
            "DatasetCount": 0,
            "DataStorage": 0,
        }
    }


async def test_identity_usage_follows_replaces_and_removes(phone: Device) -> None:
    await phone.push(put("a", "1234"), put("b", "1"))
    await phone.push(put("a", "1", 1), rm("b", 1))

    usage = (await identity_usage(phone))["IdentityUsage"]

    assert (usage["DatasetCount"], usage["DataStorage"]) == (1, len("a1"))


async def test_pool_usage_sums_every_identity(phone: Device) -> None:
    other = Device(phone.boto, replace(phone.ref, identity=new_identity()), "tablet")
    await phone.push(put("a", "123"))
    await other.push(put("bb", "4567"))

    assert await pool_usage(phone) == {
        "IdentityPoolUsage": {
            "IdentityPoolId": phone.ref.pool,
            "SyncSessionsCount": 2,
            "DataStorage": len("a123") + len("bb4567"),
            "LastModifiedDate": RECENT,
        }
    }


async def test_pool_usage_of_a_pool_without_data_is_zero(phone: Device) -> None:
    assert await pool_usage(phone) == {
        "IdentityPoolUsage": {"IdentityPoolId": phone.ref.pool, "SyncSessionsCount": 0, "DataStorage": 0}
    }


async def test_sync_sessions_count_rises_by_one_per_list_records(phone: Device) -> None:
    await phone.push(put("a", "1"))
    before = (await pool_usage(phone))["IdentityPoolUsage"]["SyncSessionsCount"]

    for name in ("settings", "settings", "other"):
        await phone.on(name).pull()

    assert (await pool_usage(phone))["IdentityPoolUsage"]["SyncSessionsCount"] == before + 3


async def test_following_next_token_is_not_a_new_sync_session(phone: Device) -> None:
    await phone.push(put("a", "1"), put("b", "2"), put("c", "3"))
    first = await phone.pull(MaxResults=1)
    before = (await pool_usage(phone))["IdentityPoolUsage"]["SyncSessionsCount"]

    second = await phone.pull(MaxResults=1, NextToken=first["NextToken"])
    await phone.pull(MaxResults=1, NextToken=second["NextToken"])

    assert (await pool_usage(phone))["IdentityPoolUsage"]["SyncSessionsCount"] == before


async def test_list_identity_pool_usage_pages_through_every_pool(phone: Device) -> None:
    second_pool = await phone.boto.new_pool()
    await phone.push(put("a", "1"))
    pools = sorted([phone.ref.pool, second_pool])

    first = body(await phone.boto.call(phone.boto.sync, "list_identity_pool_usage", MaxResults=1))
    rest = body(
        await phone.boto.call(phone.boto.sync, "list_identity_pool_usage", MaxResults=1, NextToken=first["NextToken"])
    )

    assert [first["IdentityPoolUsages"][0]["IdentityPoolId"], rest["IdentityPoolUsages"][0]["IdentityPoolId"]] == pools
    assert (first["Count"], first["MaxResults"], rest["Count"], "NextToken" in rest) == (1, 1, 1, False)


async def test_list_identity_pool_usage_reports_each_pool(phone: Device) -> None:
    await phone.push(put("a", "123"))

    listed = body(await phone.boto.call(phone.boto.sync, "list_identity_pool_usage"))

    assert listed == {
        "IdentityPoolUsages": [
            {
                "IdentityPoolId": phone.ref.pool,
                "SyncSessionsCount": 1,
                "DataStorage": len("a123"),
                "LastModifiedDate": RECENT,
            }
        ],
        "Count": 1,
        "MaxResults": 16,
    }
