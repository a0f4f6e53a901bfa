"""A flood of connections without credentials cannot take a `syncsvc serve` process's descriptors: past its cap the
longest idle connections give way, idle ones time out, /healthz and real requests keep being answered, and the log
stays quiet. (A real process on loopback, its descriptors counted in /proc.)"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from syncsvc.api.connections import quiet_loop_errors
from tests.servers import Served, healthz_seconds, syncsvc_process

LIMIT = 100
IDLE_SECONDS = 2
FLOOD = 600


@pytest.fixture
def served(redis_url: str, redis_client: Redis, tmp_path: Path) -> Iterator[Served]:
    """A process capped at LIMIT connections."""
    caps = {"SYNCSVC_MAX_CONNECTIONS": str(LIMIT), "SYNCSVC_IDLE_TIMEOUT_SECONDS": str(IDLE_SECONDS)}
    with syncsvc_process(redis_url, tmp_path / "serve.log", caps) as process:
        yield process


def get_id(url: str, pool: str) -> int:
    """An unauthenticated GetId, as a device's first call; its HTTP status."""
    request = urllib.request.Request(  # noqa: S310 (loopback test URL)
        url + "/",
        data=orjson.dumps({"IdentityPoolId": pool}),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSCognitoIdentityService.GetId",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback test URL)
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def open_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that never send a byte (each connect is answered by the kernel, not the server)."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.append(sock)
    return held


def test_a_flood_of_idle_connections_stays_under_the_cap_and_the_server_keeps_answering(served: Served) -> None:
    baseline = served.descriptors()
    flood = open_idle(served.port, FLOOD)
    try:
        time.sleep(0.5)  # let the server accept what is in its backlog (the assertion below is a ceiling)
        during = served.descriptors()
        seconds = healthz_seconds(served.url)
        status = get_id(served.url, "us-east-1:00000000-0000-0000-0000-000000000000")
    finally:
        for sock in flood:
            sock.close()
    assert during <= baseline + LIMIT + 8, (baseline, during)
    assert seconds < 5
    assert status == 400  # the pool does not exist: answered as Cognito does, not refused for want of sockets
    log_lines = served.log.read_text().splitlines()
    assert len([line for line in log_lines if "limit of" in line]) <= 2, log_lines[-5:]
    assert not any("Traceback" in line for line in log_lines)


def test_a_connection_that_never_sends_a_request_is_closed_after_the_idle_timeout(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=IDLE_SECONDS + 10) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server
        waited = time.monotonic() - started
    assert IDLE_SECONDS - 0.5 <= waited < IDLE_SECONDS + 10


async def test_event_loop_errors_are_logged_once_per_message_and_interval(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        quiet_loop_errors(loop)
        with caplog.at_level(logging.ERROR, logger="syncsvc.api"):
            for _ in range(1000):
                loop.call_exception_handler(
                    {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many open")}
                )
            loop.call_exception_handler({"message": "another error"})
    finally:
        loop.close()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("socket.accept() out of system resource: [Errno 24] Too many open")


def test_one_client_address_holds_no_more_than_its_cap_while_others_are_served(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> None:
    with syncsvc_process(redis_url, tmp_path / "serve.log", {"SYNCSVC_MAX_CONNECTIONS_PER_ADDRESS": "20"}) as served:
        baseline = served.descriptors()
        flood = open_idle(served.port, 100)  # from 127.0.0.1
        try:
            time.sleep(0.5)
            during = served.descriptors()
            with socket.create_connection(
                ("127.0.0.1", served.port), timeout=5, source_address=("127.0.0.2", 0)
            ) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                status_line = sock.recv(64).split(b"\r\n")[0]
        finally:
            for sock in flood:
                sock.close()
    assert during <= baseline + 20 + 8, (baseline, during)
    assert status_line == b"HTTP/1.1 200 OK"
