"""The relay against a real Kafka broker: every committed change exactly once, in per-dataset order, in the Cognito
Streams format — including after the relay is killed with SIGKILL in the middle of a load."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from syncsvc import rediskeys
from syncsvc.config import Settings, SettingsError, load_settings
from syncsvc.outbox.topics import Topics
from syncsvc.runtime import open_services
from tests.conftest import Boto, Raw, make_settings
from tests.streams import (
    LANES,
    SHARDS,
    create_topic,
    published_somewhere,
    read_topic,
    relay_process,
    serving_with_relay,
    stream_settings,
    streaming_pool,
)


@pytest.fixture
def settings(redis_url: str, kafka_bootstrap: str, overrides: dict[str, Any]) -> Settings:
    """A server whose outbox the test relays itself (shards kept few so relays start fast)."""
    return stream_settings(redis_url, kafka_bootstrap, relay=False, **overrides)


@pytest.mark.timeout(120)  # a fresh broker takes a while to elect its transaction coordinator
async def test_changes_reach_the_topic_in_the_cognito_streams_format(
    relayed: str, kafka_bootstrap: str, redis_client: Redis
) -> None:
    boto, topic = Boto(relayed), f"changes-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    names = {
        "IdentityPoolId": await streaming_pool(boto, topic),
        "IdentityId": f"us-east-1:{uuid.uuid4()}",
        "DatasetName": "d",
    }
    token = (await boto.call(boto.sync, "list_records", **names))["SyncSessionToken"]
    written = await boto.call(
        boto.sync,
        "update_records",
        **names,
        SyncSessionToken=token,
        DeviceId="phone",
        RecordPatches=[
            {"Op": "replace", "Key": "a", "Value": "1", "SyncCount": 0, "DeviceLastModifiedDate": 1_700_000_000},
            {"Op": "remove", "Key": "b", "SyncCount": 0},
        ],
    )
    (message,) = await read_topic(kafka_bootstrap, topic, 1, timeout=60)
    modified = round(written["Records"][0]["LastModifiedDate"].timestamp() * 1000)
    assert message.key == f"{names['IdentityPoolId']}/{names['IdentityId']}/d".encode()
    assert orjson.loads(message.value) == {
        "identityPoolId": names["IdentityPoolId"],
        "identityId": names["IdentityId"],
        "dataSetName": "d",
        "operation": "replace",
        "kinesisSyncRecords": [
            {
                "key": "a",
                "value": "1",
                "syncCount": 1,
                "lastModifiedDate": modified,
                "deviceLastModifiedDate": 1_700_000_000_000,
                "op": "replace",
            },
            {
                "key": "b",
                "value": None,
                "syncCount": 1,
                "lastModifiedDate": modified,
                "deviceLastModifiedDate": modified,
                "op": "remove",
            },
        ],
        "lastModifiedDate": modified,
        "kinesisSyncRecordsURL": None,
        "payloadType": "Inline",
        "syncCount": 1,
    }
    headers = dict(message.headers)
    assert headers["content-type"] == b"application/json"
    assert headers["syncsvc-change-id"].startswith(b"s")
    shard = rediskeys.shard_of(names["IdentityId"], SHARDS)
    async with asyncio.timeout(10):  # trimmed once published (the position entry itself stays)
        while await redis_client.xlen(rediskeys.outbox(shard)) > 1:
            await asyncio.sleep(0.05)


#: Writes each writer makes after the relay is killed (and before another starts).
AFTER_KILL = 10


@pytest.mark.timeout(180)
@pytest.mark.parametrize("overrides", [{"relay_lanes": LANES}])
async def test_a_relay_killed_mid_load_loses_and_duplicates_nothing(
    raw: Raw, boto: Boto, redis_url: str, warm_kafka: str, redis_client: Redis, tmp_path: Path
) -> None:
    kafka_bootstrap = warm_kafka
    run = uuid.uuid4().hex[:8]
    topic = f"changes-{run}"
    await create_topic(kafka_bootstrap, topic)
    pool_id = await streaming_pool(boto, topic)
    identities = [f"us-east-1:{uuid.uuid4()}" for _ in range(6)]
    logs = [tmp_path / "killed.log", tmp_path / "restarted.log"]

    async def started(log: Path) -> Any:
        with log.open("wb") as written:  # the child keeps its own descriptor
            return await relay_process(
                redis_url, kafka_bootstrap, run=run, stderr=written.fileno(), SYNCSVC_RELAY_LANES=str(LANES)
            )

    killed = asyncio.Event()

    async def writer(identity: str) -> int:
        """Writes to the identity's dataset until the relay is killed, then AFTER_KILL more while no relay runs (the
        load straddles the kill); returns how many writes were acknowledged."""
        path = f"/identitypools/{pool_id}/identities/{identity}/datasets/d"
        token = (await raw.send("GET", path + "/records"))[1]["SyncSessionToken"]
        sync_count, left = 0, AFTER_KILL
        while left > 0 and sync_count < 5_000:  # bounded: the wait for the kill below gives up after 30 s
            patch = {"Op": "replace", "Key": "k", "Value": str(sync_count + 1), "SyncCount": sync_count}
            status, _, _ = await raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": [patch]})
            assert status == 200
            sync_count += 1
            left -= killed.is_set()
            await asyncio.sleep(0.01)  # paced: the relay publishes in several transactions before it is killed
        return sync_count

    relay = await started(logs[0])
    load = asyncio.gather(*(writer(identity) for identity in identities))
    try:
        async with asyncio.timeout(30):  # let the relay publish part of the load, then kill it without warning
            while not await published_somewhere(redis_client):
                await asyncio.sleep(0.02)
        relay.send_signal(signal.SIGKILL)
        await relay.wait()
    finally:
        killed.set()
    written = dict(zip(identities, await load, strict=True))
    acknowledged = sum(written.values())
    # the killed relay's lease must expire before another relay takes its shards (LEASE_MS)
    restarted = await started(logs[1])
    try:
        messages = await read_topic(kafka_bootstrap, topic, acknowledged, timeout=90)
    finally:
        restarted.send_signal(signal.SIGTERM)
        await restarted.wait()

    per_dataset: dict[bytes, list[int]] = {}
    for message in messages:
        per_dataset.setdefault(message.key, []).append(orjson.loads(message.value)["syncCount"])
    seen = {key.decode(): (len(counts), counts[-1]) for key, counts in per_dataset.items()}
    assert len(messages) == acknowledged, await _what_the_relays_left(redis_client, seen, logs)
    for identity, count in written.items():  # every change once, in sync-count order
        assert per_dataset[f"{pool_id}/{identity}/d".encode()] == list(range(1, count + 1))


async def _what_the_relays_left(redis_client: Redis, seen: dict[str, tuple[int, int]], logs: list[Path]) -> str:
    """For a failure's message: what each dataset's records reached the topic (how many, the last sync count), each
    shard's recorded position and outbox length, and the relays' logs (warnings and errors)."""
    shards = {
        shard: (
            await redis_client.get(rediskeys.relay_position(shard)),
            await redis_client.xlen(rediskeys.outbox(shard)),
        )
        for shard in range(SHARDS)
    }
    lines = [f"seen per dataset (records, last sync count): {seen}", f"shards (position, outbox length): {shards}"]
    for log in logs:
        lines += [f"--- {log.name}", *log.read_text(errors="replace").splitlines()[-40:]]
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def relaying(redis_url: str, bootstrap: str, run: str, **relay: Any) -> AsyncIterator[tuple[Boto, str]]:
    """A server running its own relay with the ``relay`` settings and producers and a checkpoint topic of the test's
    own (``checkpoints-<run>``); yields a Boto on it and a created stream topic."""
    async with serving_with_relay(redis_url, bootstrap, run=run, shards=SHARDS, **relay) as endpoint:
        boto, topic = Boto(endpoint), f"changes-{run}"
        await create_topic(bootstrap, topic)
        yield boto, topic


@pytest.mark.timeout(120)
async def test_a_busy_shard_gathers_changes_into_few_transactions_and_a_quiet_one_publishes_at_once(
    redis_url: str, warm_kafka: str, redis_client: Redis
) -> None:
    linger_seconds = 2.0
    run = uuid.uuid4().hex[:8]
    relay = {"relay_lanes": LANES, "relay_linger_ms": int(linger_seconds * 1000)}  # a lane shared with a quiet shard
    async with relaying(redis_url, warm_kafka, run, **relay) as (boto, topic):
        names = {"IdentityPoolId": await streaming_pool(boto, topic), "IdentityId": f"us-east-1:{uuid.uuid4()}"}
        names["DatasetName"] = "d"
        token = (await boto.call(boto.sync, "list_records", **names))["SyncSessionToken"]

        async def write(count: int) -> None:
            patch = {"Op": "replace", "Key": "k", "Value": str(count), "SyncCount": count}
            await boto.call(boto.sync, "update_records", **names, SyncSessionToken=token, RecordPatches=[patch])

        await write(0)
        assert len(await read_topic(warm_kafka, topic, 1)) == 1  # the relay is up and the shard has published
        # Quiet again: the time passing is the condition (the shard's last transaction ended before the read above).
        await asyncio.sleep(linger_seconds + 0.2)
        for count in range(1, 22):  # a change to the quiet shard, then a burst right after it
            await write(count)
        changes = await read_topic(warm_kafka, topic, 22)
        assert [orjson.loads(message.value)["syncCount"] for message in changes] == list(range(1, 23))
        # The change to the quiet shard went out at once; held back by the linger, it would have waited linger_seconds.
        assert held_ms(changes[1]) < linger_seconds * 1000 / 2
    shard = rediskeys.shard_of(names["IdentityId"], SHARDS)
    # one transaction for the first change, one for the second, the burst in one or two
    assert 3 <= (await checkpoints_per_shard(warm_kafka, f"checkpoints-{run}"))[shard] <= 4


def held_ms(message: Any) -> int:
    """How long the relay held a change: from its write (lastModifiedDate, the server's clock) to its send to Kafka
    (the record's timestamp, the relay's clock: the same process). A consumer's start-up and polling are not in it."""
    written: int = orjson.loads(message.value)["lastModifiedDate"]
    sent: int = message.timestamp
    return sent - written


async def checkpoints_per_shard(bootstrap: str, topic: str) -> dict[int, int]:
    """How many positions each shard committed to the checkpoint topic (one per transaction that advanced it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, shard) for shard in range(SHARDS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        counts = dict.fromkeys(range(SHARDS), 0)
        async with asyncio.timeout(30):
            while [partition for partition in partitions if await consumer.position(partition) < ends[partition]]:
                for partition, messages in (await consumer.getmany(*partitions, timeout_ms=500)).items():
                    counts[partition.partition] += len(messages)
        return counts
    finally:
        await consumer.stop()


@pytest.mark.timeout(120)
async def test_a_burst_of_changes_to_the_shards_of_one_lane_goes_out_in_one_transaction(
    redis_url: str, warm_kafka: str, redis_client: Redis
) -> None:
    run = uuid.uuid4().hex[:8]
    async with relaying(redis_url, warm_kafka, run, relay_lanes=1, relay_linger_ms=3000) as (boto, topic):  # one lane
        pool_id = await streaming_pool(boto, topic)
        by_shard: dict[int, str] = {}
        while len(by_shard) < SHARDS:  # an identity in every shard
            identity = f"us-east-1:{uuid.uuid4()}"
            by_shard.setdefault(rediskeys.shard_of(identity, SHARDS), identity)
        names = {
            shard: {"IdentityPoolId": pool_id, "IdentityId": identity, "DatasetName": "d"}
            for shard, identity in by_shard.items()
        }
        tokens = {
            shard: (await boto.call(boto.sync, "list_records", **names[shard]))["SyncSessionToken"]
            for shard in by_shard
        }
        sync_counts = dict.fromkeys(by_shard, 0)

        async def write(shard: int) -> None:
            patch = {"Op": "replace", "Key": "k", "Value": "v", "SyncCount": sync_counts[shard]}
            await boto.call(
                boto.sync, "update_records", **names[shard], SyncSessionToken=tokens[shard], RecordPatches=[patch]
            )
            sync_counts[shard] += 1

        await write(0)  # published at once (the lane was quiet), which starts the lane's linger
        async with asyncio.timeout(30):
            while not await redis_client.exists(rediskeys.relay_position(0)):
                await asyncio.sleep(0.01)
        for _ in range(3):  # a burst to every shard, well within the linger
            for shard in by_shard:
                await write(shard)
        changes = await read_topic(warm_kafka, topic, 1 + 3 * SHARDS)
        assert len(changes) == 1 + 3 * SHARDS
    # one transaction for the first change, one for the whole burst: it advanced each shard once
    assert await checkpoints_per_shard(warm_kafka, f"checkpoints-{run}") == {0: 2, 1: 1, 2: 1, 3: 1}


def test_more_relay_lanes_than_shards_are_refused() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(shards=SHARDS, relay_lanes=SHARDS + 1)
    assert str(refused.value) == "invalid setting SYNCSVC_RELAY_LANES: Value error, must not exceed the shard count (4)"


@pytest.mark.timeout(60)
async def test_a_relay_started_with_another_lane_count_than_recorded_is_refused(
    redis_url: str, kafka_bootstrap: str, redis_client: Redis
) -> None:
    async with open_services(make_settings(redis_url, shards=SHARDS, relay_lanes=LANES)):
        pass  # the first start records the lane count (2)
    relay = await relay_process(
        redis_url, kafka_bootstrap, run=uuid.uuid4().hex[:8], stderr=asyncio.subprocess.PIPE, SYNCSVC_RELAY_LANES="4"
    )
    _, stderr = await relay.communicate()
    assert (relay.returncode, stderr.decode()) == (
        1,
        "syncsvc: SYNCSVC_RELAY_LANES is 4 but this deployment's relays publish in 2 lanes; "
        "the lane count cannot change\n",
    )


async def test_a_checkpoint_topic_made_for_another_shard_count_is_refused_with_the_reason(
    redis_url: str, kafka_bootstrap: str
) -> None:
    topic = f"checkpoints-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    settings = make_settings(redis_url, shards=SHARDS, kafka_bootstrap=kafka_bootstrap, relay_checkpoint_topic=topic)
    topics = Topics(settings)
    try:
        with pytest.raises(KafkaError, match=f"has 2 partitions but SYNCSVC_SHARDS is {SHARDS}: it belongs to another"):
            await topics.ensure([topic], compacted=True)
    finally:
        await topics.close()
