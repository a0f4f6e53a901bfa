"""A device of the push sync tests: ``Phone`` (a guest identity's device holding a Bearer token, a DeviceId once
registered, a WebSocket), what it reads on its socket, a pool with push sync, two devices of one identity subscribed
to a dataset, and the check that a change made across a fault (a Redis restart, a failover) still reaches a device.

It talks to the server only through its HTTP and WebSocket API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType

from tests.conftest import Boto, make_settings, serving

PUSH_SYNC = {
    "ApplicationArns": ["arn:aws:sns:us-east-1:123456789012:app/GCM/syncsvc"],
    "RoleArn": "arn:aws:iam::123456789012:role/push",
}
IDENTITY_TARGET = "AWSCognitoIdentityService."


class Phone:
    """One device of an identity: Bearer token auth (GetOpenIdToken), a DeviceId once registered, a socket."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: str, pool: str, identity: str, token: str) -> None:
        self.session, self.endpoint, self.pool, self.identity, self.token = session, endpoint, pool, identity, token
        self.device_id = ""

    @classmethod
    async def guest(cls, session: aiohttp.ClientSession, endpoint: str, pool: str) -> Phone:
        identity = (await identity_call(session, endpoint, "GetId", {"IdentityPoolId": pool}))["IdentityId"]
        token = (await identity_call(session, endpoint, "GetOpenIdToken", {"IdentityId": identity}))["Token"]
        return cls(session, endpoint, pool, identity, token)

    def sibling(self) -> Phone:
        """Another device of the same identity."""
        return Phone(self.session, self.endpoint, self.pool, self.identity, self.token)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = None if body is None else orjson.dumps(body)
        headers = {**self.headers, "Content-Type": "application/json"}
        async with self.session.request(method, self.endpoint + path, data=data, headers=headers) as response:
            return response.status, orjson.loads(await response.read() or b"{}")

    async def register(self, device_token: str) -> str:
        status, body = await self.call(
            "POST",
            f"/identitypools/{self.pool}/identity/{self.identity}/device",
            {"Platform": "WEBSOCKET", "Token": device_token},
        )
        assert status == 200, body
        self.device_id = body["DeviceId"]
        return self.device_id

    def subscription(self, dataset: str) -> str:
        return (
            f"/identitypools/{self.pool}/identities/{self.identity}/datasets/{dataset}/subscriptions/{self.device_id}"
        )

    async def subscribe(self, dataset: str = "settings") -> None:
        assert await self.call("POST", self.subscription(dataset)) == (200, {})

    async def write(self, value: str, dataset: str = "settings", key: str = "theme") -> int:
        """One sync of one record, sent with this device's DeviceId; the new dataset sync count."""
        path = f"/identitypools/{self.pool}/identities/{self.identity}/datasets/{dataset}"
        status, listed = await self.call("GET", path + "/records")
        assert status == 200, listed
        counts = {record["Key"]: record["SyncCount"] for record in listed["Records"]}
        patch = {"Op": "replace", "Key": key, "Value": value, "SyncCount": counts.get(key, 0)}
        body: dict[str, Any] = {"SyncSessionToken": listed["SyncSessionToken"], "RecordPatches": [patch]}
        if self.device_id:
            body["DeviceId"] = self.device_id
        status, written = await self.call("POST", path, body)
        assert status == 200, written
        return int(written["Records"][0]["SyncCount"])

    @property
    def socket_url(self) -> str:
        return f"{self.endpoint}/identitypools/{self.pool}/identity/{self.identity}/device/{self.device_id}/push"

    async def connect(self, **options: Any) -> aiohttp.ClientWebSocketResponse:
        ws: aiohttp.ClientWebSocketResponse = await self.session.ws_connect(
            self.socket_url, headers=self.headers, **options
        )
        return ws


async def identity_call(
    session: aiohttp.ClientSession, endpoint: str, operation: str, payload: dict[str, Any]
) -> dict[str, Any]:
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": IDENTITY_TARGET + operation}
    async with session.post(endpoint + "/", data=orjson.dumps(payload), headers=headers) as response:
        body: dict[str, Any] = orjson.loads(await response.read())
        assert response.status == 200, body
        return body


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5) -> dict[str, Any]:
    message = await ws.receive(timeout=timeout)
    assert message.type == WSMsgType.TEXT, message
    answer: dict[str, Any] = orjson.loads(message.data)
    return answer


async def nothing_waiting(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """True when the next message after a ping is its pong: nothing was queued for the device before it."""
    await ws.send_json({"action": "ping"})
    return await receive(ws) == {"action": "pong"}


async def resume(ws: aiohttp.ClientWebSocketResponse, **holds: int) -> None:
    await ws.send_json({"action": "resume", "syncCounts": holds})


def notification(phone: Phone, sync_count: int, dataset: str = "settings") -> dict[str, Any]:
    return {
        "source": "cognito-sync",
        "identityPoolId": phone.pool,
        "identityId": phone.identity,
        "datasetName": dataset,
        "syncCount": sync_count,
    }


async def push_pool(boto: Boto) -> str:
    """A new identity pool with push sync configured."""
    pool_id = await boto.new_pool()
    await boto.call(boto.sync, "set_identity_pool_configuration", IdentityPoolId=pool_id, PushSync=PUSH_SYNC)
    return pool_id


async def subscribed_pair(
    session: aiohttp.ClientSession, pool: str, one: str, other: str | None = None
) -> tuple[Phone, Phone]:
    """Two registered devices of a new guest identity of ``pool``, both subscribed to "settings": the first talks to
    the server at ``one``, the second to ``other`` (the same one unless given)."""
    phone = await Phone.guest(session, one, pool)
    tablet = Phone(session, other or one, pool, phone.identity, phone.token)
    for device, token in ((phone, "phone-token"), (tablet, "tablet-token")):
        await device.register(token)
        await device.subscribe()
    return phone, tablet


async def assert_a_change_across_reaches_the_device(redis_url: str, fault: Callable[[], Awaitable[None]]) -> None:
    """A server on ``redis_url``, a phone listening on its socket and a tablet of the same identity: a change the
    tablet makes after ``fault`` (once the server reaches Redis again) is pushed to the phone, as one made before."""
    async with serving(make_settings(redis_url)) as endpoint, aiohttp.ClientSession() as session:
        phone, tablet = await subscribed_pair(session, await push_pool(Boto(endpoint)), endpoint)
        async with await phone.connect() as ws:
            assert await nothing_waiting(ws)
            first = await tablet.write("before")
            assert await receive(ws) == notification(phone, first)
            await fault()
            later = await written_once_redis_answers(tablet, "during")
            assert await receive(ws, timeout=15) == notification(phone, later)


async def written_once_redis_answers(phone: Phone, value: str) -> int:
    """Writes as soon as the server reaches the restarted Redis (its pooled connections died with the old one)."""
    async with asyncio.timeout(15):
        while True:
            try:
                return await phone.write(value)
            except AssertionError:  # a 503 while the server reconnects
                await asyncio.sleep(0.05)
