"""`syncsvc keys rotate-root`: everything the root key wraps moves to a new key, servers holding both keys keep
working throughout (a run killed with SIGKILL midway included), a second run finishes it, and afterwards the old key
alone no longer starts a server. Real Redis, the real command as a process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from syncsvc import rediskeys
from syncsvc.kms.material import MaterialError
from syncsvc.kms.root import FileKey, RootKey
from syncsvc.kms.token_secret import open_token_secret
from syncsvc.runtime import StartupError, open_services
from tests.conftest import make_settings, process_environment
from tests.servers import SYNCSVC

IDENTITY = "us-east-1:00000000-0000-4000-8000-000000000001"
POOL = "us-east-1:00000000-0000-4000-8000-0000000000aa"
CONTEXT = {"purpose": "rotation test"}


@dataclass
class Deployment:
    """What a deployment holds, made under the old root key, to be read back under the new one."""

    redis_url: str
    old: Path
    new: Path
    kms_blob: bytes
    sealed_value: str
    token_secret: bytes


@pytest.fixture
async def deployment(redis_url: str, redis_client: aioredis.Redis, tmp_path: Path) -> Deployment:
    old, new = tmp_path / "old.key", tmp_path / "new.key"
    FileKey.generate(old)
    FileKey.generate(new)
    async with open_services(make_settings(redis_url, root_key_file=old)) as services:
        key = await services.kms.lifecycle.create_key(description="an application key")
        kms_blob = await services.kms.encrypt(key.key_id, b"launch code", CONTEXT)
        cipher = await services.envelope.cipher(rediskeys.IdentityKeyspace.of(POOL, IDENTITY, services.settings.shards))
        sealed_value = cipher.seal("settings", "theme", "dark")
        stored = await services.store.stored_token_secret()
        assert stored is not None
        token_secret = await open_token_secret(RootKey.from_file(old), stored)
    return Deployment(redis_url, old, new, kms_blob, sealed_value, token_secret)


async def reads_everything(deployment: Deployment, **settings: Path) -> None:
    """A server's services with these key settings open what the deployment made under the old key."""
    configured = make_settings(deployment.redis_url, **settings)
    async with open_services(configured) as services:
        plaintext, _ = await services.kms.decrypt(deployment.kms_blob, CONTEXT)
        cipher = await services.envelope.cipher(rediskeys.IdentityKeyspace.of(POOL, IDENTITY, configured.shards))
        stored = await services.store.stored_token_secret()
        assert stored is not None
        assert (plaintext, cipher.open("settings", "theme", deployment.sealed_value)) == (b"launch code", "dark")
        root = RootKey.from_file(settings["root_key_file"])
        if "previous_root_key_file" in settings:
            root = root.replacing(RootKey.from_file(settings["previous_root_key_file"]))
        assert await open_token_secret(root, stored) == deployment.token_secret


async def rotate_root(deployment: Deployment, *arguments: str, **env: str) -> list[str]:
    command = await asyncio.create_subprocess_exec(
        SYNCSVC,
        "keys",
        "rotate-root",
        *arguments,
        env=process_environment(SYNCSVC_REDIS_URL=deployment.redis_url, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(command.communicate(), timeout=120)
    assert command.returncode == 0, err.decode()
    return err.decode().splitlines()


async def kms_key_ids(client: aioredis.Redis) -> list[str]:
    members = await client.zrange(rediskeys.KMS_KEYS, 0, -1)
    return sorted(member.decode() for member in members if isinstance(member, bytes))


async def stored_bytes(client: aioredis.Redis, key: str, field: str | None = None) -> bytes:
    value = await (client.get(key) if field is None else client.hget(key, field))
    assert isinstance(value, bytes)
    return value


async def every_blob_opens_under(client: aioredis.Redis, root: RootKey) -> bool:
    """Every backing key of every KMS key and the token secret open under ``root`` alone."""
    try:
        for key_id in await kms_key_ids(client):
            for field, wrapped in (await client.hgetall(rediskeys.kms_key(key_id))).items():
                assert isinstance(field, bytes)
                assert isinstance(wrapped, bytes)
                if field.startswith(b"v"):
                    await root.unwrap(wrapped, key_id, int(field[1:]))
        await open_token_secret(root, await stored_bytes(client, rediskeys.TOKEN_SECRET))
    except MaterialError:
        return False
    return True


async def test_rotate_root_moves_everything_and_the_old_key_alone_no_longer_starts(
    deployment: Deployment, redis_client: aioredis.Redis
) -> None:
    lines = await rotate_root(deployment, "--new", str(deployment.new), SYNCSVC_ROOT_KEY_FILE=str(deployment.old))
    assert lines[-1].startswith("3 wrapped keys and secrets moved to the new root key (0 were already, 0 deleted")
    assert await every_blob_opens_under(redis_client, RootKey.from_file(deployment.new))
    await reads_everything(deployment, root_key_file=deployment.new)
    with pytest.raises(StartupError, match="is not the root key this Redis's data is sealed under"):
        await reads_everything(deployment, root_key_file=deployment.old)


async def test_a_server_holding_both_keys_works_before_during_and_after_the_rotation(
    deployment: Deployment, redis_client: aioredis.Redis
) -> None:
    both = {"root_key_file": deployment.new, "previous_root_key_file": deployment.old}
    await reads_everything(deployment, **both)  # before: everything is under the old key
    await reads_everything(deployment, root_key_file=deployment.old)  # and the old key alone still starts
    await rotate_root(
        deployment, SYNCSVC_ROOT_KEY_FILE=str(deployment.new), SYNCSVC_PREVIOUS_ROOT_KEY_FILE=str(deployment.old)
    )
    await reads_everything(deployment, **both)


async def test_a_rotation_killed_midway_loses_nothing_and_a_second_run_finishes_it(
    deployment: Deployment, redis_client: aioredis.Redis
) -> None:
    configured = make_settings(deployment.redis_url, root_key_file=deployment.old, kms_key_quota=5000)
    async with open_services(configured) as services:
        for _ in range(3000):
            await services.kms.lifecycle.create_key()
    first = (await kms_key_ids(redis_client))[0]
    new = RootKey.from_file(deployment.new)
    process = await asyncio.create_subprocess_exec(
        SYNCSVC,
        "keys",
        "rotate-root",
        "--new",
        str(deployment.new),
        env=process_environment(SYNCSVC_REDIS_URL=deployment.redis_url, SYNCSVC_ROOT_KEY_FILE=str(deployment.old)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    async with asyncio.timeout(60):
        while True:  # until the first key (in the order the rotation walks) moved
            try:
                await new.unwrap(await stored_bytes(redis_client, rediskeys.kms_key(first), "v1"), first, 1)
                break
            except MaterialError:
                await asyncio.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    await process.wait()
    assert not await every_blob_opens_under(redis_client, new)  # killed midway: some moved, not all
    await reads_everything(deployment, root_key_file=deployment.new, previous_root_key_file=deployment.old)

    await rotate_root(deployment, "--new", str(deployment.new), SYNCSVC_ROOT_KEY_FILE=str(deployment.old))
    assert await every_blob_opens_under(redis_client, new)
    await reads_everything(deployment, root_key_file=deployment.new)
