"""Redis going away: 503 + Retry-After with nothing changed, recovery without a restart, no acknowledged loss."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.conftest import Boto, Raw, make_settings, serving
from tests.redis_processes import RedisProcess


@pytest.fixture
async def own_endpoint(own_redis: RedisProcess) -> AsyncIterator[str]:
    async with serving(make_settings(own_redis.url, pool_cache_seconds=60)) as endpoint:
        yield endpoint


def path_of(pool_id: str, identity_id: str) -> str:
    return f"/identitypools/{pool_id}/identities/{identity_id}/datasets/notes"


async def test_redis_down_answers_503_with_retry_after_then_recovers_with_every_acknowledged_write(
    own_redis: RedisProcess, own_endpoint: str, raw: Raw
) -> None:
    raw.endpoint = own_endpoint
    boto = Boto(own_endpoint)
    pool_id = await boto.new_pool()
    path = path_of(pool_id, f"us-east-1:{uuid.uuid4()}")
    token = (await raw.send("GET", path + "/records"))[1]["SyncSessionToken"]
    patch = {"Op": "replace", "Key": "k", "Value": "acknowledged", "SyncCount": 0}
    status, _, _ = await raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": [patch]})
    assert status == 200

    own_redis.kill()
    status, body, headers = await raw.send("GET", path + "/records")
    assert (status, body["__type"], headers["Retry-After"]) == (503, "InternalErrorException", "1")
    ready_status, _, _ = await raw.send("GET", "/readyz", sign=False)
    assert ready_status == 503

    own_redis.start()
    for _ in range(3):  # the first request may meet a pooled connection that died with the old server
        status, body, _ = await raw.send("GET", path + "/records")
        if status == 200:
            break
    assert status == 200
    assert [(record["Key"], record["Value"], record["SyncCount"]) for record in body["Records"]] == [
        ("k", "acknowledged", 1)
    ]
