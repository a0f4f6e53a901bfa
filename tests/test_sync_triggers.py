"""Sync triggers and conflict handlers on UpdateRecords, end to end: unmodified boto3 devices with guest identity
credentials against a real server and Redis. (The event algebra is pinned by test_trigger_events.py, the worker
processes by test_trigger_process.py.)"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import boto3
import botocore
import orjson
import pytest
from aiohttp.test_utils import TestServer
from botocore.config import Config
from botocore.exceptions import ClientError
from redis.asyncio import Redis

from syncsvc.api.app import create_app
from syncsvc.config import Settings
from syncsvc.triggers import LambdaContext, Rejected, TriggerRegistry
from tests import trigger_examples
from tests.conftest import REGION, Boto, free_port, make_settings
from tests.streams import create_topic, read_topic, streaming_pool

# --- what the handlers under test do ----------------------------------------------------------------------------------


@dataclass
class Script:
    """What the in-process handlers record and wait on; reset for every test."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    #: Awaited by ``racing`` before it answers, on each of its calls (e.g. a concurrent write).
    race: Callable[[], Awaitable[None]] | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set by ``blocking`` once it is running, in its thread.
    blocked: threading.Event = field(default_factory=threading.Event)
    #: ``blocking`` answers once this is set (by the test, or after the test).
    release: threading.Event = field(default_factory=threading.Event)


SCRIPT = Script()

#: How long ``blocking`` waits to be released before it gives up (and fails the write): a bound for a test whose
#: handler blocks the event loop, which could then never release it.
BLOCKING_SECONDS = 10


async def uppercase(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    SCRIPT.calls.append(copy.deepcopy(event))
    return await trigger_examples.uppercase(event, context)  # type: ignore[arg-type,return-value]


def stamp(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Keeps a record counting the dataset's other records, removes "secret", drops a written "draft"."""
    records = event["datasetRecords"]
    records.pop("draft", None)
    if "secret" in records:
        records["secret"] = {"oldValue": records["secret"]["oldValue"], "newValue": None, "op": "remove"}
    records["count"] = {"newValue": str(len(records.keys() - {"count"})), "op": "replace"}
    return event


def reject(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    raise Rejected("theme must be light or dark")


def change_identity(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return {**event, "identityId": "us-east-1:00000000-0000-0000-0000-000000000000"}


def boom(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    raise ValueError("the rules database is down")


def blocking(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Blocks its thread until the test releases it, as a handler calling a slow service synchronously does."""
    release = SCRIPT.release
    SCRIPT.blocked.set()
    if not release.wait(BLOCKING_SECONDS):
        raise TimeoutError(f"not released within {BLOCKING_SECONDS} s")
    return event


async def gated(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    SCRIPT.calls.append(copy.deepcopy(event))
    await SCRIPT.gate.wait()
    return event


async def racing(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    SCRIPT.calls.append(copy.deepcopy(event))
    if SCRIPT.race is not None:
        await SCRIPT.race()
    return event


def grow(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Adds records big or many enough to break the limits of the test server (see ``limited``)."""
    records = event["datasetRecords"]
    if "many" in records:
        records.update({f"extra{i}": {"newValue": "x", "op": "replace"} for i in range(5)})
    else:
        records["big"] = {"newValue": "x" * 2000, "op": "replace"}
    return event


def merge(event: dict[str, Any], context: LambdaContext) -> dict[str, str | None]:
    """Conflict handler: stores both versions joined, so the test can see it was given both."""
    SCRIPT.calls.append(copy.deepcopy(event))
    return {
        key: f"{conflict['stored']['value']}+{conflict['incoming']['value']}"
        for key, conflict in event["conflicts"].items()
    }


def refuse_conflicts(event: dict[str, Any], context: LambdaContext) -> dict[str, str | None]:
    raise Rejected("ask the user")


def registry() -> TriggerRegistry:
    triggers = TriggerRegistry()
    triggers.register("uppercase", uppercase)
    triggers.register("lambda", trigger_examples.lambda_handler)
    triggers.register("stamp", stamp)
    triggers.register("refuse", reject)
    triggers.register("change-identity", change_identity)
    triggers.register("boom", boom)
    triggers.register("slow", blocking, timeout_seconds=0.3)
    triggers.register("blocking", blocking, timeout_seconds=2 * BLOCKING_SECONDS)
    triggers.register("gated", gated, max_concurrency=1)
    triggers.register("racing", racing, isolation="inline")
    triggers.register("grow", grow)
    triggers.register("merge", merge)
    triggers.register("refuse-conflicts", refuse_conflicts)
    triggers.register("misbehave", trigger_examples.misbehave, isolation="process", timeout_seconds=1)
    return triggers


# --- fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def script() -> Iterator[Script]:
    SCRIPT.calls.clear()
    SCRIPT.race = None
    SCRIPT.gate = asyncio.Event()
    SCRIPT.blocked = threading.Event()
    SCRIPT.release = threading.Event()
    yield SCRIPT
    SCRIPT.release.set()  # a handler still blocked (one that timed out) returns: its thread ends


@pytest.fixture
async def server(settings: Settings, redis_client: Redis) -> AsyncIterator[TestServer]:
    test_server = TestServer(create_app(settings, triggers=registry()), host="127.0.0.1", port=free_port())
    await test_server.start_server()
    yield test_server
    await test_server.close()


class Device:
    """A device of one guest identity: a cognito-sync client signed with the identity's temporary credentials."""

    def __init__(self, endpoint: str, pool_id: str, identity_id: str, credentials: dict[str, Any]) -> None:
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=REGION,
        )
        config = Config(retries={"max_attempts": 1}, read_timeout=20)
        self.client = session.client("cognito-sync", endpoint_url=endpoint, config=config)
        self.names = {"IdentityPoolId": pool_id, "IdentityId": identity_id}

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = await asyncio.to_thread(getattr(self.client, operation), **self.names, **params)
        answer.pop("ResponseMetadata", None)
        return answer

    async def token(self, dataset: str = "settings") -> str:
        return str((await self.call("list_records", DatasetName=dataset))["SyncSessionToken"])

    async def write(self, values: dict[str, str | None], dataset: str = "settings", **counts: int) -> dict[str, Any]:
        """One sync: ListRecords then UpdateRecords of ``values`` (None removes), each key based on ``counts``."""
        return await self.call(
            "update_records",
            DatasetName=dataset,
            SyncSessionToken=await self.token(dataset),
            RecordPatches=[patch(key, value, counts.get(key, 0)) for key, value in values.items()],
        )

    async def refused(self, values: dict[str, str | None], dataset: str = "settings", **counts: int) -> tuple[Any, ...]:
        """(code, message, status) of a write that must fail."""
        with pytest.raises(ClientError) as caught:
            await self.write(values, dataset, **counts)
        error = caught.value.response
        return error["Error"]["Code"], error["Error"]["Message"], error["ResponseMetadata"]["HTTPStatusCode"]

    async def stored(self, dataset: str = "settings") -> dict[str, Any]:
        """key → (value, sync count) of every record, and the dataset's sync count under "@"."""
        answer = await self.call("list_records", DatasetName=dataset)
        found: dict[str, Any] = {r["Key"]: (r.get("Value"), r["SyncCount"]) for r in answer["Records"]}
        return {**found, "@": answer["DatasetSyncCount"]}


def patch(key: str, value: str | None, sync_count: int = 0, **extra: Any) -> dict[str, Any]:
    if value is None:
        return {"Op": "remove", "Key": key, "SyncCount": sync_count, **extra}
    return {"Op": "replace", "Key": key, "Value": value, "SyncCount": sync_count, **extra}


def written(answer: dict[str, Any]) -> list[tuple[str, str | None, int]]:
    return [(r["Key"], r.get("Value"), r["SyncCount"]) for r in answer["Records"]]


class Pool:
    """A pool whose Cognito Events the test sets, and guest devices in it."""

    def __init__(self, boto: Boto, endpoint: str, pool_id: str) -> None:
        self.boto, self.endpoint, self.id = boto, endpoint, pool_id
        config = Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1})
        self._unsigned = boto3.session.Session(region_name=REGION).client(
            "cognito-identity", endpoint_url=endpoint, config=config
        )

    async def events(self, **given: str) -> None:
        await self.boto.call(self.boto.sync, "set_cognito_events", IdentityPoolId=self.id, Events=given)

    async def device(self) -> Device:
        """A new guest identity's device."""
        get_id = self._unsigned.get_id
        identity = (await asyncio.to_thread(get_id, IdentityPoolId=self.id))["IdentityId"]
        credentials = await asyncio.to_thread(self._unsigned.get_credentials_for_identity, IdentityId=identity)
        return Device(self.endpoint, self.id, identity, dict(credentials["Credentials"]))

    async def developer_write(self, device: Device, values: dict[str, str], dataset: str = "settings") -> None:
        """A write with developer credentials to ``device``'s identity (no trigger runs for it by default)."""
        names = {**device.names, "DatasetName": dataset}
        listed = await self.boto.call(self.boto.sync, "list_records", **names)
        counts = {r["Key"]: r["SyncCount"] for r in listed["Records"]}
        await self.boto.call(
            self.boto.sync,
            "update_records",
            **names,
            SyncSessionToken=listed["SyncSessionToken"],
            RecordPatches=[patch(k, v, counts.get(k, 0)) for k, v in values.items()],
            DeviceId="admin-console",
        )


@pytest.fixture
async def pool(boto: Boto, endpoint: str) -> Pool:
    created = await boto.call(
        boto.identity, "create_identity_pool", IdentityPoolName="triggers", AllowUnauthenticatedIdentities=True
    )
    return Pool(boto, endpoint, created["IdentityPoolId"])


# --- what the trigger returns is what is stored and answered ----------------------------------------------------------


async def test_a_trigger_changes_the_value_stored_and_answered(pool: Pool, script: Script) -> None:
    await pool.events(SyncTrigger="uppercase")
    device = await pool.device()
    assert written(await device.write({"theme": "light"})) == [("theme", "LIGHT", 1)]
    assert await device.stored() == {"theme": ("LIGHT", 1), "@": 1}


async def test_a_trigger_sees_every_record_of_the_dataset_with_the_written_one_changed(
    pool: Pool, script: Script
) -> None:
    device = await pool.device()
    await device.write({"theme": "dark", "font": "serif", "gone": "x"})
    await device.write({"gone": None}, gone=1)
    await pool.events(SyncTrigger="uppercase")
    await device.write({"theme": "light"}, theme=1)
    assert [call["datasetRecords"] for call in script.calls] == [
        {
            "font": {"oldValue": "serif", "newValue": "serif", "op": "replace"},
            "theme": {"oldValue": "dark", "newValue": "light", "op": "replace"},
        }
    ]
    assert {k: v for k, v in script.calls[0].items() if k != "datasetRecords"} == {
        "version": 2,
        "eventType": "SyncTrigger",
        "region": REGION,
        "identityPoolId": pool.id,
        "identityId": device.names["IdentityId"],
        "datasetName": "settings",
    }


async def test_an_unmodified_lambda_handler_stores_the_write_as_sent(pool: Pool) -> None:
    await pool.events(SyncTrigger="arn:aws:lambda:us-east-1:123456789012:function:lambda")
    device = await pool.device()
    assert written(await device.write({"theme": "light", "font": "serif"})) == [
        ("theme", "light", 1),
        ("font", "serif", 1),
    ]


async def test_a_trigger_adds_removes_and_drops_records_in_one_commit(pool: Pool) -> None:
    device = await pool.device()
    await device.write({"secret": "hunter2", "theme": "dark"})
    await pool.events(SyncTrigger="stamp")
    answer = await device.write({"theme": "light", "draft": "unsaved"}, theme=1)
    assert written(answer) == [("theme", "light", 2), ("secret", None, 2), ("count", "2", 2)]
    assert await device.stored() == {"theme": ("light", 2), "secret": (None, 2), "count": ("2", 2), "@": 2}


async def test_a_write_the_trigger_drops_entirely_commits_nothing(pool: Pool) -> None:
    await pool.events(SyncTrigger="stamp")
    device = await pool.device()
    await device.write({"theme": "dark"})  # stores theme and count
    answer = await device.call(
        "update_records",
        DatasetName="settings",
        SyncSessionToken=await device.token(),
        RecordPatches=[patch("draft", "unsaved")],
    )
    # the trigger drops "draft" and counts the same 1 record: nothing changes, no new sync count
    assert (answer["Records"], await device.stored()) == ([], {"theme": ("dark", 1), "count": ("1", 1), "@": 1})


async def test_a_rejection_reaches_boto3_with_its_message_and_writes_nothing(pool: Pool) -> None:
    device = await pool.device()
    await device.write({"theme": "dark"})
    await pool.events(SyncTrigger="refuse")
    assert await device.refused({"theme": "blue"}, theme=1) == (
        "InvalidLambdaFunctionOutputException",
        "theme must be light or dark",
        400,
    )
    assert await device.stored() == {"theme": ("dark", 1), "@": 1}


async def test_an_answer_that_changes_another_field_is_refused_naming_it(pool: Pool) -> None:
    await pool.events(SyncTrigger="change-identity")
    device = await pool.device()
    assert await device.refused({"theme": "light"}) == (
        "InvalidLambdaFunctionOutputException",
        "Sync trigger 'change-identity' changed the event's 'identityId'; only datasetRecords may change",
        400,
    )
    assert await device.stored() == {"@": 0}


async def test_an_exception_is_refused_with_a_generic_message_and_logged_with_its_traceback(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    await pool.events(SyncTrigger="boom")
    device = await pool.device()
    with caplog.at_level(logging.ERROR, logger="syncsvc.triggers"):
        code, message, status = await device.refused({"theme": "light"})
    request = message.removeprefix("Sync trigger 'boom' failed (request ").removesuffix(")")
    assert (code, status, message) == (
        "InvalidLambdaFunctionOutputException",
        400,
        f"Sync trigger 'boom' failed (request {request})",
    )
    logged = [r.getMessage() for r in caplog.records if r.name == "syncsvc.triggers"]
    assert len(logged) == 1
    assert logged[0].startswith(f"trigger 'boom' failed (request {request}):\nTraceback")
    assert "ValueError: the rules database is down" in logged[0]
    assert await device.stored() == {"@": 0}


async def test_a_timeout_is_lambda_throttled_and_writes_nothing(pool: Pool) -> None:
    await pool.events(SyncTrigger="slow")
    device = await pool.device()
    assert await device.refused({"theme": "light"}) == (
        "LambdaThrottledException",
        "Sync trigger 'slow' did not answer within 0.3 s; retry the sync",
        429,
    )
    assert await device.stored() == {"@": 0}


async def test_calls_beyond_the_concurrency_limit_are_throttled_at_once(pool: Pool, script: Script) -> None:
    await pool.events(SyncTrigger="gated")
    first, second = await pool.device(), await pool.device()
    held = asyncio.create_task(first.write({"theme": "light"}))
    async with asyncio.timeout(10):
        while not script.calls:
            await asyncio.sleep(0.01)
    assert await second.refused({"theme": "dark"}) == (
        "LambdaThrottledException",
        "Sync trigger 'gated' is running its limit of 1 calls; retry the sync",
        429,
    )
    script.gate.set()
    assert written(await held) == [("theme", "light", 1)]
    assert written(await second.write({"theme": "dark"})) == [("theme", "dark", 1)]


async def test_a_blocking_sync_handler_does_not_stall_other_requests(pool: Pool, endpoint: str, script: Script) -> None:
    await pool.events(SyncTrigger="blocking")
    device, other = await pool.device(), await pool.device()
    token = await other.token()
    blocked = asyncio.create_task(device.write({"theme": "light"}))
    assert await asyncio.to_thread(script.blocked.wait, BLOCKING_SECONDS)
    # The handler blocks its thread until the test releases it. Had it blocked the event loop, nothing below would be
    # answered before it gave up, failing the write.
    statuses = []
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.get(f"{endpoint}/healthz") as response:
                statuses.append(response.status)
    listed = await other.call("list_records", DatasetName="settings", SyncSessionToken=token)
    assert (statuses, listed["DatasetSyncCount"], blocked.done()) == ([200] * 5, 0, False)
    script.release.set()
    assert written(await blocked) == [("theme", "light", 1)]


# --- process isolation ------------------------------------------------------------------------------------------------


async def test_a_process_handler_that_loops_forever_is_killed_and_the_server_keeps_serving(pool: Pool) -> None:
    await pool.events(SyncTrigger="misbehave")
    device = await pool.device()
    assert await device.refused({"theme": "loop"}) == (
        "LambdaThrottledException",
        "Sync trigger 'misbehave' did not answer within 1 s; retry the sync",
        429,
    )
    assert written(await device.write({"theme": "light"})) == [("theme", "LIGHT", 1)]


async def test_a_process_handler_that_ends_the_interpreter_fails_the_write_and_is_replaced(pool: Pool) -> None:
    await pool.events(SyncTrigger="misbehave")
    device = await pool.device()
    code, message, status = await device.refused({"theme": "exit"})
    assert (code, status, message.startswith("Sync trigger 'misbehave' failed (request ")) == (
        "InvalidLambdaFunctionOutputException",
        400,
        True,
    )
    assert written(await device.write({"theme": "light"})) == [("theme", "LIGHT", 1)]
    assert await device.stored() == {"theme": ("LIGHT", 1), "@": 1}


# --- concurrency, limits, who runs it ---------------------------------------------------------------------------------


async def test_a_change_made_while_the_trigger_runs_reruns_it_on_the_new_state(pool: Pool, script: Script) -> None:
    await pool.events(SyncTrigger="racing")
    device = await pool.device()

    async def admin_writes_once() -> None:
        script.race = None
        await pool.developer_write(device, {"plan": "pro"})

    script.race = admin_writes_once
    assert written(await device.write({"theme": "light"})) == [("theme", "light", 2)]
    assert [sorted(call["datasetRecords"]) for call in script.calls] == [["theme"], ["plan", "theme"]]
    assert await device.stored() == {"plan": ("pro", 1), "theme": ("light", 2), "@": 2}


async def test_a_dataset_that_keeps_changing_under_the_trigger_ends_in_a_conflict(pool: Pool, script: Script) -> None:
    await pool.events(SyncTrigger="racing")
    device = await pool.device()
    rounds = iter(range(100))

    async def admin_writes_every_time() -> None:
        await pool.developer_write(device, {"plan": f"v{next(rounds)}"})

    script.race = admin_writes_every_time
    assert await device.refused({"theme": "light"}) == (
        "ResourceConflictException",
        "Dataset 'settings' changed 3 times while its hooks ran; sync again and retry",
        409,
    )
    assert (len(script.calls), await device.stored()) == (3, {"plan": ("v2", 3), "@": 3})


@pytest.mark.parametrize("overrides", [{"max_records_per_dataset": 4, "max_value_bytes": 1000}])
async def test_limits_apply_to_what_the_trigger_returns(pool: Pool) -> None:
    await pool.events(SyncTrigger="grow")
    device = await pool.device()
    assert await device.refused({"many": "1"}) == (
        "LimitExceededException",
        "Dataset 'settings' would hold 6 records; the limit is 4",
        400,
    )
    assert await device.refused({"theme": "light"}) == (
        "LimitExceededException",
        "Sync trigger 'grow' returned record 'big' of 2000 bytes; the limit is 1000",
        400,
    )
    assert await device.stored() == {"@": 0}


async def test_writes_with_developer_credentials_skip_the_trigger(pool: Pool, script: Script) -> None:
    await pool.events(SyncTrigger="uppercase")
    device = await pool.device()
    await pool.developer_write(device, {"theme": "light"})
    assert (script.calls, await device.stored()) == ([], {"theme": ("light", 1), "@": 1})


@pytest.mark.parametrize("overrides", [{"triggers_on_developer_writes": True}])
async def test_writes_with_developer_credentials_run_the_trigger_when_configured(pool: Pool, script: Script) -> None:
    await pool.events(SyncTrigger="uppercase")
    device = await pool.device()
    await pool.developer_write(device, {"theme": "light"})
    assert (len(script.calls), await device.stored()) == (1, {"theme": ("LIGHT", 1), "@": 1})


async def test_a_resent_request_gets_the_first_answer_without_a_new_call(pool: Pool, script: Script) -> None:
    await pool.events(SyncTrigger="uppercase")
    device = await pool.device()
    request = {
        "DatasetName": "settings",
        "SyncSessionToken": await device.token(),
        "RecordPatches": [patch("theme", "light")],
        "DeviceId": "phone",
    }
    first = await device.call("update_records", **request)
    again = await device.call("update_records", **request)
    assert (again, len(script.calls)) == (first, 1)


# --- conflicts --------------------------------------------------------------------------------------------------------


async def conflicting(pool: Pool, device: Device, *, stored_ms: int, incoming_ms: int) -> dict[str, Any]:
    """Stores theme=dark (device time ``stored_ms``), then sends a stale theme=light (``incoming_ms``)."""
    await device.call(
        "update_records",
        DatasetName="settings",
        SyncSessionToken=await device.token(),
        RecordPatches=[patch("theme", "dark", 0, DeviceLastModifiedDate=stored_ms / 1000)],
    )
    return await device.call(
        "update_records",
        DatasetName="settings",
        SyncSessionToken=await device.token(),
        RecordPatches=[patch("theme", "light", 0, DeviceLastModifiedDate=incoming_ms / 1000)],
    )


async def test_the_reject_policy_answers_the_conflict_with_the_stored_record(pool: Pool) -> None:
    await pool.events(SyncConflict="reject")
    device = await pool.device()
    await device.write({"theme": "dark"})
    assert await device.refused({"theme": "light"}) == (
        "ResourceConflictException",
        "Current SyncCount for: theme is: 1 not: 0",
        409,
    )


async def test_last_writer_wins_stores_the_later_incoming_write(pool: Pool) -> None:
    await pool.events(SyncConflict="last-writer-wins")
    device = await pool.device()
    answer = await conflicting(pool, device, stored_ms=1_700_000_000_000, incoming_ms=1_700_000_100_000)
    assert (written(answer), await device.stored()) == ([("theme", "light", 2)], {"theme": ("light", 2), "@": 2})


async def test_last_writer_wins_keeps_the_later_stored_record(pool: Pool) -> None:
    await pool.events(SyncConflict="last-writer-wins")
    device = await pool.device()
    answer = await conflicting(pool, device, stored_ms=1_700_000_100_000, incoming_ms=1_700_000_000_000)
    assert (written(answer), await device.stored()) == ([], {"theme": ("dark", 1), "@": 1})


async def test_a_conflict_handler_is_given_both_versions_and_its_answer_is_stored(pool: Pool, script: Script) -> None:
    await pool.events(SyncConflict="merge")
    device = await pool.device()
    answer = await conflicting(pool, device, stored_ms=1_700_000_000_000, incoming_ms=1_700_000_100_000)
    assert written(answer) == [("theme", "dark+light", 2)]
    [event] = script.calls
    conflict = event["conflicts"]["theme"]
    assert conflict["incoming"] == {
        "op": "replace",
        "value": "light",
        "syncCount": 0,
        "deviceLastModifiedDate": 1_700_000_100_000,
        "versionVector": None,
    }
    assert {k: v for k, v in conflict["stored"].items() if k != "lastModifiedDate"} == {
        "value": "dark",
        "syncCount": 1,
        "lastModifiedBy": device.names["IdentityId"],
        "deviceLastModifiedDate": 1_700_000_000_000,
        "versionVector": {device.names["IdentityId"]: 1},
    }


async def test_a_conflict_handler_that_refuses_answers_the_conflict_with_its_message(pool: Pool) -> None:
    await pool.events(SyncConflict="refuse-conflicts")
    device = await pool.device()
    await device.write({"theme": "dark"})
    assert await device.refused({"theme": "light"}) == (
        "ResourceConflictException",
        "Current SyncCount for: theme is: 1 not: 0 (conflict handler 'refuse-conflicts': ask the user)",
        409,
    )


async def test_the_trigger_sees_the_write_as_the_conflict_policy_resolved_it(pool: Pool) -> None:
    await pool.events(SyncConflict="merge", SyncTrigger="uppercase")
    device = await pool.device()
    answer = await conflicting(pool, device, stored_ms=1_700_000_000_000, incoming_ms=1_700_000_100_000)
    assert written(answer) == [("theme", "DARK+LIGHT", 2)]


# --- tracing and access -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{"trace_triggers": True}])
async def test_tracing_logs_each_call_with_values_redacted(pool: Pool, caplog: pytest.LogCaptureFixture) -> None:
    device = await pool.device()
    await pool.events(SyncTrigger="stamp")
    with caplog.at_level(logging.INFO, logger="syncsvc.triggers"):
        await device.write({"theme": "light"})
    [line] = [r.getMessage() for r in caplog.records if r.name == "syncsvc.triggers"]
    given, answered = line.split(" input=")[1].split(" output=")
    assert line.startswith("trigger stamp request=")
    assert " outcome=ok duration_ms=" in line
    assert orjson.loads(given)["datasetRecords"] == {
        "theme": {"oldValue": None, "newValue": "<5 chars>", "op": "replace"}  # as given, before stamp changed it
    }
    assert orjson.loads(answered)["datasetRecords"] == {
        "theme": {"oldValue": None, "newValue": "<5 chars>", "op": "replace"},
        "count": {"newValue": "<1 chars>", "op": "replace"},
    }
    assert "light" not in line


@pytest.mark.parametrize("operation", ["get_cognito_events", "set_cognito_events"])
async def test_identity_credentials_cannot_read_or_set_cognito_events(pool: Pool, operation: str) -> None:
    device = await pool.device()
    params: dict[str, Any] = {"IdentityPoolId": pool.id}
    if operation == "set_cognito_events":
        params["Events"] = {"SyncTrigger": ""}
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(getattr(device.client, operation), **params)
    assert (caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "NotAuthorizedException",
        403,
    )


# --- the stream -------------------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_the_stream_carries_what_the_trigger_returned(
    redis_url: str,
    warm_kafka: str,
    redis_client: Redis,
) -> None:
    settings = make_settings(redis_url, shards=4, kafka_bootstrap=warm_kafka, relay=True)
    server = TestServer(create_app(settings, triggers=registry()), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        endpoint = str(server.make_url("")).rstrip("/")
        boto, topic = Boto(endpoint), f"triggered-{uuid.uuid4().hex[:8]}"
        await create_topic(warm_kafka, topic)
        pool = Pool(boto, endpoint, await streaming_pool(boto, topic))
        await pool.events(SyncTrigger="stamp")
        device = await pool.device()
        answer = await device.write({"theme": "light", "draft": "unsaved"})
        (message,) = await read_topic(warm_kafka, topic, 1)
    finally:
        await server.close()
    streamed = orjson.loads(message.value)["kinesisSyncRecords"]
    assert [(r["key"], r["value"], r["syncCount"], r["op"]) for r in streamed] == [
        ("theme", "light", 1, "replace"),
        ("count", "1", 1, "replace"),
    ]
    assert written(answer) == [("theme", "light", 1), ("count", "1", 1)]
