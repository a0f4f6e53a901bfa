"""Workload 5, stream latency: a write acknowledged → a read_committed Kafka consumer receives its change.

    python -m bench.workloads.stream_latency http://127.0.0.1:8080 --developer KEY:SECRET --bootstrap 127.0.0.1:9092

Creates the topic (so the consumer has its partitions before the first write), a pool streaming to it, a guest
identity with a Bearer token, and a read_committed consumer with every partition assigned and positioned. Then it
writes one record at a time (UpdateRecords over HTTP), *sequentially*: the next write is sent once the previous
one's change has been received, so each figure is one change's trip alone, never queued behind another. A change
is matched by its Cognito Streams JSON (``identityId``, ``dataSetName``, ``syncCount``: write ``n`` makes sync count
``n``). Reported: p50/p90/p99/max of acknowledgement (the UpdateRecords response) → received, and of write sent →
received. The trip includes the relay's wake-up on the outbox stream, its Kafka transaction (produce, checkpoint
record, commit) and the consumer's fetch of the committed batch.
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

from bench.workloads.pools import (
    BenchError,
    Guest,
    call,
    create_pool,
    create_topic,
    new_guest,
    percentiles_ms,
    positioned_consumer,
    session_token,
)

DATASET = "stream"
#: Longest wait for one change to arrive before the run fails.
ARRIVAL_TIMEOUT_SECONDS = 10.0
#: The consumer's longest fetch wait: a read_committed fetch returns as soon as a transaction commits, so this only
#: bounds an idle poll; kept low so that the consumer never adds its own delay.
FETCH_MAX_WAIT_MS = 100


class Arrivals:
    """Receives the topic's records in the background and tells when the change with a sync count arrived."""

    def __init__(self, consumer: Any, guest: Guest) -> None:
        self._consumer = consumer
        self._guest = guest
        self._waiting: dict[int, asyncio.Future[float]] = {}
        self._task = asyncio.create_task(self._receive(), name="stream arrivals")

    def expect(self, sync_count: int) -> asyncio.Future[float]:
        if self._task.done():
            raise BenchError("the consumer stopped")
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[sync_count] = future
        return future

    async def _receive(self) -> None:
        try:
            await self._match()
        except Exception as exc:  # the waiting write fails with it rather than timing out
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(BenchError(f"the consumer failed: {type(exc).__name__}: {exc}"))
            raise

    async def _match(self) -> None:
        async for message in self._consumer:
            now = time.perf_counter()
            change = orjson.loads(message.value)
            if change["identityId"] != self._guest.identity_id or change["dataSetName"] != DATASET:
                continue
            future = self._waiting.pop(int(change["syncCount"]), None)
            if future is not None and not future.done():
                future.set_result(now)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if not self._task.cancelled() and (error := self._task.exception()) is not None:
            raise error


async def measure(
    url: str, developer: str, bootstrap: str, *, writes: int = 1000, topic: str | None = None
) -> dict[str, Any]:
    """Writes ``writes`` one-record changes one after another; latency from acknowledgement to the consumer."""
    topic = topic or f"bench-stream-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic)
    pool_id = await asyncio.to_thread(create_pool, url, developer, stream_topic=topic)
    consumer = await positioned_consumer(bootstrap, topic, fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    try:
        async with aiohttp.ClientSession() as session:
            guest = await new_guest(session, url, pool_id)
            token = await session_token(session, url, guest, DATASET)
            arrivals = Arrivals(consumer, guest)
            try:
                timings = await _write(session, url, guest, token, arrivals, writes)
            finally:
                await arrivals.close()
    finally:
        await consumer.stop()
    return {
        "writes": len(timings),
        "topic": topic,
        **percentiles_ms([received - acked for acked, received, _ in timings]),
        "sent_to_received": percentiles_ms([received - sent for _, received, sent in timings]),
    }


async def _write(
    session: aiohttp.ClientSession, url: str, guest: Guest, token: str, arrivals: Arrivals, writes: int
) -> list[tuple[float, float, float]]:
    """(acknowledged, received, sent) per write, perf_counter seconds."""
    timings = []
    dataset = guest.dataset_url(url, DATASET)
    for n in range(writes):
        arrived = arrivals.expect(n + 1)
        patch = {"Op": "replace", "Key": "k", "Value": f"v{n}", "SyncCount": n}
        sent = time.perf_counter()
        await call(session, "POST", dataset, guest.headers, {"SyncSessionToken": token, "RecordPatches": [patch]})
        acknowledged = time.perf_counter()
        try:
            received = await asyncio.wait_for(arrived, ARRIVAL_TIMEOUT_SECONDS)
        except TimeoutError:
            raise BenchError(f"write {n + 1} did not reach the topic within {ARRIVAL_TIMEOUT_SECONDS} s") from None
        timings.append((acknowledged, received, sent))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url", help="syncsvc endpoint")
    parser.add_argument("--developer", required=True, help="developer credentials KEY:SECRET")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap host:port")
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--topic", help="stream topic (default: a new one)")
    args = parser.parse_args()
    result = asyncio.run(measure(args.url, args.developer, args.bootstrap, writes=args.writes, topic=args.topic))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
