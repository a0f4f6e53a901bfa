"""The identity check folded into UpdateRecords' and ListRecords' scripts (``syncsvc.model.Standing``): a Bearer
caller admitted on a profile one instance cached is refused at once when another instance deletes the identity or
changes its logins, with nothing written; a change that leaves the token standing costs one more admission and the
write happens once. Two instances on one Redis, Bearer tokens as devices send them, real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from syncsvc.config import Settings
from tests.conftest import Boto, call, serving
from tests.devices import (
    APP_CLIENT,
    LOGIN,
    Devices,
    developer_identity,
    identity_settings,
    new_pool,
    records_path,
)
from tests.oidc_provider import TestIdentityProvider

COGNITO = "cognito-identity.amazonaws.com"


@pytest.fixture
def settings(redis_url: str, idp: TestIdentityProvider) -> Settings:
    return identity_settings(redis_url, idp)


@pytest.fixture
async def elsewhere(settings: Settings) -> AsyncIterator[str]:
    """A second instance on the same Redis (as behind a load balancer)."""
    async with serving(settings) as url:
        yield url


class Device:
    """A device that syncs one dataset with an identity token (``Authorization: Bearer``) against one instance."""

    def __init__(self, http: aiohttp.ClientSession, endpoint: str, pool: str, identity: str, token: str) -> None:
        self.http, self.path, self.token = http, endpoint + records_path(pool, identity), token

    async def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.request(method, path, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def sync(self, value: str, sync_count: int) -> tuple[int, dict[str, Any]]:
        """ListRecords then UpdateRecords of one record, as a device syncs; the UpdateRecords answer (or the
        ListRecords refusal)."""
        status, listed = await self.send("GET", self.path)
        if status != 200:
            return status, listed
        patch = {"Op": "replace", "Key": "theme", "Value": value, "SyncCount": sync_count}
        body = {"SyncSessionToken": listed["SyncSessionToken"], "RecordPatches": [patch]}
        return await self.send("POST", self.path.removesuffix("/records"), body)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def stored_count(boto: Boto, pool: str, identity: str) -> int:
    listed = await call(boto.sync, "list_records", IdentityPoolId=pool, IdentityId=identity, DatasetName="settings")
    return int(listed["DatasetSyncCount"])


async def test_a_cached_bearer_caller_is_refused_at_once_once_another_instance_deletes_the_identity(
    boto: Boto, elsewhere: str, http: aiohttp.ClientSession
) -> None:
    pool = await new_pool(boto)
    identity, token = await developer_identity(boto, pool, "user-1")
    device = Device(http, elsewhere, pool, identity, token)
    assert (await device.sync("dark", 0))[0] == 200  # the second instance has the profile cached now
    status, listed = await device.send("GET", device.path)
    assert status == 200

    await call(boto.identity, "delete_identities", IdentityIdsToDelete=[identity])

    patch = {"Op": "replace", "Key": "theme", "Value": "light", "SyncCount": 1}
    body = {"SyncSessionToken": listed["SyncSessionToken"], "RecordPatches": [patch]}
    status, body = await device.send("POST", device.path.removesuffix("/records"), body)
    assert (status, body["__type"]) == (403, "NotAuthorizedException")
    assert "the identity no longer exists" in body["message"]
    status, body = await device.send("GET", device.path)
    assert (status, body["__type"]) == (403, "NotAuthorizedException")


async def test_a_cached_guest_token_is_refused_at_once_once_the_guest_signs_in_elsewhere_and_writes_nothing(
    boto: Boto, devices: Devices, elsewhere: str, http: aiohttp.ClientSession
) -> None:
    pool = await new_pool(boto)
    identity = (await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"]
    token = (await call(devices.identity, "get_open_id_token", IdentityId=identity))["Token"]
    device = Device(http, elsewhere, pool, identity, token)
    assert (await device.sync("dark", 0))[0] == 200
    status, listed = await device.send("GET", device.path)  # a session begun while still a guest
    assert status == 200

    await developer_identity(boto, pool, "user-9", IdentityId=identity)  # through the first instance

    patch = {"Op": "replace", "Key": "theme", "Value": "light", "SyncCount": 1}
    body = {"SyncSessionToken": listed["SyncSessionToken"], "RecordPatches": [patch]}
    status, refused = await device.send("POST", device.path.removesuffix("/records"), body)
    assert (status, refused["__type"]) == (403, "NotAuthorizedException")
    assert "logins changed" in refused["message"]
    assert await stored_count(boto, pool, identity) == 1  # the refused write left nothing


async def test_a_login_linked_elsewhere_leaves_a_token_standing_and_its_next_write_happens_once(
    boto: Boto, devices: Devices, elsewhere: str, http: aiohttp.ClientSession, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto)
    identity, token = await developer_identity(boto, pool, "user-1")
    device = Device(http, elsewhere, pool, identity, token)
    assert (await device.sync("dark", 0))[0] == 200

    logins = {COGNITO: token, LOGIN: idp.mint("alice", aud=APP_CLIENT)}  # the profile changes (its revision)
    await call(devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins=logins)

    status, written = await device.sync("light", 1)
    assert status == 200
    assert [(record["Value"], record["SyncCount"]) for record in written["Records"]] == [("light", 2)]
    assert await stored_count(boto, pool, identity) == 2
