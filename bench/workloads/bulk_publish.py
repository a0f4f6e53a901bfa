"""Workload 7, bulk publish rate: records per second BulkPublish puts into Kafka.

    python -m bench.workloads.bulk_publish http://127.0.0.1:8080 --developer KEY:SECRET \\
        --bootstrap 127.0.0.1:9092 --redis-url redis://127.0.0.1:6379/0

Seeds a pool with ``identities`` guests x ``datasets_per_identity`` datasets x ``records_per_dataset`` records (one
UpdateRecords per dataset carrying all its records, ``seed_parallel`` requests at a time, Bearer tokens) while
streaming is still off, so that the live stream does not carry the data first. Then it turns streaming on (a new
topic, created beforehand), positions a read_committed consumer on the topic, calls BulkPublish (boto3) and polls
GetBulkPublishDetails until SUCCEEDED, while the consumer counts the pool's records on the topic until all of them
are there.

Reported: ``seconds`` from the BulkPublish call to SUCCEEDED seen by the poll (``server_seconds``: the job's own
start → completion, from its hash in Redis), ``seconds_to_visible`` from the call to the consumer holding every
seeded record, and ``records_per_second`` = records / ``seconds_to_visible`` (the rate into Kafka, as consumers see
it; ``records_per_second_to_succeeded`` uses ``seconds``). SUCCEEDED means every dataset is in the outbox, not yet
in Kafka: the relay publishes it after. A bulk publish carries one Kafka message per *dataset* (all its records
inline), so ``messages`` = datasets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis

from bench.workloads.pools import (
    BenchError,
    Guest,
    call,
    create_pool,
    create_topic,
    new_guests,
    positioned_consumer,
    session_token,
    set_streaming,
    sync_client,
)
from syncsvc import rediskeys

VALUE = "v" * 100
POLL_SECONDS = 0.02
TIMEOUT_SECONDS = 600.0


async def measure(
    url: str,
    developer: str,
    bootstrap: str,
    redis_url: str,
    *,
    identities: int = 200,
    datasets_per_identity: int = 5,
    records_per_dataset: int = 100,
    seed_parallel: int = 32,
) -> dict[str, Any]:
    """Seeds a pool, bulk publishes it; how fast its records reach the topic."""
    topic = f"bench-bulk-{uuid.uuid4().hex[:8]}"
    pool_id = await asyncio.to_thread(create_pool, url, developer)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        guests = await new_guests(session, url, pool_id, identities)
        await _seed(session, url, guests, datasets_per_identity, records_per_dataset, seed_parallel)
    seed_seconds = time.perf_counter() - started
    await create_topic(bootstrap, topic)
    await asyncio.to_thread(set_streaming, url, developer, pool_id, topic)
    expected = identities * datasets_per_identity * records_per_dataset
    consumer = await positioned_consumer(bootstrap, topic)
    try:
        counting = asyncio.create_task(_count(consumer, pool_id, expected))
        try:
            called = time.perf_counter()
            await asyncio.to_thread(_start, url, developer, pool_id)
            succeeded = await _succeeded(url, developer, pool_id)
            async with asyncio.timeout(TIMEOUT_SECONDS):
                visible, messages = await counting
        finally:
            counting.cancel()
    finally:
        await consumer.stop()
    server_seconds = await _server_seconds(redis_url, pool_id)
    seconds, to_visible = succeeded - called, visible - called
    return {
        "records": expected,
        "messages": messages,
        "seconds": round(seconds, 3),
        "server_seconds": server_seconds,
        "seconds_to_visible": round(to_visible, 3),
        "records_per_second": round(expected / to_visible),
        "records_per_second_to_succeeded": round(expected / seconds),
        "seed_seconds": round(seed_seconds, 2),
    }


async def _seed(
    session: aiohttp.ClientSession, url: str, guests: list[Guest], datasets: int, records: int, parallel: int
) -> None:
    """One UpdateRecords per dataset with all its records, ``parallel`` at a time."""
    gate = asyncio.Semaphore(parallel)
    patches = [{"Op": "replace", "Key": f"k{i:05d}", "Value": VALUE, "SyncCount": 0} for i in range(records)]

    async def one(guest: Guest, dataset: str) -> None:
        async with gate:
            token = await session_token(session, url, guest, dataset)
            body = {"SyncSessionToken": token, "RecordPatches": patches}
            await call(session, "POST", guest.dataset_url(url, dataset), guest.headers, body)

    await asyncio.gather(*(one(guest, f"d{d}") for guest in guests for d in range(datasets)))


def _start(url: str, developer: str, pool_id: str) -> None:
    """BulkPublish; retried briefly while an instance's cached pool configuration still shows streaming off."""
    client = sync_client(url, developer)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.bulk_publish(IdentityPoolId=pool_id)
            return
        except client.exceptions.InvalidParameterException:
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_SECONDS)


async def _succeeded(url: str, developer: str, pool_id: str) -> float:
    """perf_counter when GetBulkPublishDetails first answers SUCCEEDED (polled every ``POLL_SECONDS``)."""
    client = sync_client(url, developer)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        details = await asyncio.to_thread(client.get_bulk_publish_details, IdentityPoolId=pool_id)
        status = details["BulkPublishStatus"]
        if status == "SUCCEEDED":
            return time.perf_counter()
        if status == "FAILED":
            raise BenchError(f"bulk publish failed: {details.get('FailureMessage')}")
        await asyncio.sleep(POLL_SECONDS)
    raise BenchError(f"bulk publish not SUCCEEDED after {TIMEOUT_SECONDS} s")


async def _count(consumer: Any, pool_id: str, expected: int) -> tuple[float, int]:
    """(perf_counter when the pool's records on the topic reach ``expected``, messages read)."""
    records = messages = 0
    while records < expected:
        batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
        for batch in batches.values():
            for message in batch:
                change = orjson.loads(message.value)
                if change["identityPoolId"] == pool_id:
                    messages += 1
                    records += len(change["kinesisSyncRecords"])
    return time.perf_counter(), messages


async def _server_seconds(redis_url: str, pool_id: str) -> float | None:
    """The job's start → completion as the server recorded them (epoch ms in its hash)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        started, completed = await client.hmget(rediskeys.bulk_publish(pool_id), ["started", "completed"])
    finally:
        await client.aclose()
    if not started or not completed:
        return None
    return (int(completed) - int(started)) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url", help="syncsvc endpoint")
    parser.add_argument("--developer", required=True, help="developer credentials KEY:SECRET")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap host:port")
    parser.add_argument("--redis-url", required=True, help="syncsvc's Redis (the job's own timestamps)")
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--datasets-per-identity", type=int, default=5)
    parser.add_argument("--records-per-dataset", type=int, default=100)
    args = parser.parse_args()
    result = asyncio.run(
        measure(
            args.url,
            args.developer,
            args.bootstrap,
            args.redis_url,
            identities=args.identities,
            datasets_per_identity=args.datasets_per_identity,
            records_per_dataset=args.records_per_dataset,
        )
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
