"""What the syncsvc workloads share: a pool with push or streams on, guest identities with Bearer tokens, writes over
HTTP, a Kafka topic and a read_committed consumer that is positioned before the first write, percentiles.

Pools and their configuration are made with boto3 and the developer credentials (call them through
``asyncio.to_thread``); everything a device does goes over one ``aiohttp.ClientSession`` with ``Authorization:
Bearer <GetOpenIdToken token>``. GetId and GetOpenIdToken are rate limited per pool (``SYNCSVC_GET_ID_PER_SECOND``,
``SYNCSVC_TOKEN_CALLS_PER_SECOND``): a ``TooManyRequestsException`` is waited out and retried, so many identities
cost about ``identities / 25`` seconds against a server with the default limits.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import boto3
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from syncsvc.outbox.topics import MAX_MESSAGE_BYTES

ROLE_ARN = "arn:aws:iam::123456789012:role/cognito-streams"
#: A pool's PushSync: a RoleArn is enough for push to count as configured (delivery is the device socket).
PUSH_SYNC: Any = {"RoleArn": "arn:aws:iam::123456789012:role/push"}
#: What syncsvc creates a stream topic with (``SYNCSVC_STREAM_PARTITIONS``' default).
STREAM_PARTITIONS = 6
_RETRY_SECONDS = 0.05
_RETRY_FOR_SECONDS = 60.0


class BenchError(RuntimeError):
    """A request the workload needs failed (the message says which and what the server answered)."""


@dataclass(frozen=True, slots=True)
class Guest:
    """A guest identity of a pool and its OpenID token (10 minutes, good for the Sync API as a Bearer token)."""

    pool_id: str
    identity_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def dataset_url(self, url: str, dataset: str) -> str:
        return f"{url}/identitypools/{self.pool_id}/identities/{self.identity_id}/datasets/{dataset}"


# --- pools (boto3, developer credentials) -------------------------------------------------------------------------


def _session(developer: str) -> Any:
    key, secret = developer.split(":", 1)
    return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1")


def sync_client(url: str, developer: str) -> Any:
    """A boto3 ``cognito-sync`` client with the developer credentials."""
    return _session(developer).client("cognito-sync", endpoint_url=url)


def create_pool(url: str, developer: str, *, push: bool = False, stream_topic: str | None = None) -> str:
    """A new pool allowing guests, with PushSync set when ``push`` and streaming on to ``stream_topic`` if given."""
    identity = _session(developer).client("cognito-identity", endpoint_url=url)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    pool_id: str = identity.create_identity_pool(IdentityPoolName=name, AllowUnauthenticatedIdentities=True)[
        "IdentityPoolId"
    ]
    if push:
        sync_client(url, developer).set_identity_pool_configuration(IdentityPoolId=pool_id, PushSync=PUSH_SYNC)
    if stream_topic is not None:
        set_streaming(url, developer, pool_id, stream_topic)
    return pool_id


def set_streaming(url: str, developer: str, pool_id: str, topic: str, *, enabled: bool = True) -> None:
    streams = {"StreamName": topic, "RoleArn": ROLE_ARN, "StreamingStatus": "ENABLED" if enabled else "DISABLED"}
    sync_client(url, developer).set_identity_pool_configuration(IdentityPoolId=pool_id, CognitoStreams=streams)


# --- devices (aiohttp, Bearer tokens) -----------------------------------------------------------------------------


async def identity_call(session: aiohttp.ClientSession, url: str, operation: str, body: dict[str, Any]) -> Any:
    """One unsigned Cognito Identity call; a rate-limit refusal is retried for up to a minute."""
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"AWSCognitoIdentityService.{operation}"}
    deadline = time.monotonic() + _RETRY_FOR_SECONDS
    while True:
        async with session.post(url + "/", data=orjson.dumps(body), headers=headers) as response:
            answer = orjson.loads(await response.read())
        if response.status == 200:
            return answer
        if answer.get("__type") != "TooManyRequestsException" or time.monotonic() > deadline:
            raise BenchError(f"{operation}: {response.status} {answer}")
        await asyncio.sleep(_RETRY_SECONDS)


async def new_guest(session: aiohttp.ClientSession, url: str, pool_id: str) -> Guest:
    identity_id = (await identity_call(session, url, "GetId", {"IdentityPoolId": pool_id}))["IdentityId"]
    return await refreshed(session, url, Guest(pool_id, identity_id, ""))


async def refreshed(session: aiohttp.ClientSession, url: str, guest: Guest) -> Guest:
    """The guest with a new token (tokens live 10 minutes)."""
    token = (await identity_call(session, url, "GetOpenIdToken", {"IdentityId": guest.identity_id}))["Token"]
    return Guest(guest.pool_id, guest.identity_id, token)


async def new_guests(
    session: aiohttp.ClientSession, url: str, pool_id: str, count: int, *, parallel: int = 8
) -> list[Guest]:
    """``count`` guests of the pool, ``parallel`` created at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one() -> Guest:
        async with gate:
            return await new_guest(session, url, pool_id)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def call(session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
    """One Sync API request that must succeed; its JSON answer."""
    data = None if body is None else orjson.dumps(body)
    async with session.request(method, url, data=data, headers=headers) as response:
        raw = await response.read()
    if response.status != 200:
        raise BenchError(f"{method} {url}: {response.status} {raw[:300]!r}")
    return orjson.loads(raw) if raw else None


async def session_token(session: aiohttp.ClientSession, url: str, guest: Guest, dataset: str) -> str:
    """A SyncSessionToken for the dataset (ListRecords' first page, one record)."""
    answer = await call(session, "GET", guest.dataset_url(url, dataset) + "/records?maxResults=1", guest.headers)
    token: str = answer["SyncSessionToken"]
    return token


# --- Kafka --------------------------------------------------------------------------------------------------------


async def create_topic(bootstrap: str, topic: str, partitions: int = STREAM_PARTITIONS) -> None:
    """Creates the stream topic as syncsvc would (an existing one is fine)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        config = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
        response = await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=config)])
        for _, code, *_ in response.topic_errors:
            if code not in (0, TopicAlreadyExistsError.errno):
                raise BenchError(f"cannot create topic {topic!r}: error code {code}")
    finally:
        await admin.close()


async def positioned_consumer(bootstrap: str, topic: str, *, fetch_max_wait_ms: int = 500) -> Any:
    """A started read_committed consumer with every partition of ``topic`` assigned (no group) and positioned at its
    beginning, so nothing published from now on can be missed. The caller stops it."""
    consumer = AIOKafkaConsumer(
        topic,  # no group_id: every partition is assigned to this consumer
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while not consumer.assignment():
                await asyncio.sleep(0.02)
            for tp in consumer.assignment():
                await consumer.position(tp)  # resolves the start offset now, before any write
    except BaseException:
        await consumer.stop()
        raise
    return consumer


# --- figures ------------------------------------------------------------------------------------------------------


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds, rounded to 0.01 ms."""
    if not seconds:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    cuts = statistics.quantiles(seconds, n=100, method="inclusive") if len(seconds) > 1 else [seconds[0]] * 99
    return {
        "p50_ms": round(cuts[49] * 1000, 2),
        "p90_ms": round(cuts[89] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
    }
