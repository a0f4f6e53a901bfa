"""Load shedding (syncsvc.api.overload): past its bound of requests in flight a server answers at once with the
throttling error every AWS SDK retries, keeps health checks and admitted requests going, and loses nothing.

Requests are held in flight by a sync trigger that waits for the test (real server, real Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import boto3
import botocore.config
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from syncsvc.api.app import create_app
from syncsvc.api.overload import IN_FLIGHT
from syncsvc.triggers import LambdaContext, TriggerRegistry
from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION, Raw, free_port, make_settings

LIMIT = 2


class Gate:
    """Holds every sync trigger call until :meth:`open`."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()

    async def trigger(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        await self.opened.wait()
        return event


@pytest.fixture
async def gate() -> Gate:
    return Gate()


@pytest.fixture
async def server(redis_url: str, redis_client: Redis, gate: Gate) -> AsyncIterator[TestServer]:
    """A server with a bound of LIMIT requests in flight and the gated trigger, on a flushed Redis."""
    settings = make_settings(redis_url, max_requests_in_flight=LIMIT, triggers_on_developer_writes=True)
    triggers = TriggerRegistry()
    triggers.register("gated", gate.trigger, isolation="inline", timeout_seconds=30)
    test_server = TestServer(create_app(settings, triggers=triggers), host="127.0.0.1", port=free_port())
    await test_server.start_server()
    yield test_server
    gate.opened.set()
    await test_server.close()


@contextlib.asynccontextmanager
async def raw_client(server: TestServer) -> AsyncIterator[Raw]:
    async with aiohttp.ClientSession() as session:
        yield Raw(str(server.make_url("")).rstrip("/"), session)


async def identity_call(
    raw: Raw, operation: str, payload: dict[str, Any]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    return await raw.send(
        "POST",
        "/",
        body=payload,
        service="cognito-identity",
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"AWSCognitoIdentityService.{operation}",
        },
    )


async def gated_pool(raw: Raw) -> str:
    """A pool whose writes wait in the gated sync trigger."""
    status, pool, _ = await identity_call(
        raw, "CreateIdentityPool", {"IdentityPoolName": "overload", "AllowUnauthenticatedIdentities": True}
    )
    assert status == 200, pool
    pool_id = str(pool["IdentityPoolId"])
    status, body, _ = await raw.send(
        "POST", f"/identitypools/{pool_id}/events", body={"Events": {"SyncTrigger": "gated"}}
    )
    assert status == 200, body
    return pool_id


async def new_dataset(raw: Raw, pool_id: str) -> tuple[str, str]:
    """(dataset path, session token) of a new guest identity's dataset."""
    status, got, _ = await identity_call(raw, "GetId", {"IdentityPoolId": pool_id})
    assert status == 200, got
    path = f"/identitypools/{pool_id}/identities/{got['IdentityId']}/datasets/notes"
    status, listed, _ = await raw.send("GET", path + "/records")
    assert status == 200, listed
    return path, str(listed["SyncSessionToken"])


def write(token: str, value: str) -> dict[str, Any]:
    return {"SyncSessionToken": token, "RecordPatches": [{"Op": "replace", "Key": "k", "Value": value, "SyncCount": 0}]}


async def until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached within 5 s")


async def test_past_the_bound_requests_are_refused_at_once_and_retried_by_the_sdks(
    server: TestServer, gate: Gate
) -> None:
    in_flight = server.app[IN_FLIGHT]
    async with raw_client(server) as raw:
        pool_id = await gated_pool(raw)
        datasets = [await new_dataset(raw, pool_id) for _ in range(LIMIT + 1)]
        held = [
            asyncio.create_task(raw.send("POST", path, body=write(token, f"v{n}")))
            for n, (path, token) in enumerate(datasets[:LIMIT])
        ]
        await until(lambda: in_flight.now == LIMIT)

        spare_path, _ = datasets[LIMIT]
        status, body, headers = await raw.send("GET", spare_path + "/records")  # rest-json: 429
        assert (status, body["__type"], headers["Retry-After"]) == (429, "TooManyRequestsException", "1")
        assert headers["x-amzn-ErrorType"] == "TooManyRequestsException"
        assert uuid.UUID(headers["x-amzn-RequestId"])  # answered by the outermost middleware, in the AWS shape
        status, body, headers = await identity_call(raw, "GetId", {"IdentityPoolId": pool_id})  # json 1.1: 400
        assert (status, body["__type"], headers["Retry-After"]) == (400, "TooManyRequestsException", "1")
        status, _, _ = await raw.send("GET", "/healthz", sign=False)  # health checks are not counted
        assert status == 200
        assert in_flight.shed == 2

        # An unmodified SDK retries the refusal with backoff and gets through once a place is free.
        sync = boto3.client(
            "cognito-sync",
            endpoint_url=raw.endpoint,
            region_name=REGION,
            aws_access_key_id=DEVELOPER_KEY,
            aws_secret_access_key=DEVELOPER_SECRET,
            config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 10}),
        )
        pool, identity = spare_path.split("/")[2], spare_path.split("/")[4]
        listing = asyncio.create_task(
            asyncio.to_thread(sync.list_records, IdentityPoolId=pool, IdentityId=identity, DatasetName="notes")
        )
        await until(lambda: in_flight.shed > 2)  # refused at least once
        gate.opened.set()
        answers = await asyncio.gather(*held)
        assert [status for status, _, _ in answers] == [200] * LIMIT  # the held writes were not lost
        listed = await listing
        assert listed["DatasetExists"] is False
        await until(lambda: in_flight.now == 0)
        status, got, _ = await raw.send("GET", datasets[0][0] + "/records")
        assert (status, [record["Value"] for record in got["Records"]]) == (200, ["v0"])


async def test_while_full_a_request_is_refused_before_its_credentials_are_checked(
    server: TestServer, gate: Gate
) -> None:
    """Past capacity refusals are most of the work: checking a signature for a request that will be refused anyway
    would take the CPU the admitted requests need. Credentials still decide everything once there is room."""
    in_flight = server.app[IN_FLIGHT]
    async with raw_client(server) as raw:
        pool_id = await gated_pool(raw)
        datasets = [await new_dataset(raw, pool_id) for _ in range(LIMIT)]
        path = datasets[0][0] + "/records"
        forged = raw.signed_headers("GET", path)
        forged["Authorization"] = forged["Authorization"][:-8] + "00000000"  # a wrong signature
        status, refused, _ = await raw.send("GET", path, sign=False, headers=forged)
        assert (status, refused["__type"]) == (400, "InvalidSignatureException"), refused

        held = [asyncio.create_task(raw.send("POST", p, body=write(t, "held"))) for p, t in datasets]
        await until(lambda: in_flight.now == LIMIT)
        status, body, headers = await raw.send("GET", path, sign=False, headers=forged)
        assert (status, body["__type"], headers["Retry-After"]) == (429, "TooManyRequestsException", "1")
        assert in_flight.now == LIMIT  # refused without taking a place

        gate.opened.set()
        assert [status for status, _, _ in await asyncio.gather(*held)] == [200] * LIMIT
        await until(lambda: in_flight.now == 0)
        status, refused, _ = await raw.send("GET", path, sign=False, headers=forged)
        assert (status, refused["__type"]) == (400, "InvalidSignatureException")
