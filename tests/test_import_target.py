"""The import's target side (``syncsvc.migration.target.ImportTarget``): a Cognito Sync pool read elsewhere, written
here so that devices continue with the ids, sync counts and dates they hold.

What was imported is checked the way devices and developers see it, over HTTP with unmodified boto3 (ListRecords,
UpdateRecords, DescribeDataset, DescribeIdentity, GetOpenIdTokenForDeveloperIdentity, …), and at rest in the raw
Redis. The ImportTarget runs on services of its own (``open_services``, as ``syncsvc import`` builds them) against
the test server's Redis. Real Redis, nothing mocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from syncsvc import rediskeys
from syncsvc.config import Settings
from syncsvc.errors import InvalidParameterError, LimitExceededError, ResourceConflictError
from syncsvc.migration.model import SourceDataset, SourceIdentity, SourcePool, SourceRecord
from syncsvc.migration.target import DatasetOutcome, ImportTarget, UnmappedTriggersError
from syncsvc.model import Limits
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.runtime import Services, open_services
from tests.conftest import Boto, call
from tests.datasets import DatasetRef, Device, body, empty_page, error_of, fails, page, put, record, redis_state
from tests.devices import Devices, refusal
from tests.phones import Phone, nothing_waiting, notification, receive

POOL = "us-east-1:0b7c3a55-2f7e-4a36-9a51-6f1c1a2b3c4d"
IDENTITY = "us-east-1:5d0e2b11-7c1f-4d6a-8b3e-2a9f4c6d8e10"
OTHER_IDENTITY = "us-east-1:9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
DEVELOPER = "login.mycompany"
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:audit-writes"
#: What DescribeIdentityPool answered at the source (the id aside, every member survives the move).
DESCRIPTION: dict[str, Any] = {
    "IdentityPoolId": POOL,
    "IdentityPoolName": "moving in",
    "AllowUnauthenticatedIdentities": True,
    "AllowClassicFlow": False,
    "SupportedLoginProviders": {"graph.facebook.com": "7346241598935552"},
    "DeveloperProviderName": DEVELOPER,
    "OpenIdConnectProviderARNs": ["arn:aws:iam::123456789012:oidc-provider/login.example.com"],
    "CognitoIdentityProviders": [
        {"ProviderName": "cognito-idp.us-east-1.amazonaws.com/us-east-1_Ab12Cd34", "ClientId": "client-1"}
    ],
    "SamlProviderARNs": ["arn:aws:iam::123456789012:saml-provider/corp"],
    "IdentityPoolTags": {"team": "sync"},
}
SYNC_CONFIGURATION: dict[str, Any] = {
    "PushSync": {
        "ApplicationArns": ["arn:aws:sns:us-east-1:123456789012:app/GCM/phones"],
        "RoleArn": "arn:aws:iam::123456789012:role/push",
    },
    "CognitoStreams": {
        "StreamName": "changes",
        "RoleArn": "arn:aws:iam::123456789012:role/streams",
        "StreamingStatus": "DISABLED",
    },
}
#: The source's dataset: sync count 7, a tombstone, two records written by one call (7), dates to the millisecond.
SETTINGS = SourceDataset(
    identity_id=IDENTITY,
    name="settings",
    sync_count=7,
    created_ms=1_600_000_000_000,
    last_modified_ms=1_650_000_123_456,
    last_modified_by="tablet",
    records=(
        SourceRecord("theme-preference", "plaintext-dark", 3, 1_610_000_000_250, "phone", 1_609_999_999_500),
        SourceRecord("removed-record", None, 5, 1_620_000_000_000, "phone", 1_619_999_000_000),
        SourceRecord("font-preference", "plaintext-large", 7, 1_650_000_123_456, "tablet"),
        SourceRecord("language-preference", "plaintext-fr", 7, 1_650_000_123_456, "tablet"),
    ),
)
#: The same dataset two writes later at the source: theme changed (8), font removed and volume added (9).
SETTINGS_LATER = replace(
    SETTINGS,
    sync_count=9,
    last_modified_ms=1_660_000_000_000,
    last_modified_by="laptop",
    records=(
        SETTINGS.records[1],
        SETTINGS.records[3],
        SourceRecord("theme-preference", "plaintext-light", 8, 1_655_000_000_000, "laptop", 1_654_999_999_999),
        SourceRecord("font-preference", None, 9, 1_660_000_000_000, "laptop"),
        SourceRecord("volume-preference", "plaintext-loud", 9, 1_660_000_000_000, "laptop"),
    ),
)


def date(ms: int) -> datetime:
    """A date as boto3 parses the service's epoch seconds."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def wire(record: SourceRecord) -> dict[str, Any]:
    """A source record as boto3 lists it."""
    listed: dict[str, Any] = {"Key": record.key}
    if record.value is not None:
        listed["Value"] = record.value
    listed.update(
        SyncCount=record.sync_count,
        LastModifiedDate=date(record.last_modified_ms),
        LastModifiedBy=record.last_modified_by,
    )
    if record.device_last_modified_ms is not None:
        listed["DeviceLastModifiedDate"] = date(record.device_last_modified_ms)
    return listed


def listing(dataset: SourceDataset, after: int = 0) -> dict[str, Any]:
    """ListRecords(LastSyncCount=after) of ``dataset`` as the source answered it (records in sync count order)."""
    records = sorted((r for r in dataset.records if r.sync_count > after), key=lambda r: (r.sync_count, r.key))
    return page([wire(r) for r in records], dataset.sync_count, by=dataset.last_modified_by)


# --- fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture
async def services(server: TestServer, settings: Settings) -> AsyncIterator[Services]:
    """Services of the importer's own on the test server's (flushed) Redis, as `syncsvc import` opens them."""
    async with open_services(settings) as opened:
        yield opened


@pytest.fixture
def target(services: Services) -> ImportTarget:
    return importer(services)


def importer(services: Services, **extra: Any) -> ImportTarget:
    return ImportTarget(
        store=services.store,
        pools=services.pools,
        envelope=services.envelope,
        shards=services.settings.shards,
        clock=services.clock,
        **extra,
    )


@pytest.fixture
async def pool(target: ImportTarget) -> str:
    """The source pool, imported (its sync trigger left out: the test server runs no triggers)."""
    return await target.put_pool(SourcePool(POOL, DESCRIPTION, SYNC_CONFIGURATION))


@pytest.fixture
def device(boto: Boto, pool: str) -> Device:
    return Device(boto, DatasetRef(pool, IDENTITY, "settings"), device_id="phone-here")


async def usage(boto: Boto) -> dict[str, Any]:
    return body(await call(boto.sync, "describe_identity_usage", IdentityPoolId=POOL, IdentityId=IDENTITY))


# --- datasets --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [False, True], ids=["first pass", "delta on a dataset never imported"])
async def test_an_imported_dataset_lists_as_the_source_listed_it(
    target: ImportTarget, pool: str, device: Device, delta: bool
) -> None:
    outcome = await target.put_dataset(pool, SETTINGS, delta=delta)

    assert outcome == DatasetOutcome(IDENTITY, "settings", "imported", sync_count=7, written=4)
    assert await device.pull(LastSyncCount=0) == listing(SETTINGS)
    assert await device.pull(LastSyncCount=5) == listing(SETTINGS, after=5)
    assert await device.pull(LastSyncCount=7) == page([], 7, by="tablet")


async def test_an_imported_dataset_is_described_listed_and_counted_as_at_the_source(
    target: ImportTarget, pool: str, device: Device, boto: Boto
) -> None:
    await target.put_dataset(pool, SETTINGS)
    storage = sum(len(r.key) + len(r.value) for r in SETTINGS.records if r.value is not None)
    described = {
        "IdentityId": IDENTITY,
        "DatasetName": "settings",
        "CreationDate": date(SETTINGS.created_ms),
        "LastModifiedDate": date(SETTINGS.last_modified_ms),
        "LastModifiedBy": "tablet",
        "DataStorage": storage,
        "NumRecords": 3,
    }

    assert await device.describe() == {"Dataset": described}
    listed = await call(boto.sync, "list_datasets", IdentityPoolId=POOL, IdentityId=IDENTITY)
    assert listed == {"Datasets": [described], "Count": 1}
    assert await usage(boto) == {
        "IdentityUsage": {
            "IdentityId": IDENTITY,
            "IdentityPoolId": POOL,
            "DatasetCount": 1,
            "DataStorage": storage,
            "LastModifiedDate": date(SETTINGS.last_modified_ms),
        }
    }


async def test_a_device_continues_from_the_imported_sync_counts(
    target: ImportTarget, pool: str, device: Device
) -> None:
    await target.put_dataset(pool, SETTINGS)

    written = await device.push(put("theme-preference", "plaintext-blue", 3))

    assert [(r["Key"], r["SyncCount"]) for r in written["Records"]] == [("theme-preference", 8)]
    stale = error_of(await fails(device.push(put("font-preference", "plaintext-small", 3))))
    assert stale == (409, "ResourceConflictException", "Current SyncCount for: font-preference is: 7 not: 3")


async def test_imported_names_and_values_are_sealed_at_rest(
    target: ImportTarget, pool: str, redis_client: aioredis.Redis, settings: Settings
) -> None:
    await target.put_dataset(pool, SETTINGS)

    everything = repr(await redis_state(redis_client))
    assert not [r.key for r in SETTINGS.records if r.key in everything]
    assert not [r.value for r in SETTINGS.records if r.value and r.value in everything]
    keyspace = IdentityKeyspace.of(POOL, IDENTITY, settings.shards)
    stored = [orjson.loads(raw) for raw in (await redis_client.hgetall(keyspace.records("settings"))).values()]
    assert sorted(r.get("v", "")[:3] for r in stored) == ["", "e1:", "e1:", "e1:"]
    assert {r["nk"][:3] for r in stored} == {"n1:"}


async def test_importing_a_dataset_again_writes_nothing(
    target: ImportTarget, pool: str, redis_client: aioredis.Redis
) -> None:
    await target.put_dataset(pool, SETTINGS)
    before = await redis_state(redis_client)

    again = await target.put_dataset(pool, SETTINGS)
    delta = await target.put_dataset(pool, SETTINGS, delta=True)

    assert again == delta == DatasetOutcome(IDENTITY, "settings", "unchanged", sync_count=7)
    assert await redis_state(redis_client) == before


async def test_a_dataset_devices_made_here_first_is_a_conflict_left_alone(
    target: ImportTarget, pool: str, device: Device, redis_client: aioredis.Redis
) -> None:
    await device.push(put("theme-preference", "plaintext-mine"))
    before = await redis_state(redis_client)

    outcome = await target.put_dataset(pool, SETTINGS)

    assert outcome == DatasetOutcome(IDENTITY, "settings", "conflict", sync_count=1, conflicts=("theme-preference",))
    assert await redis_state(redis_client) == before


async def test_the_delta_replaces_a_dataset_unchanged_here_with_the_source_state(
    target: ImportTarget, pool: str, device: Device
) -> None:
    await target.put_dataset(pool, SETTINGS)

    outcome = await target.put_dataset(pool, SETTINGS_LATER, delta=True)

    assert outcome == DatasetOutcome(IDENTITY, "settings", "updated", sync_count=9, written=5)
    assert await device.pull(LastSyncCount=0) == listing(SETTINGS_LATER)
    assert await device.pull(LastSyncCount=7) == listing(SETTINGS_LATER, after=7)


async def test_a_delta_replacement_wakes_devices_subscribed_here_and_the_first_pass_does_not(
    target: ImportTarget, pool: str, boto: Boto, endpoint: str
) -> None:
    await target.put_identity(pool, SourceIdentity(IDENTITY, 1, 1, (DEVELOPER,), ((DEVELOPER, "user-1"),)))
    logins = {DEVELOPER: "user-1"}
    signed_in = await call(
        boto.identity, "get_open_id_token_for_developer_identity", IdentityPoolId=pool, Logins=logins
    )
    async with aiohttp.ClientSession() as session:
        phone = Phone(session, endpoint, pool, IDENTITY, signed_in["Token"])
        await phone.register("phone-token")
        await phone.subscribe("settings")
        async with await phone.connect() as ws:
            await target.put_dataset(pool, SETTINGS)
            assert await nothing_waiting(ws)

            await target.put_dataset(pool, SETTINGS_LATER, delta=True)

            assert await receive(ws) == notification(phone, 9)


async def test_the_delta_merges_source_changes_and_keeps_records_changed_on_both_sides(
    target: ImportTarget, pool: str, device: Device, boto: Boto, services: Services, redis_client: aioredis.Redis
) -> None:
    streams = {"StreamName": "changes", "StreamingStatus": "ENABLED"}
    await call(boto.sync, "set_identity_pool_configuration", IdentityPoolId=pool, CognitoStreams=streams)
    await target.put_dataset(pool, SETTINGS)
    await device.push(put("theme-preference", "plaintext-mine", 3))  # here: 8
    await device.push(put("local-only", "plaintext-local"))  # here: 9
    outbox = rediskeys.outbox(rediskeys.shard_of(IDENTITY, services.settings.shards))
    streamed = await redis_client.xlen(outbox)

    outcome = await target.put_dataset(pool, SETTINGS_LATER, delta=True)

    assert outcome == DatasetOutcome(
        IDENTITY, "settings", "conflict", sync_count=10, written=2, conflicts=("theme-preference",)
    )
    merged = [wire(replace(r, sync_count=10)) for r in SETTINGS_LATER.records if r.sync_count == 9]
    mine = [
        record("theme-preference", "plaintext-mine", 8, by="phone-here"),
        record("local-only", "plaintext-local", 9, by="phone-here"),
    ]
    assert await device.pull(LastSyncCount=7) == page([*mine, *merged], 10, by="laptop")
    assert await redis_client.xlen(outbox) == streamed + 1
    again = await target.put_dataset(pool, SETTINGS_LATER, delta=True)
    assert again == DatasetOutcome(IDENTITY, "settings", "unchanged", sync_count=10)


async def test_a_record_changed_here_stays_a_conflict_when_the_source_changes_it_again(
    target: ImportTarget, pool: str, device: Device
) -> None:
    await target.put_dataset(pool, SETTINGS)
    await device.push(put("theme-preference", "plaintext-mine", 3))
    await target.put_dataset(pool, SETTINGS_LATER, delta=True)  # theme: a conflict; font, volume: merged (9)
    theme, volume = (
        SourceRecord("theme-preference", "plaintext-red", 10, 1_670_000_000_000, "laptop"),
        SourceRecord("volume-preference", "plaintext-soft", 10, 1_670_000_000_000, "laptop"),
    )
    latest = replace(
        SETTINGS_LATER, sync_count=10, records=(*SETTINGS_LATER.records[:2], SETTINGS_LATER.records[3], theme, volume)
    )

    outcome = await target.put_dataset(pool, latest, delta=True)

    assert outcome == DatasetOutcome(
        IDENTITY, "settings", "conflict", sync_count=10, written=1, conflicts=("theme-preference",)
    )
    listed = await device.pull(LastSyncCount=9)
    assert listed == page([wire(replace(volume, sync_count=10))], 10, by="laptop")


async def test_a_dataset_the_source_deleted_is_deleted_here_with_a_marker(
    target: ImportTarget, pool: str, device: Device, boto: Boto
) -> None:
    await target.put_dataset(pool, SETTINGS)

    outcome = await target.delete_dataset(pool, IDENTITY, "settings", delta=True)

    assert outcome == DatasetOutcome(IDENTITY, "settings", "updated", sync_count=8)
    assert await device.pull(LastSyncCount=7) == empty_page(
        8, DatasetDeletedAfterRequestedSyncCount=True, LastModifiedBy="tablet"
    )
    assert await target.list_dataset_names(pool, IDENTITY) == []
    assert (await usage(boto))["IdentityUsage"]["DataStorage"] == 0
    again = await target.delete_dataset(pool, IDENTITY, "settings", delta=True)
    assert again == DatasetOutcome(IDENTITY, "settings", "unchanged", sync_count=8)


async def test_a_deleted_dataset_changed_here_since_the_import_is_kept(
    target: ImportTarget, pool: str, device: Device
) -> None:
    await target.put_dataset(pool, SETTINGS)
    await device.push(put("volume-preference", "plaintext-quiet"))

    outcome = await target.delete_dataset(pool, IDENTITY, "settings", delta=True)

    assert outcome == DatasetOutcome(IDENTITY, "settings", "conflict", sync_count=8, conflicts=("volume-preference",))
    assert await target.list_dataset_names(pool, IDENTITY) == ["settings"]


async def test_a_dataset_the_source_makes_again_after_a_deletion_is_imported_afresh(
    target: ImportTarget, pool: str, device: Device
) -> None:
    await target.put_dataset(pool, SETTINGS)
    await target.delete_dataset(pool, IDENTITY, "settings", delta=True)  # here: a marker at 8
    again = replace(SETTINGS_LATER, created_ms=1_659_000_000_000)  # at the source: 9

    outcome = await target.put_dataset(pool, again, delta=True)

    assert outcome == DatasetOutcome(IDENTITY, "settings", "updated", sync_count=9, written=5)
    assert await device.pull(LastSyncCount=0) == listing(again)


async def test_a_dataset_devices_deleted_here_since_the_import_is_a_conflict(
    target: ImportTarget, pool: str, device: Device
) -> None:
    await target.put_dataset(pool, SETTINGS)
    await device.delete()  # here: a marker at 8

    outcome = await target.put_dataset(pool, SETTINGS_LATER, delta=True)

    changed = ("font-preference", "theme-preference", "volume-preference")
    assert outcome == DatasetOutcome(IDENTITY, "settings", "conflict", sync_count=8, conflicts=changed)
    assert await target.list_dataset_names(pool, IDENTITY) == []


async def test_a_dataset_devices_made_and_deleted_here_below_the_source_count_is_imported_exactly(
    target: ImportTarget, pool: str, device: Device
) -> None:
    await device.push(put("scratch", "plaintext-scratch"))
    await device.delete()  # here: a marker at 2

    outcome = await target.put_dataset(pool, SETTINGS)

    assert outcome == DatasetOutcome(IDENTITY, "settings", "imported", sync_count=7, written=4)
    assert await device.pull(LastSyncCount=0) == listing(SETTINGS)


async def test_a_dataset_devices_deleted_here_at_the_source_count_or_above_is_imported_after_the_marker(
    target: ImportTarget, pool: str, device: Device
) -> None:
    for count in range(7):
        await device.push(put("scratch", f"plaintext-{count}", count))
    await device.delete()  # here: a marker at 8, above the source's 7

    outcome = await target.put_dataset(pool, SETTINGS)

    assert outcome == DatasetOutcome(IDENTITY, "settings", "imported", sync_count=9, written=4)
    renumbered = [replace(r, sync_count=9) for r in SETTINGS.records]  # one new change: a device at 8 pulls it all
    assert await device.pull(LastSyncCount=8) == listing(replace(SETTINGS, sync_count=9, records=tuple(renumbered)))


async def test_a_source_whose_sync_count_went_down_is_a_conflict_left_alone(
    target: ImportTarget, pool: str, redis_client: aioredis.Redis
) -> None:
    await target.put_dataset(pool, SETTINGS_LATER)
    before = await redis_state(redis_client)

    outcome = await target.put_dataset(pool, SETTINGS, delta=True)

    assert outcome == DatasetOutcome(IDENTITY, "settings", "conflict", sync_count=9)
    assert await redis_state(redis_client) == before


async def test_read_dataset_gives_what_was_imported_in_the_source_shape(target: ImportTarget, pool: str) -> None:
    await target.put_dataset(pool, SETTINGS)

    assert await target.read_dataset(pool, IDENTITY, "settings") == SETTINGS
    assert await target.read_dataset(pool, IDENTITY, "never-written") is None


async def test_a_dataset_over_this_deployments_limits_is_refused_whole(
    services: Services, pool: str, redis_client: aioredis.Redis
) -> None:
    small = importer(services, limits=Limits(max_datasets=1, max_records=2, max_bytes=10_000, max_value_bytes=100))
    before = await redis_state(redis_client)

    with pytest.raises(LimitExceededError, match="holds 3 records; this deployment's limit is 2"):
        await small.put_dataset(pool, SETTINGS)
    assert await redis_state(redis_client) == before
    await small.put_dataset(pool, replace(SETTINGS, name="first", records=SETTINGS.records[:2]))
    with pytest.raises(LimitExceededError, match="at most 1 datasets"):
        await small.put_dataset(pool, replace(SETTINGS, name="second", records=SETTINGS.records[:1]))
    assert await small.list_dataset_names(pool, IDENTITY) == ["first"]


# --- identities ------------------------------------------------------------------------------------------------------


async def test_an_imported_identity_keeps_its_id_dates_and_developer_login(
    target: ImportTarget, pool: str, boto: Boto
) -> None:
    source = SourceIdentity(IDENTITY, 1_600_000_000_000, 1_650_000_000_500, (DEVELOPER,), ((DEVELOPER, "user-1"),))

    await target.put_identity(pool, source)

    assert await call(boto.identity, "describe_identity", IdentityId=IDENTITY) == {
        "IdentityId": IDENTITY,
        "Logins": [DEVELOPER],
        "CreationDate": date(1_600_000_000_000),
        "LastModifiedDate": date(1_650_000_000_500),
    }
    token = await call(
        boto.identity, "get_open_id_token_for_developer_identity", IdentityPoolId=pool, Logins={DEVELOPER: "user-1"}
    )
    assert token["IdentityId"] == IDENTITY


async def test_importing_an_identity_again_writes_nothing(
    target: ImportTarget, pool: str, redis_client: aioredis.Redis
) -> None:
    source = SourceIdentity(IDENTITY, 1_600_000_000_000, 1_600_000_000_000, (DEVELOPER,), ((DEVELOPER, "user-1"),))
    await target.put_identity(pool, source)
    before = await redis_state(redis_client)

    await target.put_identity(pool, source)

    assert await redis_state(redis_client) == before


async def test_an_imported_guest_stays_a_guest(target: ImportTarget, pool: str, boto: Boto, devices: Devices) -> None:
    await target.put_identity(pool, SourceIdentity(IDENTITY, 1_600_000_000_000, 1_600_000_000_000))

    described = await call(boto.identity, "describe_identity", IdentityId=IDENTITY)
    assert described["Logins"] == []
    credentials = await call(devices.identity, "get_credentials_for_identity", IdentityId=IDENTITY)
    assert credentials["IdentityId"] == IDENTITY


async def test_a_provider_whose_subject_a_later_import_knows_is_linked_then(
    target: ImportTarget, pool: str, boto: Boto
) -> None:
    await target.put_identity(pool, SourceIdentity(IDENTITY, 1, 1, (DEVELOPER,)))

    await target.put_identity(pool, SourceIdentity(IDENTITY, 1, 2, (DEVELOPER,), ((DEVELOPER, "user-1"),)))

    looked_up = await call(boto.identity, "lookup_developer_identity", IdentityPoolId=pool, IdentityId=IDENTITY)
    assert looked_up == {"IdentityId": IDENTITY, "DeveloperUserIdentifierList": ["user-1"]}
    described = await call(boto.identity, "describe_identity", IdentityId=IDENTITY)
    assert (described["Logins"], described["LastModifiedDate"]) == ([DEVELOPER], date(2))


async def test_a_login_linked_to_another_identity_is_a_conflict(target: ImportTarget, pool: str, boto: Boto) -> None:
    await target.put_identity(pool, SourceIdentity(IDENTITY, 1, 1, (DEVELOPER,), ((DEVELOPER, "user-1"),)))

    with pytest.raises(ResourceConflictError, match=f"'{DEVELOPER}' with subject 'user-1' is already linked to "):
        await target.put_identity(pool, SourceIdentity(OTHER_IDENTITY, 1, 1, (DEVELOPER,), ((DEVELOPER, "user-1"),)))

    listed = await call(boto.identity, "list_identities", IdentityPoolId=pool, MaxResults=10)
    assert [identity["IdentityId"] for identity in listed["Identities"]] == [IDENTITY]


async def test_a_provider_without_a_known_subject_keeps_the_identity_signed_in_and_closed(
    target: ImportTarget, pool: str, boto: Boto, devices: Devices
) -> None:
    await target.put_identity(
        pool, SourceIdentity(IDENTITY, 1_600_000_000_000, 1_600_000_000_000, ("graph.facebook.com",))
    )

    described = await call(boto.identity, "describe_identity", IdentityId=IDENTITY)
    assert described["Logins"] == ["graph.facebook.com"]
    guest = await refusal(devices.identity, "get_credentials_for_identity", IdentityId=IDENTITY)
    assert guest == ("NotAuthorizedException", 400)
    assert await refusal(devices.identity, "get_open_id_token", IdentityId=IDENTITY) == guest
    developer = await call(
        boto.identity, "get_open_id_token_for_developer_identity", IdentityPoolId=pool, Logins={DEVELOPER: "user-9"}
    )
    assert developer["IdentityId"] != IDENTITY


# --- the pool ---------------------------------------------------------------------------------------------------------


async def test_an_imported_pool_keeps_its_id_settings_and_mapped_events(target: ImportTarget, boto: Boto) -> None:
    source = SourcePool(POOL, DESCRIPTION, SYNC_CONFIGURATION, {"SyncTrigger": LAMBDA})

    assert await target.put_pool(source, triggers={LAMBDA: "audit"}) == POOL

    assert body(await call(boto.identity, "describe_identity_pool", IdentityPoolId=POOL)) == DESCRIPTION
    configuration = await call(boto.sync, "get_identity_pool_configuration", IdentityPoolId=POOL)
    assert configuration == {"IdentityPoolId": POOL, **SYNC_CONFIGURATION}
    assert await call(boto.sync, "get_cognito_events", IdentityPoolId=POOL) == {"Events": {"SyncTrigger": "audit"}}


async def test_unmapped_lambda_functions_are_refused_before_anything_is_written(
    target: ImportTarget, redis_client: aioredis.Redis
) -> None:
    before = await redis_state(redis_client)

    with pytest.raises(UnmappedTriggersError) as refused:
        await target.put_pool(SourcePool(POOL, DESCRIPTION, SYNC_CONFIGURATION, {"SyncTrigger": LAMBDA}))

    assert refused.value.arns == (LAMBDA,)
    assert await redis_state(redis_client) == before


async def test_a_mapped_trigger_must_be_registered_here_when_a_registry_is_given(services: Services) -> None:
    checking = importer(services, registry=services.triggers)

    with pytest.raises(InvalidParameterError, match="no trigger named 'audit' is registered"):
        await checking.put_pool(
            SourcePool(POOL, DESCRIPTION, events={"SyncTrigger": LAMBDA}), triggers={LAMBDA: "audit"}
        )


async def test_a_pool_imported_into_an_existing_one_takes_the_source_settings(target: ImportTarget, boto: Boto) -> None:
    existing = await boto.new_pool()

    assert await target.put_pool(SourcePool(POOL, DESCRIPTION), into=existing) == existing

    described = body(await call(boto.identity, "describe_identity_pool", IdentityPoolId=existing))
    assert described == {**DESCRIPTION, "IdentityPoolId": existing}
