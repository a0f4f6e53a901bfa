"""Record values at rest: sealed under per-identity data keys wrapped by the pool's master key (syncsvc.kms.envelope).

Real Redis; the server's own envelope (same root key) opens what it sealed for the assertions."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

from syncsvc.config import Settings
from syncsvc.kms import material
from syncsvc.kms.envelope import CacheLimits, DataKeyCache, Envelope, IdentityCipher, UnreadableValueError
from syncsvc.kms.keyservice import KeyService
from syncsvc.kms.root import RootKey
from syncsvc.model import Record
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.backend import text
from syncsvc.store.datakeys import RedisDataKeys
from syncsvc.store.kms import RedisKeyStore
from tests.conftest import ROOT_KEY_FILE, Boto, Raw, envelope_of, process_environment
from tests.datasets import write
from tests.servers import SYNCSVC


async def values(boto: Boto, names: dict[str, Any]) -> dict[str, str | None]:
    listed = await boto.call(boto.sync, "list_records", **names)
    return {record["Key"]: record.get("Value") for record in listed["Records"]}


@pytest.fixture
async def names(boto: Boto) -> dict[str, Any]:
    pool_id = await boto.new_pool()
    await boto.call(
        boto.sync,
        "set_identity_pool_configuration",
        IdentityPoolId=pool_id,
        CognitoStreams={
            "StreamName": "changes",
            "RoleArn": "arn:aws:iam::123456789012:role/streams",
            "StreamingStatus": "ENABLED",
        },
    )
    return {"IdentityPoolId": pool_id, "IdentityId": f"us-east-1:{uuid.uuid4()}", "DatasetName": "secrets"}


async def everything_in_redis(client: Redis) -> bytes:
    """Every byte Redis holds, key by key and whatever the type (strings, hashes, sets, sorted sets, streams)."""
    parts: list[Any] = []
    async for key in client.scan_iter(count=1000):
        kind = text(await client.type(key))
        if kind == "string":
            parts.append(await client.get(key))
        elif kind == "hash":
            parts += [item for pair in (await client.hgetall(key)).items() for item in pair]
        elif kind == "set":
            parts += list(await client.smembers(key))
        elif kind == "zset":
            parts += list(await client.zrange(key, 0, -1))
        elif kind == "stream":
            entries = await client.xrange(key) or []
            parts += [item for _, fields in entries for pair in (fields or {}).items() for item in pair]
    return b"\n".join(part if isinstance(part, bytes) else str(part).encode() for part in parts)


async def test_no_synced_value_is_anywhere_in_redis_in_plaintext(
    boto: Boto, names: dict[str, Any], redis_client: Redis
) -> None:
    canaries = {f"k{n}": f"plaintext-canary-{uuid.uuid4()}" for n in range(5)}
    await write(boto, names, canaries)
    await write(boto, names, {"k0": "plaintext-canary-second-version"}, {"k0": 1})
    assert await values(boto, names) == {**canaries, "k0": "plaintext-canary-second-version"}
    dump = await everything_in_redis(redis_client)
    assert b"plaintext-canary" not in dump
    assert b"e1:" in dump  # the values are there, sealed


async def test_no_record_name_is_anywhere_in_redis_in_plaintext(
    boto: Boto, names: dict[str, Any], redis_client: Redis, settings: Settings
) -> None:
    canaries = {f"name-canary-{uuid.uuid4()}": "v" for _ in range(5)}
    await write(boto, names, canaries)
    await write(boto, names, {next(iter(canaries)): "second version"}, {next(iter(canaries)): 1})
    assert set(await values(boto, names)) == set(canaries)
    assert b"name-canary" not in await everything_in_redis(redis_client)


async def test_an_identity_whose_names_were_stored_plain_keeps_them(
    boto: Boto, names: dict[str, Any], redis_client: Redis, settings: Settings
) -> None:
    """A data key made before names were tokenised has no ``names`` field: its identity goes on with plain names."""
    keyspace = IdentityKeyspace.of(names["IdentityPoolId"], names["IdentityId"], settings.shards)
    await envelope_of(redis_client, settings).cipher(keyspace)  # the data key, as an earlier release made it
    await redis_client.hdel(keyspace.data_keys, "names")
    await write(boto, names, {"theme": "dark"})
    await write(boto, names, {"theme": "light"}, {"theme": 1})
    assert await values(boto, names) == {"theme": "light"}
    assert await redis_client.hkeys(keyspace.records("secrets")) == [b"theme"]


@pytest.mark.parametrize(
    ("moved", "message"),
    [
        ("value", "record 'public' of dataset 'secrets' does not decrypt here"),
        ("record", "a record name of dataset 'secrets' does not decrypt here"),  # name and value: the name is bound
        ("garbled", "record 'public' of dataset 'secrets' does not decrypt here"),  # not even base64 any more
    ],
)
async def test_a_value_or_name_moved_to_another_record_does_not_decrypt(
    boto: Boto, names: dict[str, Any], redis_client: Redis, settings: Settings, raw: Raw, moved: str, message: str
) -> None:
    await write(boto, names, {"public": "hello", "secret": "the password"})
    keyspace = IdentityKeyspace.of(names["IdentityPoolId"], names["IdentityId"], settings.shards)
    cipher = await envelope_of(redis_client, settings).cipher(keyspace, create=False)
    public, secret = (cipher.token("secrets", name) for name in ("public", "secret"))
    stored_public, stored_secret = (
        orjson.loads(raw) for raw in await redis_client.hmget(keyspace.records("secrets"), [public, secret]) if raw
    )
    copied = {
        "value": {**stored_public, "v": stored_secret["v"]},
        "record": stored_secret,
        "garbled": {**stored_public, "v": stored_public["v"][:-8] + "*not b64"},
    }[moved]
    await redis_client.hset(keyspace.records("secrets"), public, orjson.dumps(copied))
    path = f"/identitypools/{names['IdentityPoolId']}/identities/{names['IdentityId']}/datasets/secrets/records"
    status, body, _ = await raw.send("GET", path)
    assert (status, body) == (500, {"__type": "InternalErrorException", "message": message})


async def test_a_deleted_identitys_data_is_unreadable_everywhere_it_was_copied(
    boto: Boto, names: dict[str, Any], redis_client: Redis, settings: Settings
) -> None:
    identity = (await boto.call(boto.identity, "get_id", IdentityPoolId=names["IdentityPoolId"]))["IdentityId"]
    names = {**names, "IdentityId": identity}
    await write(boto, names, {"diary": "dear diary"})
    keyspace = IdentityKeyspace.of(names["IdentityPoolId"], identity, settings.shards)
    cipher = await envelope_of(redis_client, settings).cipher(keyspace, create=False)
    copied = await redis_client.hget(keyspace.records("secrets"), cipher.token("secrets", "diary"))  # a backup, a copy
    assert copied is not None
    sealed = orjson.loads(copied)["v"]
    assert cipher.open("secrets", "diary", sealed) == "dear diary"
    await boto.call(boto.identity, "delete_identities", IdentityIdsToDelete=[names["IdentityId"]])
    assert await redis_client.exists(keyspace.data_keys) == 0
    with pytest.raises(UnreadableValueError):
        await envelope_of(redis_client, settings).cipher(keyspace, create=False)


async def test_old_values_still_open_after_the_pools_master_key_rotates(
    boto: Boto, names: dict[str, Any], redis_client: Redis, settings: Settings
) -> None:
    await write(boto, names, {"before": "sealed under the first backing key"})
    envelope = envelope_of(redis_client, settings)
    master = await envelope.pool_key(names["IdentityPoolId"])
    kms = KeyService(RedisKeyStore(redis_client), RootKey.from_file(ROOT_KEY_FILE), region="us-east-1", quota=1000)
    assert (await kms.rotate(master)).current_version == 2
    other = {**names, "IdentityId": f"us-east-1:{uuid.uuid4()}"}  # its data key is made under the new backing key
    await write(boto, other, {"after": "sealed under the second"})
    assert await values(boto, names) == {"before": "sealed under the first backing key"}
    assert await values(boto, other) == {"after": "sealed under the second"}


# --- the data key cache --------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cipher(name: str) -> IdentityCipher:
    return IdentityCipher(IdentityKeyspace.of("us-east-1:p", f"us-east-1:{name}", 4), 1, {})


def test_the_cache_drops_the_least_recently_used_key_past_its_size() -> None:
    cache = DataKeyCache(CacheLimits(entries=2))
    for name in ("a", "b"):
        cache.put(name, cipher(name))
    assert cache.get("a") is not None
    cache.put("c", cipher("c"))
    assert [cache.get(name) is not None for name in ("a", "b", "c")] == [True, False, True]


def test_the_cache_drops_a_key_past_its_age() -> None:
    clock = Clock()
    cache = DataKeyCache(CacheLimits(max_age_seconds=10), clock=clock)
    cache.put("a", cipher("a"))
    clock.now = 10.0
    assert cache.get("a") is not None
    clock.now = 10.5
    assert (cache.get("a"), len(cache)) == (None, 0)


def test_the_cache_drops_a_key_past_its_uses() -> None:
    cache = DataKeyCache(CacheLimits(max_uses=3))
    cache.put("a", cipher("a"))
    cache.charge("a", 1)
    cache.charge("a", 1)
    assert cache.get("a") is not None
    cache.charge("a", 1)
    assert cache.get("a") is None


def test_a_page_opened_at_once_counts_one_use_per_record_and_all_its_bytes() -> None:
    cache = DataKeyCache(CacheLimits(max_uses=3))
    keyspace = IdentityKeyspace.of("us-east-1:p", "us-east-1:a", 4)
    opener = IdentityCipher(keyspace, 1, {1: AESGCM(AESGCM.generate_key(256))}, cache.charge, names=b"n" * 32)
    page = [
        Record(
            opener.token("d", name), opener.seal("d", name, name * 2), 1, 0, "w", None, {}, opener.seal_name("d", name)
        )
        for name in ("x", "y")
    ]
    cache.put(keyspace.base, opener)  # the two seals above were charged before it was cached
    assert [(r.key, r.value) for r in opener.open_records("d", page)] == [("x", "xx"), ("y", "yy")]
    assert cache.get(keyspace.base) is not None  # two uses
    opener.open_records("d", page[:1])
    assert cache.get(keyspace.base) is None  # the third


def test_the_cache_drops_a_key_past_its_bytes() -> None:
    cache = DataKeyCache(CacheLimits(max_bytes=100))
    cache.put("a", cipher("a"))
    cache.charge("a", 99)
    assert cache.get("a") is not None
    cache.charge("a", 1)
    assert cache.get("a") is None


class CountingKeyService(KeyService):
    """The real key service, counting the data key unwraps (Decrypt calls) the envelope makes."""

    unwraps = 0

    async def decrypt(self, *args: Any, **kwargs: Any) -> Any:
        self.unwraps += 1
        return await super().decrypt(*args, **kwargs)


@pytest.mark.parametrize(("max_uses", "unwraps"), [(1_000_000, 1), (2, 5)])
async def test_cached_keys_spare_kms_calls_until_a_limit_is_reached(
    boto: Boto, names: dict[str, Any], redis_client: Redis, settings: Settings, max_uses: int, unwraps: int
) -> None:
    await write(boto, names, {"seed": "value"})  # the identity's data key exists now
    kms = CountingKeyService(RedisKeyStore(redis_client), RootKey.from_file(ROOT_KEY_FILE), region="us-east-1", quota=9)
    envelope = Envelope(kms, RedisDataKeys(redis_client), DataKeyCache(CacheLimits(max_uses=max_uses)))
    keyspace = IdentityKeyspace.of(names["IdentityPoolId"], names["IdentityId"], settings.shards)
    for n in range(10):  # ten values sealed: with at most 2 uses per unwrap, 5 unwraps
        (await envelope.cipher(keyspace)).seal("secrets", "k", f"value {n}")
    assert kms.unwraps == unwraps


async def test_reencrypt_moves_data_keys_to_the_newest_backing_key(
    boto: Boto, names: dict[str, Any], redis_client: Redis, settings: Settings
) -> None:
    await write(boto, names, {"kept": "readable throughout"})
    keyspace = IdentityKeyspace.of(names["IdentityPoolId"], names["IdentityId"], settings.shards)
    master = await envelope_of(redis_client, settings).pool_key(names["IdentityPoolId"])
    kms = KeyService(RedisKeyStore(redis_client), RootKey.from_file(ROOT_KEY_FILE), region="us-east-1", quota=1000)
    await kms.rotate(master)
    assert await data_key_backing_version(redis_client, keyspace) == 1
    moved = await run_keys_command(settings, "reencrypt", "--pool", names["IdentityPoolId"])
    assert moved[-1] == "1 data keys moved to the newest backing key of 1 pools"
    assert await data_key_backing_version(redis_client, keyspace) == 2
    assert await values(boto, names) == {"kept": "readable throughout"}


async def test_keys_rotate_gives_each_pool_key_a_new_backing_key_and_reencrypt_follows(
    boto: Boto, names: dict[str, Any], redis_client: Redis, settings: Settings
) -> None:
    """Pool master keys are not on the public KMS API: an operator rotates them with `syncsvc keys rotate`."""
    await write(boto, names, {"kept": "readable throughout"})
    keyspace = IdentityKeyspace.of(names["IdentityPoolId"], names["IdentityId"], settings.shards)
    pool = names["IdentityPoolId"]
    rotated = await run_keys_command(settings, "rotate", "--pool", pool)
    moved = await run_keys_command(settings, "reencrypt", "--pool", pool)
    assert (rotated[-2:], moved[-1]) == (
        [
            f"{pool}: master key rotated to backing key 2",
            "1 master keys rotated; `syncsvc keys reencrypt` moves existing data keys",
        ],
        "1 data keys moved to the newest backing key of 1 pools",
    )
    assert await data_key_backing_version(redis_client, keyspace) == 2
    assert await values(boto, names) == {"kept": "readable throughout"}


async def run_keys_command(settings: Settings, *arguments: str) -> list[str]:
    """`syncsvc keys ARGUMENTS…` on the test's Redis; the lines it printed on stderr (it must succeed)."""
    command = await asyncio.create_subprocess_exec(
        SYNCSVC,
        "keys",
        *arguments,
        env=process_environment(SYNCSVC_REDIS_URL=settings.redis_url, SYNCSVC_SHARDS=str(settings.shards)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(command.communicate(), timeout=60)
    assert command.returncode == 0, err.decode()
    return err.decode().splitlines()


async def data_key_backing_version(client: Redis, keyspace: IdentityKeyspace) -> int:
    """Which backing key of the pool's master key wraps the identity's first data key."""
    blob = await client.hget(keyspace.data_keys, "v1")
    assert isinstance(blob, bytes)
    return material.blob_header(blob).version
