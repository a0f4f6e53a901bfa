"""Shared fixtures: a real redis-server per test session, a running syncsvc per test, signed clients.

``SYNCSVC_TEST_REDIS_URL`` points the suite at an existing Redis instead of starting one (its database is flushed
before every test that uses it). ``SYNCSVC_TEST_REDIS=cluster`` makes the suite start a Redis Cluster (3 masters, 1
replica each: tests/redis_cluster.py) instead of one redis-server: `make test` runs the end-to-end modules that way too.
``HYPOTHESIS_PROFILE`` picks a Hypothesis profile other than "syncsvc" (below).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import hypothesis
import orjson
import pytest
import redis
import redis.asyncio as aioredis
import yarl
from aiohttp.test_utils import TestServer
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from syncsvc.api.app import create_app
from syncsvc.clock import Clock
from syncsvc.config import Settings
from syncsvc.kms.envelope import CacheLimits, DataKeyCache, Envelope
from syncsvc.kms.keyservice import KeyService
from syncsvc.kms.root import FileKey, RootKey
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store import connection
from syncsvc.store.connection import RedisClient
from syncsvc.store.datakeys import RedisDataKeys
from syncsvc.store.kms import RedisKeyStore

#: Hypothesis in every run (`make test`, CI, one file): the same examples run to run (``derandomize``, so no example
#: database either), and a failure prints the blob that reproduces it. No deadline: on a loaded machine a test is slow,
#: not wrong. That also gives HealthCheck.too_slow 30 s instead of 1 s for the first 10 inputs, which carry Hypothesis'
#: one-time costs (its Unicode tables, built on the first st.text() of a fresh checkout); the check stays on for
#: strategies slow in themselves. Based on Hypothesis' "default" profile, not the loaded one: with CI set, that is its
#: "ci" profile, which turns too_slow off.
hypothesis.settings.register_profile(
    "syncsvc",
    hypothesis.settings.get_profile("default"),
    derandomize=True,
    deadline=None,
    print_blob=True,
)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "syncsvc"))

#: Fixtures shared by every module that asks for them, each defined beside the helpers it goes with (and started only
#: if a test asks): the session's Kafka broker (``kafka_bootstrap``), warmed (``warm_kafka``) and a server running its
#: relay (``relayed``), a redis-server of a test's own (``own_redis``), the session's Redis Cluster
#: (``redis_cluster_url``), a test OIDC provider (``idp``), the device clients of the test server (``devices``), its
#: KMS clients and key service (``kms``, ``service``), the session's SoftHSM2 tokens (``softhsm``). Each is listed
#: after those it imports: pytest rewrites the asserts of a plugin only if it imports it first.
pytest_plugins = [
    "tests.kafka",
    "tests.streams",
    "tests.redis_processes",
    "tests.redis_cluster",
    "tests.oidc_provider",
    "tests.devices",
    "tests.kms_calls",
    "tests.softhsm",
]
#: The helper modules that check what they get: their asserts rewritten as a test module's are, so that a failing one
#: shows its values.
pytest.register_assert_rewrite("tests.aws_cli", "tests.phones", "tests.servers", "tests.write_load")


def _fuzz_lines() -> list[str]:
    """The fuzz run's counts (requests, per status class) when tests/test_fuzz.py ran in this process: a closing
    note quotes them. With ``SYNCSVC_FUZZ_REFUSED`` (`make fuzz`), also the operations that never got past
    validation."""
    fuzzing = sys.modules.get("tests.fuzzing")
    if fuzzing is None or not fuzzing.TALLY.requests:
        return []
    lines = [fuzzing.TALLY.summary()]
    if os.environ.get("SYNCSVC_FUZZ_REFUSED"):
        refused = sorted({operation for operation, _ in fuzzing.TALLY.statuses} - fuzzing.TALLY.succeeded())
        lines.append(f"fuzz: never answered 2xx: {', '.join(refused)}")
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _fuzz_lines():
        terminalreporter.write_line(line)


#: The KMS root key of every server the suite starts (in process or as `syncsvc` processes, which inherit it).
ROOT_KEY_FILE = Path(tempfile.mkdtemp(prefix="syncsvc-tests-")) / "root.key"
FileKey.generate(ROOT_KEY_FILE)
os.environ["SYNCSVC_ROOT_KEY_FILE"] = str(ROOT_KEY_FILE)

DEVELOPER_KEY = "AKIDTESTDEVELOPER01"
DEVELOPER_SECRET = "test-developer-secret-0123456789abcdefghij"
REGION = "us-east-1"


def process_environment(**settings: str) -> dict[str, str]:
    """The environment of a `syncsvc` process a test starts: this one without SYNCSVC_* settings (the test's own
    choice), except the suite's KMS root key, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNCSVC_")}
    return {**env, "SYNCSVC_ROOT_KEY_FILE": str(ROOT_KEY_FILE), **settings}


def envelope_of(client: aioredis.Redis, settings: Settings) -> Envelope:
    """An envelope like the server's (same Redis, same root key): opens what the server sealed, for assertions."""
    kms = KeyService(RedisKeyStore(client), RootKey.from_file(ROOT_KEY_FILE), region=settings.region, quota=1000)
    return Envelope(kms, RedisDataKeys(client), DataKeyCache(CacheLimits()))


async def opened_value(
    client: aioredis.Redis, settings: Settings, keyspace: IdentityKeyspace, dataset: str, key: str, value: str
) -> str | None:
    """A value as the server stored it, opened."""
    cipher = await envelope_of(client, settings).cipher(keyspace, create=False)
    return cipher.open(dataset, key, value)


class _Ports:
    """Free loopback ports for the servers a test starts, handed out in turn from a range of this process's own below
    the kernel's ephemeral range. Under pytest-xdist each worker has its own slice, so two workers never hand out the
    same port between the check here and the server's bind (seconds later for a JVM), and no outgoing connection's
    source port (taken from the ephemeral range) can take it meanwhile either. In turn, not at random: a port handed
    out is not handed out again by this process before the rest of its slice was."""

    LOW = 10_000

    def __init__(self) -> None:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            ephemeral = int(ranges.read().split()[0])
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
        width = (ephemeral - self.LOW) // workers
        self.first = self.LOW + worker * width
        self.width = width
        self.next = random.randrange(width)

    def take(self) -> int:
        for _ in range(self.width):
            port = self.first + self.next % self.width
            self.next += 1
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free loopback port in {self.first}..{self.first + self.width - 1}")


_PORTS = _Ports()


def free_port() -> int:
    return _PORTS.take()


def _wait_for_redis(url: str, process: subprocess.Popen[bytes] | None) -> None:
    if connection.parse(url).kind != "single":
        return  # a cluster's or sentinel's harness waited for it to be healthy
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    for _ in range(100):
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        try:
            client.ping()
            return
        except redis.ConnectionError:
            import time

            time.sleep(0.05)
    raise RuntimeError(f"redis at {url} did not answer within 5 s")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("SYNCSVC_TEST_REDIS_URL")
    if given:
        _wait_for_redis(given, None)
        yield given
        return
    if os.environ.get("SYNCSVC_TEST_REDIS") == "cluster":
        from tests.redis_cluster import started_cluster  # here: that module imports this one

        with started_cluster() as url:
            yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.exit("redis-server is not installed: run `make test`, which installs it", returncode=2)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="syncsvc-test-redis-") as folder:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                # A snapshot schedule (due after an hour: never within a run) and no AOF: persistence configured, so
                # syncsvc's start-up check has nothing to warn of, at no cost to the suite.
                "--save",
                "3600 1",
                "--appendonly",
                "no",
                "--dir",
                folder,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            _wait_for_redis(url, process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


@contextlib.asynccontextmanager
async def flushed_client(redis_url: str) -> AsyncIterator[RedisClient]:
    """A raw client on ``redis_url``'s database, flushed first (every master's, on a cluster), while the block runs."""
    client = connection.connect(redis_url)
    try:
        await client.flushdb()
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[RedisClient]:
    """A raw client on a flushed database (for asserting what is stored); every master's, on a cluster."""
    async with flushed_client(redis_url) as client:
        yield client


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "host": "127.0.0.1",
        "port": 0,
        "region": REGION,
        "developer_credentials": f"{DEVELOPER_KEY}:{DEVELOPER_SECRET}",
        "pool_cache_seconds": 0,
        "relay": False,  # tests of the stream start their own relay
        "root_key_file": ROOT_KEY_FILE,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Settings a test changes: ``@pytest.mark.parametrize("overrides", [{...}])``."""
    return {}


@pytest.fixture
def settings(redis_url: str, overrides: dict[str, Any]) -> Settings:
    return make_settings(redis_url, **overrides)


@pytest.fixture
async def server(
    settings: Settings, redis_client: aioredis.Redis, app_clock: Clock | None, port: int
) -> AsyncIterator[TestServer]:
    """syncsvc serving on loopback ``port``, on a flushed Redis, reading ``app_clock``."""
    test_server = TestServer(create_app(settings, clock=app_clock), host="127.0.0.1", port=port)
    await test_server.start_server()
    yield test_server
    await test_server.close()


@pytest.fixture
def port() -> int:
    """The ``server`` fixture's port: a free one, known before the server starts (so settings may name it)."""
    return free_port()


@pytest.fixture
def app_clock() -> Clock | None:
    """The time the ``server`` fixture's services read: the machine's. A module overrides this fixture to hold time
    still (a ``ManualClock``), where an outcome would otherwise depend on how fast the machine is."""
    return None


@pytest.fixture
def endpoint(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """syncsvc serving ``settings`` on a free loopback port while the block runs; yields its endpoint. For a test
    that starts its server on a Redis of its own, or needs it started at a given moment (else: ``endpoint``)."""
    server = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def call(client: Any, operation: str, **params: Any) -> dict[str, Any]:
    """A boto3 call in a thread (the server runs on this loop), without its ResponseMetadata."""
    result: dict[str, Any] = await asyncio.to_thread(getattr(client, operation), **params)
    result.pop("ResponseMetadata", None)
    return result


class Boto:
    """Unmodified boto3 clients against the test server; every call runs in a thread (the server is on this loop)."""

    def __init__(self, endpoint: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id=DEVELOPER_KEY, aws_secret_access_key=DEVELOPER_SECRET, region_name=REGION
        )
        config = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=5, read_timeout=20)
        self.sync = session.client("cognito-sync", endpoint_url=endpoint, config=config)
        self.identity = session.client("cognito-identity", endpoint_url=endpoint, config=config)

    async def call(self, client: Any, operation: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = await asyncio.to_thread(getattr(client, operation), **params)
        return result

    async def new_pool(self) -> str:
        created = await self.call(
            self.identity,
            "create_identity_pool",
            IdentityPoolName="tests",
            AllowUnauthenticatedIdentities=True,
        )
        pool_id: str = created["IdentityPoolId"]
        return pool_id


@pytest.fixture
def boto(endpoint: str) -> Boto:
    return Boto(endpoint)


class Raw:
    """Hand-made HTTP requests, signed by botocore's SigV4 signer exactly as an SDK would sign them.

    For what boto3 cannot send or hides: extension members (VersionVector), malformed bodies, odd paths.
    """

    def __init__(self, endpoint: str, session: aiohttp.ClientSession) -> None:
        self.endpoint = endpoint
        self.session = session

    def signed_headers(
        self, method: str, path: str, *, body: bytes = b"", service: str = "cognito-sync", **headers: str
    ) -> dict[str, str]:
        request = AWSRequest(method=method, url=self.endpoint + path, data=body, headers=headers)
        SigV4Auth(Credentials(DEVELOPER_KEY, DEVELOPER_SECRET), service, REGION).add_auth(request)
        return {name: value.decode() if isinstance(value, bytes) else value for name, value in request.headers.items()}

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | dict[str, Any] = b"",
        service: str = "cognito-sync",
        sign: bool = True,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Sends the request; returns (status, JSON body, response headers). ``path`` may hold a raw query."""
        headers = dict(headers or {})
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        if isinstance(body, dict) and "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        if sign:
            headers = self.signed_headers(method, path, body=data, service=service, **headers)
        url = yarl.URL(self.endpoint + path, encoded=True)
        async with self.session.request(method, url, data=data, headers=headers) as response:
            text = await response.read()
            payload = orjson.loads(text) if text else {}
            return response.status, payload, dict(response.headers)

    async def identity(self, operation: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        return await self.send(
            "POST",
            "/",
            body=orjson.dumps(payload),
            service="cognito-identity",
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"AWSCognitoIdentityService.{operation}",
            },
        )


@pytest.fixture
async def raw(endpoint: str) -> AsyncIterator[Raw]:
    async with aiohttp.ClientSession() as session:
        yield Raw(endpoint, session)


#: The coroutines of a relay (``syncsvc.outbox.relay``) that must not outlive the test that started them.
_RELAY_COROUTINES = {"Relay.run", "LaneWorker.run"}


@pytest.fixture(autouse=True)
async def no_relay_outlives_its_test() -> AsyncIterator[None]:
    """Every relay a test started in this process has stopped when the test ends. The event loop is the session's:
    a relay left running would go on taking lanes and publishing the outboxes of the tests after it."""
    yield
    left = [
        task.get_name()
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") in _RELAY_COROUTINES
    ]
    assert left == [], f"relay tasks still running after the test: {left}"
