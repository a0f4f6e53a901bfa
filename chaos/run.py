"""One chaos run from start to verdict: start the deployment (chaos.processes), set up the pool and the devices
(chaos.workload), run the load with the nemesis beside it (chaos.nemesis), heal, then record what is left — each
dataset's final state, how far each push listener got, the stream read to the end once the relay has drained the
outbox — and check the history (chaos.checker). A run with anomalies writes its whole history as JSON lines.

Phases after the load, each bounded: heal (every process running again); final read (ListRecords of every dataset,
developer credentials, every page); push settle (each listener reaches its datasets' final counts, at most
PUSH_SETTLE_SECONDS: what is not reached by then is an anomaly); drain (the relay's recorded position reaches the end
of every outbox shard, at most DRAIN_SECONDS, a relay waiting out a dead or paused one's 10 s leases included);
stream read (read_committed, from the beginning to the end offsets).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from botocore.config import Config

from chaos.checker import Commits, Report, check, push_due
from chaos.history import Final, History, Pushed, Streamed
from chaos.nemesis import Nemesis
from chaos.processes import SHARDS, Deployment, deployment
from chaos.workload import DATASETS, REGION, Workload, listener_of, setup
from syncsvc import rediskeys

PUSH_SETTLE_SECONDS = 30.0
DRAIN_SECONDS = 60.0
STREAM_READ_SECONDS = 60.0


@dataclass(frozen=True)
class Options:
    seconds: float
    seed: int
    identities: int = 3
    devices: int = 3
    #: seconds between two faults
    interval: float = 6.0
    history_out: Path | None = None
    folder: Path | None = None


async def run(options: Options) -> tuple[Report, History]:
    """Runs the load and the nemesis, checks; writes the history to ``history_out`` when a check fails."""
    history = History(seed=options.seed)
    try:
        with contextlib.ExitStack() as stack:
            folder = options.folder or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="syncsvc-chaos-")))
            laps = Laps(history.phases)
            deployed = stack.enter_context(deployment(folder))
            laps("start")
            await _run(deployed, history, options, laps)
        laps("stop")
    except BaseException as error:
        if options.history_out is not None:  # what was recorded until the harness failed
            history.write(options.history_out)
            error.add_note(f"the history so far is in {options.history_out}")
        raise
    report = check(history)
    if report.anomalies and options.history_out is not None:
        history.write(options.history_out)
    return report, history


class Laps:
    """Records into ``phases`` the seconds since the previous lap, under each lap's name."""

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases, self.mark = phases, time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self.mark, 1)
        self.mark = now


async def _run(deployed: Deployment, history: History, options: Options, laps: Laps) -> None:
    workload = await setup(deployed.urls, deployed.developer, options.identities, options.devices)
    history.pool = workload.pool
    listening: list[asyncio.Task[None]] = []
    try:
        await create_topic(deployed.kafka.bootstrap, workload.topic)
        started = time.monotonic()
        listening = [asyncio.create_task(listener_of(device).run()) for device in workload.devices]
        async with asyncio.timeout(30):
            await asyncio.gather(*(device.listener.resumed.wait() for device in workload.devices if device.listener))
        laps("setup")
        nemesis = Nemesis(deployed, history, random.Random(options.seed), options.interval, started)
        try:
            await asyncio.gather(
                workload.run(history, options.seconds, options.seed, started, nemesis.first_round),
                nemesis.run(options.seconds),
            )
        finally:
            await nemesis.heal()
        laps("load")
        history.final = await final_state(deployed, workload)
        history.pushed = await push_settled(history, workload, listening)
        laps("final read, push settle")
        history.stream_complete = await drained(deployed.redis.url)
        history.stream = await read_stream(deployed.kafka.bootstrap, workload.topic)
        laps("drain, stream read")
    finally:
        for task in listening:
            task.cancel()
        await asyncio.gather(*listening, return_exceptions=True)
        await workload.close()


async def create_topic(bootstrap: str, topic: str) -> None:
    """The stream topic, 3 partitions, each with a leader, before anything is written."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
        async with asyncio.timeout(30):
            while not _led(await admin.describe_topics([topic])):
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


def _led(described: list[Any]) -> bool:
    partitions = described[0]["partitions"]
    return len(partitions) == 3 and all(partition["leader"] >= 0 for partition in partitions)


async def final_state(deployed: Deployment, workload: Workload) -> list[Final]:
    """Every dataset of every identity, read with the developer credentials (every page), retried while the
    instances come back (at most 30 s in all)."""
    session = boto3.session.Session(
        aws_access_key_id=deployed.developer[0], aws_secret_access_key=deployed.developer[1], region_name=REGION
    )
    config = Config(retries={"mode": "standard", "total_max_attempts": 5}, read_timeout=20)
    sync = session.client("cognito-sync", endpoint_url=deployed.urls[0], config=config)
    identities = sorted({device.identity for device in workload.devices})
    finals = []
    async with asyncio.timeout(30):
        for identity in identities:
            for dataset in DATASETS:
                finals.append(await asyncio.to_thread(_read_dataset, sync, workload.pool, identity, dataset))
    return finals


def _read_dataset(sync: Any, pool: str, identity: str, dataset: str) -> Final:
    records: dict[str, tuple[str | None, int]] = {}
    params: dict[str, Any] = {"IdentityPoolId": pool, "IdentityId": identity, "DatasetName": dataset}
    while True:
        try:
            page = sync.list_records(LastSyncCount=0, MaxResults=1024, **params)
        except botocore.exceptions.ClientError as error:  # the checker reports it: the dataset is not readable
            return Final(identity, dataset, 0, False, {}, error=str(error))
        records.update({r["Key"]: (r.get("Value"), int(r["SyncCount"])) for r in page.get("Records", [])})
        if not page.get("NextToken"):
            return Final(identity, dataset, int(page["DatasetSyncCount"]), bool(page["DatasetExists"]), records)
        params["NextToken"] = page["NextToken"]


async def push_settled(history: History, workload: Workload, listening: list[asyncio.Task[None]]) -> list[Pushed]:
    """How far each device's listener got, once all reached the counts due (chaos.checker.push_due: the final ones,
    less a device's own trailing writes) or stopped, or PUSH_SETTLE_SECONDS passed."""
    commits = Commits(history)
    final = {(item.identity, item.dataset): item.sync_count for item in history.final}
    due = {
        (device.name, dataset): push_due(
            commits, (device.identity, dataset), final[(device.identity, dataset)], device.name
        )
        for device in workload.devices
        for dataset in DATASETS
    }

    def behind() -> int:
        return sum(
            device.push.last_sync_count(dataset) < due[(device.name, dataset)] and not task.done()
            for device, task in zip(workload.devices, listening, strict=True)
            for dataset in DATASETS
        )

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(PUSH_SETTLE_SECONDS):
            while behind():
                await asyncio.sleep(0.1)
    return [
        Pushed(
            device.name,
            device.identity,
            dataset,
            device.push.last_sync_count(dataset),
            0 if device.listener is None else device.listener.connections,
            stopped=_failure(task),
        )
        for device, task in zip(workload.devices, listening, strict=True)
        for dataset in DATASETS
    ]


def _failure(task: asyncio.Task[None]) -> str | None:
    """Why a listener stopped by itself (it runs until cancelled unless refused for good), or None."""
    if not task.done() or task.cancelled():
        return None
    error = task.exception()
    return None if error is None else f"{type(error).__name__}: {error}"


async def drained(redis_url: str) -> bool:
    """Whether the relay's recorded position reached the last entry of every outbox shard within DRAIN_SECONDS."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while not all([await _shard_drained(client, shard) for shard in range(SHARDS)]):
                await asyncio.sleep(0.2)
        return True
    except TimeoutError:
        return False
    finally:
        await client.aclose()


async def _shard_drained(client: aioredis.Redis, shard: int) -> bool:
    if not await client.exists(rediskeys.outbox(shard)):
        return True
    last = (await client.xinfo_stream(rediskeys.outbox(shard)))["last-generated-id"]
    position = await client.get(rediskeys.relay_position(shard))
    return position is not None and _entry(position) >= _entry(last)


def _entry(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


async def read_stream(bootstrap: str, topic: str) -> list[Streamed]:
    """Every record of ``topic`` a read_committed consumer reads from the beginning to the end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    seen: list[Streamed] = []
    try:
        partitions = [TopicPartition(topic, partition) for partition in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        quiet = 0
        async with asyncio.timeout(STREAM_READ_SECONDS):
            while quiet < 3 and any([await consumer.position(tp) < ends[tp] for tp in partitions]):
                batches = await consumer.getmany(timeout_ms=1000)
                quiet = 0 if batches else quiet + 1
                seen += [_streamed(message) for messages in batches.values() for message in messages]
    finally:
        await consumer.stop()
    return seen


def _streamed(message: Any) -> Streamed:
    change = orjson.loads(message.value)
    records = [(record["key"], record.get("value")) for record in change["kinesisSyncRecords"]]
    return Streamed(message.key.decode(), message.partition, message.offset, int(change["syncCount"]), records)
