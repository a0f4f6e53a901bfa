"""`syncsvc pools …` / `syncsvc identities …`: the operator commands, run as a user runs them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import botocore
from botocore.config import Config

from tests.conftest import Boto, process_environment
from tests.servers import SYNCSVC


async def syncsvc(redis_url: str, *args: str) -> tuple[int, str, str]:
    env = process_environment()
    env["SYNCSVC_REDIS_URL"] = redis_url
    env["COLUMNS"] = "200"
    process = await asyncio.create_subprocess_exec(
        SYNCSVC, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def as_json(redis_url: str, *args: str) -> Any:
    code, out, err = await syncsvc(redis_url, *args, "--json")
    assert (code, err) == (0, "")
    return json.loads(out)


async def guest(boto: Boto, endpoint: str, pool_id: str) -> str:
    import boto3

    anonymous = boto3.client(
        "cognito-identity",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(signature_version=botocore.UNSIGNED),
    )
    found = await asyncio.to_thread(anonymous.get_id, IdentityPoolId=pool_id)
    identity_id: str = found["IdentityId"]
    return identity_id


async def test_pools_list_shows_every_pool(redis_url: str, boto: Boto) -> None:
    pool_id = await boto.new_pool()
    assert await as_json(redis_url, "pools", "list") == [{"IdentityPoolId": pool_id, "IdentityPoolName": "tests"}]


async def test_pools_describe_shows_the_pool_and_its_usage(redis_url: str, boto: Boto) -> None:
    pool_id = await boto.new_pool()
    (row,) = await as_json(redis_url, "pools", "describe", pool_id)
    assert row == {
        "IdentityPoolId": pool_id,
        "IdentityPoolName": "tests",
        "AllowUnauthenticatedIdentities": True,
        "DataStorage": 0,
        "SyncSessionsCount": 0,
    }


async def test_pools_describe_as_a_table_names_every_field(redis_url: str, boto: Boto) -> None:
    pool_id = await boto.new_pool()
    code, out, _ = await syncsvc(redis_url, "pools", "describe", pool_id)
    assert code == 0
    for field in ("IdentityPoolId", "IdentityPoolName", "DataStorage", "SyncSessionsCount", pool_id):
        assert field in out


async def test_identities_list_and_delete(redis_url: str, boto: Boto, endpoint: str) -> None:
    pool_id = await boto.new_pool()
    identities = {await guest(boto, endpoint, pool_id) for _ in range(3)}
    listed = await as_json(redis_url, "identities", "list", pool_id)
    assert {row["IdentityId"] for row in listed} == identities
    assert {row["Logins"] for row in listed} == {"(guest)"}
    victim = sorted(identities)[0]
    assert await as_json(redis_url, "identities", "delete", victim) == [{"IdentityId": victim, "Deleted": True}]
    remaining = await as_json(redis_url, "identities", "list", pool_id)
    assert {row["IdentityId"] for row in remaining} == identities - {victim}


async def test_unknown_identity_is_one_line_on_stderr(redis_url: str, boto: Boto) -> None:
    await boto.new_pool()
    code, out, err = await syncsvc(
        redis_url, "identities", "describe", "us-east-1:00000000-0000-0000-0000-000000000000"
    )
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "syncsvc: ResourceNotFoundException: Identity 'us-east-1:00000000-0000-0000-0000-000000000000' not found."
    ]
