"""syncsvc under test: ``syncsvc serve`` (1 or ``--workers N`` processes) with everything on.

Everything on means: Bearer authentication of every request (identity tokens from GetOpenIdToken, verified per
request), values sealed at rest (always), the outbox and its relay publishing to Kafka (the pool streams to a
topic), push sync configured on the pool and the hub running. Redis (AOF, fsync every second) and Kafka are the
run's own, shared with the Redis-alone ceiling (``Infrastructure``).

Setup-only settings: GetId and token calls are not rate limited (``SYNCSVC_GET_ID_PER_SECOND=0``,
``SYNCSVC_TOKEN_CALLS_PER_SECOND=0``) so thousands of identities are made in seconds; session tokens last the
whole run. Neither is on the measured path. The idle-socket workload measures how many sockets one process can
hold, so the per-process push socket cap (by default 90% of the connection cap) is lifted to the connection cap
(``SYNCSVC_PUSH_MAX_SOCKETS``), and the connection cap keeps fewer descriptors aside than the ramp leaves
(``FILES_BESIDES_SOCKETS``), so the ramp's own HTTP connections fit beside its sockets.
"""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import aiohttp
import orjson

from bench.load import RequestTemplate
from bench.systems.base import (
    DELTA_CHANGED,
    DELTA_RECORDS,
    PULL_RECORDS,
    PULL_VALUE_BYTES,
    WRITE_VALUE,
    ServerProcess,
    gather_bounded,
)
from bench.workloads.pools import create_pool, identity_call

#: The syncsvc of the venv running the benchmark (the locked .venv, or `make test-latest`'s).
SYNCSVC = Path(sys.executable).with_name("syncsvc")
#: Open files a syncsvc process needs besides device sockets (Redis pool, Kafka, logs, the listening socket).
FILES_BESIDES_SOCKETS = 400
SETUP_CONCURRENCY = 32
#: UpdateRecords patches per seeding request (a 1,024-record dataset in four).
SEED_BATCH = 256


@dataclass(frozen=True, slots=True)
class Infrastructure:
    """What every syncsvc process of the run shares."""

    redis_url: str
    kafka_bootstrap: str
    root_key_file: Path
    developer: str = field(default_factory=lambda: f"AKIDBENCH{secrets.token_hex(6).upper()}:{secrets.token_hex(20)}")
    #: The run is a deployment of its own (its own Redis): its relays' Kafka names must not meet another's on a
    #: shared broker (the checkpoint topic has one partition per shard of the deployment that created it).
    relay_names: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")


@dataclass(frozen=True, slots=True)
class Identity:
    identity_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}


class SyncSvc(ServerProcess):
    """``syncsvc serve --workers N``; one pool (streaming, push) made at start and used by every workload."""

    def __init__(
        self,
        infrastructure: Infrastructure,
        *,
        workers: int = 1,
        name: str | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        self.infrastructure = infrastructure
        self.workers = workers
        #: SYNCSVC_MAX_REQUESTS_IN_FLIGHT, or None for the product's default.
        self.max_in_flight = max_in_flight
        self.name = name or f"syncsvc-{workers}w"
        self.pool_id = ""
        self.topic = f"bench-{uuid.uuid4().hex[:8]}"
        #: The issuer of identity tokens; instances of one deployment share it (as behind a load balancer).
        self.public_url: str | None = None

    def install(self) -> None:
        """Nothing to install: the project's own venv."""

    def environment(self, port: int) -> dict[str, str]:
        infra = self.infrastructure
        return {
            **os.environ,
            "SYNCSVC_REDIS_URL": infra.redis_url,
            "SYNCSVC_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
            "SYNCSVC_ROOT_KEY_FILE": str(infra.root_key_file),
            "SYNCSVC_DEVELOPER_CREDENTIALS": infra.developer,
            "SYNCSVC_PORT": str(port),
            "SYNCSVC_GET_ID_PER_SECOND": "0",
            "SYNCSVC_TOKEN_CALLS_PER_SECOND": "0",
            "SYNCSVC_SYNC_SESSION_TTL_SECONDS": "86400",
            "SYNCSVC_LOG_LEVEL": "WARNING",
            "SYNCSVC_PUSH_MAX_SOCKETS": str(1_000_000),
            "SYNCSVC_RESERVED_DESCRIPTORS": str(FILES_BESIDES_SOCKETS - 100),
            "SYNCSVC_RELAY_CHECKPOINT_TOPIC": f"{infra.relay_names}-checkpoints",
            "SYNCSVC_RELAY_TRANSACTIONAL_PREFIX": f"{infra.relay_names}-relay",
            **({"SYNCSVC_PUBLIC_URL": self.public_url} if self.public_url else {}),
            **({"SYNCSVC_MAX_REQUESTS_IN_FLIGHT": str(self.max_in_flight)} if self.max_in_flight is not None else {}),
        }

    def start(self, folder: Path, port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        command = [str(SYNCSVC), "serve", "--port", str(port), "--workers", str(self.workers)]
        log = folder / f"{self.name}.log"
        self.serve(command, port, what=self.name, ready_path="/healthz", log=log, env=self.environment(port))
        if not self.pool_id:
            self.pool_id = create_pool(self.url, self.infrastructure.developer, push=True, stream_topic=self.topic)

    def versions(self) -> dict[str, str]:
        return {"syncsvc": version("syncsvc"), "workers": str(self.workers)}

    async def identities(self, count: int) -> list[Identity]:
        """``count`` new guest identities of the pool, each with a Bearer token (valid 10 minutes)."""
        async with aiohttp.ClientSession() as session:

            async def one() -> Identity:
                got = await identity_call(session, self.url, "GetId", {"IdentityPoolId": self.pool_id})
                token = await identity_call(session, self.url, "GetOpenIdToken", {"IdentityId": got["IdentityId"]})
                return Identity(got["IdentityId"], token["Token"])

            return await gather_bounded((one() for _ in range(count)), at_once=SETUP_CONCURRENCY)

    def dataset_path(self, identity: Identity, dataset: str) -> str:
        return f"/identitypools/{self.pool_id}/identities/{identity.identity_id}/datasets/{dataset}"

    async def write_templates(self, users: int) -> list[RequestTemplate]:
        people = await self.identities(users)
        async with aiohttp.ClientSession() as session:
            tokens = await gather_bounded(
                (self._session_token(session, person, "bench") for person in people), at_once=SETUP_CONCURRENCY
            )
        return [
            RequestTemplate(
                "POST",
                self.dataset_path(person, "bench"),
                orjson.dumps(
                    {
                        "SyncSessionToken": token,
                        "RecordPatches": [{"Op": "replace", "Key": "k${seq}", "Value": WRITE_VALUE, "SyncCount": 0}],
                    }
                ).decode(),
                person.headers,
            )
            for person, token in zip(people, tokens, strict=True)
        ]

    async def delta_templates(self, users: int) -> list[RequestTemplate]:
        people = await self.identities(users)
        async with aiohttp.ClientSession() as session:
            marks = await gather_bounded(
                (self._seed_delta(session, person) for person in people), at_once=SETUP_CONCURRENCY
            )
        return [
            RequestTemplate(
                "GET", f"{self.dataset_path(person, 'delta')}/records?lastSyncCount={mark}", "", person.headers
            )
            for person, mark in zip(people, marks, strict=True)
        ]

    async def full_pull_templates(self, datasets: int) -> list[RequestTemplate]:
        people = await self.identities(datasets)
        value = "p" * PULL_VALUE_BYTES
        async with aiohttp.ClientSession() as session:
            await gather_bounded(
                (
                    self._write(session, person, "pull", [(f"k{n:04d}", value, 0) for n in range(PULL_RECORDS)])
                    for person in people
                ),
                at_once=SETUP_CONCURRENCY,
            )
        return [
            RequestTemplate(
                "GET", f"{self.dataset_path(person, 'pull')}/records?maxResults={PULL_RECORDS}", "", person.headers
            )
            for person in people
        ]

    async def _seed_delta(self, session: aiohttp.ClientSession, person: Identity) -> int:
        """100 records, then 10 of them changed; returns the sync count before the changes."""
        await self._write(session, person, "delta", [(f"k{n:03d}", WRITE_VALUE, 0) for n in range(DELTA_RECORDS)])
        path = f"{self.url}{self.dataset_path(person, 'delta')}/records"
        async with session.get(path, headers=person.headers) as response:
            mark = int((await response.json())["DatasetSyncCount"])
        changed = [(f"k{n:03d}", WRITE_VALUE.upper(), mark) for n in range(DELTA_CHANGED)]
        await self._write(session, person, "delta", changed, one_by_one=True)
        async with session.get(f"{path}?lastSyncCount={mark}", headers=person.headers) as response:
            records = (await response.json())["Records"]
        if len(records) != DELTA_CHANGED:
            raise RuntimeError(f"delta seed: expected {DELTA_CHANGED} changed records, got {len(records)}")
        return mark

    async def _session_token(self, session: aiohttp.ClientSession, person: Identity, dataset: str) -> str:
        path = f"{self.url}{self.dataset_path(person, dataset)}/records"
        async with session.get(path, headers=person.headers) as response:
            body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"ListRecords: {response.status} {body}")
        return str(body["SyncSessionToken"])

    async def _write(
        self,
        session: aiohttp.ClientSession,
        person: Identity,
        dataset: str,
        records: list[tuple[str, str, int]],
        *,
        one_by_one: bool = False,
    ) -> None:
        """Writes (key, value, sync count) records, SEED_BATCH per UpdateRecords (or one each)."""
        token = await self._session_token(session, person, dataset)
        step = 1 if one_by_one else SEED_BATCH
        for start in range(0, len(records), step):
            patches = [
                {"Op": "replace", "Key": k, "Value": v, "SyncCount": c} for k, v, c in records[start : start + step]
            ]
            body = orjson.dumps({"SyncSessionToken": token, "RecordPatches": patches})
            path = f"{self.url}{self.dataset_path(person, dataset)}"
            async with session.post(path, data=body, headers=person.headers) as response:
                if response.status != 200:
                    raise RuntimeError(f"seeding {dataset}: {response.status} {await response.text()}")
