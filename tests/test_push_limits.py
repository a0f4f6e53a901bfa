"""What one identity can make a server hold through push sync is bounded: registered devices (so push sockets),
dataset subscriptions per device, and what a socket remembers however many dataset names its frames carry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from syncsvc.api.messages import SERVICES
from tests.conftest import Boto
from tests.phones import Phone, push_pool, receive


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def phone(boto: Boto, session: aiohttp.ClientSession, endpoint: str) -> Phone:
    """A guest identity's device in a pool with push sync, not registered yet."""
    return await Phone.guest(session, endpoint, await push_pool(boto))


@pytest.mark.parametrize("overrides", [{"push_max_devices_per_identity": 3}])
async def test_an_identity_registers_no_more_devices_than_its_limit(phone: Phone) -> None:
    devices = [await phone.sibling().register(f"device-{n}") for n in range(3)]
    path = f"/identitypools/{phone.pool}/identity/{phone.identity}/device"
    refused = await phone.call("POST", path, {"Platform": "WEBSOCKET", "Token": "device-3"})
    again = await phone.sibling().register("device-0")
    assert (refused, again) == (
        (
            400,
            {
                "__type": "LimitExceededException",
                "message": f"Identity {phone.identity} already has 3 registered devices, the most it may have",
            },
        ),
        devices[0],
    )


@pytest.mark.parametrize("overrides", [{"max_datasets_per_identity": 2}])
async def test_a_device_follows_no_more_datasets_than_an_identity_may_have(phone: Phone) -> None:
    await phone.register("phone")
    await phone.subscribe("a")
    await phone.subscribe("b")
    refused = await phone.call("POST", phone.subscription("c"))
    await phone.subscribe("a")  # subscribing again to one it follows is no new subscription
    assert await phone.call("DELETE", phone.subscription("a")) == (200, {})
    await phone.subscribe("c")  # room again
    assert refused == (
        400,
        {
            "__type": "LimitExceededException",
            "message": f"Device {phone.device_id} already follows 2 datasets, the most it may",
        },
    )


async def test_resumes_naming_any_datasets_leave_a_socket_remembering_only_its_subscriptions(
    phone: Phone, server: TestServer
) -> None:
    await phone.register("phone")
    await phone.subscribe("settings")
    ws = await phone.connect()
    try:
        for frame in range(20):
            holds = {f"dataset-{frame}-{n}": 1 for n in range(100)}
            await ws.send_json({"action": "resume", "syncCounts": {**holds, "settings": 0}})
            assert await receive(ws) == {"action": "resumed", "syncCounts": {"settings": 0}}
        assert server.app[SERVICES].hub.remembered_datasets == 1
    finally:
        await ws.close()


@pytest.mark.parametrize("overrides", [{"push_max_sockets": 1}])
async def test_a_server_holding_its_most_push_sockets_refuses_another_before_the_upgrade(phone: Phone) -> None:
    tablet = phone.sibling()
    await phone.register("phone")
    await tablet.register("tablet")
    first = await phone.connect()
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await tablet.connect()
        assert refused.value.status == 429
    finally:
        await first.close()
    for _ in range(100):  # the first socket's detach follows its close handshake
        if await _opens(tablet):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("a socket was still refused after the first one closed")


async def _opens(phone: Phone) -> bool:
    try:
        ws = await phone.connect()
    except aiohttp.WSServerHandshakeError:
        return False
    await ws.close()
    return True
