"""BulkPublish / GetBulkPublishDetails and `syncsvc bulk-publish`: the current state of every live dataset of a pool,
one Cognito Streams record per dataset, through the outbox and the relay to a real Kafka broker; the job's statuses,
its refusals, and its resumption after a restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from syncsvc import rediskeys
from syncsvc.api.app import create_app
from syncsvc.config import Settings
from syncsvc.outbox import bulk
from syncsvc.outbox.bulk import BulkJob, BulkStatus
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.bulk import RedisBulkJobs
from tests.conftest import Boto, free_port, make_settings, process_environment
from tests.devices import Devices, guest, refusal
from tests.servers import SYNCSVC
from tests.streams import ROLE, SHARDS, create_topic, read_topic


@pytest.fixture
def settings(redis_url: str, kafka_bootstrap: str) -> Settings:
    """A server without a relay: these tests look at the job and the outbox, not at Kafka."""
    return make_settings(redis_url, shards=SHARDS, kafka_bootstrap=kafka_bootstrap)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Boto]:
    """A syncsvc server (stopped on the way out, which cancels its bulk publish workers) and boto3 clients for it."""
    server = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        yield Boto(str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


# --- pools, data and the job ----------------------------------------------------------------------------------------


async def configure_streams(boto: Boto, pool_id: str, topic: str, status: str) -> None:
    await boto.call(
        boto.sync,
        "set_identity_pool_configuration",
        IdentityPoolId=pool_id,
        CognitoStreams={"StreamName": topic, "RoleArn": ROLE, "StreamingStatus": status},
    )


async def write(boto: Boto, pool_id: str, identity_id: str, dataset: str, patches: list[dict[str, Any]]) -> None:
    names = {"IdentityPoolId": pool_id, "IdentityId": identity_id, "DatasetName": dataset}
    token = (await boto.call(boto.sync, "list_records", **names))["SyncSessionToken"]
    await boto.call(boto.sync, "update_records", **names, SyncSessionToken=token, RecordPatches=patches)


def replace(key: str, value: str, sync_count: int = 0, **extra: Any) -> dict[str, Any]:
    return {"Op": "replace", "Key": key, "Value": value, "SyncCount": sync_count, **extra}


def remove(key: str, sync_count: int) -> dict[str, Any]:
    return {"Op": "remove", "Key": key, "SyncCount": sync_count}


def identity() -> str:
    return f"us-east-1:{uuid.uuid4()}"


async def populate(boto: Boto, pool_id: str) -> list[tuple[str, str]]:
    """Three identities with live datasets (one with a removed record, one whose only record was removed) and a
    deleted dataset; returns the live (identity, dataset) pairs."""
    first, second, third = identity(), identity(), identity()
    await write(boto, pool_id, first, "settings", [replace("a", "1"), replace("b", "2")])
    await write(boto, pool_id, first, "settings", [remove("b", 1), replace("c", "3", DeviceLastModifiedDate=1_700_000)])
    await write(boto, pool_id, first, "emptied", [replace("x", "1")])
    await write(boto, pool_id, first, "emptied", [remove("x", 1)])
    await write(boto, pool_id, second, "scores", [replace("level", "7")])
    await write(boto, pool_id, second, "gone", [replace("g", "1")])
    await boto.call(boto.sync, "delete_dataset", IdentityPoolId=pool_id, IdentityId=second, DatasetName="gone")
    await write(boto, pool_id, third, "profile", [replace("name", "Ada")])
    return [(first, "settings"), (first, "emptied"), (second, "scores"), (third, "profile")]


async def streaming_pool_with_data(boto: Boto, topic: str) -> tuple[str, list[tuple[str, str]]]:
    """A pool whose data was written while streaming was DISABLED (so its topic holds bulk records only), then
    ENABLED."""
    pool_id = await boto.new_pool()
    await configure_streams(boto, pool_id, topic, "DISABLED")
    datasets = await populate(boto, pool_id)
    await configure_streams(boto, pool_id, topic, "ENABLED")
    return pool_id, datasets


async def details(boto: Boto, pool_id: str) -> dict[str, Any]:
    response = await boto.call(boto.sync, "get_bulk_publish_details", IdentityPoolId=pool_id)
    response.pop("ResponseMetadata")
    return response


async def ended(boto: Boto, pool_id: str, timeout: float = 30) -> dict[str, Any]:
    """GetBulkPublishDetails once the job is no longer IN_PROGRESS."""
    async with asyncio.timeout(timeout):
        while (found := await details(boto, pool_id))["BulkPublishStatus"] == "IN_PROGRESS":
            await asyncio.sleep(0.05)
    return found


async def bulk_publish(boto: Boto, pool_id: str) -> dict[str, Any]:
    response = await boto.call(boto.sync, "bulk_publish", IdentityPoolId=pool_id)
    response.pop("ResponseMetadata")
    return response


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def near_now(moment: datetime, within: float = 30) -> bool:
    return abs(moment.timestamp() - time.time()) <= within


async def current_state(boto: Boto, pool_id: str, identity_id: str, dataset: str) -> dict[str, Any]:
    """The Cognito Streams record of the dataset's current state, from ListRecords and DescribeDataset."""
    names = {"IdentityPoolId": pool_id, "IdentityId": identity_id, "DatasetName": dataset}
    listed = await boto.call(boto.sync, "list_records", **names)
    described = (await boto.call(boto.sync, "describe_dataset", **names))["Dataset"]
    live = sorted((record for record in listed["Records"] if "Value" in record), key=lambda record: record["Key"])
    return {
        "identityPoolId": pool_id,
        "identityId": identity_id,
        "dataSetName": dataset,
        "operation": "replace",
        "kinesisSyncRecords": [
            {
                "key": record["Key"],
                "value": record["Value"],
                "syncCount": record["SyncCount"],
                "lastModifiedDate": ms(record["LastModifiedDate"]),
                "deviceLastModifiedDate": ms(record.get("DeviceLastModifiedDate", record["LastModifiedDate"])),
                "op": "replace",
            }
            for record in live
        ],
        "lastModifiedDate": ms(described["LastModifiedDate"]),
        "kinesisSyncRecordsURL": None,
        "payloadType": "Inline",
        "syncCount": listed["DatasetSyncCount"],
    }


class Gate:
    """Holds every bulk publish worker of this process before it snapshots more than ``passing`` identities, until
    ``opened`` is set: a job that stays IN_PROGRESS for as long as a test needs, with its cursor part-way."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, passing: int) -> None:
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()
        snapshot = RedisBulkJobs.snapshot
        passed = 0

        async def held(jobs: RedisBulkJobs, keyspace: IdentityKeyspace, topic: str) -> int:
            nonlocal passed
            if passed >= passing:
                self.reached.set()
                await self.opened.wait()
            passed += 1
            return await snapshot(jobs, keyspace, topic)

        monkeypatch.setattr(RedisBulkJobs, "snapshot", held)

    async def reach(self) -> None:
        async with asyncio.timeout(15):
            await self.reached.wait()


# --- the stream -----------------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("warm_kafka")
async def test_bulk_publish_streams_each_live_dataset_once_with_its_whole_state(
    redis_url: str, kafka_bootstrap: str, redis_client: Redis
) -> None:
    topic = f"bulk-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    async with serving(make_settings(redis_url, shards=SHARDS, kafka_bootstrap=kafka_bootstrap, relay=True)) as boto:
        pool_id, datasets = await streaming_pool_with_data(boto, topic)

        assert await bulk_publish(boto, pool_id) == {"IdentityPoolId": pool_id}
        job = await ended(boto, pool_id)
        messages = await read_topic(kafka_bootstrap, topic, len(datasets), timeout=60)
        expected = {
            f"{pool_id}/{identity_id}/{dataset}".encode(): await current_state(boto, pool_id, identity_id, dataset)
            for identity_id, dataset in datasets
        }

    assert job.keys() == {"IdentityPoolId", "BulkPublishStatus", "BulkPublishStartTime", "BulkPublishCompleteTime"}
    assert (job["IdentityPoolId"], job["BulkPublishStatus"]) == (pool_id, "SUCCEEDED")
    assert near_now(job["BulkPublishStartTime"])
    assert job["BulkPublishStartTime"] <= job["BulkPublishCompleteTime"]
    assert len(messages) == len(datasets) == 4  # one per live dataset; none for the deleted one
    assert {message.key: orjson.loads(message.value) for message in messages} == expected
    assert expected[f"{pool_id}/{datasets[1][0]}/emptied".encode()]["kinesisSyncRecords"] == []


@pytest.mark.timeout(150)
@pytest.mark.usefixtures("warm_kafka")
async def test_a_job_cut_by_a_restart_resumes_from_its_cursor_on_the_next_server(
    redis_url: str, kafka_bootstrap: str, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"bulk-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    settings = make_settings(redis_url, shards=SHARDS, kafka_bootstrap=kafka_bootstrap, relay=True)
    identities = [identity() for _ in range(8)]
    gate = Gate(monkeypatch, passing=3)
    async with serving(settings) as boto:
        pool_id = await boto.new_pool()
        await configure_streams(boto, pool_id, topic, "DISABLED")
        for identity_id in identities:
            await write(boto, pool_id, identity_id, "d", [replace("k", identity_id)])
        await configure_streams(boto, pool_id, topic, "ENABLED")
        await bulk_publish(boto, pool_id)
        await gate.reach()
    # the server stopped: its worker was cancelled part-way and gave its lease back
    job = BulkJob.of(await RedisBulkJobs(redis_client).job(pool_id))
    assert (job.status, job.done, job.total) == (BulkStatus.IN_PROGRESS, 3, 8)
    walk = sorted(identities, key=lambda identity_id: (rediskeys.shard_of(identity_id, SHARDS), identity_id))
    assert job.after == walk[2]  # the last identity done; the fourth was in progress
    assert not await redis_client.exists(rediskeys.bulk_publish_lease(pool_id))
    monkeypatch.undo()

    async with serving(settings) as boto:  # its start-up sweep claims the job and resumes it
        finished = await ended(boto, pool_id)
        messages = await read_topic(kafka_bootstrap, topic, len(identities), timeout=60)

    assert finished["BulkPublishStatus"] == "SUCCEEDED"
    # resumed after the cursor: every dataset exactly once (a restart may repeat at most the identity in progress)
    assert sorted(message.key for message in messages) == sorted(f"{pool_id}/{i}/d".encode() for i in identities)


# --- statuses and refusals ------------------------------------------------------------------------------------------


async def test_details_of_a_pool_never_bulk_published_say_not_started(boto: Boto) -> None:
    pool_id = await boto.new_pool()

    assert await details(boto, pool_id) == {"IdentityPoolId": pool_id, "BulkPublishStatus": "NOT_STARTED"}


async def test_bulk_publish_while_one_is_in_progress_is_a_duplicate_request(
    boto: Boto, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch, passing=0)
    pool_id, datasets = await streaming_pool_with_data(boto, "bulk-duplicate")
    await bulk_publish(boto, pool_id)
    await gate.reach()

    refused = await refusal(boto.sync, "bulk_publish", IdentityPoolId=pool_id)
    in_progress = await details(boto, pool_id)
    gate.opened.set()
    job = await ended(boto, pool_id)

    assert refused == ("DuplicateRequestException", 400)
    assert in_progress.keys() == {"IdentityPoolId", "BulkPublishStatus", "BulkPublishStartTime"}
    assert in_progress["BulkPublishStatus"] == "IN_PROGRESS"
    assert (job["BulkPublishStatus"], job["BulkPublishStartTime"]) == ("SUCCEEDED", in_progress["BulkPublishStartTime"])
    outbox = [await redis_client.xlen(rediskeys.outbox(shard)) for shard in range(SHARDS)]
    assert sum(outbox) == len(datasets)  # the refused call started nothing


async def test_bulk_publish_within_the_window_after_a_success_is_already_streamed(boto: Boto) -> None:
    pool_id, _ = await streaming_pool_with_data(boto, "bulk-window")
    await bulk_publish(boto, pool_id)
    succeeded = await ended(boto, pool_id)

    refused = await refusal(boto.sync, "bulk_publish", IdentityPoolId=pool_id)

    assert succeeded["BulkPublishStatus"] == "SUCCEEDED"
    assert refused == ("AlreadyStreamedException", 400)
    assert await details(boto, pool_id) == succeeded


async def test_with_a_window_of_zero_a_pool_may_be_bulk_published_again_at_once(
    settings: Settings, redis_client: Redis
) -> None:
    async with serving(settings.model_copy(update={"bulk_publish_window_seconds": 0})) as boto:
        pool_id, _ = await streaming_pool_with_data(boto, "bulk-again")
        await bulk_publish(boto, pool_id)
        first = await ended(boto, pool_id)

        assert await bulk_publish(boto, pool_id) == {"IdentityPoolId": pool_id}
        second = await ended(boto, pool_id)

    assert first["BulkPublishStatus"] == second["BulkPublishStatus"] == "SUCCEEDED"
    assert second["BulkPublishStartTime"] >= first["BulkPublishCompleteTime"]


async def test_streaming_turned_off_during_the_job_fails_it_with_a_message(
    boto: Boto, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch, passing=1)
    pool_id, _ = await streaming_pool_with_data(boto, "bulk-off-midway")
    await bulk_publish(boto, pool_id)
    await gate.reach()

    await configure_streams(boto, pool_id, "bulk-off-midway", "DISABLED")
    gate.opened.set()
    job = await ended(boto, pool_id)

    assert job == {
        "IdentityPoolId": pool_id,
        "BulkPublishStatus": "FAILED",
        "BulkPublishStartTime": job["BulkPublishStartTime"],
        "BulkPublishCompleteTime": job["BulkPublishCompleteTime"],
        "FailureMessage": "Streaming was turned off for the identity pool (StreamingStatus DISABLED) during the bulk "
        "publish",
    }


async def play_the_relay(redis_client: Redis) -> list[bytes]:
    """Takes every entry out of the outboxes, as the relay does once it published them; returns their identities."""
    taken: list[bytes] = []
    for shard in range(SHARDS):
        entries: Any = await redis_client.xrange(rediskeys.outbox(shard))
        if entries:
            await redis_client.xdel(rediskeys.outbox(shard), *(entry_id for entry_id, _ in entries))
            taken += [fields[b"identity"] for _, fields in entries]
    return taken


async def test_the_walk_waits_for_the_relay_while_a_shard_outbox_is_backed_up(
    boto: Boto, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "MAX_BACKLOG", 1)
    monkeypatch.setattr(bulk, "BACKLOG_POLL_SECONDS", 0.01)
    pool_id = await boto.new_pool()
    await configure_streams(boto, pool_id, "bulk-backlog", "DISABLED")
    identities = [identity() for _ in range(2 * SHARDS)]  # so some shard holds more than one
    for identity_id in identities:
        await write(boto, pool_id, identity_id, "d", [replace("k", "v")])
    await configure_streams(boto, pool_id, "bulk-backlog", "ENABLED")
    jobs = RedisBulkJobs(redis_client)

    await bulk_publish(boto, pool_id)
    async with asyncio.timeout(15):
        while not (waiting := BulkJob.of(await jobs.job(pool_id))).waiting:
            await asyncio.sleep(0.01)
    relayed: list[bytes] = []
    async with asyncio.timeout(30):
        while not (job := BulkJob.of(await jobs.job(pool_id))).ended:
            relayed += await play_the_relay(redis_client)
            await asyncio.sleep(0.01)
    relayed += await play_the_relay(redis_client)

    assert waiting.status is BulkStatus.IN_PROGRESS
    assert waiting.done < len(identities)
    assert (job.status, job.done, job.waiting) == (BulkStatus.SUCCEEDED, len(identities), False)
    assert sorted(relayed) == sorted(identity_id.encode() for identity_id in identities)


@pytest.mark.parametrize("streams", [None, "DISABLED"])
async def test_bulk_publish_is_refused_while_streaming_is_off(
    boto: Boto, redis_client: Redis, streams: str | None
) -> None:
    pool_id = await boto.new_pool()
    if streams is not None:
        await configure_streams(boto, pool_id, "bulk-off", streams)
    await populate(boto, pool_id)

    refused = await refusal(boto.sync, "bulk_publish", IdentityPoolId=pool_id)

    assert refused == ("InvalidParameterException", 400)
    assert await details(boto, pool_id) == {"IdentityPoolId": pool_id, "BulkPublishStatus": "NOT_STARTED"}
    assert not await redis_client.exists(*(rediskeys.outbox(shard) for shard in range(SHARDS)))


@pytest.mark.parametrize("operation", ["bulk_publish", "get_bulk_publish_details"])
async def test_an_unknown_pool_is_not_found(boto: Boto, operation: str) -> None:
    refused = await refusal(boto.sync, operation, IdentityPoolId=f"us-east-1:{uuid.uuid4()}")

    assert refused == ("ResourceNotFoundException", 404)


@pytest.mark.parametrize("operation", ["bulk_publish", "get_bulk_publish_details"])
async def test_identity_credentials_are_refused(boto: Boto, endpoint: str, operation: str) -> None:
    pool_id, _ = await streaming_pool_with_data(boto, "bulk-identity")
    devices = Devices(endpoint)
    _, credentials = await guest(devices, pool_id)

    refused = await refusal(devices.sync_with(credentials), operation, IdentityPoolId=pool_id)

    assert refused == ("NotAuthorizedException", 403)
    assert await details(boto, pool_id) == {"IdentityPoolId": pool_id, "BulkPublishStatus": "NOT_STARTED"}


async def test_deleting_the_pool_deletes_its_job(boto: Boto, redis_client: Redis) -> None:
    pool_id, _ = await streaming_pool_with_data(boto, "bulk-deleted")
    await bulk_publish(boto, pool_id)
    await ended(boto, pool_id)

    await boto.call(boto.identity, "delete_identity_pool", IdentityPoolId=pool_id)

    assert not await redis_client.exists(rediskeys.bulk_publish(pool_id), rediskeys.bulk_publish_lease(pool_id))


# --- the command line -----------------------------------------------------------------------------------------------


async def syncsvc(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = process_environment()
    env.update(SYNCSVC_REDIS_URL=settings.redis_url, SYNCSVC_SHARDS=str(settings.shards), COLUMNS="200")
    process = await asyncio.create_subprocess_exec(
        SYNCSVC, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_command_shows_the_progress_and_exits_0_once_succeeded(
    boto: Boto, settings: Settings, redis_client: Redis
) -> None:
    pool_id, datasets = await streaming_pool_with_data(boto, "bulk-cli")

    code, out, err = await syncsvc(settings, "bulk-publish", pool_id)

    assert (code, err) == (0, "")
    assert out.startswith("bulk publish")
    assert "4/4 datasets" in out
    assert out.endswith(f"syncsvc: bulk publish of identity pool '{pool_id}' SUCCEEDED: 4 datasets published\n")
    assert (await details(boto, pool_id))["BulkPublishStatus"] == "SUCCEEDED"
    outbox = [await redis_client.xlen(rediskeys.outbox(shard)) for shard in range(SHARDS)]
    assert sum(outbox) == len(datasets)


async def test_the_command_fails_with_one_line_when_the_pool_cannot_be_bulk_published(
    boto: Boto, settings: Settings
) -> None:
    pool_id = await boto.new_pool()

    code, out, err = await syncsvc(settings, "bulk-publish", pool_id)

    assert (code, out) == (1, "")
    assert err.startswith("syncsvc: InvalidParameterException: BulkPublish needs streaming")
    assert err.count("\n") == 1
