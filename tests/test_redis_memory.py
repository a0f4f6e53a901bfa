"""A Redis that may evict keys is refused; a full Redis refuses writes cleanly while reads go on; persistence off is
said. Each test runs redis-server processes of its own with a small ``maxmemory`` (issue 15)."""

from __future__ import annotations

import logging
import re
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from syncsvc.runtime import StartupError, open_services
from tests.conftest import REGION, Raw, _wait_for_redis, free_port, make_settings, process_environment, serving
from tests.redis_processes import RedisNode, launch
from tests.servers import SYNCSVC

MAXMEMORY = 8 * 1024 * 1024
MIB = 1024 * 1024
OOM_MESSAGE = "The data store is out of memory: writes are refused until memory is freed; retry later"
OOM_LINE = re.compile(
    r"Redis is out of memory \(used [\d.]+ MiB of maxmemory [\d.]+ MiB\): writes refused until memory is freed"
)
MEMORY_AGAIN = re.compile(r"Redis has memory again \(used [\d.]+ MiB of maxmemory 64\.0 MiB\): writes accepted")
PERSISTS_NOTHING = (
    "Redis persists nothing (appendonly no, no RDB snapshots): a restart of it loses every acknowledged write; "
    "turn AOF on (appendonly yes) or at least snapshots (save)"
)


def refusal(policy: str) -> str:
    return (
        f"Redis maxmemory-policy is {policy}: when its memory is full Redis evicts syncsvc's keys and acknowledged "
        f"data is lost; set maxmemory-policy noeviction (CONFIG SET and redis.conf), or "
        f"SYNCSVC_REDIS_ALLOW_EVICTION=true to run anyway"
    )


class Matching:
    """Equal to a string that ``pattern`` matches whole."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.pattern.fullmatch(other) is not None

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"<matching {self.pattern.pattern!r}>"


class SmallRedis:
    """A redis-server of the test's own on a free port: ``maxmemory`` 8 MiB, the given policy and persistence."""

    def __init__(self, folder: Path) -> None:
        self.node = RedisNode.new(folder)
        self.url = f"redis://{self.node.address}/0"

    def start(self, *, policy: str = "noeviction", aof: bool = False, save: str = "") -> None:
        options = ["--maxmemory", str(MAXMEMORY), "--maxmemory-policy", policy, "--appendonly", "yes" if aof else "no"]
        launch(self.node, *options, save=save)
        _wait_for_redis(self.url, self.node.process)

    def stop(self) -> None:
        if self.node.alive:
            self.node.kill()

    def restart(self, **options: Any) -> None:
        """kill -9, then start again on the same port and folder (a restart, or a failover as a client sees it)."""
        self.stop()
        self.start(**options)

    def client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.url)


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[SmallRedis]:
    """A SmallRedis the test starts itself (with the configuration it is about)."""
    server = SmallRedis(tmp_path)
    yield server
    server.stop()


@dataclass
class Served:
    """syncsvc on a SmallRedis, with a raw client and the pool the test writes to."""

    redis: SmallRedis
    raw: Raw
    pool: str
    #: What syncsvc acknowledged: (identity, dataset) -> {key: value}.
    acknowledged: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def path(self, identity: str, dataset: str) -> str:
        return f"/identitypools/{self.pool}/identities/{identity}/datasets/{dataset}"

    async def token(self, identity: str, dataset: str) -> str:
        if (identity, dataset) not in self.tokens:
            status, listed, _ = await self.raw.send("GET", self.path(identity, dataset) + "/records")
            assert status == 200, listed
            self.tokens[identity, dataset] = listed["SyncSessionToken"]
        return self.tokens[identity, dataset]

    async def write(self, identity: str, dataset: str, key: str, value: str) -> tuple[int, dict[str, Any], str]:
        """UpdateRecords of one new record; returns (status, body, Retry-After) and keeps what was acknowledged."""
        patch = {"Op": "replace", "Key": key, "Value": value, "SyncCount": 0}
        body = {"SyncSessionToken": await self.token(identity, dataset), "RecordPatches": [patch]}
        status, answer, headers = await self.raw.send("POST", self.path(identity, dataset), body=body)
        if status == 200:
            self.acknowledged.setdefault((identity, dataset), {})[key] = value
        return status, answer, headers.get("Retry-After", "")

    async def records(self, identity: str, dataset: str) -> dict[str, str]:
        """Every live record of the dataset, through ListRecords' pages."""
        found: dict[str, str] = {}
        query = ""
        while True:
            status, page, _ = await self.raw.send("GET", self.path(identity, dataset) + "/records" + query)
            assert status == 200, page
            found.update({record["Key"]: record["Value"] for record in page["Records"] if "Value" in record})
            if not page.get("NextToken"):
                return found
            query = f"?nextToken={page['NextToken']}"

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body, _ = await self.raw.send("GET", "/readyz", sign=False)
        return status, body

    async def fill(self, identities: list[str]) -> None:
        """Writes records of 64 KiB until Redis refuses one, spread over ``identities`` and their datasets; then
        holds Redis past its limit, as a spike would (maxmemory 1 MiB under what it uses): at the limit a Redis takes
        a small write whenever its buffers shrink a little, past it every write is refused, bookkeeping included."""
        for count in range(2000):
            identity = identities[count % len(identities)]
            dataset = f"d{count // (len(identities) * 8)}"
            status, answer, _ = await self.write(identity, dataset, f"k{count}", secrets.token_hex(32 * 1024))
            if status != 200:
                assert (status, answer["message"]) == (503, OOM_MESSAGE)
                break
        else:
            raise AssertionError("Redis never refused a write")
        client = self.redis.client()
        used = int((await client.info("memory"))["used_memory"])
        await client.config_set("maxmemory", str(used - MIB))
        await client.aclose()

    async def free_memory(self) -> None:
        client = self.redis.client()
        await client.config_set("maxmemory", str(64 * MIB))
        await client.aclose()


@pytest.fixture
async def served(small_redis: SmallRedis) -> AsyncIterator[Served]:
    small_redis.start()
    async with serving(make_settings(small_redis.url)) as endpoint, aiohttp.ClientSession() as session:
        raw = Raw(endpoint, session)
        status, created, _ = await raw.identity(
            "CreateIdentityPool", {"IdentityPoolName": "memory", "AllowUnauthenticatedIdentities": True}
        )
        assert status == 200, created
        yield Served(small_redis, raw, created["IdentityPoolId"])


def identities(count: int) -> list[str]:
    return [f"{REGION}:{uuid.uuid4()}" for _ in range(count)]


def messages(caplog: pytest.LogCaptureFixture, wanted: str | re.Pattern[str]) -> list[str]:
    found = [record.getMessage() for record in caplog.records]
    if isinstance(wanted, str):
        return [message for message in found if message == wanted]
    return [message for message in found if wanted.fullmatch(message)]


# --- eviction policies ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru"])
async def test_a_redis_that_may_evict_keys_is_refused_at_start_up_before_anything_is_written(
    small_redis: SmallRedis, policy: str
) -> None:
    small_redis.start(policy=policy)

    with pytest.raises(StartupError) as refused:
        async with open_services(make_settings(small_redis.url)):
            pass

    assert str(refused.value) == refusal(policy)
    client = small_redis.client()
    assert await client.dbsize() == 0
    await client.aclose()


def test_syncsvc_serve_on_an_evicting_redis_exits_with_one_line(small_redis: SmallRedis) -> None:
    small_redis.start(policy="allkeys-lru")
    env = process_environment(SYNCSVC_REDIS_URL=small_redis.url, SYNCSVC_RELAY="false")

    ended = subprocess.run(
        [SYNCSVC, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=30, check=False
    )

    assert (ended.returncode, ended.stderr.splitlines()[-1]) == (1, f"syncsvc: {refusal('allkeys-lru')}")


async def test_the_override_starts_on_an_evicting_redis_and_says_so(
    small_redis: SmallRedis, caplog: pytest.LogCaptureFixture
) -> None:
    small_redis.start(policy="allkeys-lru", aof=True)
    caplog.set_level(logging.INFO, logger="syncsvc")

    async with open_services(make_settings(small_redis.url, redis_allow_eviction=True)):
        pass

    risk = refusal("allkeys-lru").partition(";")[0]
    assert messages(caplog, f"{risk} (SYNCSVC_REDIS_ALLOW_EVICTION is set: running anyway)") == [
        f"{risk} (SYNCSVC_REDIS_ALLOW_EVICTION is set: running anyway)"
    ]


async def test_a_policy_changed_to_evicting_while_serving_refuses_requests_until_it_is_safe_again(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncsvc")
    identity = identities(1)[0]
    client = served.redis.client()
    await client.config_set("maxmemory-policy", "allkeys-lru")

    ready = await served.readyz()
    status, answer, headers = await served.raw.send("GET", served.path(identity, "notes") + "/records")

    line = refusal("allkeys-lru")
    assert ready == await served.readyz() == (503, {"status": "unsafe", "redis": line})
    assert (status, answer, headers["Retry-After"]) == (503, {"__type": "InternalErrorException", "message": line}, "1")
    logged = f"{line}; until then every request is refused"
    assert messages(caplog, logged) == [logged]
    await client.config_set("maxmemory-policy", "noeviction")
    assert await served.readyz() == (200, {"status": "ok", "redis": "ok", "relay": "off"})
    assert (await served.write(identity, "notes", "k", "v"))[0] == 200
    await client.aclose()


async def test_a_restart_onto_an_evicting_configuration_is_refused(
    small_redis: SmallRedis, caplog: pytest.LogCaptureFixture
) -> None:
    small_redis.start(aof=True)
    caplog.set_level(logging.INFO, logger="syncsvc")
    async with serving(make_settings(small_redis.url)) as endpoint, aiohttp.ClientSession() as session:
        raw = Raw(endpoint, session)
        assert (await raw.send("GET", "/readyz", sign=False))[0] == 200

        small_redis.restart(policy="allkeys-lru", aof=True)
        for _ in range(3):  # the first inspection may meet a pooled connection that died with the old server
            status, body, _ = await raw.send("GET", "/readyz", sign=False)
            if status != 503 or body.get("status") == "unsafe":
                break

    assert (status, body) == (503, {"status": "unsafe", "redis": refusal("allkeys-lru")})
    assert messages(caplog, "Redis restarted or is a new primary: checking it again") == [
        "Redis restarted or is a new primary: checking it again"
    ]


# --- out of memory --------------------------------------------------------------------------------------------------


async def test_a_full_redis_refuses_writes_with_a_retryable_error_and_changes_nothing(served: Served) -> None:
    writers = identities(4)
    await served.fill(writers)
    (identity, dataset), stored = next(iter(served.acknowledged.items()))
    _, before, _ = await served.raw.send("GET", served.path(identity, dataset))

    status, answer, retry_after = await served.write(identity, dataset, "one-more", "small")

    assert (status, answer, retry_after) == (503, {"__type": "InternalErrorException", "message": OOM_MESSAGE}, "5")
    assert (await served.raw.send("GET", served.path(identity, dataset)))[:2] == (200, before)
    assert await served.records(identity, dataset) == stored


async def test_a_full_redis_still_serves_reads(served: Served) -> None:
    writers = identities(4)
    await served.fill(writers)
    (identity, dataset), stored = next(iter(served.acknowledged.items()))
    base = f"/identitypools/{served.pool}/identities/{identity}"

    status, listed, _ = await served.raw.send("GET", served.path(identity, dataset) + "/records")
    described = await served.raw.send("GET", served.path(identity, dataset))
    datasets = await served.raw.send("GET", base + "/datasets")
    usage = await served.raw.send("GET", base)
    new_dataset = await served.raw.send("GET", served.path(identity, "never-written") + "/records")

    assert (status, {record["Key"]: record["Value"] for record in listed["Records"]}) == (200, stored)
    assert listed["SyncSessionToken"]
    assert (described[0], described[1]["Dataset"]["NumRecords"]) == (200, len(stored))
    assert (datasets[0], datasets[1]["Count"]) == (
        200,
        len({name for who, name in served.acknowledged if who == identity}),
    )
    assert (usage[0], usage[1]["IdentityUsage"]["DatasetCount"]) == (200, datasets[1]["Count"])
    assert (new_dataset[0], new_dataset[1]["DatasetExists"]) == (200, False)


async def test_a_full_redis_still_issues_credentials(served: Served) -> None:
    status, created, _ = await served.raw.identity("GetId", {"IdentityPoolId": served.pool})
    assert status == 200, created
    await served.fill(identities(4))

    status, answer, _ = await served.raw.identity("GetCredentialsForIdentity", {"IdentityId": created["IdentityId"]})

    assert (status, answer["IdentityId"]) == (200, created["IdentityId"])


async def test_an_out_of_memory_episode_is_reported_and_logged_once_and_its_end_too(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncsvc")
    writers = identities(4)
    await served.fill(writers)
    degraded = (200, {"status": "degraded", "redis": Matching(OOM_LINE), "relay": "off"})

    assert await served.readyz() == degraded
    assert (await served.write(writers[0], "after", "k", "v"))[0] == 503
    assert await served.readyz() == degraded
    assert len(messages(caplog, OOM_LINE)) == 1

    await served.free_memory()
    assert (await served.write(writers[0], "after", "k", "v"))[0] == 200
    assert await served.readyz() == (200, {"status": "ok", "redis": "ok", "relay": "off"})
    assert await served.readyz() == (200, {"status": "ok", "redis": "ok", "relay": "off"})
    assert (len(messages(caplog, OOM_LINE)), len(messages(caplog, MEMORY_AGAIN))) == (1, 1)


async def test_every_acknowledged_write_survives_an_out_of_memory_episode(served: Served) -> None:
    writers = identities(4)
    await served.fill(writers)
    await served.free_memory()

    assert (await served.write(writers[0], "after", "k", "v"))[0] == 200
    found = {(identity, dataset): await served.records(identity, dataset) for identity, dataset in served.acknowledged}
    assert found == served.acknowledged


# --- persistence ------------------------------------------------------------------------------------------------------


async def test_a_redis_that_persists_nothing_is_warned_about_once_and_again_after_a_restart(
    small_redis: SmallRedis, caplog: pytest.LogCaptureFixture
) -> None:
    small_redis.start()
    caplog.set_level(logging.INFO, logger="syncsvc")
    async with serving(make_settings(small_redis.url)) as endpoint, aiohttp.ClientSession() as session:
        raw = Raw(endpoint, session)
        for _ in range(3):
            assert (await raw.send("GET", "/readyz", sign=False))[0] == 200
        warned_at_start = len(messages(caplog, PERSISTS_NOTHING))

        small_redis.restart()
        for _ in range(3):  # the first inspection may meet a pooled connection that died with the old server
            if (await raw.send("GET", "/readyz", sign=False))[0] == 200:
                break

    assert (warned_at_start, len(messages(caplog, PERSISTS_NOTHING))) == (1, 2)


@pytest.mark.parametrize(("aof", "save"), [(True, ""), (False, "3600 1")], ids=["aof", "rdb-snapshots"])
async def test_a_redis_that_persists_is_not_warned_about(
    small_redis: SmallRedis, caplog: pytest.LogCaptureFixture, aof: bool, save: str
) -> None:
    small_redis.start(aof=aof, save=save)
    caplog.set_level(logging.INFO, logger="syncsvc")

    async with open_services(make_settings(small_redis.url)):
        pass

    assert messages(caplog, PERSISTS_NOTHING) == []
