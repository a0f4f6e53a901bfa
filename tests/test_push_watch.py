"""`syncsvc watch POOL IDENTITY` as a process: it prints each change of the identity as the hubs see it."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import orjson
from redis.asyncio import Redis

from tests.conftest import Boto
from tests.servers import SYNCSVC, environment


async def line_of(stream: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(20):
        return await stream.readline()


async def test_watch_prints_each_change_with_its_writer_and_subscribed_devices(
    boto: Boto, redis_url: str, redis_client: Redis
) -> None:
    pool = await boto.new_pool()
    identity = "us-east-1:00000000-0000-4000-8000-000000000001"
    watcher = await asyncio.create_subprocess_exec(
        SYNCSVC,
        "watch",
        pool,
        identity,
        "--json",
        env=environment(redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert watcher.stderr is not None
        assert watcher.stdout is not None
        assert (await line_of(watcher.stderr)).startswith(b"watching identity ")
        names: dict[str, Any] = {"IdentityPoolId": pool, "IdentityId": identity, "DatasetName": "settings"}
        token = (await boto.call(boto.sync, "list_records", **names))["SyncSessionToken"]
        patch = {"Op": "replace", "Key": "theme", "Value": "dark", "SyncCount": 0}
        await boto.call(
            boto.sync, "update_records", **names, SyncSessionToken=token, RecordPatches=[patch], DeviceId="console"
        )
        assert orjson.loads(await line_of(watcher.stdout)) == {
            "source": "cognito-sync",
            "identityPoolId": pool,
            "identityId": identity,
            "datasetName": "settings",
            "syncCount": 1,
            "writer": "console",
            "devices": [],
        }
    finally:
        watcher.terminate()
        assert await asyncio.wait_for(watcher.wait(), 15) == 0
