"""Cognito Sync record semantics: ListRecords / UpdateRecords, sync counts, conflicts, version vectors, paging.

Most tests drive the server with unmodified boto3 (``Device``); the ``VersionVector`` extension members and raw
statuses go through ``Wire`` (botocore-signed raw HTTP). Dataset-level behaviour (limits, deletion, usage) is in
``test_sync_datasets.py``; the helpers both use are in ``tests/datasets.py``.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from unittest.mock import ANY

import orjson
import pytest
import redis.asyncio as aioredis

from tests.conftest import Boto, Raw
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

# --- helpers ----------------------------------------------------------------------------------------------------------


def wire_record(key: str, value: str | None, sync_count: int, by: str, vector: dict[str, int]) -> dict[str, Any]:
    """A Record as the server sends it on the wire (epoch seconds, with the VersionVector extension)."""
    return {**record(key, value, sync_count, by), "VersionVector": vector}


@dataclass
class Wire:
    """One device syncing one dataset through raw signed HTTP: sees statuses, headers and extension members."""

    raw: Raw
    ref: DatasetRef
    device_id: str = "phone"
    token: str | None = None

    async def pull(self, query: str = "") -> tuple[int, dict[str, Any]]:
        status, payload, _ = await self.raw.send("GET", f"{self.ref.path}/records{query}")
        if status == 200:
            self.token = payload["SyncSessionToken"]
        return status, payload

    async def push(self, *patches: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.token is None:
            await self.pull()
        assert self.token is not None
        request = {"SyncSessionToken": self.token, "DeviceId": self.device_id, "RecordPatches": list(patches)}
        status, payload, _ = await self.raw.send("POST", self.ref.path, body=request)
        return status, payload


@pytest.fixture
async def pool(boto: Boto) -> str:
    return await boto.new_pool()


@pytest.fixture
def ref(pool: str) -> DatasetRef:
    return DatasetRef(pool, new_identity(), "settings")


@pytest.fixture
def phone(boto: Boto, ref: DatasetRef) -> Device:
    return Device(boto, ref, "phone")


@pytest.fixture
def wire(raw: Raw, ref: DatasetRef) -> Wire:
    return Wire(raw, ref, "phone")


# --- ListRecords on a dataset that does not exist ---------------------------------------------------------------------


async def test_list_records_of_a_missing_dataset_is_an_empty_page(phone: Device) -> None:
    assert await phone.pull() == empty_page()


async def test_list_records_of_a_missing_dataset_answers_200_with_every_member(wire: Wire) -> None:
    assert await wire.pull() == (200, {**empty_page(), "VersionVector": {}})


async def test_list_records_issues_a_sync_session_token(phone: Device) -> None:
    listed = await phone.pull()

    assert isinstance(listed["SyncSessionToken"], str)
    assert listed["SyncSessionToken"]


# --- UpdateRecords and sync counts ------------------------------------------------------------------------------------


async def test_first_update_creates_the_dataset(phone: Device) -> None:
    written = await phone.push(put("theme", "dark"), put("lang", "en"))

    assert written == {"Records": [record("theme", "dark", 1), record("lang", "en", 1)]}
    assert await phone.describe() == {
        "Dataset": {
            "IdentityId": phone.ref.identity,
            "DatasetName": "settings",
            "CreationDate": RECENT,
            "LastModifiedDate": RECENT,
            "LastModifiedBy": "phone",
            "DataStorage": len("themedarklangen"),
            "NumRecords": 2,
        }
    }


async def test_each_update_raises_the_dataset_sync_count_by_exactly_one(phone: Device) -> None:
    counts = []
    for value in ("a", "b", "c"):
        written = await phone.push(put(f"key-{value}", value))
        counts.append(written["Records"][0]["SyncCount"])
        counts.append((await phone.pull())["DatasetSyncCount"])

    assert counts == [1, 1, 2, 2, 3, 3]


async def test_every_record_written_in_one_update_gets_its_sync_count(phone: Device) -> None:
    await phone.push(put("a", "1"))

    written = await phone.push(put("a", "2", 1), put("b", "2"), put("c", "2"), rm("d", 0))

    assert written == {"Records": [record("a", "2", 2), record("b", "2", 2), record("c", "2", 2), record("d", None, 2)]}


async def test_last_modified_by_is_the_device_id(phone: Device) -> None:
    laptop = phone.sibling("laptop-7f3a")
    await phone.push(put("a", "1"))
    await laptop.push(put("b", "2"))

    listed = await laptop.pull()

    assert listed == page([record("a", "1", 1), record("b", "2", 2, by="laptop-7f3a")], 2, by="laptop-7f3a")
    assert (await phone.describe())["Dataset"]["LastModifiedBy"] == "laptop-7f3a"


async def test_device_last_modified_date_round_trips(phone: Device) -> None:
    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)

    written = await phone.push(put("a", "1", DeviceLastModifiedDate=when))

    assert written == {"Records": [record("a", "1", 1, DeviceLastModifiedDate=when)]}
    assert (await phone.pull())["Records"] == [record("a", "1", 1, DeviceLastModifiedDate=when)]


async def test_update_with_no_patches_writes_nothing(phone: Device) -> None:
    await phone.push(put("a", "1"))

    assert await phone.push() == {"Records": []}
    assert await phone.pull() == page([record("a", "1", 1)], 1)


async def test_replace_with_an_empty_value_keeps_an_empty_value(phone: Device) -> None:
    await phone.push(put("a", ""))

    assert await phone.pull() == page([record("a", "", 1)], 1)
    assert (await phone.describe())["Dataset"]["NumRecords"] == 1


def client_context(installation_id: str) -> str:
    """An ``x-amz-Client-Context`` header value as the mobile SDKs build it (base64 JSON)."""
    return base64.b64encode(orjson.dumps({"client": {"installation_id": installation_id}})).decode()


async def update_with(device: Device, *patches: dict[str, Any], **params: Any) -> dict[str, Any]:
    """UpdateRecords with only the optional members given in ``params`` (DeviceId, ClientContext)."""
    await device.pull()
    written = await device.boto.call(
        device.boto.sync,
        "update_records",
        **device.ref.params,
        RecordPatches=list(patches),
        SyncSessionToken=device.token,
        **params,
    )
    return body(written)


async def test_update_without_device_id_is_attributed_to_the_client_context_installation(phone: Device) -> None:
    written = await update_with(phone, put("a", "1"), ClientContext=client_context("install-42"))

    assert written == {"Records": [record("a", "1", 1, by="install-42")]}


async def test_device_id_takes_precedence_over_the_client_context(phone: Device) -> None:
    written = await update_with(phone, put("a", "1"), DeviceId="phone", ClientContext=client_context("install-42"))

    assert written == {"Records": [record("a", "1", 1, by="phone")]}


async def test_update_without_device_id_is_attributed_to_the_identity(phone: Device) -> None:
    written = await update_with(phone, put("a", "1"))

    assert written == {"Records": [record("a", "1", 1, by=phone.ref.identity)]}


async def test_malformed_client_context_is_attributed_to_the_identity(phone: Device) -> None:
    written = await update_with(phone, put("a", "1"), ClientContext="not base64 json")

    assert written == {"Records": [record("a", "1", 1, by=phone.ref.identity)]}


# --- delta pulls ------------------------------------------------------------------------------------------------------


async def test_list_records_returns_only_records_changed_after_last_sync_count(phone: Device) -> None:
    await phone.push(put("a", "1"), put("b", "1"))  # 1
    await phone.push(put("c", "2"))  # 2
    await phone.push(put("a", "3", 1), put("d", "3"))  # 3

    deltas = {n: (await phone.pull(LastSyncCount=n))["Records"] for n in range(4)}

    assert deltas == {
        0: [record("b", "1", 1), record("c", "2", 2), record("a", "3", 3), record("d", "3", 3)],
        1: [record("c", "2", 2), record("a", "3", 3), record("d", "3", 3)],
        2: [record("a", "3", 3), record("d", "3", 3)],
        3: [],
    }


async def test_list_records_after_the_current_sync_count_is_empty_but_live(phone: Device) -> None:
    await phone.push(put("a", "1"))

    assert await phone.pull(LastSyncCount=7) == page([], 1)


async def test_negative_last_sync_count_is_invalid(phone: Device) -> None:
    error = await fails(phone.pull(LastSyncCount=-1))

    assert error_of(error) == (400, "InvalidParameterException", "LastSyncCount must not be negative, not -1")


# --- removals: tombstones ---------------------------------------------------------------------------------------------


async def test_removed_record_comes_back_in_deltas_as_a_tombstone(phone: Device) -> None:
    await phone.push(put("a", "1"), put("b", "1"))

    written = await phone.push(rm("a", 1))

    assert written == {"Records": [record("a", None, 2)]}
    assert await phone.pull(LastSyncCount=1) == page([record("a", None, 2)], 2)
    assert (await phone.pull())["Records"] == [record("b", "1", 1), record("a", None, 2)]


async def test_remove_lowers_num_records_and_data_storage(phone: Device) -> None:
    await phone.push(put("a", "12345"), put("bb", "6"))

    await phone.push(rm("a", 1))

    dataset = (await phone.describe())["Dataset"]
    assert (dataset["NumRecords"], dataset["DataStorage"]) == (1, len("bb6"))


async def test_remove_of_a_tombstone_keeps_the_figures(phone: Device) -> None:
    await phone.push(put("a", "1"), put("b", "2"))
    await phone.push(rm("a", 1))

    written = await phone.push(rm("a", 2))

    assert written == {"Records": [record("a", None, 3)]}
    dataset = (await phone.describe())["Dataset"]
    assert (dataset["NumRecords"], dataset["DataStorage"]) == (1, len("b2"))


async def test_replace_of_a_tombstone_brings_the_record_back(phone: Device) -> None:
    await phone.push(put("a", "1"))
    await phone.push(rm("a", 1))

    written = await phone.push(put("a", "again", 2))

    assert written == {"Records": [record("a", "again", 3)]}
    dataset = (await phone.describe())["Dataset"]
    assert (dataset["NumRecords"], dataset["DataStorage"]) == (1, len("aagain"))


async def test_replace_without_a_value_is_invalid(wire: Wire) -> None:
    status, payload = await wire.push({"Op": "replace", "Key": "a", "SyncCount": 0})

    assert (status, payload) == (
        400,
        {
            "__type": "InvalidParameterException",
            "message": "RecordPatches[0]: a replace needs a Value (use Op 'remove' to delete)",
        },
    )


async def test_the_same_key_twice_in_one_update_is_invalid(phone: Device) -> None:
    error = await fails(phone.push(put("a", "1"), put("a", "2")))

    assert error_of(error) == (
        400,
        "InvalidParameterException",
        "RecordPatches[1]: key 'a' appears more than once",
    )
    assert await phone.pull() == empty_page()


# --- conflicts (SyncCount) --------------------------------------------------------------------------------------------


async def test_stale_sync_count_is_a_resource_conflict_with_the_cognito_message(phone: Device) -> None:
    await phone.push(put("a", "1"))
    await phone.push(put("a", "2", 1))

    error = await fails(phone.push(put("a", "3", 1)))

    assert error_of(error) == (409, "ResourceConflictException", "Current SyncCount for: a is: 2 not: 1")


async def test_new_key_with_a_nonzero_sync_count_is_a_conflict(phone: Device) -> None:
    error = await fails(phone.push(put("fresh", "1", 5)))

    assert error_of(error) == (409, "ResourceConflictException", "Current SyncCount for: fresh is: 0 not: 5")
    assert await phone.pull() == empty_page()


async def test_existing_key_with_sync_count_zero_is_a_conflict(phone: Device) -> None:
    await phone.push(put("a", "1"))

    error = await fails(phone.sibling("laptop").push(put("a", "mine")))

    assert error_of(error) == (409, "ResourceConflictException", "Current SyncCount for: a is: 1 not: 0")


async def test_conflict_changes_nothing(phone: Device, redis_client: aioredis.Redis) -> None:
    await phone.push(put("a", "1"), put("b", "1"))
    await phone.push(put("a", "2", 1))
    before = await phone.pull()
    stored_before = await redis_state(redis_client)

    error = await fails(phone.push(put("b", "fresh", 1), put("c", "new"), put("a", "stale", 1)))

    assert error_of(error)[:2] == (409, "ResourceConflictException")
    assert await redis_state(redis_client) == stored_before
    after = await phone.pull()
    # every member alike but the session token, which is new on every pull (and names its own expiry)
    assert {**after, "SyncSessionToken": None} == {**before, "SyncSessionToken": None}


async def test_conflict_on_one_patch_rejects_the_whole_update(phone: Device) -> None:
    await phone.push(put("a", "1"))

    error = await fails(phone.push(put("new", "1"), put("a", "stale", 0)))

    assert error_of(error) == (409, "ResourceConflictException", "Current SyncCount for: a is: 1 not: 0")
    assert await phone.pull() == page([record("a", "1", 1)], 1)


async def test_conflict_response_carries_the_stored_records_and_vectors(wire: Wire) -> None:
    await wire.push(put("a", "1"), put("b", "1"))
    await wire.push(put("a", "2", 1))
    assert wire.token is not None
    request = {"SyncSessionToken": wire.token, "DeviceId": "laptop", "RecordPatches": [put("a", "x", 1), put("b", "x")]}

    status, payload, headers = await wire.raw.send("POST", wire.ref.path, body=request)

    assert (status, headers["x-amzn-ErrorType"], headers["Content-Type"]) == (
        409,
        "ResourceConflictException",
        "application/json",
    )
    assert uuid.UUID(headers["x-amzn-RequestId"])
    assert payload == {
        "__type": "ResourceConflictException",
        "message": "Current SyncCount for: a is: 2 not: 1",
        "Records": [
            wire_record("a", "2", 2, "phone", {"phone": 2}),
            wire_record("b", "1", 1, "phone", {"phone": 1}),
        ],
        "DatasetSyncCount": 2,
        "VersionVector": {"phone": 2},
    }


# --- idempotent re-sends ----------------------------------------------------------------------------------------------


async def test_resent_update_returns_the_original_result(phone: Device) -> None:
    first = await phone.push(put("a", "1"), put("b", "2"))

    again = await phone.push(put("a", "1"), put("b", "2"))

    assert again == first == {"Records": [record("a", "1", 1), record("b", "2", 1)]}
    assert await phone.pull() == page([record("a", "1", 1), record("b", "2", 1)], 1)


async def test_resent_update_is_recognised_after_another_device_wrote(phone: Device) -> None:
    await phone.push(put("a", "1"))
    first = await phone.push(put("a", "2", 1))
    await phone.sibling("laptop").push(put("c", "3"))

    again = await phone.push(put("a", "2", 1))

    assert again == first == {"Records": [record("a", "2", 2)]}
    assert (await phone.pull())["DatasetSyncCount"] == 3


async def test_different_write_on_the_same_stale_base_is_a_conflict(phone: Device) -> None:
    await phone.push(put("a", "1"))

    error = await fails(phone.push(put("a", "other")))

    assert error_of(error) == (409, "ResourceConflictException", "Current SyncCount for: a is: 1 not: 0")
    assert await phone.pull() == page([record("a", "1", 1)], 1)


async def test_same_patches_from_another_device_are_a_conflict(phone: Device) -> None:
    await phone.push(put("a", "1"))

    error = await fails(phone.sibling("laptop").push(put("a", "1")))

    assert error_of(error) == (409, "ResourceConflictException", "Current SyncCount for: a is: 1 not: 0")


# --- version vectors (extension members, raw) -------------------------------------------------------------------------


async def test_update_response_records_carry_version_vectors(wire: Wire) -> None:
    assert await wire.push(put("a", "1"), rm("b", 0)) == (
        200,
        {
            "Records": [
                wire_record("a", "1", 1, "phone", {"phone": 1}),
                wire_record("b", None, 1, "phone", {"phone": 1}),
            ]
        },
    )


async def test_list_records_carries_record_and_dataset_vectors(wire: Wire) -> None:
    await wire.push(put("a", "1"))
    await wire.push(put("b", "2"))

    assert await wire.pull() == (
        200,
        {
            **page(
                [
                    wire_record("a", "1", 1, "phone", {"phone": 1}),
                    wire_record("b", "2", 2, "phone", {"phone": 2}),
                ],
                2,
            ),
            "VersionVector": {"phone": 2},
        },
    )


async def test_patch_with_the_stored_vector_is_accepted_whatever_its_sync_count(wire: Wire) -> None:
    await wire.push(put("a", "1"))
    laptop = replace(wire, device_id="laptop", token=None)

    written = await laptop.push(put("a", "2", 99, VersionVector={"phone": 1}))

    assert written == (200, {"Records": [wire_record("a", "2", 2, "laptop", {"phone": 1, "laptop": 1})]})


async def test_patch_with_a_descending_vector_is_accepted_and_merged(wire: Wire) -> None:
    await wire.push(put("a", "1"))
    laptop = replace(wire, device_id="laptop", token=None)

    written = await laptop.push(put("a", "2", 0, VersionVector={"phone": 1, "tablet": 4}))

    assert written == (
        200,
        {"Records": [wire_record("a", "2", 2, "laptop", {"phone": 1, "tablet": 4, "laptop": 1})]},
    )


async def test_patch_with_a_stale_vector_is_a_conflict(wire: Wire) -> None:
    await wire.push(put("a", "1"))
    await wire.push(put("a", "2", 1))
    laptop = replace(wire, device_id="laptop", token=None)

    status, payload = await laptop.push(put("a", "3", 2, VersionVector={"phone": 1}))

    assert (status, payload) == (
        409,
        {
            "__type": "ResourceConflictException",
            "message": "Current SyncCount for: a is: 2 not: 2",
            "Records": [wire_record("a", "2", 2, "phone", {"phone": 2})],
            "DatasetSyncCount": 2,
            "VersionVector": {"phone": 2},
        },
    )
    assert (await wire.pull())[1]["Records"] == [wire_record("a", "2", 2, "phone", {"phone": 2})]


async def test_patch_with_a_concurrent_vector_is_a_conflict(wire: Wire) -> None:
    await wire.push(put("a", "1"))
    laptop = replace(wire, device_id="laptop", token=None)
    await laptop.push(put("a", "2", 1))  # stored vector {phone: 1, laptop: 1}
    tablet = replace(wire, device_id="tablet", token=None)

    status, payload = await tablet.push(put("a", "3", 0, VersionVector={"phone": 1, "tablet": 3}))

    assert (status, payload["__type"], payload["Records"]) == (
        409,
        "ResourceConflictException",
        [wire_record("a", "2", 2, "laptop", {"phone": 1, "laptop": 1})],
    )


async def test_alternating_devices_both_leave_their_dot(wire: Wire) -> None:
    laptop = replace(wire, device_id="laptop", token=None)
    for sync_count, writer in enumerate([wire, laptop, wire, laptop]):
        status, _ = await writer.push(put("a", writer.device_id, sync_count))
        assert status == 200

    status, listed = await wire.pull()

    assert (status, listed["Records"], listed["VersionVector"]) == (
        200,
        [wire_record("a", "laptop", 4, "laptop", {"phone": 2, "laptop": 2})],
        {"phone": 2, "laptop": 2},
    )


async def test_negative_vector_counter_is_invalid(wire: Wire) -> None:
    status, payload = await wire.push(put("a", "1", 0, VersionVector={"phone": -1}))

    assert (status, payload) == (
        400,
        {
            "__type": "InvalidParameterException",
            "message": "RecordPatches[0].VersionVector: version vector counter of 'phone' must not be negative, got -1",
        },
    )


# --- pagination -------------------------------------------------------------------------------------------------------


async def pages_of(device: Device, *, next_token: str | None = None, **params: Any) -> list[list[tuple[str, int]]]:
    """ListRecords pages as (key, sync count) pairs, from ``next_token`` (or the start) until NextToken is absent."""
    pages: list[list[tuple[str, int]]] = []
    while True:
        listed = await device.pull(**params, **({"NextToken": next_token} if next_token else {}))
        pages.append([(item["Key"], item["SyncCount"]) for item in listed["Records"]])
        next_token = listed.get("NextToken")
        if next_token is None:
            return pages


async def five_records(device: Device) -> None:
    await device.push(put("b", "1"), put("a", "1"))  # 1
    await device.push(put("c", "2"))  # 2
    await device.push(put("e", "3"), put("d", "3"))  # 3


def in_sync_count_order(pages: list[list[tuple[str, int]]]) -> list[tuple[str, int]]:
    """The records of ``pages``, checked to come in SyncCount order, and by key within a page where they share one
    (the order of records that share a SyncCount across pages follows names as stored: tokens, see the envelope)."""
    for records in pages:
        assert records == sorted(records, key=lambda item: (item[1], item[0])), records
    flat = [record for records in pages for record in records]
    assert [sync_count for _, sync_count in flat] == sorted(sync_count for _, sync_count in flat), flat
    return flat


async def test_pages_return_every_record_once_in_sync_count_order(phone: Device) -> None:
    await five_records(phone)

    pages = await pages_of(phone, MaxResults=2)

    assert [len(records) for records in pages] == [2, 2, 1]
    assert sorted(in_sync_count_order(pages)) == [("a", 1), ("b", 1), ("c", 2), ("d", 3), ("e", 3)]


async def test_first_page_is_a_whole_response_with_next_token(phone: Device) -> None:
    await five_records(phone)

    first = await phone.pull(MaxResults=2)

    assert first == page([record("a", "1", 1), record("b", "1", 1)], 3, NextToken=ANY)


async def test_a_pull_from_the_start_works_on_a_redis_that_lost_its_scripts(
    phone: Device, redis_client: aioredis.Redis
) -> None:
    """A pull from the start reads the page with the script and the records hash in one MULTI (RedisStore): after a
    restart or a failover the node may not know the script, which it refuses in the MULTI; it is loaded again."""
    await five_records(phone)
    await redis_client.script_flush()

    pulled = await phone.pull()

    assert [(item["Key"], item["SyncCount"]) for item in pulled["Records"]] == [
        ("a", 1), ("b", 1), ("c", 2), ("d", 3), ("e", 3)
    ]  # fmt: skip
    assert pulled["DatasetSyncCount"] == 3


async def test_pages_of_a_delta_start_after_last_sync_count(phone: Device) -> None:
    await five_records(phone)

    pages = await pages_of(phone, MaxResults=2, LastSyncCount=1)

    assert [len(records) for records in pages] == [2, 1]
    assert sorted(in_sync_count_order(pages)) == [("c", 2), ("d", 3), ("e", 3)]


async def test_records_written_between_pages_still_appear(phone: Device) -> None:
    await five_records(phone)
    first = await phone.pull(MaxResults=2)
    await phone.sibling("laptop").push(put("a", "changed", 1), put("f", "new"))  # 4

    rest = await pages_of(phone, MaxResults=2, next_token=first["NextToken"])

    assert [len(records) for records in rest] == [2, 2, 1]
    assert sorted(in_sync_count_order(rest)) == [("a", 4), ("c", 2), ("d", 3), ("e", 3), ("f", 4)]


async def test_tampered_next_token_is_invalid(phone: Device) -> None:
    await five_records(phone)
    first = await phone.pull(MaxResults=2)

    error = await fails(phone.pull(MaxResults=2, NextToken=forged(first["NextToken"], n=0, c="")))

    assert error_of(error) == (400, "InvalidParameterException", "NextToken is not a valid token")


async def test_garbage_next_token_is_invalid(phone: Device) -> None:
    error = await fails(phone.pull(NextToken="not-a-token"))

    assert error_of(error) == (400, "InvalidParameterException", "NextToken is not a valid token")


async def test_next_token_of_another_dataset_is_invalid(phone: Device) -> None:
    await five_records(phone)
    first = await phone.pull(MaxResults=2)
    other = phone.on("other")
    await other.push(put("x", "1"))

    error = await fails(other.pull(MaxResults=2, NextToken=first["NextToken"]))

    assert error_of(error) == (400, "InvalidParameterException", "NextToken not valid for these inputs")


@pytest.mark.parametrize("max_results", [0, -1])
async def test_list_records_max_results_below_one_is_invalid(phone: Device, max_results: int) -> None:
    await phone.push(put("a", "1"))

    error = await fails(phone.pull(MaxResults=max_results))

    assert error_of(error) == (
        400,
        "InvalidParameterException",
        f"MaxResults must be at least 1, not {max_results}",
    )


# --- SyncSessionToken -------------------------------------------------------------------------------------------------


async def test_session_token_of_another_dataset_is_not_valid(phone: Device) -> None:
    other = phone.on("other")
    await other.pull()
    phone.token = other.token

    error = await fails(phone.push(put("a", "1")))

    assert error_of(error) == (400, "InvalidParameterException", "SyncSessionToken not valid for these inputs")
    assert await phone.pull() == empty_page()


async def test_session_token_of_another_identity_is_not_valid(phone: Device) -> None:
    stranger = Device(phone.boto, replace(phone.ref, identity=new_identity()))
    await stranger.pull()
    phone.token = stranger.token

    error = await fails(phone.push(put("a", "1")))

    assert error_of(error) == (400, "InvalidParameterException", "SyncSessionToken not valid for these inputs")


async def test_garbage_session_token_is_invalid(phone: Device) -> None:
    phone.token = "garbage"

    error = await fails(phone.push(put("a", "1")))

    assert error_of(error) == (400, "InvalidParameterException", "SyncSessionToken is not a valid token")
    assert await phone.pull() == empty_page()


async def test_next_token_is_not_a_session_token(phone: Device) -> None:
    await five_records(phone)
    first = await phone.pull(MaxResults=2)
    phone.token = first["NextToken"]

    error = await fails(phone.push(put("z", "1")))

    assert error_of(error) == (400, "InvalidParameterException", "SyncSessionToken is not a valid token")


async def test_list_records_with_a_session_token_returns_it(phone: Device) -> None:
    token = (await phone.pull())["SyncSessionToken"]

    assert (await phone.pull(SyncSessionToken=token))["SyncSessionToken"] == token


async def test_list_records_with_a_session_token_of_another_dataset_is_invalid(phone: Device) -> None:
    other = phone.on("other")
    await other.pull()

    error = await fails(phone.pull(SyncSessionToken=other.token))

    assert error_of(error) == (400, "InvalidParameterException", "SyncSessionToken not valid for these inputs")


# --- concurrency ------------------------------------------------------------------------------------------------------


async def test_one_of_twenty_concurrent_writers_of_a_new_key_wins(raw: Raw, ref: DatasetRef) -> None:
    first = Wire(raw, ref, "device-00")
    await first.pull()
    writers = [replace(first, device_id=f"device-{n:02d}") for n in range(20)]

    results = await asyncio.gather(*(writer.push(put("k", writer.device_id)) for writer in writers))

    statuses = [status for status, _ in results]
    assert sorted(statuses) == [200] + [409] * 19
    winner = writers[statuses.index(200)].device_id
    stored = wire_record("k", winner, 1, winner, {winner: 1})
    assert all(payload["Records"] == [stored] for status, payload in results if status == 409)
    status, listed = await first.pull()
    assert (status, listed["Records"], listed["DatasetSyncCount"]) == (200, [stored], 1)


async def test_concurrent_resends_of_one_write_commit_it_once(wire: Wire) -> None:
    await wire.pull()

    results = await asyncio.gather(*(wire.push(put("k", "v"), put("j", "w")) for _ in range(10)))

    written = {
        "Records": [wire_record("k", "v", 1, "phone", {"phone": 1}), wire_record("j", "w", 1, "phone", {"phone": 1})]
    }
    assert results == [(200, written)] * 10
    status, listed = await wire.pull()
    assert (status, listed["DatasetSyncCount"], listed["VersionVector"]) == (200, 1, {"phone": 1})


# --- Unicode ----------------------------------------------------------------------------------------------------------


async def test_unicode_keys_and_values_round_trip(phone: Device) -> None:
    key, value = 'ключ/🔑 ÷ "x"', "värde ✓ 日本語 \\ 🎉"

    written = await phone.push(put(key, value))

    assert written == {"Records": [record(key, value, 1)]}
    assert await phone.pull() == page([record(key, value, 1)], 1)


async def test_data_storage_counts_utf8_bytes_of_keys_and_values(phone: Device) -> None:
    await phone.push(put("ключ", "日本"), put("k", "🎉"))

    dataset = (await phone.describe())["Dataset"]

    assert dataset["DataStorage"] == len("ключ日本k🎉".encode()) == 8 + 6 + 1 + 4
