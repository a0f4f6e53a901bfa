"""Request bodies cannot be used to exhaust a `syncsvc serve` process without credentials: a caller is admitted on
its headers before its body is read, the bytes buffered at once are bounded, a trickling body is cut off, and
aborted uploads or malformed HTTP get one quiet answer in the AWS error shape instead of a traceback each.
(A real process on loopback, raw sockets, its memory read from /proc.)"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from tests.servers import Served, healthz_seconds, syncsvc_process

MiB = 1024 * 1024
BUDGET = 4 * MiB
BODY_SECONDS = 2
GET_ID = "AWSCognitoIdentityService.GetId"  # anonymous: its body is read without credentials
LIST_POOLS = "AWSCognitoIdentityService.ListIdentityPools"  # developer only


@pytest.fixture
def served(redis_url: str, redis_client: Redis, tmp_path: Path) -> Iterator[Served]:
    """A process buffering BUDGET bytes of bodies at once, each given BODY_SECONDS to arrive."""
    limits = {"SYNCSVC_MAX_BUFFERED_BODY_BYTES": str(BUDGET), "SYNCSVC_BODY_TIMEOUT_SECONDS": str(BODY_SECONDS)}
    with syncsvc_process(redis_url, tmp_path / "serve.log", limits) as process:
        yield process


def start_request(served: Served, target: str, content_length: int, first: bytes = b"") -> socket.socket:
    """A POST whose headers promise ``content_length`` bytes, of which only ``first`` are sent."""
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=15)
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\n"
        f"X-Amz-Target: {target}\r\nContent-Length: {content_length}\r\n\r\n"
    )
    sock.sendall(head.encode() + first)
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """Status, headers (lower-case names) and JSON body of the response on ``sock`` (read until it closes or the body
    is complete)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(lines[0].split()[1]), headers, orjson.loads(body)


def test_a_caller_without_credentials_is_answered_before_its_body_is_sent(served: Served) -> None:
    with start_request(served, LIST_POOLS, 2 * MiB) as sock:
        status, _, body = answer(sock)  # nothing of the 2 MiB was sent: the answer cannot have waited for it
    assert (status, body["__type"]) == (403, "MissingAuthenticationTokenException")


def test_bodies_held_at_once_are_bounded_and_the_next_is_refused_at_once(served: Served) -> None:
    held = [start_request(served, GET_ID, 2 * MiB, b"{") for _ in range(2)]  # 4 MiB: the whole budget
    try:
        time.sleep(0.3)  # both are being read now
        with start_request(served, GET_ID, 2 * MiB, b"{") as third:
            status, _, body = answer(third)
    finally:
        for sock in held:
            sock.close()
    assert (status, body["__type"]) == (400, "TooManyRequestsException")  # json 1.1: 400, retried by the SDKs


def test_a_flood_of_stalled_uploads_stays_within_the_budget_and_the_server_keeps_answering(served: Served) -> None:
    before = served.rss_bytes()
    flood = []
    try:
        for _ in range(100):
            sock = start_request(served, GET_ID, 2 * MiB)
            with contextlib.suppress(OSError):  # refused (budget): the server answered and closed already
                sock.sendall(b"x" * MiB)  # half of it, then silence
            flood.append(sock)
        time.sleep(0.5)
        grown = served.rss_bytes() - before
        seconds = healthz_seconds(served.url)
    finally:
        for sock in flood:
            sock.close()
    assert grown < BUDGET + 48 * MiB, grown  # 100 MiB were sent; what a process holds of them is its budget
    assert seconds < 5


def test_a_body_that_trickles_in_is_cut_off_with_408(served: Served) -> None:
    with start_request(served, GET_ID, 100, b"{") as sock:
        started = time.monotonic()
        status, _, body = answer(sock)
        waited = time.monotonic() - started
    assert (status, body["__type"]) == (400, "RequestTimeoutException")  # json 1.1 answers 400, as AWS does
    assert BODY_SECONDS - 0.5 <= waited < BODY_SECONDS + 10


def test_aborted_uploads_leave_no_traceback_in_the_log(served: Served) -> None:
    for _ in range(50):
        start_request(served, GET_ID, 1000, b'{"IdentityPoolId"').close()
    assert healthz_seconds(served.url) < 5
    time.sleep(0.3)
    lines = served.log_lines()
    assert not [line for line in lines if "Traceback" in line or "unexpected error" in line or "ERROR" in line]


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", id="over-long-url"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", id="malformed-header-line"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nX-Long: " + b"b" * 20000 + b"\r\n\r\n", id="over-long-header"),
    ],
)
def test_malformed_http_is_answered_in_the_aws_error_shape_without_a_traceback(
    served: Served, request_bytes: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(request_bytes)
        status, headers, body = answer(sock)
    assert (status, headers["content-type"], headers["x-amzn-errortype"], body["__type"]) == (
        400,
        "application/x-amz-json-1.1",
        "SerializationException",
        "SerializationException",
    )
    assert str(body["message"]).startswith("The request is not well-formed HTTP")
    assert not [line for line in served.log_lines() if "Traceback" in line or "ERROR" in line]
