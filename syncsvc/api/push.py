"""Push sync: RegisterDevice, Subscribe/UnsubscribeFromDataset (rest-json) and the device socket (WebSocket).

The socket: ``GET /identitypools/{IdentityPoolId}/identity/{IdentityId}/device/{DeviceId}/push``, authenticated like
any Sync request with the identity's own credentials (``Authorization: Bearer <token>``, SigV4 headers, or a SigV4
presigned URL for clients that cannot set headers). Refusals come before the upgrade, as ordinary JSON errors.

Server → device (text frames, JSON): a notification ``{"source": "cognito-sync", "identityPoolId", "identityId",
"datasetName", "syncCount"}`` when another device changed a dataset this device subscribed to; ``{"action":
"resumed", "syncCounts": {dataset: count}}`` after a resume; ``{"action": "pong"}``.
Device → server: ``{"action": "resume", "syncCounts": {dataset: the count it holds}}`` (send it after every connect:
it is told at once of every subscribed dataset that moved past), ``{"action": "ping"}``.
Close codes: 1001 the server is going away (reconnect, to any instance); 1003 a binary frame; 1007 a frame that is
not one of the messages above; 4008 slow reader (too many messages waiting); 4009 replaced by a newer socket of the
same device. The server pings every ``push_heartbeat_seconds`` and drops a socket that does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket as socket_module
from typing import Annotated

import orjson
from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from typing_extensions import TypedDict  # pydantic describes these TypedDicts on Python 3.11

from syncsvc.access import Access
from syncsvc.api.messages import CALLER, SERVICES
from syncsvc.api.operations import Call, Operation, Route
from syncsvc.errors import TooManyRequestsError
from syncsvc.model import MAX_SYNC_COUNT
from syncsvc.push.hub import DeviceSocket, PushHub
from syncsvc.runtime import Services

POOL = "/identitypools/{IdentityPoolId}"
DEVICE = POOL + "/identity/{IdentityId}/device"
SUBSCRIPTION = POOL + "/identities/{IdentityId}/datasets/{DatasetName}/subscriptions/{DeviceId}"
#: A device's frames are small JSON messages.
_MAX_FRAME_BYTES = 64 * 1024


class RegisterDeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    Platform: Annotated[str, StringConstraints(min_length=1)]
    Token: Annotated[str, StringConstraints(min_length=1)]


DatasetName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class DeviceMessage(BaseModel):
    """A frame from a device."""

    model_config = ConfigDict(extra="forbid", strict=True)

    action: str
    syncCounts: dict[DatasetName, Annotated[int, Field(ge=0, le=MAX_SYNC_COUNT)]] = {}  # noqa: N815 - the wire name


class DeviceIdOut(TypedDict):
    DeviceId: str


class Empty(TypedDict):
    pass


class NoInput(BaseModel):
    """Subscribe/UnsubscribeFromDataset: every input is in the path."""

    model_config = ConfigDict(extra="forbid", strict=True)


async def register_device(services: Services, call: Call[RegisterDeviceIn]) -> DeviceIdOut:
    labels, given = call.labels, call.given
    device_id = await services.push.register_device(
        call.caller, labels["IdentityPoolId"], labels["IdentityId"], platform=given.Platform, token=given.Token
    )
    return {"DeviceId": device_id}


async def subscribe(services: Services, call: Call[NoInput]) -> Empty:
    await _subscription(services, call, on=True)
    return {}


async def unsubscribe(services: Services, call: Call[NoInput]) -> Empty:
    await _subscription(services, call, on=False)
    return {}


async def _subscription(services: Services, call: Call[NoInput], *, on: bool) -> None:
    labels = call.labels
    await services.push.subscribe(
        call.caller, labels["IdentityPoolId"], labels["IdentityId"], labels["DatasetName"], labels["DeviceId"], on=on
    )


#: The push sync operations of the Cognito Sync surface (``syncsvc.api.sync.SURFACE``).
OPERATIONS = (
    Operation("RegisterDevice", RegisterDeviceIn, DeviceIdOut, Access.CALLER, register_device, Route("POST", DEVICE)),
    Operation("SubscribeToDataset", NoInput, Empty, Access.CALLER, subscribe, Route("POST", SUBSCRIPTION)),
    Operation("UnsubscribeFromDataset", NoInput, Empty, Access.CALLER, unsubscribe, Route("DELETE", SUBSCRIPTION)),
)


async def device_socket(request: web.Request) -> web.WebSocketResponse:
    info = request.match_info
    device_id = info["DeviceId"]
    services = request.app[SERVICES]
    keyspace = await services.push.open_socket(request[CALLER], info["IdentityPoolId"], info["IdentityId"], device_id)
    hub = services.hub
    if hub.full:
        raise TooManyRequestsError("This server holds as many push sockets as it may; connect again later")
    settings = services.settings
    ws = web.WebSocketResponse(
        heartbeat=settings.push_heartbeat_seconds,
        max_msg_size=_MAX_FRAME_BYTES,
        writer_limit=settings.push_send_buffer_bytes,
        compress=False,  # a deflate context per socket would cost more memory than the notifications save
    )
    _bound_send_buffers(request, settings.push_send_buffer_bytes)
    socket = hub.socket(keyspace, device_id, ws)
    writer: asyncio.Task[None] | None = None
    try:
        # Attached before the handshake completes: the device's "I am here" is announced before it can open another
        # socket, so "newest wins" follows the order the device connected in. Inside the try: a socket whose
        # attach failed half-way (Redis down) is detached again, not left counting against the hub's limit.
        await hub.attach(socket)
        await ws.prepare(request)
        if socket.closing:  # replaced already, during the handshake
            await ws.close(code=socket.close_code, message=socket.close_reason.encode())
            return ws
        writer = asyncio.create_task(socket.pump(), name=f"push socket {socket.connection_id}")
        await _read(socket, hub)
    finally:
        await hub.detach(socket)
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await writer
        if ws.prepared:
            await ws.close()
    return ws


def _bound_send_buffers(request: web.Request, size: int) -> None:
    """Caps what a socket holds unsent: the transport's buffer (the writer waits past it) and the kernel's send
    buffer (no autotuning into megabytes per idle device). A device that reads too slowly then backs up its queue."""
    transport = request.transport
    if transport is None:
        return
    transport.set_write_buffer_limits(high=size)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_SNDBUF, size)


async def _read(socket: DeviceSocket, hub: PushHub) -> None:
    """The device's frames, until the socket closes; a frame that is not a known message closes it (1003/1007)."""
    async for frame in socket.ws:
        if frame.type == WSMsgType.BINARY:
            await socket.ws.close(code=1003, message=b"binary frames are not accepted; send JSON text")
            return
        if frame.type != WSMsgType.TEXT:
            continue
        try:
            message = DeviceMessage.model_validate(orjson.loads(frame.data))
        except (orjson.JSONDecodeError, ValidationError):
            await socket.ws.close(code=1007, message=b'not a message: send {"action": "resume" | "ping"}')
            return
        if message.action == "resume":
            await hub.resume(socket, message.syncCounts)
        elif message.action == "ping":
            socket.send({"action": "pong"})
        else:
            await socket.ws.close(code=1007, message=b'unknown action: use "resume" or "ping"')
            return


def routes() -> list[web.RouteDef]:
    """The device socket's route (the push operations are served with the rest of Cognito Sync)."""
    return [web.get(DEVICE + "/{DeviceId}/push", device_socket)]
