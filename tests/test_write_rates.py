"""Write rate limits (SYNCSVC_WRITES_PER_IDENTITY_PER_SECOND, SYNCSVC_WRITES_PER_POOL_PER_SECOND;
syncsvc.store.rates): past a limit a write is refused with TooManyRequestsException and Retry-After before anything
is written, other identities and the next second are unaffected, and with both limits off nothing is counted.

The server reads a held clock, so every write of a test falls in one window until the test moves it (real server,
real Redis)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from syncsvc.clock import ManualClock
from tests.conftest import Raw

IDENTITY_LIMIT = 2
POOL_LIMIT = 3


@pytest.fixture
def app_clock() -> ManualClock:
    return ManualClock(time.time_ns() // 1_000_000)


async def new_pool(raw: Raw) -> str:
    status, pool, _ = await raw.identity(
        "CreateIdentityPool", {"IdentityPoolName": "rates", "AllowUnauthenticatedIdentities": True}
    )
    assert status == 200, pool
    return str(pool["IdentityPoolId"])


async def new_dataset(raw: Raw, pool_id: str) -> tuple[str, str]:
    """(dataset path, session token) of a new guest identity's dataset "notes"."""
    status, got, _ = await raw.identity("GetId", {"IdentityPoolId": pool_id})
    assert status == 200, got
    path = f"/identitypools/{pool_id}/identities/{got['IdentityId']}/datasets/notes"
    status, listed, _ = await raw.send("GET", path + "/records")
    assert status == 200, listed
    return path, str(listed["SyncSessionToken"])


async def write(raw: Raw, path: str, token: str, value: str, sync_count: int) -> tuple[int, dict[str, Any], str]:
    """(status, body, Retry-After or "") of an UpdateRecords replacing key "k"."""
    patch = {"Op": "replace", "Key": "k", "Value": value, "SyncCount": sync_count}
    status, body, headers = await raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": [patch]})
    return status, body, headers.get("Retry-After", "")


async def stored(raw: Raw, path: str) -> tuple[int, list[str]]:
    """(dataset sync count, values) as a pull from the start sees them."""
    status, listed, _ = await raw.send("GET", path + "/records")
    assert status == 200, listed
    return int(listed["DatasetSyncCount"]), [record["Value"] for record in listed["Records"]]


@pytest.mark.parametrize("overrides", [{"writes_per_identity_per_second": IDENTITY_LIMIT}])
async def test_a_write_past_the_identity_limit_is_refused_whole_until_the_next_second(
    raw: Raw, app_clock: ManualClock
) -> None:
    refused_before = REGISTRY.get_sample_value("syncsvc_rate_limited_total", {"limit": "IdentityWrites"}) or 0.0
    pool_id = await new_pool(raw)
    path, token = await new_dataset(raw, pool_id)
    for count in range(IDENTITY_LIMIT):
        status, body, _ = await write(raw, path, token, f"v{count}", count)
        assert status == 200, body

    status, body, retry_after = await write(raw, path, token, "one too many", IDENTITY_LIMIT)
    assert (status, body["__type"], retry_after) == (429, "TooManyRequestsException", "1")
    assert body["message"] == f"Rate exceeded: at most {IDENTITY_LIMIT} writes per second per identity"
    assert await stored(raw, path) == (IDENTITY_LIMIT, [f"v{IDENTITY_LIMIT - 1}"])  # nothing of it was written
    status, _, _ = await raw.send("DELETE", path)  # DeleteDataset is a write too
    assert status == 429
    refused = REGISTRY.get_sample_value("syncsvc_rate_limited_total", {"limit": "IdentityWrites"})
    assert refused == refused_before + 2  # counted for /metrics

    other_path, other_token = await new_dataset(raw, pool_id)  # another identity of the pool has its own window
    status, body, _ = await write(raw, other_path, other_token, "mine", 0)
    assert status == 200, body

    app_clock.advance(1000)
    status, body, _ = await write(raw, path, token, "next second", IDENTITY_LIMIT)
    assert status == 200, body
    assert await stored(raw, path) == (IDENTITY_LIMIT + 1, ["next second"])


@pytest.mark.parametrize("overrides", [{"writes_per_pool_per_second": POOL_LIMIT}])
async def test_a_pool_past_its_limit_refuses_writes_of_every_identity_but_other_pools_write_on(
    raw: Raw, app_clock: ManualClock
) -> None:
    pool_id = await new_pool(raw)
    datasets = [await new_dataset(raw, pool_id) for _ in range(POOL_LIMIT + 1)]
    for path, token in datasets[:POOL_LIMIT]:
        status, body, _ = await write(raw, path, token, "within", 0)
        assert status == 200, body

    last_path, last_token = datasets[POOL_LIMIT]
    status, body, retry_after = await write(raw, last_path, last_token, "over", 0)
    assert (status, body["__type"], retry_after) == (429, "TooManyRequestsException", "1")
    assert body["message"] == f"Rate exceeded: at most {POOL_LIMIT} writes per second per identity pool"
    assert await stored(raw, last_path) == (0, [])

    other_path, other_token = await new_dataset(raw, await new_pool(raw))
    status, body, _ = await write(raw, other_path, other_token, "another app", 0)
    assert status == 200, body

    app_clock.advance(1000)
    status, body, _ = await write(raw, last_path, last_token, "later", 0)
    assert status == 200, body


async def test_with_the_limits_off_writes_are_not_counted(raw: Raw, redis_client: aioredis.Redis) -> None:
    pool_id = await new_pool(raw)
    path, token = await new_dataset(raw, pool_id)
    for count in range(5):
        status, body, _ = await write(raw, path, token, f"v{count}", count)
        assert status == 200, body
    assert [key async for key in redis_client.scan_iter(match="*:rate:*Writes:*")] == []
