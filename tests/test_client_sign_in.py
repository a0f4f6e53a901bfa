"""The reference client signs a guest in: ``sign_in`` (OpenID Connect logins) and ``switch_identity`` (developer-
authenticated identities), the move to the identity a guest is merged into, and the fold of the guest's merged
datasets (``<name>.<guest id>``) into that identity's own (syncsvc.client.merges), end to end.

Real server on a real Redis, and a real OIDC provider on loopback minting the logins (``tests.oidc_provider``). Each
device runs on a clock of its own that the test sets (the DeviceLastModifiedDate of its writes), so which write is
the later one is decided by the test, not by timing. The scene of most tests: the account (identity D, signed in
as alice on the ``account`` device) holds ``settings`` {theme: dark, font: small, lang: fr} written at t=200; a
guest G holds ``settings`` {theme: light, volume: 3} and ``scores`` {level-1: 100} synced at t=100, and unsynced
changes made at t=300: draft=x, font=big. Folded by last-writer-wins, D's ``settings`` must end up as ``FOLDED``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from syncsvc.client import (
    GuestTokens,
    LoginTokens,
    MergeConflict,
    MergePolicy,
    Resolution,
    SyncClient,
    SyncClientError,
    TokenProvider,
    fold_last_writer_wins,
)
from syncsvc.config import Settings
from tests.conftest import Boto, call
from tests.devices import (
    APP_CLIENT,
    APP_CLIENT2,
    DEVELOPER_PROVIDER,
    LOGIN,
    LOGIN2,
    Devices,
    identity_settings,
    new_pool,
)
from tests.oidc_provider import TestIdentityProvider

ACCOUNT_VALUES = {"theme": "dark", "font": "small", "lang": "fr"}
GUEST_SYNCED = {"theme": "light", "volume": "3"}
GUEST_UNSYNCED = {"draft": "x", "font": "big"}
#: D's settings once the guest's are folded in: theme dark (D's, t=200, beats the guest's t=100), font big (the
#: guest's unsynced t=300 beats D's t=200), lang (D's only), volume and draft (the guest's only).
FOLDED = {"theme": "dark", "font": "big", "lang": "fr", "volume": "3", "draft": "x"}


# --- fixtures and helpers -------------------------------------------------------------------------------------------


@pytest.fixture
def settings(redis_url: str, idp: TestIdentityProvider, overrides: dict[str, Any]) -> Settings:
    return identity_settings(redis_url, idp, **overrides)


@pytest.fixture
async def pool(boto: Boto) -> str:
    return await new_pool(boto)


@pytest.fixture
async def clients() -> AsyncIterator[list[SyncClient]]:
    """Every client a test makes, closed at its end."""
    made: list[SyncClient] = []
    yield made
    for client in made:
        await client.close()


@pytest.fixture
def alice(idp: TestIdentityProvider) -> dict[str, str]:
    """The logins of the account's user."""
    return {LOGIN: idp.mint("alice", aud=APP_CLIENT)}


class DeviceClock:
    """A device's clock (epoch seconds of its local changes), set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingTokens:
    """A token provider that counts its calls."""

    def __init__(self, real: TokenProvider) -> None:
        self.real = real
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        return await self.real()


def put_all(client: SyncClient, dataset: str, values: dict[str, str]) -> None:
    for key, value in values.items():
        client.put(dataset, key, value)


async def account(endpoint: str, pool: str, alice: dict[str, str], clients: list[SyncClient]) -> SyncClient:
    """The account's device: a guest signed in as alice (whose login nobody had: it becomes D), with settings
    ``ACCOUNT_VALUES`` written at t=200."""
    device = await SyncClient.guest(endpoint, pool, clock=DeviceClock(200))
    clients.append(device)
    await device.sign_in(alice)
    put_all(device, "settings", ACCOUNT_VALUES)
    await device.synchronize("settings")
    return device


async def with_guest_data(guest: SyncClient) -> SyncClient:
    """Gives the guest its data: ``GUEST_SYNCED`` and scores synced at t=100, ``GUEST_UNSYNCED`` at t=300."""
    clock = guest.clock
    assert isinstance(clock, DeviceClock)
    clock.now = 100
    put_all(guest, "settings", GUEST_SYNCED)
    await guest.synchronize("settings")
    guest.put("scores", "level-1", "100")
    await guest.synchronize("scores")
    clock.now = 300
    put_all(guest, "settings", GUEST_UNSYNCED)
    return guest


async def guest_with_data(endpoint: str, pool: str, clients: list[SyncClient], **options: Any) -> SyncClient:
    guest = await SyncClient.guest(endpoint, pool, clock=DeviceClock(100), **options)
    clients.append(guest)
    return await with_guest_data(guest)


async def server_values(boto: Boto, pool: str, identity_id: str, dataset: str) -> dict[str, str]:
    """The dataset's live values, as the developer reads them."""
    listed = await call(boto.sync, "list_records", IdentityPoolId=pool, IdentityId=identity_id, DatasetName=dataset)
    return {record["Key"]: record["Value"] for record in listed["Records"] if "Value" in record}


async def sync_count(boto: Boto, pool: str, identity_id: str, dataset: str) -> int:
    listed = await call(boto.sync, "list_records", IdentityPoolId=pool, IdentityId=identity_id, DatasetName=dataset)
    count: int = listed["DatasetSyncCount"]
    return count


async def dataset_names(boto: Boto, pool: str, identity_id: str) -> list[str]:
    listed = await call(boto.sync, "list_datasets", IdentityPoolId=pool, IdentityId=identity_id)
    return sorted(dataset["DatasetName"] for dataset in listed["Datasets"])


def developer_tokens(boto: Boto, pool: str, user: str) -> TokenProvider:
    """The token provider of an app whose backend logs its users in (GetOpenIdTokenForDeveloperIdentity)."""

    async def provider() -> str:
        answer = await call(
            boto.identity,
            "get_open_id_token_for_developer_identity",
            IdentityPoolId=pool,
            Logins={DEVELOPER_PROVIDER: user},
        )
        token: str = answer["Token"]
        return token

    return provider


class Died(BaseException):
    """The device's process died here: nothing after it reaches the server. (The client's ``finally`` still saves its
    state file, as it would have just before such a death; a test that wants the state saved earlier restores it.)"""


def dying_before_deleting(dataset: str) -> aiohttp.TraceConfig:
    """A trace that kills the client (raises :class:`Died`) when it is about to send DeleteDataset of ``dataset``."""

    async def on_request_start(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        if params.method == "DELETE" and params.url.raw_path.endswith("/datasets/" + dataset.replace(":", "%3A")):
            raise Died(dataset)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    return trace


# --- signing in with a login nobody has -----------------------------------------------------------------------------


async def test_a_guest_signing_in_with_a_login_nobody_has_keeps_its_identity_and_data(
    boto: Boto, devices: Devices, endpoint: str, pool: str, alice: dict[str, str], clients: list[SyncClient]
) -> None:
    guest_id = (await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"]
    guest_tokens = CountingTokens(GuestTokens(endpoint, guest_id))
    told: list[tuple[str, str]] = []
    guest = SyncClient(
        endpoint,
        pool,
        guest_id,
        guest_tokens,
        clock=DeviceClock(100),
        on_identity_changed=lambda *ids: told.append(ids),
    )
    clients.append(guest)
    await with_guest_data(guest)
    records, counts, token_calls = guest.records("settings"), guest.last_sync_count("settings"), guest_tokens.calls

    identity_id = await guest.sign_in(alice)

    assert identity_id == guest.identity_id == guest_id
    assert told == []
    assert (guest.records("settings"), guest.last_sync_count("settings")) == (records, counts)
    result = await guest.synchronize("settings")
    assert (result.sync_count, result.folded) == (counts + 1, [])
    assert await server_values(boto, pool, guest_id, "settings") == GUEST_SYNCED | GUEST_UNSYNCED
    assert guest_tokens.calls == token_calls  # the guest's tokens were never asked for again


# --- signing in with a login another identity has: the merge --------------------------------------------------------


async def test_a_guest_signing_in_with_the_accounts_login_moves_to_the_account_and_folds_its_data(
    boto: Boto, endpoint: str, pool: str, alice: dict[str, str], clients: list[SyncClient], tmp_path: Path
) -> None:
    device = await account(endpoint, pool, alice, clients)
    told: list[tuple[str, str]] = []
    path = tmp_path / "state.json"
    guest = await guest_with_data(
        endpoint, pool, clients, state_path=path, on_identity_changed=lambda *ids: told.append(ids)
    )
    guest_id = guest.identity_id

    identity_id = await guest.sign_in(alice)

    assert identity_id == guest.identity_id == device.identity_id
    assert told == [(guest_id, identity_id)]
    assert guest.values("settings") == GUEST_SYNCED | GUEST_UNSYNCED  # still readable, before any sync
    saved = orjson.loads(path.read_bytes())
    assert saved["identity_id"] == identity_id
    assert {name: data["last_sync_count"] for name, data in saved["datasets"].items()} == {"settings": 0, "scores": 0}
    assert {name: sorted(copies) for name, copies in saved["unfolded"].items()} == {
        "settings": [f"settings.{guest_id}"],
        "scores": [f"scores.{guest_id}"],
    }

    folded = [(await guest.synchronize(name)).folded for name in ("settings", "scores")]

    assert folded == [[f"settings.{guest_id}"], [f"scores.{guest_id}"]]
    assert await server_values(boto, pool, identity_id, "settings") == FOLDED
    assert await server_values(boto, pool, identity_id, "scores") == {"level-1": "100"}
    assert await dataset_names(boto, pool, identity_id) == ["scores", "settings"]  # the merged copies are gone
    assert guest.values("settings") == FOLDED
    assert guest.state.unfolded == {}
    assert (await device.synchronize("settings")).merged_datasets == []
    assert device.values("settings") == FOLDED  # the account's other device sees the folded data


async def test_the_merge_policy_decides_the_keys_both_sides_hold(
    boto: Boto, endpoint: str, pool: str, alice: dict[str, str], clients: list[SyncClient]
) -> None:
    await account(endpoint, pool, alice, clients)
    seen: list[MergeConflict] = []

    def keep_the_guests(dataset: str, conflicts: list[MergeConflict]) -> list[Resolution]:
        seen.extend(conflicts)
        return [conflict.resolve_with_merged() for conflict in conflicts]

    guest = await guest_with_data(endpoint, pool, clients, merge_policy=keep_the_guests)
    guest_id = guest.identity_id
    await guest.sign_in(alice)

    result = await guest.synchronize("settings")

    decided = sorted((c.key, c.merged_dataset, c.local.value, c.merged.value) for c in seen)
    assert decided == [
        ("font", f"settings.{guest_id}", "small", "big"),
        ("theme", f"settings.{guest_id}", "dark", "light"),
    ]
    assert result.merge_conflicts == seen
    expected = ACCOUNT_VALUES | GUEST_SYNCED | GUEST_UNSYNCED
    assert await server_values(boto, pool, guest.identity_id, "settings") == expected


async def test_without_a_merge_policy_merged_copies_are_only_reported_until_merge_datasets_folds_them(
    boto: Boto, endpoint: str, pool: str, alice: dict[str, str], clients: list[SyncClient]
) -> None:
    await account(endpoint, pool, alice, clients)
    guest = await guest_with_data(endpoint, pool, clients, merge_policy=None)
    guest_id = guest.identity_id
    await guest.sign_in(alice)

    reported = await guest.synchronize("settings")

    assert (reported.merged_datasets, reported.folded) == ([f"settings.{guest_id}"], [])
    assert await server_values(boto, pool, guest.identity_id, "settings") == ACCOUNT_VALUES
    folded = await guest.merge_datasets("settings")
    assert folded.folded == [f"settings.{guest_id}"]
    assert await server_values(boto, pool, guest.identity_id, "settings") == FOLDED
    assert await dataset_names(boto, pool, guest.identity_id) == [
        f"scores.{guest_id}",
        "settings",
    ]


async def test_whichever_device_of_the_account_folds_first_the_result_is_the_same(
    boto: Boto, endpoint: str, pool: str, alice: dict[str, str], clients: list[SyncClient]
) -> None:
    device = await account(endpoint, pool, alice, clients)
    guest = await guest_with_data(endpoint, pool, clients)
    guest_id = guest.identity_id
    await guest.sign_in(alice)

    first = await device.synchronize("settings")  # folds the server's copy: what the guest had synced
    second = await guest.synchronize("settings")  # folds what it kept aside: its unsynced changes too

    assert first.folded == second.folded == [f"settings.{guest_id}"]
    assert await server_values(boto, pool, guest.identity_id, "settings") == FOLDED
    await device.synchronize("settings")
    assert device.values("settings") == guest.values("settings") == FOLDED


def keep_local(dataset: str, conflicts: list[MergeConflict]) -> list[Resolution]:
    return [conflict.resolve_with_local() for conflict in conflicts]


@pytest.mark.parametrize(("policy", "draft"), [(fold_last_writer_wins, "y"), (keep_local, "x")])
async def test_a_value_another_device_of_the_guest_synced_later_meets_this_devices_own_in_the_policy(
    boto: Boto,
    endpoint: str,
    pool: str,
    alice: dict[str, str],
    clients: list[SyncClient],
    policy: MergePolicy,
    draft: str,
) -> None:
    await account(endpoint, pool, alice, clients)
    phone = await guest_with_data(endpoint, pool, clients, merge_policy=policy)  # draft=x unsynced, t=300
    tablet = SyncClient(endpoint, pool, phone.identity_id, phone.token_provider, clock=DeviceClock(350))
    clients.append(tablet)
    tablet.put("settings", "draft", "y")
    await tablet.synchronize("settings")
    await phone.sign_in(alice)

    await phone.synchronize("settings")

    assert (await server_values(boto, pool, phone.identity_id, "settings"))["draft"] == draft
    assert phone.values("settings")["draft"] == draft


async def test_what_the_guest_removed_stays_removed_and_never_removes_the_accounts_own(
    boto: Boto, endpoint: str, pool: str, alice: dict[str, str], clients: list[SyncClient]
) -> None:
    device = await account(endpoint, pool, alice, clients)
    device.put("scores", "level-2", "5")
    await device.synchronize("scores")
    guest = await guest_with_data(endpoint, pool, clients)
    guest_id = guest.identity_id
    guest.put("settings", "note", "old")
    await guest.synchronize("settings")
    guest.remove("settings", "note")  # unsynced: the server's copy of the guest's settings still has it
    guest.remove("settings", "theme")  # the account has a theme too
    guest.delete_dataset("scores")  # unsynced: the guest's scores are on the server still
    await guest.sign_in(alice)

    results = [await guest.synchronize(name) for name in ("settings", "scores")]

    assert [result.folded for result in results] == [[f"settings.{guest_id}"], [f"scores.{guest_id}"]]
    assert await server_values(boto, pool, guest.identity_id, "settings") == FOLDED
    assert await server_values(boto, pool, guest.identity_id, "scores") == {"level-2": "5"}
    assert await dataset_names(boto, pool, guest.identity_id) == ["scores", "settings"]


async def test_two_accounts_are_never_merged_and_a_refused_sign_in_changes_nothing(
    boto: Boto, endpoint: str, pool: str, alice: dict[str, str], idp: TestIdentityProvider, clients: list[SyncClient]
) -> None:
    device = await account(endpoint, pool, alice, clients)
    other = await SyncClient.guest(endpoint, pool)
    clients.append(other)
    bob = {LOGIN2: idp.mint("bob", aud=APP_CLIENT2)}
    await other.sign_in(bob)
    identity_id, records = device.identity_id, device.records("settings")

    with pytest.raises(SyncClientError) as refused:
        await device.sign_in(alice | bob)

    assert refused.value.code == "ResourceConflictException"
    assert (device.identity_id, device.records("settings")) == (identity_id, records)
    device.put("settings", "theme", "still-mine")
    await device.synchronize("settings")
    assert await server_values(boto, pool, identity_id, "settings") == ACCOUNT_VALUES | {"theme": "still-mine"}


# --- crashes --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("saved", ["before the sync", "after the push"])
async def test_a_device_that_died_between_the_folds_push_and_the_copys_deletion_finishes_on_its_next_sync(
    boto: Boto, endpoint: str, pool: str, alice: dict[str, str], clients: list[SyncClient], tmp_path: Path, saved: str
) -> None:
    await account(endpoint, pool, alice, clients)
    path = tmp_path / "state.json"
    guest = await guest_with_data(endpoint, pool, clients, state_path=path)
    guest_id = guest.identity_id
    identity_id = await guest.sign_in(alice)
    shutil.copyfile(path, tmp_path / "before.json")
    session = aiohttp.ClientSession(trace_configs=[dying_before_deleting(f"settings.{guest_id}")])
    dying = SyncClient(
        endpoint, pool, identity_id, LoginTokens(endpoint, identity_id, alice), state_path=path, session=session
    )
    await dying.load()
    with pytest.raises(Died):
        await dying.synchronize("settings")
    await session.close()
    pushed_count = await sync_count(boto, pool, identity_id, "settings")
    assert pushed_count == 2  # the account's write, then the fold's push
    if saved == "before the sync":
        shutil.copyfile(tmp_path / "before.json", path)
    restarted = SyncClient(endpoint, pool, identity_id, LoginTokens(endpoint, identity_id, alice), state_path=path)
    clients.append(restarted)
    await restarted.load()
    assert await dataset_names(boto, pool, identity_id) == [f"scores.{guest_id}", "settings", f"settings.{guest_id}"]

    result = await restarted.synchronize("settings")

    assert (result.folded, result.pushed) == ([f"settings.{guest_id}"], [])  # nothing written twice
    assert await sync_count(boto, pool, identity_id, "settings") == pushed_count
    assert await server_values(boto, pool, identity_id, "settings") == FOLDED
    assert await dataset_names(boto, pool, identity_id) == [f"scores.{guest_id}", "settings"]
    assert restarted.values("settings") == FOLDED


async def test_a_sign_in_that_never_reached_the_state_file_is_finished_by_signing_in_again(
    boto: Boto,
    devices: Devices,
    endpoint: str,
    pool: str,
    alice: dict[str, str],
    clients: list[SyncClient],
    tmp_path: Path,
) -> None:
    device = await account(endpoint, pool, alice, clients)
    path = tmp_path / "state.json"
    guest = await guest_with_data(endpoint, pool, clients, state_path=path)
    guest_id = guest.identity_id
    await guest.close()
    await call(devices.identity, "get_open_id_token", IdentityId=guest_id, Logins=alice)  # merged; the device died
    restarted = await SyncClient.guest(endpoint, pool, state_path=path, clock=DeviceClock(400))
    clients.append(restarted)
    assert restarted.identity_id == guest_id

    identity_id = await restarted.sign_in(alice)
    await restarted.synchronize("settings")

    assert identity_id == restarted.identity_id == device.identity_id
    assert await server_values(boto, pool, identity_id, "settings") == FOLDED


async def test_a_signed_in_device_restarted_from_its_state_file_signs_in_again_and_keeps_its_data(
    boto: Boto, endpoint: str, pool: str, alice: dict[str, str], clients: list[SyncClient], tmp_path: Path
) -> None:
    await account(endpoint, pool, alice, clients)
    path = tmp_path / "state.json"
    guest = await guest_with_data(endpoint, pool, clients, state_path=path)
    guest_id = guest.identity_id
    identity_id = await guest.sign_in(alice)
    guest.put("settings", "unsynced", "kept")
    await guest.close()
    told: list[tuple[str, str]] = []
    restarted = await SyncClient.guest(
        endpoint, pool, state_path=path, clock=DeviceClock(400), on_identity_changed=lambda *ids: told.append(ids)
    )
    clients.append(restarted)

    assert await restarted.sign_in(alice) == restarted.identity_id == identity_id
    result = await restarted.synchronize("settings")

    assert told == []
    assert result.folded == [f"settings.{guest_id}"]
    assert await server_values(boto, pool, identity_id, "settings") == FOLDED | {"unsynced": "kept"}


# --- developer-authenticated identities -----------------------------------------------------------------------------


async def test_switch_identity_moves_a_guest_to_the_identity_the_developers_backend_answered(
    boto: Boto, devices: Devices, endpoint: str, pool: str, clients: list[SyncClient]
) -> None:
    signed_up = await call(
        boto.identity,
        "get_open_id_token_for_developer_identity",
        IdentityPoolId=pool,
        Logins={DEVELOPER_PROVIDER: "user-1"},
    )
    account_id = signed_up["IdentityId"]
    device = SyncClient(endpoint, pool, account_id, developer_tokens(boto, pool, "user-1"), clock=DeviceClock(200))
    clients.append(device)
    put_all(device, "settings", ACCOUNT_VALUES)
    await device.synchronize("settings")
    guest_id = (await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"]
    guest_tokens = CountingTokens(GuestTokens(endpoint, guest_id))
    told: list[tuple[str, str]] = []
    guest = SyncClient(
        endpoint,
        pool,
        guest_id,
        guest_tokens,
        clock=DeviceClock(100),
        on_identity_changed=lambda *ids: told.append(ids),
    )
    clients.append(guest)
    await with_guest_data(guest)
    guest_token_calls = guest_tokens.calls
    # the app's backend signs the device's guest in as its user-1
    answer = await call(
        boto.identity,
        "get_open_id_token_for_developer_identity",
        IdentityPoolId=pool,
        IdentityId=guest_id,
        Logins={DEVELOPER_PROVIDER: "user-1"},
    )
    account_tokens = CountingTokens(developer_tokens(boto, pool, "user-1"))

    await guest.switch_identity(answer["IdentityId"], account_tokens, token=answer["Token"])
    result = await guest.synchronize("settings")

    assert guest.identity_id == answer["IdentityId"] == account_id
    assert told == [(guest_id, account_id)]
    assert result.folded == [f"settings.{guest_id}"]
    assert await server_values(boto, pool, account_id, "settings") == FOLDED
    assert (guest_tokens.calls, account_tokens.calls) == (guest_token_calls, 0)  # the token handed over was used
    await device.synchronize("settings")
    assert device.values("settings") == FOLDED
