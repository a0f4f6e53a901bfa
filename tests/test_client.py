"""syncsvc.client, the asyncio reference client, end to end against the real server on a real Redis.

Two ``SyncClient`` objects of one guest identity play two devices (``phone`` and ``tablet``): the tablet is built
from the phone's identity id and token provider, as an app with its own login flow would build it. The developer
boto3 client (``boto``) looks at what the server stored, and plays the operator (DeleteDataset, merges).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from syncsvc.client import (
    Backoff,
    ConflictHandler,
    Resolution,
    SyncClient,
    SyncClientError,
    SyncConflict,
    SyncResult,
    SyncRetriesExceededError,
    TokenProvider,
)
from syncsvc.client.errors import CONNECTION_ERROR
from tests.conftest import Boto, free_port
from tests.devices import DEVELOPER_PROVIDER, merge_developer_users
from tests.phones import PUSH_SYNC

DATASET = "settings"
#: the longest a test waits for a push notification to arrive and be synced
PUSH_WAIT_SECONDS = 10

Device = Callable[..., Awaitable[SyncClient]]


# --- fixtures and helpers -------------------------------------------------------------------------------------------


@pytest.fixture
async def pool(boto: Boto) -> str:
    return await boto.new_pool()


@pytest.fixture
async def clients() -> AsyncIterator[list[SyncClient]]:
    """Every client a test makes, closed at its end."""
    made: list[SyncClient] = []
    yield made
    for client in made:
        await client.close()


@pytest.fixture
async def phone(endpoint: str, pool: str, clients: list[SyncClient]) -> SyncClient:
    """The first device: a new guest identity."""
    client = await SyncClient.guest(endpoint, pool)
    clients.append(client)
    return client


@pytest.fixture
def device(endpoint: str, pool: str, phone: SyncClient, clients: list[SyncClient]) -> Device:
    """Makes another device of the phone's identity (constructor options pass through)."""

    async def make(**options: Any) -> SyncClient:
        client = SyncClient(endpoint, pool, phone.identity_id, phone.token_provider, **options)
        await client.load()
        clients.append(client)
        return client

    return make


@pytest.fixture
async def tablet(device: Device) -> SyncClient:
    return await device()


async def server_records(boto: Boto, pool: str, identity_id: str) -> list[dict[str, Any]]:
    """The dataset's records as the server lists them to the developer."""
    answer = await boto.call(
        boto.sync, "list_records", IdentityPoolId=pool, IdentityId=identity_id, DatasetName=DATASET
    )
    records: list[dict[str, Any]] = answer["Records"]
    return records


async def stored(boto: Boto, pool: str, identity_id: str) -> dict[str, tuple[str | None, int]]:
    """What the server holds for the dataset, {key: (value, SyncCount)}, read with developer credentials."""
    records = await server_records(boto, pool, identity_id)
    return {record["Key"]: (record.get("Value"), record["SyncCount"]) for record in records}


async def conflict_between(phone: SyncClient, tablet: SyncClient, key: str = "theme") -> None:
    """The tablet stores ``key`` = "tablet" while the phone holds ``key`` = "phone" as an unpushed change."""
    phone.put(DATASET, key, "phone")
    tablet.put(DATASET, key, "tablet")
    await tablet.synchronize(DATASET)


def resolving(choose: Callable[[SyncConflict], Resolution], seen: list[SyncConflict]) -> ConflictHandler:
    """An on_conflict handler resolving each conflict with ``choose`` and keeping what it was given in ``seen``."""

    def handler(dataset: str, conflicts: list[SyncConflict]) -> list[Resolution]:
        seen.extend(conflicts)
        return [choose(conflict) for conflict in conflicts]

    return handler


class CountingTokens:
    """A token provider giving an invalid token for its first ``bad_calls`` calls, then the real provider's."""

    def __init__(self, real: TokenProvider, bad_calls: int) -> None:
        self.real = real
        self.bad_calls = bad_calls
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.bad_calls:
            return "not-a-token"
        return await self.real()


class Interrupted(SyncClient):
    """A device on which another device writes the key being pushed, between the pull and the push of each of the
    first ``interruptions`` sync attempts (the ``before_push`` hook point)."""

    def __init__(self, *args: Any, other: SyncClient, interruptions: int, **options: Any) -> None:
        super().__init__(*args, **options)
        self.other = other
        self.interruptions = interruptions
        self.pushes = 0

    async def before_push(self, dataset: str, patches: list[dict[str, Any]]) -> None:
        self.pushes += 1
        if self.pushes <= self.interruptions:
            for patch in patches:
                self.other.put(dataset, patch["Key"], f"other-{self.pushes}")
            await self.other.synchronize(dataset)


# --- round trips ----------------------------------------------------------------------------------------------------


async def test_a_put_reaches_another_device_through_synchronize(
    boto: Boto, pool: str, phone: SyncClient, tablet: SyncClient
) -> None:
    phone.put(DATASET, "theme", "dark")

    pushed = await phone.synchronize(DATASET)
    pulled = await tablet.synchronize(DATASET)

    assert (pushed.sync_count, [record.key for record in pushed.pushed]) == (1, ["theme"])
    assert await stored(boto, pool, phone.identity_id) == {"theme": ("dark", 1)}
    assert tablet.get(DATASET, "theme") == "dark"
    [(key, record)] = tablet.records(DATASET).items()
    assert (key, record[:3]) == ("theme", ("dark", 1, False))
    assert abs(record.device_last_modified - time.time()) < 30  # the server's date of the write
    assert (pulled.sync_count, tablet.last_sync_count(DATASET)) == (1, 1)


async def test_a_sync_pulls_only_the_records_changed_since_the_last_one(phone: SyncClient, tablet: SyncClient) -> None:
    phone.put(DATASET, "a", "1")
    await phone.synchronize(DATASET)
    await tablet.synchronize(DATASET)
    phone.put(DATASET, "b", "2")
    await phone.synchronize(DATASET)

    result = await tablet.synchronize(DATASET)

    assert [(record.key, record.value, record.sync_count) for record in result.pulled] == [("b", "2", 2)]
    assert tablet.values(DATASET) == {"a": "1", "b": "2"}


async def test_a_pull_follows_every_page(phone: SyncClient, device: Device) -> None:
    for index in range(5):
        phone.put(DATASET, f"k{index}", str(index))
    await phone.synchronize(DATASET)
    tablet = await device(page_size=2)

    result = await tablet.synchronize(DATASET)

    assert len(result.pulled) == 5
    assert tablet.values(DATASET) == {f"k{index}": str(index) for index in range(5)}


async def test_writes_name_this_installation_as_their_writer(boto: Boto, pool: str, phone: SyncClient) -> None:
    phone.put(DATASET, "theme", "dark")

    await phone.synchronize(DATASET)

    [record] = await server_records(boto, pool, phone.identity_id)
    assert record["LastModifiedBy"] == phone.state.installation_id


async def test_a_removal_reaches_another_device_as_a_tombstone(
    boto: Boto, pool: str, phone: SyncClient, tablet: SyncClient
) -> None:
    phone.put(DATASET, "theme", "dark")
    await phone.synchronize(DATASET)
    await tablet.synchronize(DATASET)
    phone.remove(DATASET, "theme")
    await phone.synchronize(DATASET)

    result = await tablet.synchronize(DATASET)

    assert [(record.key, record.value) for record in result.pulled] == [("theme", None)]
    assert tablet.get(DATASET, "theme") is None
    assert tablet.records(DATASET)["theme"][:3] == (None, 2, False)
    assert await stored(boto, pool, phone.identity_id) == {"theme": (None, 2)}


async def test_removing_a_key_never_pushed_forgets_it_locally(phone: SyncClient) -> None:
    phone.put(DATASET, "draft", "x")

    phone.remove(DATASET, "draft")

    assert phone.records(DATASET) == {}


# --- conflicts ------------------------------------------------------------------------------------------------------


async def test_a_conflict_resolved_with_remote_keeps_the_other_devices_value(
    boto: Boto, pool: str, phone: SyncClient, tablet: SyncClient
) -> None:
    await conflict_between(phone, tablet)
    seen: list[SyncConflict] = []

    result = await phone.synchronize(DATASET, on_conflict=resolving(SyncConflict.resolve_with_remote, seen))

    [conflict] = seen
    assert (conflict.key, conflict.local.value, conflict.local.sync_count, conflict.local.modified) == (
        "theme",
        "phone",
        0,
        True,
    )
    assert (conflict.remote.value, conflict.remote.sync_count) == ("tablet", 1)
    assert (phone.records(DATASET)["theme"][:3], result.pushed) == (("tablet", 1, False), [])
    assert await stored(boto, pool, phone.identity_id) == {"theme": ("tablet", 1)}


async def test_a_conflict_resolved_with_local_pushes_this_devices_value(
    boto: Boto, pool: str, phone: SyncClient, tablet: SyncClient
) -> None:
    await conflict_between(phone, tablet)

    await phone.synchronize(DATASET, on_conflict=resolving(SyncConflict.resolve_with_local, []))
    await tablet.synchronize(DATASET)

    assert await stored(boto, pool, phone.identity_id) == {"theme": ("phone", 2)}
    assert (phone.records(DATASET)["theme"][:3], tablet.get(DATASET, "theme")) == (("phone", 2, False), "phone")


async def test_a_conflict_resolved_with_a_value_pushes_that_value(
    boto: Boto, pool: str, phone: SyncClient, tablet: SyncClient
) -> None:
    await conflict_between(phone, tablet)

    def merge(conflict: SyncConflict) -> Resolution:
        return conflict.resolve_with_value(f"{conflict.local.value}+{conflict.remote.value}")

    await phone.synchronize(DATASET, on_conflict=resolving(merge, []))

    assert await stored(boto, pool, phone.identity_id) == {"theme": ("phone+tablet", 2)}
    assert phone.get(DATASET, "theme") == "phone+tablet"


async def test_by_default_the_later_remote_write_wins_a_conflict(
    boto: Boto, pool: str, device: Device, tablet: SyncClient
) -> None:
    phone = await device(clock=lambda: time.time() - 3600)  # its change was made an hour before the tablet's
    await conflict_between(phone, tablet)

    result = await phone.synchronize(DATASET)

    assert [conflict.key for conflict in result.conflicts] == ["theme"]
    assert phone.get(DATASET, "theme") == "tablet"
    assert await stored(boto, pool, phone.identity_id) == {"theme": ("tablet", 1)}


async def test_by_default_the_later_local_write_wins_a_conflict(
    boto: Boto, pool: str, device: Device, tablet: SyncClient
) -> None:
    phone = await device(clock=lambda: time.time() + 3600)  # its change is later than the tablet's
    await conflict_between(phone, tablet)

    result = await phone.synchronize(DATASET)

    assert [conflict.key for conflict in result.conflicts] == ["theme"]
    assert await stored(boto, pool, phone.identity_id) == {"theme": ("phone", 2)}


async def test_a_conflict_left_unresolved_cancels_the_sync_and_changes_nothing(
    boto: Boto, pool: str, phone: SyncClient, tablet: SyncClient
) -> None:
    tablet.put(DATASET, "font", "serif")
    await conflict_between(phone, tablet)

    with pytest.raises(SyncClientError) as refused:
        await phone.synchronize(DATASET, on_conflict=lambda dataset, conflicts: [])

    assert refused.value.code == "SyncCancelled"
    assert list(phone.records(DATASET)) == ["theme"]
    assert phone.records(DATASET)["theme"][:3] == ("phone", 0, True)
    assert phone.last_sync_count(DATASET) == 0
    assert await stored(boto, pool, phone.identity_id) == {"font": ("serif", 1), "theme": ("tablet", 1)}


async def test_an_async_conflict_handler_is_awaited(phone: SyncClient, tablet: SyncClient) -> None:
    await conflict_between(phone, tablet)

    async def keep_mine(dataset: str, conflicts: list[SyncConflict]) -> list[Resolution]:
        return [conflict.resolve_with_local() for conflict in conflicts]

    await phone.synchronize(DATASET, on_conflict=keep_mine)

    assert phone.records(DATASET)["theme"][:3] == ("phone", 2, False)


# --- ResourceConflictException: restart ----------------------------------------------------------------------------


async def test_a_push_refused_as_stale_restarts_the_sync_which_then_succeeds(
    boto: Boto, endpoint: str, pool: str, phone: SyncClient, tablet: SyncClient, clients: list[SyncClient]
) -> None:
    laptop = Interrupted(endpoint, pool, phone.identity_id, phone.token_provider, other=tablet, interruptions=1)
    clients.append(laptop)
    laptop.put(DATASET, "theme", "laptop")
    seen: list[SyncConflict] = []

    result = await laptop.synchronize(DATASET, on_conflict=resolving(SyncConflict.resolve_with_local, seen))

    assert (result.attempts, laptop.pushes) == (2, 2)
    assert [(conflict.remote.value, conflict.remote.sync_count) for conflict in seen] == [("other-1", 1)]
    assert await stored(boto, pool, phone.identity_id) == {"theme": ("laptop", 2)}
    assert laptop.records(DATASET)["theme"][:3] == ("laptop", 2, False)


async def test_a_sync_gives_up_after_three_restarts(
    boto: Boto, endpoint: str, pool: str, phone: SyncClient, tablet: SyncClient, clients: list[SyncClient]
) -> None:
    laptop = Interrupted(endpoint, pool, phone.identity_id, phone.token_provider, other=tablet, interruptions=99)
    clients.append(laptop)
    laptop.put(DATASET, "theme", "laptop")

    with pytest.raises(SyncRetriesExceededError) as gave_up:
        await laptop.synchronize(DATASET, on_conflict=resolving(SyncConflict.resolve_with_local, []))

    assert (gave_up.value.code, gave_up.value.status, gave_up.value.attempts) == ("ResourceConflictException", 409, 4)
    assert "exceeded the maximum retries" in str(gave_up.value)
    assert await stored(boto, pool, phone.identity_id) == {"theme": ("other-4", 4)}


# --- deletion and merges --------------------------------------------------------------------------------------------


async def test_a_local_deletion_deletes_the_dataset_on_the_server(boto: Boto, pool: str, phone: SyncClient) -> None:
    phone.put(DATASET, "theme", "dark")
    await phone.synchronize(DATASET)
    phone.delete_dataset(DATASET)

    await phone.synchronize(DATASET)

    with pytest.raises(ClientError) as missing:
        await boto.call(
            boto.sync, "describe_dataset", IdentityPoolId=pool, IdentityId=phone.identity_id, DatasetName=DATASET
        )
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert (phone.records(DATASET), phone.last_sync_count(DATASET)) == ({}, 0)


async def test_a_dataset_deleted_on_the_server_is_deleted_locally(boto: Boto, pool: str, phone: SyncClient) -> None:
    phone.put(DATASET, "theme", "dark")
    await phone.synchronize(DATASET)
    await boto.call(boto.sync, "delete_dataset", IdentityPoolId=pool, IdentityId=phone.identity_id, DatasetName=DATASET)

    result = await phone.synchronize(DATASET)

    assert result.deleted_remotely
    assert phone.records(DATASET) == {}


async def test_a_device_may_keep_and_push_again_a_dataset_deleted_on_the_server(
    boto: Boto, pool: str, device: Device
) -> None:
    phone = await device(on_dataset_deleted=lambda dataset: False)
    phone.put(DATASET, "theme", "dark")
    await phone.synchronize(DATASET)
    await boto.call(boto.sync, "delete_dataset", IdentityPoolId=pool, IdentityId=phone.identity_id, DatasetName=DATASET)

    result = await phone.synchronize(DATASET)

    assert result.deleted_remotely
    assert [(value, count > 1) for value, count in (await stored(boto, pool, phone.identity_id)).values()] == [
        ("dark", True)
    ]
    assert phone.records(DATASET)["theme"][:3] == ("dark", phone.last_sync_count(DATASET), False)


def developer_tokens(boto: Boto, pool: str, user: str) -> TokenProvider:
    """The token provider of an app whose backend logs its users in (GetOpenIdTokenForDeveloperIdentity)."""

    async def provider() -> str:
        answer = await boto.call(
            boto.identity,
            "get_open_id_token_for_developer_identity",
            IdentityPoolId=pool,
            Logins={DEVELOPER_PROVIDER: user},
        )
        token: str = answer["Token"]
        return token

    return provider


async def developer_client(boto: Boto, endpoint: str, pool: str, user: str, clients: list[SyncClient]) -> SyncClient:
    answer = await boto.call(
        boto.identity,
        "get_open_id_token_for_developer_identity",
        IdentityPoolId=pool,
        Logins={DEVELOPER_PROVIDER: user},
    )
    client = SyncClient(endpoint, pool, answer["IdentityId"], developer_tokens(boto, pool, user))
    clients.append(client)
    return client


async def test_merged_dataset_names_are_exposed(boto: Boto, endpoint: str, clients: list[SyncClient]) -> None:
    created = await boto.call(
        boto.identity,
        "create_identity_pool",
        IdentityPoolName="merges",
        AllowUnauthenticatedIdentities=False,
        DeveloperProviderName=DEVELOPER_PROVIDER,
    )
    pool = created["IdentityPoolId"]
    source = await developer_client(boto, endpoint, pool, "user-1", clients)
    destination = await developer_client(boto, endpoint, pool, "user-2", clients)
    source.put(DATASET, "theme", "dark")
    await source.synchronize(DATASET)
    await merge_developer_users(boto, pool)
    told: list[tuple[str, list[str]]] = []
    destination.on_datasets_merged = lambda dataset, names: told.append((dataset, names))

    result = await destination.synchronize(DATASET)

    merged = [f"{DATASET}.{source.identity_id}"]
    assert result.merged_datasets == destination.merged_datasets[DATASET] == merged
    assert told == [(DATASET, merged)]


# --- persistence ----------------------------------------------------------------------------------------------------


async def test_the_local_copy_survives_a_restart_in_its_state_file(
    endpoint: str, pool: str, tmp_path: Path, clients: list[SyncClient]
) -> None:
    path = tmp_path / "state.json"
    first = await SyncClient.guest(endpoint, pool, state_path=path)
    first.put(DATASET, "theme", "dark")
    await first.synchronize(DATASET)
    first.put(DATASET, "draft", "unsynced")
    await first.close()

    again = await SyncClient.guest(endpoint, pool, state_path=path)
    clients.append(again)

    assert again.identity_id == first.identity_id
    assert again.records(DATASET) == first.records(DATASET)
    assert again.records(DATASET)["draft"][:3] == ("unsynced", 0, True)
    assert again.last_sync_count(DATASET) == 1
    assert orjson.loads(path.read_bytes())["datasets"][DATASET]["records"]["theme"][:3] == ["dark", 1, False]
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == [path]  # no temporary file left behind


async def test_a_state_file_of_another_identity_is_refused(
    endpoint: str, pool: str, phone: SyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "state.json"
    async with SyncClient(endpoint, pool, phone.identity_id, phone.token_provider, state_path=path) as first:
        first.put(DATASET, "theme", "dark")
    other = SyncClient(endpoint, pool, "us-east-1:00000000-0000-4000-8000-000000000000", phone.token_provider)
    other_with_file = SyncClient(endpoint, pool, other.identity_id, phone.token_provider, state_path=path)

    with pytest.raises(ValueError, match="belongs to"):
        await other_with_file.load()


# --- identities and tokens ------------------------------------------------------------------------------------------


async def test_another_identity_is_not_authorized_on_this_identitys_data(
    endpoint: str, pool: str, phone: SyncClient, clients: list[SyncClient]
) -> None:
    other = await SyncClient.guest(endpoint, pool)
    intruder = SyncClient(endpoint, pool, phone.identity_id, other.token_provider)
    clients += [other, intruder]

    with pytest.raises(SyncClientError) as refused:
        await intruder.synchronize(DATASET)

    assert (refused.value.code, refused.value.status) == ("NotAuthorizedException", 403)


async def test_a_refused_token_is_renewed_once_and_the_call_made_again(
    endpoint: str, pool: str, phone: SyncClient, clients: list[SyncClient]
) -> None:
    tokens = CountingTokens(phone.token_provider, bad_calls=1)
    device = SyncClient(endpoint, pool, phone.identity_id, tokens)
    clients.append(device)
    device.put(DATASET, "theme", "dark")

    result = await device.synchronize(DATASET)

    assert (result.sync_count, tokens.calls) == (1, 2)


async def test_a_token_refused_again_after_renewal_is_an_error(
    endpoint: str, pool: str, phone: SyncClient, clients: list[SyncClient]
) -> None:
    tokens = CountingTokens(phone.token_provider, bad_calls=99)
    device = SyncClient(endpoint, pool, phone.identity_id, tokens)
    clients.append(device)

    with pytest.raises(SyncClientError) as refused:
        await device.synchronize(DATASET)

    assert (refused.value.code, refused.value.status, tokens.calls) == ("NotAuthorizedException", 403, 2)


# --- push sync ------------------------------------------------------------------------------------------------------


@pytest.fixture
async def push_pool(boto: Boto, pool: str) -> str:
    """The pool, with push sync configured."""
    await boto.call(boto.sync, "set_identity_pool_configuration", IdentityPoolId=pool, PushSync=PUSH_SYNC)
    return pool


class Changes:
    """An ``on_change`` handler that remembers the syncs it was told of and lets a test wait for the next one."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, SyncResult]] = []
        self._arrived = asyncio.Condition()

    async def __call__(self, dataset: str, result: SyncResult) -> None:
        async with self._arrived:
            self.seen.append((dataset, result))
            self._arrived.notify_all()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(PUSH_WAIT_SECONDS), self._arrived:
            await self._arrived.wait_for(lambda: len(self.seen) >= count)


async def listening_device(client: SyncClient) -> SyncClient:
    await client.register_device()
    await client.subscribe(DATASET)
    return client


async def test_register_device_needs_push_sync_configured(phone: SyncClient) -> None:
    with pytest.raises(SyncClientError) as refused:
        await phone.register_device()

    assert (refused.value.code, refused.value.status) == ("InvalidConfigurationException", 400)


async def test_a_registered_subscribed_device_listens(push_pool: str, phone: SyncClient) -> None:
    device_id = await phone.register_device()
    await phone.subscribe(DATASET)

    async with phone.listening() as listener:
        async with asyncio.timeout(PUSH_WAIT_SECONDS):
            await listener.wait_resumed()

    assert (phone.device_id, listener.connections) == (device_id, 1)
    assert phone.state.subscriptions == {DATASET}


async def test_writes_of_a_registered_device_carry_its_device_id(boto: Boto, push_pool: str, phone: SyncClient) -> None:
    device_id = await phone.register_device()
    phone.put(DATASET, "theme", "dark")

    await phone.synchronize(DATASET)

    [record] = await server_records(boto, push_pool, phone.identity_id)
    assert record["LastModifiedBy"] == device_id


async def test_registering_again_answers_the_same_device_id(push_pool: str, phone: SyncClient) -> None:
    first = await phone.register_device()

    assert await phone.register_device() == first


async def test_another_devices_write_wakes_the_listener_which_pulls_it(
    push_pool: str, phone: SyncClient, tablet: SyncClient
) -> None:
    await listening_device(phone)
    changes = Changes()

    async with phone.listening(on_change=changes) as listener:
        async with asyncio.timeout(PUSH_WAIT_SECONDS):
            await listener.wait_resumed()
        tablet.put(DATASET, "theme", "dark")
        await tablet.synchronize(DATASET)
        await changes.wait_for(1)

    [(dataset, result)] = changes.seen
    assert (dataset, [(record.key, record.value) for record in result.pulled]) == (DATASET, [("theme", "dark")])
    assert (phone.get(DATASET, "theme"), phone.last_sync_count(DATASET)) == ("dark", 1)


async def test_a_listener_is_not_woken_by_its_own_writes(push_pool: str, phone: SyncClient, tablet: SyncClient) -> None:
    await listening_device(phone)
    changes = Changes()

    async with phone.listening(on_change=changes) as listener:
        async with asyncio.timeout(PUSH_WAIT_SECONDS):
            await listener.wait_resumed()
        phone.put(DATASET, "mine", "1")
        await phone.synchronize(DATASET)  # the phone's own write: no notification for it
        tablet.put(DATASET, "theirs", "2")
        await tablet.synchronize(DATASET)
        await changes.wait_for(1)

    assert [[record.key for record in result.pulled] for _, result in changes.seen] == [["theirs"]]


async def test_a_listener_catches_up_on_connect_with_what_changed_while_it_was_away(
    push_pool: str, phone: SyncClient, tablet: SyncClient
) -> None:
    await listening_device(phone)
    tablet.put(DATASET, "theme", "dark")
    await tablet.synchronize(DATASET)
    changes = Changes()

    async with phone.listening(on_change=changes):
        await changes.wait_for(1)

    assert phone.get(DATASET, "theme") == "dark"


class Unreachable(SyncClient):
    """A device whose first ``failures`` pulls after a notification find the server unreachable, as when the instance
    holding its socket hangs for a few seconds (SIGSTOP in the chaos run) and then comes back."""

    def __init__(self, *args: Any, failures: int, **options: Any) -> None:
        super().__init__(*args, **options)
        self.failures = failures

    async def synchronize_if_behind(
        self, dataset: str, sync_count: int, on_conflict: ConflictHandler | None = None
    ) -> SyncResult | None:
        if self.failures:
            self.failures -= 1
            raise SyncClientError(CONNECTION_ERROR, "Cannot connect to host (the instance hangs)", 0)
        return await super().synchronize_if_behind(dataset, sync_count, on_conflict)


async def test_a_pull_that_failed_after_a_notification_is_tried_again(
    endpoint: str, push_pool: str, phone: SyncClient, tablet: SyncClient, clients: list[SyncClient]
) -> None:
    """The chaos run saw listeners stay one sync count behind for good: the pull a notification asked for met a hung
    instance, and nothing asked again (no later change, and the socket outlived the hang)."""
    flaky = Unreachable(endpoint, push_pool, phone.identity_id, phone.token_provider, failures=2)
    clients.append(flaky)
    await listening_device(flaky)
    changes = Changes()

    async with flaky.listening(on_change=changes, backoff=Backoff(initial=0.05, maximum=0.1)) as listener:
        async with asyncio.timeout(PUSH_WAIT_SECONDS):
            await listener.wait_resumed()
        tablet.put(DATASET, "theme", "dark")
        await tablet.synchronize(DATASET)
        await changes.wait_for(1)

    assert (flaky.failures, flaky.get(DATASET, "theme"), flaky.last_sync_count(DATASET)) == (0, "dark", 1)


async def test_a_newer_connection_of_the_same_device_stops_the_older_listener(
    push_pool: str, phone: SyncClient, device: Device
) -> None:
    await listening_device(phone)
    twin = await device()
    await twin.register_device(token=phone.state.installation_id)  # the same device: the same DeviceId

    async def connect_twice() -> None:
        async with phone.listening() as older:
            async with asyncio.timeout(PUSH_WAIT_SECONDS):
                await older.wait_resumed()
            async with twin.listening() as newer, asyncio.timeout(PUSH_WAIT_SECONDS):
                await newer.wait_resumed()
                await older.wait_stopped()

    with pytest.raises(SyncClientError) as replaced:
        await connect_twice()

    assert (replaced.value.code, replaced.value.status) == ("ConnectionReplaced", 4009)


class Proxy:
    """A TCP proxy in front of the server whose connections a test can cut (a network drop, no close frame)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, upstream_writer}
        try:
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        finally:
            self._writers -= {writer, upstream_writer}

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.transport.abort()


async def test_a_listener_reconnects_and_resumes_after_a_network_drop(
    push_pool: str, endpoint: str, phone: SyncClient, tablet: SyncClient, clients: list[SyncClient]
) -> None:
    port = int(endpoint.rsplit(":", 1)[1])
    async with Proxy(port) as proxy:
        behind = SyncClient(f"http://127.0.0.1:{proxy.port}", push_pool, phone.identity_id, phone.token_provider)
        clients.append(behind)
        await behind.load()
        await listening_device(behind)
        changes = Changes()
        async with behind.listening(on_change=changes, backoff=Backoff(initial=0.05, maximum=0.2)) as listener:
            async with asyncio.timeout(PUSH_WAIT_SECONDS):
                await listener.wait_resumed()
            proxy.cut()
            tablet.put(DATASET, "theme", "dark")  # written while the listener is away
            await tablet.synchronize(DATASET)
            await changes.wait_for(1)

    assert listener.connections >= 2
    assert behind.get(DATASET, "theme") == "dark"


async def test_a_listen_task_stops_cleanly_when_cancelled(push_pool: str, phone: SyncClient) -> None:
    await listening_device(phone)
    listener = phone.listener()
    task = asyncio.create_task(listener.run())
    async with asyncio.timeout(PUSH_WAIT_SECONDS):
        await listener.wait_resumed()

    task.cancel()
    async with asyncio.timeout(PUSH_WAIT_SECONDS):
        await asyncio.wait([task])

    assert task.cancelled()
    assert not listener.resumed.is_set()


async def test_listening_before_register_device_is_an_error(push_pool: str, phone: SyncClient) -> None:
    with pytest.raises(SyncClientError) as refused:
        await phone.listen()

    assert refused.value.code == "DeviceNotRegistered"


def test_reconnection_delays_grow_jittered_up_to_the_maximum() -> None:
    backoff = Backoff(initial=1.0, factor=2.0, maximum=5.0)

    delays = [backoff.delay(failures) for failures in (1, 2, 3, 4, 10)]

    bounds = [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (2.5, 5.0), (2.5, 5.0)]
    assert all(low <= delay <= high for delay, (low, high) in zip(delays, bounds, strict=True))
