"""Push sync over WebSocket against a real server and Redis: devices of a guest identity register, subscribe, hold a
socket, and hear of each other's changes (never their own), in order, with catch-up after time away.
(Two server processes: test_push_instances.py.)"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import yarl
from aiohttp import WSMsgType
from aiohttp.test_utils import TestServer
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from redis.asyncio import Redis

from syncsvc.api.app import create_app
from syncsvc.api.messages import SERVICES
from syncsvc.config import Settings
from tests.conftest import Boto, free_port
from tests.phones import (
    Phone,
    identity_call,
    nothing_waiting,
    notification,
    push_pool,
    receive,
    resume,
    subscribed_pair,
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def receive_answering_pings(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next message on a socket opened with autoping=False, answering the pings that come before it."""
    while (message := await ws.receive()).type == WSMsgType.PING:
        await ws.pong(message.data)
    assert message.type == WSMsgType.TEXT, message
    answer: dict[str, Any] = orjson.loads(message.data)
    return answer


@pytest.fixture
async def pool(boto: Boto) -> str:
    return await push_pool(boto)


@pytest.fixture
async def phones(session: aiohttp.ClientSession, endpoint: str, pool: str) -> tuple[Phone, Phone]:
    """Two registered devices of one guest identity, both subscribed to "settings"."""
    return await subscribed_pair(session, pool, endpoint)


# --- RegisterDevice, Subscribe, Unsubscribe ---------------------------------------------------------------------------


async def test_registering_the_same_device_again_answers_the_same_device_id(phones: tuple[Phone, Phone]) -> None:
    phone, tablet = phones
    assert (await phone.register("phone-token"), tablet.device_id != phone.device_id) == (phone.device_id, True)


async def test_register_device_in_a_pool_without_push_is_an_invalid_configuration(
    session: aiohttp.ClientSession, endpoint: str, boto: Boto
) -> None:
    phone = await Phone.guest(session, endpoint, await boto.new_pool())
    path = f"/identitypools/{phone.pool}/identity/{phone.identity}/device"
    status, body = await phone.call("POST", path, {"Platform": "GCM", "Token": "t"})
    assert (status, body) == (
        400,
        {
            "__type": "InvalidConfigurationException",
            "message": f"Push sync is not configured for identity pool {phone.pool}: set PushSync with "
            "SetIdentityPoolConfiguration",
        },
    )


async def test_register_device_needs_the_identitys_own_credentials(boto: Boto, pool: str) -> None:
    answer = await boto_refusal(
        boto, "register_device", IdentityPoolId=pool, IdentityId=f"{pool.split(':')[0]}:1", Platform="GCM", Token="t"
    )
    assert answer == (
        "NotAuthorizedException",
        "RegisterDevice needs the identity's own credentials, not developer credentials",
        403,
    )


async def test_an_unknown_platform_is_an_invalid_parameter(phones: tuple[Phone, Phone]) -> None:
    phone, _ = phones
    path = f"/identitypools/{phone.pool}/identity/{phone.identity}/device"
    status, body = await phone.call("POST", path, {"Platform": "PIGEON", "Token": "t"})
    assert (status, body["__type"], body["message"]) == (
        400,
        "InvalidParameterException",
        "Platform must be one of APNS, APNS_SANDBOX, GCM, ADM, WEBSOCKET, not 'PIGEON'",
    )


async def test_subscribing_an_unregistered_device_is_not_found(phones: tuple[Phone, Phone]) -> None:
    phone, _ = phones
    phone.device_id = "00000000-0000-0000-0000-000000000000"
    status, body = await phone.call("POST", phone.subscription("settings"))
    assert (status, body["__type"], body["message"]) == (
        404,
        "ResourceNotFoundException",
        f"Device 00000000-0000-0000-0000-000000000000 is not registered to identity {phone.identity}",
    )


async def boto_refusal(boto: Boto, operation: str, **params: Any) -> tuple[str, str, int]:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        await boto.call(boto.sync, operation, **params)
    error = caught.value.response
    return error["Error"]["Code"], error["Error"]["Message"], error["ResponseMetadata"]["HTTPStatusCode"]


# --- notifications ----------------------------------------------------------------------------------------------------


async def test_a_change_wakes_the_other_device_and_not_the_one_that_made_it(phones: tuple[Phone, Phone]) -> None:
    phone, tablet = phones
    async with await phone.connect() as phone_ws, await tablet.connect() as tablet_ws:
        assert await nothing_waiting(phone_ws)
        assert await nothing_waiting(tablet_ws)
        sync_count = await tablet.write("dark")
        assert await receive(phone_ws) == notification(phone, sync_count)
        assert await nothing_waiting(tablet_ws)


async def test_notifications_arrive_in_sync_count_order(phones: tuple[Phone, Phone]) -> None:
    phone, tablet = phones
    async with await phone.connect() as ws:
        assert await nothing_waiting(ws)
        counts = [await tablet.write(f"v{n}") for n in range(20)]
        assert [(await receive(ws))["syncCount"] for _ in counts] == counts == list(range(1, 21))


async def test_unsubscribing_stops_the_notifications(phones: tuple[Phone, Phone]) -> None:
    phone, tablet = phones
    assert await phone.call("DELETE", phone.subscription("settings")) == (200, {})
    async with await phone.connect() as ws:
        await tablet.write("dark")
        await tablet.write("light", dataset="other")
        assert await nothing_waiting(ws)


async def test_a_device_that_was_away_is_told_at_once_what_moved_on(phones: tuple[Phone, Phone]) -> None:
    phone, tablet = phones
    await phone.subscribe("games")
    await tablet.write("dark")
    await tablet.write("light")
    await tablet.write("chess", dataset="games")
    async with await phone.connect() as ws:
        await resume(ws, settings=1, games=1)
        resumed = {"action": "resumed", "syncCounts": {"games": 1, "settings": 2}}
        assert [await receive(ws) for _ in range(2)] == [notification(phone, 2), resumed]


async def test_a_device_of_another_identity_cannot_open_the_socket(
    phones: tuple[Phone, Phone], session: aiohttp.ClientSession, endpoint: str
) -> None:
    phone, _ = phones
    stranger = await Phone.guest(session, endpoint, phone.pool)
    intruder = Phone(session, endpoint, phone.pool, phone.identity, stranger.token)
    intruder.device_id = phone.device_id
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await intruder.connect()
    assert caught.value.status == 403


async def test_a_device_of_another_identity_hears_nothing_of_it(
    phones: tuple[Phone, Phone], session: aiohttp.ClientSession, endpoint: str
) -> None:
    phone, tablet = phones
    stranger = await Phone.guest(session, endpoint, phone.pool)
    await stranger.register("stranger-token")
    await stranger.subscribe()
    async with await stranger.connect() as ws:
        await resume(ws)
        assert await receive(ws) == {"action": "resumed", "syncCounts": {"settings": 0}}
        await tablet.write("dark")
        await phone.write("light")
        assert await nothing_waiting(ws)


async def test_a_socket_without_credentials_is_refused_before_the_upgrade(phones: tuple[Phone, Phone]) -> None:
    phone, _ = phones
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await phone.session.ws_connect(phone.socket_url)
    assert caught.value.status == 403


async def test_a_socket_for_an_unregistered_device_is_refused(phones: tuple[Phone, Phone]) -> None:
    phone, _ = phones
    phone.device_id = "nobody"
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await phone.connect()
    assert caught.value.status == 404


# --- the socket's life ------------------------------------------------------------------------------------------------


async def test_a_newer_socket_of_the_same_device_replaces_the_older(phones: tuple[Phone, Phone]) -> None:
    phone, tablet = phones
    async with await phone.connect() as older, await phone.connect() as newer:
        closed = await older.receive(timeout=5)
        assert (closed.type, closed.data) == (WSMsgType.CLOSE, 4009)
        sync_count = await tablet.write("dark")
        assert await receive(newer) == notification(phone, sync_count)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x00binary", 1003),
        ("not json", 1007),
        ('{"action": "dance"}', 1007),
        ('{"action": "resume", "syncCounts": {"settings": -1}}', 1007),
        ('{"action": "resume", "syncCounts": {"settings": 9223372036854775808}}', 1007),  # past a signed long
    ],
)
async def test_a_frame_that_is_not_a_message_closes_the_socket(
    phones: tuple[Phone, Phone], frame: str | bytes, code: int
) -> None:
    phone, _ = phones
    async with await phone.connect() as ws:
        await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
        closed = await ws.receive(timeout=5)
        assert (closed.type, closed.data) == (WSMsgType.CLOSE, code)


@pytest.mark.parametrize("overrides", [{"push_heartbeat_seconds": 0.4}])
async def test_a_device_that_stops_answering_pings_is_dropped(phones: tuple[Phone, Phone]) -> None:
    phone, _ = phones
    async with await phone.connect(autoping=False) as ws:
        async with asyncio.timeout(5):
            while (await ws.receive()).type == WSMsgType.PING:  # pings we never answer, then the end
                pass
        assert ws.closed


@pytest.mark.parametrize("overrides", [{"push_heartbeat_seconds": 0.4}])
async def test_a_device_that_answers_pings_stays_connected(phones: tuple[Phone, Phone]) -> None:
    phone, tablet = phones
    async with await phone.connect(autoping=False) as ws, asyncio.timeout(10):
        for _ in range(3):  # several heartbeats, each answered at once
            ping = await ws.receive()
            assert ping.type == WSMsgType.PING, ping
            await ws.pong(ping.data)
        listening = asyncio.create_task(receive_answering_pings(ws))  # answers any heartbeat during the write
        sync_count = await tablet.write("dark")
        assert await listening == notification(phone, sync_count)


async def test_shutting_down_closes_sockets_with_going_away(
    settings: Settings, redis_client: Redis, session: aiohttp.ClientSession, boto: Boto
) -> None:
    own = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await own.start_server()
    endpoint = str(own.make_url("")).rstrip("/")
    phone = await Phone.guest(session, endpoint, await push_pool(Boto(endpoint)))
    await phone.register("phone-token")
    ws = await phone.connect()
    await own.close()
    closed = await ws.receive(timeout=5)
    assert (closed.type, closed.data) == (WSMsgType.CLOSE, 1001)


# --- a slow reader ----------------------------------------------------------------------------------------------------


async def stalled_socket(phone: Phone) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket handshake on a TCP socket with a tiny receive buffer, which the test then does not read."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    raw.setblocking(False)
    url = yarl.URL(phone.socket_url)
    await asyncio.get_running_loop().sock_connect(raw, (url.host, url.port))
    reader, writer = await asyncio.open_connection(sock=raw)
    writer.write(
        f"GET {url.raw_path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {phone.token}\r\n\r\n".encode()
    )
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    return reader, writer


def close_code(data: bytes) -> int | None:
    """The close code of the first close frame in a stream of unmasked server frames, if any."""
    at = 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length, at = struct.unpack(">H", data[at : at + 2])[0], at + 2
        elif length == 127:
            length, at = struct.unpack(">Q", data[at : at + 8])[0], at + 8
        if opcode == 0x8:
            return int(struct.unpack(">H", data[at : at + 2])[0])
        at += length
    return None


async def read_until_closed(reader: asyncio.StreamReader) -> int | None:
    """Reads what the server sent, up to its close frame; that frame's code."""
    stream = b""
    async with asyncio.timeout(10):
        while (code := close_code(stream)) is None:
            chunk = await reader.read(65536)
            if not chunk:
                return None
            stream += chunk
    return code


@pytest.mark.parametrize("overrides", [{"push_queue_size": 4, "push_send_buffer_bytes": 4096}])
async def test_a_slow_reader_is_dropped_while_the_others_keep_receiving(
    phones: tuple[Phone, Phone], server: TestServer
) -> None:
    phone, tablet = phones
    laptop = phone.sibling()
    await laptop.register("laptop-token")
    await laptop.subscribe()
    hub = server.app[SERVICES].hub
    reader, writer = await stalled_socket(laptop)
    try:
        async with await phone.connect() as ws:
            assert await nothing_waiting(ws)
            assert hub.socket_count == 2
            received: list[int] = []
            while hub.socket_count == 2 and len(received) < 1000:
                await tablet.write(f"v{len(received)}")
                received.append((await receive(ws))["syncCount"])
            assert (hub.socket_count, received) == (1, list(range(1, len(received) + 1)))
            assert await read_until_closed(reader) == 4008
            later = await tablet.write("after")
            assert await receive(ws) == notification(phone, later)
    finally:
        writer.close()


async def test_a_socket_opens_with_a_presigned_url_of_the_identitys_temporary_credentials(
    phones: tuple[Phone, Phone], session: aiohttp.ClientSession, endpoint: str
) -> None:
    """For browsers, which cannot set headers on a WebSocket: SigV4 in the query (botocore's presigner)."""
    phone, tablet = phones
    answer = await identity_call(session, endpoint, "GetCredentialsForIdentity", {"IdentityId": phone.identity})
    given = answer["Credentials"]
    request = AWSRequest(method="GET", url=phone.socket_url)
    credentials = Credentials(given["AccessKeyId"], given["SecretKey"], given["SessionToken"])
    SigV4QueryAuth(credentials, "cognito-sync", "us-east-1", expires=60).add_auth(request)
    async with session.ws_connect(yarl.URL(str(request.url), encoded=True)) as ws:
        sync_count = await tablet.write("dark")
        assert await receive(ws) == notification(phone, sync_count)
