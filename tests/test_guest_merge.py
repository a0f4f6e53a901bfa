"""A guest who signs in keeps their data: Cognito's identity merge, end to end with unmodified boto3.

GetCredentialsForIdentity, GetOpenIdToken and GetOpenIdTokenForDeveloperIdentity called with a guest's IdentityId
and logins that already belong to another identity merge the guest into that identity: the answer names the other
identity, the guest's datasets arrive there as ``<name>.<guest id>`` (MergedDatasetNames) and the guest's
credentials stop working. Two authenticated identities are never merged. A merge interrupted part-way (the states a
crash can leave, set up step by step on the real Redis) finishes on the device's retry, every dataset copied once.

Real Redis and a real OIDC provider on loopback (``tests.oidc_provider``).
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from syncsvc.api.messages import SERVICES
from syncsvc.config import Settings
from syncsvc.identity.broker import MERGED_MARKER_SECONDS
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.identities import RedisIdentityStore
from tests.conftest import Boto, call
from tests.devices import (
    APP_CLIENT,
    APP_CLIENT2,
    DEVELOPER_PROVIDER,
    LOGIN,
    LOGIN2,
    Credentials,
    Devices,
    guest,
    identity_settings,
    new_pool,
    refusal,
)
from tests.oidc_provider import TestIdentityProvider


@pytest.fixture
def settings(redis_url: str, idp: TestIdentityProvider, overrides: dict[str, Any]) -> Settings:
    return identity_settings(redis_url, idp, **overrides)


# --- what devices do ------------------------------------------------------------------------------------------------


async def put(sync: Any, pool: str, identity: str, dataset: str, values: dict[str, str]) -> None:
    """One sync of a device: ListRecords, then UpdateRecords writing ``values`` as new records."""
    names = {"IdentityPoolId": pool, "IdentityId": identity, "DatasetName": dataset}
    token = (await call(sync, "list_records", **names))["SyncSessionToken"]
    patches = [{"Op": "replace", "Key": key, "Value": value, "SyncCount": 0} for key, value in values.items()]
    await call(sync, "update_records", **names, SyncSessionToken=token, RecordPatches=patches)


async def values(sync: Any, pool: str, identity: str, dataset: str) -> dict[str, str]:
    listed = await call(sync, "list_records", IdentityPoolId=pool, IdentityId=identity, DatasetName=dataset)
    return {record["Key"]: record["Value"] for record in listed["Records"] if "Value" in record}


async def dataset_names(boto: Boto, pool: str, identity: str) -> list[str]:
    listed = await call(boto.sync, "list_datasets", IdentityPoolId=pool, IdentityId=identity)
    return sorted(dataset["DatasetName"] for dataset in listed["Datasets"])


async def guest_with_data(devices: Devices, pool: str) -> tuple[str, Credentials]:
    """A guest who wrote two datasets: ``settings`` {theme: light, volume: 3} and ``scores`` {level-1: 100}."""
    identity, credentials = await guest(devices, pool)
    sync = devices.sync_with(credentials)
    await put(sync, pool, identity, "settings", {"theme": "light", "volume": "3"})
    await put(sync, pool, identity, "scores", {"level-1": "100"})
    return identity, credentials


async def signed_in(devices: Devices, pool: str, logins: dict[str, str]) -> tuple[str, Credentials]:
    """An authenticated identity (GetId with the logins) with ``settings`` {theme: dark}."""
    identity = (await call(devices.identity, "get_id", IdentityPoolId=pool, Logins=logins))["IdentityId"]
    response = await call(devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins=logins)
    await put(devices.sync_with(response["Credentials"]), pool, identity, "settings", {"theme": "dark"})
    return identity, response["Credentials"]


async def developer_sign_in(boto: Boto, pool: str, user: str, identity: str | None = None) -> str:
    """GetOpenIdTokenForDeveloperIdentity for ``user`` (from the identity the device has, when given): the answered
    IdentityId."""
    given = {} if identity is None else {"IdentityId": identity}
    response = await call(
        boto.identity,
        "get_open_id_token_for_developer_identity",
        IdentityPoolId=pool,
        Logins={DEVELOPER_PROVIDER: user},
        **given,
    )
    identity_id: str = response["IdentityId"]
    return identity_id


async def assert_merged(boto: Boto, pool: str, guest_id: str, into: str) -> None:
    """The guest's two datasets are in ``into`` under merged names, the destination's own data untouched, the
    guest gone."""
    assert await dataset_names(boto, pool, into) == sorted(["settings", f"settings.{guest_id}", f"scores.{guest_id}"])
    settings = await call(boto.sync, "list_records", IdentityPoolId=pool, IdentityId=into, DatasetName="settings")
    assert settings["MergedDatasetNames"] == [f"settings.{guest_id}"]
    assert await values(boto.sync, pool, into, "settings") == {"theme": "dark"}
    assert await values(boto.sync, pool, into, f"settings.{guest_id}") == {"theme": "light", "volume": "3"}
    assert await values(boto.sync, pool, into, f"scores.{guest_id}") == {"level-1": "100"}
    assert await refusal(boto.identity, "describe_identity", IdentityId=guest_id) == ("ResourceNotFoundException", 400)


# --- OpenID Connect logins ------------------------------------------------------------------------------------------


async def test_a_guest_signing_in_with_another_identitys_login_is_merged_into_it(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto)
    alice = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}
    destination, _ = await signed_in(devices, pool, alice)
    guest_id, guest_credentials = await guest_with_data(devices, pool)

    response = await call(devices.identity, "get_credentials_for_identity", IdentityId=guest_id, Logins=alice)

    assert response["IdentityId"] == destination
    await assert_merged(boto, pool, guest_id, destination)
    merged = devices.sync_with(response["Credentials"])
    assert await values(merged, pool, destination, f"settings.{guest_id}") == {"theme": "light", "volume": "3"}
    revoked = await refusal(
        devices.sync_with(guest_credentials), "list_records", IdentityPoolId=pool, IdentityId=guest_id, DatasetName="x"
    )
    assert revoked == ("UnrecognizedClientException", 400)  # as for any deleted identity


async def test_get_open_id_token_of_a_guest_answers_the_identity_it_was_merged_into(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto)
    alice = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}
    destination, _ = await signed_in(devices, pool, alice)
    guest_id, _ = await guest_with_data(devices, pool)

    response = await call(devices.identity, "get_open_id_token", IdentityId=guest_id, Logins=alice)

    assert response["IdentityId"] == destination
    await assert_merged(boto, pool, guest_id, destination)


async def test_a_guest_signing_in_with_a_login_nobody_has_keeps_its_identity_and_data(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto)
    guest_id, _ = await guest_with_data(devices, pool)
    alice = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}

    response = await call(devices.identity, "get_credentials_for_identity", IdentityId=guest_id, Logins=alice)

    assert response["IdentityId"] == guest_id
    assert await dataset_names(boto, pool, guest_id) == ["scores", "settings"]
    assert (await call(devices.identity, "get_id", IdentityPoolId=pool, Logins=alice))["IdentityId"] == guest_id


async def test_a_retry_with_the_merged_guests_id_answers_the_identity_it_became(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto)
    alice = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}
    destination, _ = await signed_in(devices, pool, alice)
    guest_id, _ = await guest_with_data(devices, pool)
    await call(devices.identity, "get_credentials_for_identity", IdentityId=guest_id, Logins=alice)

    again = await call(devices.identity, "get_credentials_for_identity", IdentityId=guest_id, Logins=alice)
    as_guest = await refusal(devices.identity, "get_credentials_for_identity", IdentityId=guest_id)

    assert again["IdentityId"] == destination
    assert as_guest == ("NotAuthorizedException", 400)
    await assert_merged(boto, pool, guest_id, destination)


async def test_two_authenticated_identities_are_never_merged_implicitly(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto)
    alice, bob = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}, {LOGIN2: idp.mint("bob", aud=APP_CLIENT2)}
    alice_id, _ = await signed_in(devices, pool, alice)
    bob_id, _ = await signed_in(devices, pool, bob)

    refused = await refusal(devices.identity, "get_credentials_for_identity", IdentityId=bob_id, Logins=bob | alice)

    assert refused == ("ResourceConflictException", 400)
    assert await dataset_names(boto, pool, alice_id) == ["settings"]
    assert await dataset_names(boto, pool, bob_id) == ["settings"]
    assert (await call(boto.identity, "describe_identity", IdentityId=bob_id))["Logins"] == [LOGIN2]


async def test_a_guest_whose_logins_belong_to_two_identities_is_not_merged(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto)
    alice, bob = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}, {LOGIN2: idp.mint("bob", aud=APP_CLIENT2)}
    await signed_in(devices, pool, alice)
    await signed_in(devices, pool, bob)
    guest_id, _ = await guest_with_data(devices, pool)

    refused = await refusal(devices.identity, "get_credentials_for_identity", IdentityId=guest_id, Logins=alice | bob)

    assert refused == ("ResourceConflictException", 400)
    assert await dataset_names(boto, pool, guest_id) == ["scores", "settings"]


# --- developer-authenticated logins ---------------------------------------------------------------------------------


async def test_two_guests_signing_in_as_one_developer_user_end_up_in_one_identity(boto: Boto, devices: Devices) -> None:
    pool = await new_pool(boto)
    first, _ = await guest_with_data(devices, pool)
    second, _ = await guest_with_data(devices, pool)

    linked = await developer_sign_in(boto, pool, "user-1", first)
    merged = await developer_sign_in(boto, pool, "user-1", second)

    assert linked == first
    assert merged == first
    names = await dataset_names(boto, pool, first)
    assert names == sorted(["scores", "settings", f"scores.{second}", f"settings.{second}"])
    assert await values(boto.sync, pool, first, f"settings.{second}") == {"theme": "light", "volume": "3"}
    assert await refusal(boto.identity, "describe_identity", IdentityId=second) == ("ResourceNotFoundException", 400)
    lookup = await call(boto.identity, "lookup_developer_identity", IdentityPoolId=pool, IdentityId=first)
    assert lookup["DeveloperUserIdentifierList"] == ["user-1"]


async def test_a_developer_user_is_not_merged_into_another_authenticated_identity(boto: Boto) -> None:
    pool = await new_pool(boto)
    user_1 = await developer_sign_in(boto, pool, "user-1")
    user_2 = await developer_sign_in(boto, pool, "user-2")

    refused = await refusal(
        boto.identity,
        "get_open_id_token_for_developer_identity",
        IdentityPoolId=pool,
        IdentityId=user_2,
        Logins={DEVELOPER_PROVIDER: "user-1"},
    )

    assert refused == ("ResourceConflictException", 400)
    lookup = await call(boto.identity, "lookup_developer_identity", IdentityPoolId=pool, IdentityId=user_1)
    assert lookup["DeveloperUserIdentifierList"] == ["user-1"]


async def test_a_merge_that_would_break_the_dataset_limit_copies_nothing(boto: Boto, devices: Devices) -> None:
    pool = await new_pool(boto)
    destination = await developer_sign_in(boto, pool, "user-1")
    for index in range(19):
        await put(boto.sync, pool, destination, f"own-{index}", {"k": "v"})
    guest_id, _ = await guest_with_data(devices, pool)

    refused = await refusal(
        boto.identity,
        "get_open_id_token_for_developer_identity",
        IdentityPoolId=pool,
        IdentityId=guest_id,
        Logins={DEVELOPER_PROVIDER: "user-1"},
    )

    assert refused == ("LimitExceededException", 400)
    assert len(await dataset_names(boto, pool, destination)) == 19
    assert await dataset_names(boto, pool, guest_id) == ["scores", "settings"]


# --- a merge a crash interrupted ------------------------------------------------------------------------------------


async def test_a_merge_interrupted_after_copying_one_dataset_finishes_on_retry(
    boto: Boto, devices: Devices, server: TestServer
) -> None:
    """The state a crash after the first dataset copy leaves: that copy exists, the guest still does. The retry
    copies the rest, keeps the first copy as it was (not twice, not a conflict) and removes the guest."""
    pool = await new_pool(boto)
    destination = await developer_sign_in(boto, pool, "user-1")
    await put(boto.sync, pool, destination, "settings", {"theme": "dark"})
    guest_id, _ = await guest_with_data(devices, pool)
    await put(boto.sync, pool, destination, f"settings.{guest_id}", {"theme": "light", "volume": "3"})

    answered = await developer_sign_in(boto, pool, "user-1", guest_id)

    assert answered == destination
    await assert_merged(boto, pool, guest_id, destination)
    copy = await call(
        boto.sync, "describe_dataset", IdentityPoolId=pool, IdentityId=destination, DatasetName=f"settings.{guest_id}"
    )
    assert copy["Dataset"]["NumRecords"] == 2


async def test_a_merge_interrupted_before_the_guests_data_was_removed_finishes_on_retry(
    boto: Boto, devices: Devices, server: TestServer, idp: TestIdentityProvider
) -> None:
    """The state a crash after the guest's profile was replaced by the merge marker leaves: the copies exist, the
    guest's data is still in Redis. A retry with the old id answers the destination and removes that data."""
    services = server.app[SERVICES]
    pool = await new_pool(boto)
    alice = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}
    destination, _ = await signed_in(devices, pool, alice)
    guest_id, _ = await guest_with_data(devices, pool)
    await services.sync.merge_datasets(pool, guest_id, destination)
    identities = RedisIdentityStore(services.store.client, shards=services.settings.shards)
    await identities.delete(guest_id, pool, merged_into=destination, remember_seconds=MERGED_MARKER_SECONDS)
    keyspace = IdentityKeyspace.of(pool, guest_id, services.settings.shards)
    assert await services.store.client.exists(keyspace.records("settings")) == 1

    response = await call(devices.identity, "get_credentials_for_identity", IdentityId=guest_id, Logins=alice)

    assert response["IdentityId"] == destination
    assert await services.store.client.exists(keyspace.records("settings"), keyspace.datasets) == 0
    await assert_merged(boto, pool, guest_id, destination)
