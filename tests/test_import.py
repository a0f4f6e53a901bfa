"""`syncsvc import`, end to end: a source syncsvc deployment (its own process and redis-server, standing in for a live
Cognito Sync) filled through the public APIs, imported into this test's deployment by the command an operator runs,
then verified; devices holding the state they had from the source continue against the destination; the cut-over's
delta pass; a dry run; a kill -9 in the middle of an import.

The source (tests/import_source.py) is started and filled once for the module; the tests that change a source pool
make a small pool of their own, so the big one stays as :func:`populate` made it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncsvc.client import SyncClient, TokenProvider
from syncsvc.migration.run import Plan, run_id
from syncsvc.store.connection import RedisClient
from syncsvc.store.import_progress import ImportCursor, RedisImportProgress
from syncsvc.store.instances import INSTANCES
from tests.conftest import REGION, Boto, serving
from tests.devices import APP_CLIENT, DEVELOPER_PROVIDER, LOGIN, identity_settings
from tests.import_source import (
    DESTINATION_TRIGGER,
    DESTINATION_TRIGGERS,
    SOURCE_TRIGGER,
    Finished,
    Population,
    Source,
    identity_sync_client,
    import_command,
    new_developer_user,
    new_guest,
    new_oidc_user,
    populate,
    source_deployment,
    start_import,
    unsigned_identity_client,
    write_file,
)
from tests.oidc_provider import TestIdentityProvider

GUESTS, DEVELOPER_USERS, OIDC_USERS, MERGES = 110, 90, 40, 10


@dataclass
class Destination:
    """This test's deployment: its Redis (flushed), a server on it, developer clients."""

    endpoint: str
    boto: Boto
    redis: RedisClient
    redis_url: str


@pytest.fixture(scope="module")
async def module_idp() -> AsyncIterator[TestIdentityProvider]:
    async with TestIdentityProvider() as idp:
        yield idp


@pytest.fixture(scope="module")
async def source(tmp_path_factory: pytest.TempPathFactory, module_idp: TestIdentityProvider) -> AsyncIterator[Source]:
    async with source_deployment(tmp_path_factory.mktemp("import-source"), module_idp) as deployment:
        yield deployment


@pytest.fixture(scope="module")
async def population(source: Source, module_idp: TestIdentityProvider) -> Population:
    """The big source pool, left as it was made."""
    return await populate(
        source, module_idp, guests=GUESTS, developer_users=DEVELOPER_USERS, oidc_users=OIDC_USERS, merges=MERGES
    )


@pytest.fixture
async def destination(
    redis_client: RedisClient, redis_url: str, module_idp: TestIdentityProvider
) -> AsyncIterator[Destination]:
    settings = identity_settings(redis_url, module_idp, triggers=DESTINATION_TRIGGERS)
    async with serving(settings) as endpoint:
        yield Destination(endpoint, Boto(endpoint), redis_client, redis_url)


# --- helpers --------------------------------------------------------------------------------------------------------


def expected_counts(made: Population) -> tuple[int, int]:
    """(live records, tombstones) of the population's datasets (see tests/import_source.fill; a merge copies the
    live records only)."""
    settings = sum(1 for _, name in made.datasets if name.split(".")[0] == "settings")
    scores = sum(1 for _, name in made.datasets if name.split(".")[0] == "scores")
    return 2 * settings + 2 * scores, settings - sum(1 for _, name in made.merged if name.startswith("settings."))


def count_of(finished: Finished, label: str, line: str = "datasets:") -> int:
    """The number before ``label`` in the summary line starting with ``line``."""
    found = re.search(rf"(\d+) {label}", finished.line(line))
    assert found is not None, finished.line(line)
    return int(found.group(1))


def differing(verified: Finished) -> set[tuple[str, str]]:
    """(identity, dataset) of every difference `import verify` printed."""
    return set(re.findall(r"difference: identity (\S+) dataset (\S+):", verified.out))


async def dataset_names(boto: Boto, pool: str, identity: str) -> set[str]:
    listed = await boto.call(boto.sync, "list_datasets", IdentityPoolId=pool, IdentityId=identity, MaxResults=64)
    return {dataset["DatasetName"] for dataset in listed["Datasets"]}


async def values(boto: Boto, pool: str, identity: str, dataset: str) -> dict[str, str | None]:
    listed = await boto.call(
        boto.sync, "list_records", IdentityPoolId=pool, IdentityId=identity, DatasetName=dataset, LastSyncCount=0
    )
    return {record["Key"]: record.get("Value") for record in listed["Records"]}


async def cursor_of(destination: Destination, source: Source, pool: str) -> ImportCursor:
    """The cursor `syncsvc import` keeps for a full pass of ``pool`` from ``source``."""
    run = run_id(f"{source.endpoint}|{REGION}", pool, Plan())
    return await RedisImportProgress(destination.redis, run).cursor()


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


# --- the tests ------------------------------------------------------------------------------------------------------


async def test_import_keeps_everything_and_verify_finds_no_difference(
    source: Source, population: Population, destination: Destination, tmp_path: Path
) -> None:
    pool = population.pool_id
    logins = write_file(tmp_path, "logins.csv", population.logins_csv())
    done = await import_command(destination.redis_url, source, pool, "--developer-users", "--logins-file", logins)
    assert (done.code, done.err) == (0, ""), done.out
    identities = len(population.identities)
    with_subjects = len(set(population.developer_users.values())) + OIDC_USERS
    records, tombstones = expected_counts(population)
    assert done.line("identities:") == (
        f"identities: {identities} ({with_subjects} with login subjects, 0 unmapped: a login whose subject the "
        "source does not give; 0 refused)"
    )
    assert done.line("datasets:") == (
        f"datasets: {len(population.datasets)} imported, 0 unchanged, 0 updated, 0 conflicts, 0 refused, "
        "0 deleted, 0 skipped (not modified since), 0 kept (only at the destination)"
    )
    assert done.line("records:") == f"records: {records} (tombstones {tombstones})"

    verified = await import_command(destination.redis_url, source, pool, "verify")
    assert (verified.code, verified.err) == (0, ""), verified.out
    assert verified.line("syncsvc import verify:") == (
        f"syncsvc import verify: no difference ({identities} identities, {len(population.datasets)} datasets, "
        f"{records + tombstones} records compared)"
    )

    # What a developer sees at the destination: the pool's settings, every identity, merged and deleted datasets.
    here, there = destination.boto, Boto(source.endpoint)
    described = await here.call(here.identity, "describe_identity_pool", IdentityPoolId=pool)
    original = await there.call(there.identity, "describe_identity_pool", IdentityPoolId=pool)
    assert {k: v for k, v in described.items() if k != "ResponseMetadata"} == {
        k: v for k, v in original.items() if k != "ResponseMetadata"
    }
    kept, merged_name = next(iter(sorted(population.merged)))
    listed = await here.call(
        here.sync, "list_records", IdentityPoolId=pool, IdentityId=kept, DatasetName=merged_name.split(".")[0]
    )
    assert merged_name in listed["MergedDatasetNames"]
    for identity, name in population.deleted:
        assert name not in await dataset_names(here, pool, identity)

    again = await import_command(destination.redis_url, source, pool)
    assert again.code == 0
    assert "nothing to do" in again.out
    rehearsed = await import_command(destination.redis_url, source, pool, "--dry-run")
    assert rehearsed.code == 0, rehearsed.err
    assert count_of(rehearsed, "unchanged") == len(population.datasets)
    assert count_of(rehearsed, "would import") == 0


async def test_devices_continue_against_the_destination(
    source: Source, module_idp: TestIdentityProvider, destination: Destination, tmp_path: Path
) -> None:
    made = await populate(source, module_idp, guests=3, developer_users=2, oidc_users=2, merges=0)
    pool = made.pool_id
    devices_there = unsigned_identity_client(source.endpoint)
    # A phone on boto3 (a guest): synced twice, then another device wrote; it holds lastSyncCount 2.
    phone = await new_guest(source, pool)
    credentials = (await source.call(devices_there, "get_credentials_for_identity", IdentityId=phone))["Credentials"]
    phone_there = identity_sync_client(source.endpoint, credentials)
    await source.write(pool, phone, "notes", {"a": "1", "b": "2"}, device="phone", client=phone_there)
    await source.write(pool, phone, "notes", {"a": "1b"}, device="phone", client=phone_there)
    await source.write(pool, phone, "notes", {"b": "2-other"}, device="other")
    # The reference client of a guest: synced, another device wrote, then an offline edit.
    state = tmp_path / "guest.json"
    guest_client = await SyncClient.guest(source.endpoint, pool, state_path=state)
    guest_client.put("prefs", "color", "red")
    await guest_client.synchronize("prefs")
    guest_client.put("prefs", "color", "blue")
    await guest_client.synchronize("prefs")
    await source.write(pool, guest_client.identity_id, "prefs", {"size": "L"}, device="tablet")
    guest_client.put("prefs", "font", "serif")
    await guest_client.close()
    # The reference client of a developer-authenticated user, fully synced, then an offline edit.
    developer_state = tmp_path / "developer.json"
    developer_id = await new_developer_user(source, pool, "mover")
    there = Boto(source.endpoint)
    async with SyncClient(
        source.endpoint, pool, developer_id, developer_tokens(there, pool, "mover"), state_path=developer_state
    ) as developer_client:
        developer_client.put("game", "level", "7")
        await developer_client.synchronize("game")
        developer_client.put("game", "level", "8")
    # An OIDC user's device on boto3, fully synced.
    oidc_id = await new_oidc_user(source, pool, module_idp, "mover-oidc")
    await source.write(pool, oidc_id, "profile", {"name": "Ada"}, device="oidc-phone")
    made.oidc_subjects["mover-oidc"] = oidc_id

    logins = write_file(tmp_path, "logins.csv", made.logins_csv())
    done = await import_command(destination.redis_url, source, pool, "--developer-users", "--logins-file", logins)
    assert (done.code, done.err) == (0, ""), done.out

    # The boto3 phone: new credentials from the destination, its next pull is exactly the change it missed, and its
    # write with the sync count it holds goes through.
    devices_here = unsigned_identity_client(destination.endpoint)
    credentials = (await source.call(devices_here, "get_credentials_for_identity", IdentityId=phone))["Credentials"]
    phone_sync = identity_sync_client(destination.endpoint, credentials)
    pulled = await asyncio.to_thread(
        phone_sync.list_records, IdentityPoolId=pool, IdentityId=phone, DatasetName="notes", LastSyncCount=2
    )
    assert [(r["Key"], r.get("Value"), r["SyncCount"]) for r in pulled["Records"]] == [("b", "2-other", 3)]
    assert pulled["DatasetSyncCount"] == 3
    pushed = await asyncio.to_thread(
        phone_sync.update_records,
        IdentityPoolId=pool,
        IdentityId=phone,
        DatasetName="notes",
        SyncSessionToken=pulled["SyncSessionToken"],
        RecordPatches=[{"Op": "replace", "Key": "a", "Value": "1c", "SyncCount": 2}],
    )
    assert [(r["Key"], r["Value"], r["SyncCount"]) for r in pushed["Records"]] == [("a", "1c", 4)]

    # The reference client of the guest, with its state file from the source: pulls the one change, pushes its
    # offline edit, no conflict.
    moved = await SyncClient.guest(destination.endpoint, pool, state_path=state)
    try:
        result = await moved.synchronize("prefs")
        assert [(r.key, r.value) for r in result.pulled] == [("size", "L")]
        assert [(r.key, r.value) for r in result.pushed] == [("font", "serif")]
        assert (result.conflicts, result.attempts) == ([], 1)
        assert moved.values("prefs") == {"color": "blue", "size": "L", "font": "serif"}
    finally:
        await moved.close()

    # The developer user signs in at the destination and gets the identity it had; its offline edit goes through.
    here = destination.boto
    signed_in = await here.call(
        here.identity,
        "get_open_id_token_for_developer_identity",
        IdentityPoolId=pool,
        Logins={DEVELOPER_PROVIDER: "mover"},
    )
    assert signed_in["IdentityId"] == developer_id
    async with SyncClient(
        destination.endpoint, pool, developer_id, developer_tokens(here, pool, "mover"), state_path=developer_state
    ) as developer_client:
        result = await developer_client.synchronize("game")
        assert (result.pulled, [(r.key, r.value) for r in result.pushed], result.conflicts) == (
            [],
            [("level", "8")],
            [],
        )

    # The OIDC user signs in at the destination (its subject came from the logins file): same identity, and its
    # device's pull from the sync count it holds brings nothing new.
    token = module_idp.mint("mover-oidc", aud=APP_CLIENT)
    found = await source.call(devices_here, "get_id", IdentityPoolId=pool, Logins={LOGIN: token})
    assert found["IdentityId"] == oidc_id
    credentials = (
        await source.call(devices_here, "get_credentials_for_identity", IdentityId=oidc_id, Logins={LOGIN: token})
    )["Credentials"]
    pulled = await asyncio.to_thread(
        identity_sync_client(destination.endpoint, credentials).list_records,
        IdentityPoolId=pool,
        IdentityId=oidc_id,
        DatasetName="profile",
        LastSyncCount=1,
    )
    assert (pulled["Records"], pulled["DatasetSyncCount"]) == ([], 1)


async def test_delta_pass_brings_changes_and_reports_conflicts(
    source: Source, module_idp: TestIdentityProvider, destination: Destination
) -> None:
    made = await populate(source, module_idp, guests=6, developer_users=0, oidc_users=0, merges=0)
    pool = made.pool_id
    first = await import_command(destination.redis_url, source, pool)
    assert (first.code, first.err) == (0, ""), first.out
    changed, both, dropped, untouched, local = made.guests[:5]
    since = first.line("started:").split()[1]  # when the first pass began reading
    await source.write(pool, changed, "settings", {"theme": "delta"})
    await source.write(pool, both, "settings", {"lang": "fr"})
    await source.delete_dataset(pool, dropped, "scores")
    newcomer = await new_guest(source, pool)
    await source.write(pool, newcomer, "settings", {"theme": "new"})
    # At the destination, after the switch: a device changes a record the source changed too, another creates a
    # dataset the source never had.
    here = destination.boto
    listed = await here.call(here.sync, "list_records", IdentityPoolId=pool, IdentityId=both, DatasetName="settings")
    lang = next(record for record in listed["Records"] if record["Key"] == "lang")
    await here.call(
        here.sync,
        "update_records",
        IdentityPoolId=pool,
        IdentityId=both,
        DatasetName="settings",
        SyncSessionToken=listed["SyncSessionToken"],
        RecordPatches=[{"Op": "replace", "Key": "lang", "Value": "de", "SyncCount": lang["SyncCount"]}],
    )
    listed = await here.call(here.sync, "list_records", IdentityPoolId=pool, IdentityId=local, DatasetName="fresh")
    await here.call(
        here.sync,
        "update_records",
        IdentityPoolId=pool,
        IdentityId=local,
        DatasetName="fresh",
        SyncSessionToken=listed["SyncSessionToken"],
        RecordPatches=[{"Op": "replace", "Key": "k", "Value": "v", "SyncCount": 0}],
    )

    delta = await import_command(destination.redis_url, source, pool, "--since", since)
    assert delta.code == 3, (delta.out, delta.err)
    assert f"conflict: identity {both} dataset settings keys lang" in delta.out
    assert delta.line("datasets:") == (
        f"datasets: 1 imported, 0 unchanged, 1 updated, 1 conflicts, 0 refused, 1 deleted, "
        f"{len(made.datasets) - 3} skipped (not modified since), 1 kept (only at the destination)"
    )
    assert (await values(here, pool, changed, "settings"))["theme"] == "delta"
    assert (await values(here, pool, both, "settings"))["lang"] == "de"
    assert "scores" not in await dataset_names(here, pool, dropped)
    assert await values(here, pool, newcomer, "settings") == {"theme": "new"}
    assert await values(here, pool, local, "fresh") == {"k": "v"}
    assert await dataset_names(here, pool, untouched) == await dataset_names(Boto(source.endpoint), pool, untouched)

    verified = await import_command(destination.redis_url, source, pool, "verify")
    assert verified.code == 1
    assert differing(verified) == {(both, "settings"), (local, "fresh")}


async def test_dry_run_writes_nothing(source: Source, population: Population, destination: Destination) -> None:
    async def keys() -> list[bytes | str]:  # but the serving instance's own report (syncsvc.store.instances)
        return sorted(key for key in await destination.redis.keys("*") if key not in (INSTANCES, INSTANCES.encode()))

    before = await keys()
    done = await import_command(destination.redis_url, source, population.pool_id, "--dry-run")
    assert (done.code, done.err) == (0, ""), done.out
    assert done.line("syncsvc import:").startswith("syncsvc import: dry run (nothing written)")
    assert count_of(done, "would import") == len(population.datasets)
    assert await keys() == before
    pools = await destination.boto.call(destination.boto.identity, "list_identity_pools", MaxResults=60)
    assert pools["IdentityPools"] == []


async def test_kill_9_mid_import_then_the_rerun_finishes_without_redoing(
    source: Source, population: Population, destination: Destination
) -> None:
    pool = population.pool_id
    process = await start_import(destination.redis_url, source, pool, "--concurrency", "1")
    try:
        async with asyncio.timeout(30):
            while (await cursor_of(destination, source, pool)).counters.get("imported", 0) < 20:
                assert process.returncode is None, "the import ended before it could be killed"
                await asyncio.sleep(0.01)
    finally:
        process.kill()
        await process.wait()
    cut = await cursor_of(destination, source, pool)
    assert cut.finished_ms == 0

    done = await import_command(destination.redis_url, source, pool)
    assert (done.code, done.err) == (0, ""), done.out
    total = len(population.datasets)
    resumed = re.search(r"resumed: (\d+) identities", done.out)
    assert resumed is not None, done.out
    assert int(resumed.group(1)) > 0
    assert count_of(done, "imported") <= total - 20
    final = await cursor_of(destination, source, pool)
    assert final.finished_ms > 0
    # Every dataset went in once: by the killed run or this one (those of identities in flight at the kill were
    # found already there: "unchanged"), none twice.
    assert final.counters.get("imported", 0) + final.counters.get("unchanged", 0) == total
    assert final.counters.get("unchanged", 0) <= 4  # the datasets of the one identity in flight (--concurrency 1)
    verified = await import_command(destination.redis_url, source, pool, "verify")
    assert (verified.code, verified.err) == (0, ""), verified.out


async def test_pool_settings_and_events_come_along(source: Source, destination: Destination, tmp_path: Path) -> None:
    made_pool = await source.call(
        source.identity,
        "create_identity_pool",
        IdentityPoolName="with-events",
        AllowUnauthenticatedIdentities=False,
        DeveloperProviderName=DEVELOPER_PROVIDER,
    )
    pool = made_pool["IdentityPoolId"]
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:{SOURCE_TRIGGER}"
    await source.call(source.sync, "set_cognito_events", IdentityPoolId=pool, Events={"SyncTrigger": arn})
    streams = {"StreamName": "moving-stream", "StreamingStatus": "ENABLED"}
    await source.call(source.sync, "set_identity_pool_configuration", IdentityPoolId=pool, CognitoStreams=streams)
    events_there = (await source.call(source.sync, "get_cognito_events", IdentityPoolId=pool))["Events"]

    unmapped = await import_command(destination.redis_url, source, pool)
    assert unmapped.code == 1
    assert unmapped.err.startswith("syncsvc import: the destination: InvalidParameterException: No trigger is mapped")
    assert len(unmapped.err.splitlines()) == 1

    triggers = write_file(tmp_path, "triggers.json", json.dumps({events_there["SyncTrigger"]: DESTINATION_TRIGGER}))
    done = await import_command(destination.redis_url, source, pool, "--triggers-file", triggers)
    assert (done.code, done.err) == (0, ""), done.out
    here = destination.boto
    assert (await here.call(here.sync, "get_cognito_events", IdentityPoolId=pool))["Events"] == {
        "SyncTrigger": DESTINATION_TRIGGER
    }
    configuration = await here.call(here.sync, "get_identity_pool_configuration", IdentityPoolId=pool)
    assert {k: configuration["CognitoStreams"][k] for k in streams} == streams
    described = await here.call(here.identity, "describe_identity_pool", IdentityPoolId=pool)
    assert (described["IdentityPoolName"], described["AllowUnauthenticatedIdentities"]) == ("with-events", False)


async def test_an_unknown_source_pool_is_one_line_and_exit_1(source: Source, destination: Destination) -> None:
    missing = f"{REGION}:00000000-0000-4000-8000-000000000000"
    done = await import_command(destination.redis_url, source, missing)
    assert done.code == 1
    assert done.err.splitlines() == [
        f"syncsvc import: the source: DescribeIdentityPool: ResourceNotFoundException: IdentityPool '{missing}' "
        "not found."
    ]


async def test_a_dataset_the_destination_refuses_is_reported_and_the_rest_imported(
    source: Source, module_idp: TestIdentityProvider, destination: Destination
) -> None:
    made = await populate(source, module_idp, guests=4, developer_users=0, oidc_users=0, merges=0)
    pool, big = made.pool_id, made.guests[1]
    await source.write(pool, big, "big", {"a": "1", "b": "2", "c": "3"})
    limit = {"SYNCSVC_MAX_RECORDS_PER_DATASET": "2"}
    done = await import_command(destination.redis_url, source, pool, settings=limit)
    assert (done.code, done.err) == (3, ""), done.out
    assert count_of(done, "imported") == len(made.datasets)
    assert count_of(done, "refused") == 1
    assert done.line("conflicts:") == "conflicts: 0; refused by the destination: 1"
    assert done.line(f"refused: identity {big} dataset big:").startswith(
        f"refused: identity {big} dataset big: LimitExceededException:"
    )
    verified = await import_command(destination.redis_url, source, pool, "verify")
    assert verified.code == 1
    assert differing(verified) == {(big, "big")}


async def test_a_listing_position_the_source_no_longer_accepts_restarts_the_listing(
    source: Source, module_idp: TestIdentityProvider, destination: Destination
) -> None:
    made = await populate(source, module_idp, guests=5, developer_users=0, oidc_users=0, merges=0)
    pool = made.pool_id
    # A run stopped in its identity phase, long enough for the source's NextToken to expire.
    progress = RedisImportProgress(destination.redis, run_id(f"{source.endpoint}|{REGION}", pool, Plan()))
    await progress.begin(now_ms=1, about="")
    await progress.listed([], "expired-token", {}, [])
    done = await import_command(destination.redis_url, source, pool)
    assert (done.code, done.err) == (0, ""), done.out
    assert "the source refused the saved listing position" in done.out
    assert count_of(done, "imported") == len(made.datasets)
    verified = await import_command(destination.redis_url, source, pool, "verify")
    assert (verified.code, verified.err) == (0, ""), verified.out
