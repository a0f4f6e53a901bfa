"""Identity pools over the Cognito Identity json 1.1 protocol, driven by unmodified boto3."""

from __future__ import annotations

import re
import uuid

import pytest
from botocore.exceptions import ClientError
from redis.asyncio import Redis

from syncsvc.store.connection import RedisClient
from tests.conftest import Boto, Raw


async def write_one_record(boto: Boto, names: dict[str, str]) -> None:
    token = (await boto.call(boto.sync, "list_records", **names))["SyncSessionToken"]
    await boto.call(
        boto.sync,
        "update_records",
        **names,
        SyncSessionToken=token,
        RecordPatches=[{"Op": "replace", "Key": "k", "Value": "v", "SyncCount": 0}],
    )


async def test_create_identity_pool_returns_the_pool_with_a_region_uuid_id(boto: Boto) -> None:
    created = await boto.call(
        boto.identity,
        "create_identity_pool",
        IdentityPoolName="my pool",
        AllowUnauthenticatedIdentities=False,
        DeveloperProviderName="login.example",
        SupportedLoginProviders={"accounts.google.com": "client-1"},
    )
    created.pop("ResponseMetadata")
    pool_id = created.pop("IdentityPoolId")
    assert re.fullmatch(r"us-east-1:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", pool_id)
    assert created == {
        "IdentityPoolName": "my pool",
        "AllowUnauthenticatedIdentities": False,
        "DeveloperProviderName": "login.example",
        "SupportedLoginProviders": {"accounts.google.com": "client-1"},
    }


async def test_describe_identity_pool_returns_what_was_created(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    described = await boto.call(boto.identity, "describe_identity_pool", IdentityPoolId=pool_id)
    described.pop("ResponseMetadata")
    assert described == {
        "IdentityPoolId": pool_id,
        "IdentityPoolName": "tests",
        "AllowUnauthenticatedIdentities": True,
    }


async def test_update_identity_pool_replaces_the_settable_members(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    await boto.call(
        boto.identity,
        "update_identity_pool",
        IdentityPoolId=pool_id,
        IdentityPoolName="renamed",
        AllowUnauthenticatedIdentities=False,
    )
    described = await boto.call(boto.identity, "describe_identity_pool", IdentityPoolId=pool_id)
    assert (described["IdentityPoolName"], described["AllowUnauthenticatedIdentities"]) == ("renamed", False)


async def test_update_of_an_unknown_pool_is_not_found_and_creates_nothing(boto: Boto) -> None:
    missing = f"us-east-1:{uuid.uuid4()}"
    with pytest.raises(ClientError) as caught:
        await boto.call(
            boto.identity,
            "update_identity_pool",
            IdentityPoolId=missing,
            IdentityPoolName="ghost",
            AllowUnauthenticatedIdentities=True,
        )
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    listed = await boto.call(boto.identity, "list_identity_pools", MaxResults=60)
    assert listed["IdentityPools"] == []


async def test_list_identity_pools_pages_through_every_pool_once(boto: Boto) -> None:
    created = {await boto.new_pool() for _ in range(5)}
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        page = await boto.call(
            boto.identity, "list_identity_pools", MaxResults=2, **({"NextToken": token} if token else {})
        )
        assert len(page["IdentityPools"]) <= 2
        seen += [pool["IdentityPoolId"] for pool in page["IdentityPools"]]
        token = page.get("NextToken")
        if token is None:
            break
    assert sorted(seen) == sorted(created)


async def test_delete_identity_pool_removes_it_and_its_data(boto: Boto, raw: Raw) -> None:
    pool_id = await boto.new_pool()
    identity = f"us-east-1:{uuid.uuid4()}"
    names = {"IdentityPoolId": pool_id, "IdentityId": identity, "DatasetName": "d"}
    await write_one_record(boto, names)
    await boto.call(boto.identity, "delete_identity_pool", IdentityPoolId=pool_id)
    with pytest.raises(ClientError) as described:
        await boto.call(boto.identity, "describe_identity_pool", IdentityPoolId=pool_id)
    assert described.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as listed:
        await boto.call(boto.sync, "list_records", **names)
    assert listed.value.response["Error"]["Code"] == "ResourceNotFoundException"


async def test_deleting_a_pool_leaves_no_key_of_its_identities(boto: Boto, redis_client: Redis) -> None:
    pool_id = await boto.new_pool()
    for dataset in ("kept", "deleted"):
        names = {"IdentityPoolId": pool_id, "IdentityId": f"us-east-1:{uuid.uuid4()}", "DatasetName": dataset}
        await write_one_record(boto, names)
        if dataset == "deleted":
            await boto.call(boto.sync, "delete_dataset", **names)
    assert await stored_keys(redis_client, "syncsvc:{s*")
    await boto.call(boto.identity, "delete_identity_pool", IdentityPoolId=pool_id)
    assert await stored_keys(redis_client, "syncsvc:{s*") == []
    assert await stored_keys(redis_client, f"syncsvc:pool:{{{pool_id}}}*") == []


async def test_deleting_a_pool_removes_its_registered_identities_and_their_logins(
    boto: Boto, redis_client: Redis
) -> None:
    created = await boto.call(
        boto.identity,
        "create_identity_pool",
        IdentityPoolName="registered",
        AllowUnauthenticatedIdentities=True,
        DeveloperProviderName="login.mycompany",
    )
    pool_id = created["IdentityPoolId"]
    developer = await boto.call(
        boto.identity,
        "get_open_id_token_for_developer_identity",
        IdentityPoolId=pool_id,
        Logins={"login.mycompany": "user-1"},
    )
    guest = (await boto.call(boto.identity, "get_id", IdentityPoolId=pool_id))["IdentityId"]
    await write_one_record(boto, {"IdentityPoolId": pool_id, "IdentityId": guest, "DatasetName": "d"})
    assert await stored_keys(redis_client, "syncsvc:login:*")
    await boto.call(boto.identity, "delete_identity_pool", IdentityPoolId=pool_id)
    assert await stored_keys(redis_client, "syncsvc:{s*") == []  # profiles, members, data
    assert await stored_keys(redis_client, "syncsvc:login:*") == []
    for identity_id in (developer["IdentityId"], guest):
        with pytest.raises(ClientError) as caught:
            await boto.call(boto.identity, "describe_identity", IdentityId=identity_id)
        assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"IdentityPoolName": "x"}, "ValidationException"),
        ({"IdentityPoolName": "bad/name", "AllowUnauthenticatedIdentities": True}, "ValidationException"),
        ({"IdentityPoolName": "x" * 129, "AllowUnauthenticatedIdentities": True}, "ValidationException"),
        ({"IdentityPoolName": "x", "AllowUnauthenticatedIdentities": "yes"}, "SerializationException"),
        ({"IdentityPoolName": "x", "AllowUnauthenticatedIdentities": True, "Bogus": 1}, "ValidationException"),
    ],
)
async def test_create_identity_pool_rejects_bad_input_with_a_named_member(
    raw: Raw, payload: dict[str, object], code: str
) -> None:
    status, body, headers = await raw.identity("CreateIdentityPool", payload)
    assert status == 400
    assert body["__type"] == code
    assert headers["Content-Type"].startswith("application/x-amz-json-1.1")
    listed_status, listed, _ = await raw.identity("ListIdentityPools", {"MaxResults": 10})
    assert (listed_status, listed["IdentityPools"]) == (200, [])


async def test_a_pool_name_outside_the_pattern_is_refused_in_aws_words(raw: Raw) -> None:
    status, body, _ = await raw.identity(
        "CreateIdentityPool", {"IdentityPoolName": "bad/name", "AllowUnauthenticatedIdentities": True}
    )
    assert (status, body) == (
        400,
        {
            "__type": "ValidationException",
            "message": "1 validation error detected: Value 'bad/name' at 'identityPoolName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [\\w\\s+=,.@-]+",
        },
    )  # AWS's pattern text, though syncsvc spells its ASCII classes out


async def test_unknown_identity_target_is_unknown_operation(raw: Raw) -> None:
    status, body, _ = await raw.identity("NoSuchThing", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")


async def test_list_identity_pools_requires_max_results_in_range(raw: Raw) -> None:
    status, body, _ = await raw.identity("ListIdentityPools", {"MaxResults": 61})
    assert (status, body) == (
        400,
        {
            "__type": "ValidationException",
            "message": "1 validation error detected: Value '61' at 'maxResults' failed to satisfy constraint: "
            "Member must have value less than or equal to 60",
        },
    )


async def stored_keys(client: RedisClient, pattern: str) -> list[bytes]:
    """The keys matching ``pattern`` on every master (KEYS asks one node of a cluster; SCAN walks them all)."""
    return [key async for key in client.scan_iter(pattern)]
