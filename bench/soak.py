"""`make soak`: one syncsvc for 30 minutes at half its peak, with push sockets and a stream consumer on, watched for
growth (issue 21).

    python -m bench.soak [--minutes 30] [--identities 400] [--rate WRITES_PER_S] [--out bench/results/soak]

It starts its own Redis (AOF) and Kafka, and ``syncsvc serve`` with the relay inside, as `make bench` does. The
peak is measured first (wrk, 64 connections, 5 s: the benchmark's write workload), unless ``--rate`` is given.
Then every identity is a phone and a tablet: the tablet writes one of the identity's 20 keys (a 100-byte value, the
right SyncCount, so every write succeeds and the data set stays the same size: what grows is the service, not the
data), the phone holds a push socket subscribed to the dataset, and a read_committed consumer reads the pool's
stream. Writes are spread evenly (each identity at rate / identities per second); one the load shedding refuses
(429) is retried after a second or two, as an SDK would, and counted (``shed_and_retried``). OpenID tokens last 10
minutes: each identity renews its own at a random moment 4 to 8 minutes after it was issued, and a push socket the
server closes is opened again.

Every 10 s a sample: the server's RSS and open files, Redis ``used_memory`` per identity, the outbox backlog (entries
not yet published), the stream lag (write acknowledged → the consumer has it; p99 over the sample), and the counts.
The report is ``soak.json`` and ``soak.png``. Growth is judged over the last 20 minutes (the last two thirds of a
shorter run, so warm-up is left out): the least-squares slope over that window, times its length, against the
samples' scatter around the line (2 sigma is noise). A write that fails, a change that never reaches the stream or
a phone never told of its dataset's last count (notified, or told on reconnecting) makes the run fail: a soak that
loses data has nothing else to say.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import redis.asyncio as aioredis

from bench.load import run_wrk
from bench.run import Plan, infrastructure, machine_description
from bench.systems.base import REPO, free_port
from bench.systems.syncsvc import SyncSvc
from bench.workloads.pools import BenchError, Guest, call, create_topic, new_guests, positioned_consumer, refreshed
from syncsvc import rediskeys
from syncsvc.config import Settings

T = TypeVar("T")
DATASET = "soak"
KEYS = 20
VALUE = "v" * 100
SAMPLE_SECONDS = 10.0
#: Renew an OpenID token (10 minutes) at a random moment between half this long and this long after it was issued,
#: as devices that started apart would: renewals in lockstep (every identity at minute 8, 16, 24) made bursts of
#: 400 GetOpenIdToken calls, whose high-water marks showed as steps of RSS in the soaks of 2026-12-07.
RENEW_SECONDS = 8 * 60
#: The window growth is judged over, and the share of a shorter run it takes.
JUDGED_SECONDS = 20 * 60
STREAM_GRACE_SECONDS = 30.0
#: Retries of a write the load shedding refused (botocore's standard mode makes 3 attempts; a soak is patient).
RETRIES = 5


@dataclass(slots=True)
class Sample:
    seconds: float
    rss_bytes: int
    open_files: int
    redis_bytes: int
    redis_bytes_per_identity: float
    outbox_backlog: int
    stream_lag_p99_ms: float
    writes: int
    notifications: int
    streamed: int
    writes_per_second: float


@dataclass(slots=True)
class Counts:
    writes: int = 0
    failed: list[str] = field(default_factory=list)
    notifications: int = 0
    streamed: int = 0
    reconnects: int = 0
    #: Refusals of the load shedding (retried as an SDK does).
    shed: int = 0
    socket_failures: list[str] = field(default_factory=list)
    #: (identity, sync count) -> when the write was acknowledged, until the consumer has its change.
    acked: dict[tuple[str, int], float] = field(default_factory=dict)
    #: Changes the consumer had before the soak saw their write acknowledged: the change reaches Kafka and this
    #: process's consumer while the write's answer waits in this process's event loop (or the change is one of the
    #: peak measurement's writes, acknowledged to wrk).
    streamed_first: set[tuple[str, int]] = field(default_factory=set)
    #: Acknowledged writes whose change the consumer had first.
    acked_after_streamed: int = 0
    lags: list[float] = field(default_factory=list)


class Phone:
    """One identity: a tablet that writes, a phone with a push socket subscribed to the dataset."""

    def __init__(self, session: aiohttp.ClientSession, url: str, guest: Guest, counts: Counts) -> None:
        self.session, self.url, self.guest, self.counts = session, url, guest, counts
        self.renewed = time.monotonic()
        self.renew_after = RENEW_SECONDS * random.uniform(0.5, 1.0)
        self.devices: dict[str, str] = {}
        #: The newest sync count the phone was told of, and the dataset's, as its last acknowledged write made it.
        self.notified = 0
        self.written = 0

    async def setup(self) -> None:
        for name in ("phone", "tablet"):
            path = f"{self.url}/identitypools/{self.guest.pool_id}/identity/{self.guest.identity_id}/device"
            answer = await self._call("POST", path, {"Platform": "WEBSOCKET", "Token": name})
            self.devices[name] = answer["DeviceId"]
        subscription = f"{self.guest.dataset_url(self.url, DATASET)}/subscriptions/{self.devices['phone']}"
        await self._call("POST", subscription)

    async def _patiently(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt`` as an AWS SDK makes a call: a refusal of the load shedding (TooManyRequestsException, nothing
        done) is retried after a second and a random part of another, up to RETRIES times, and counted."""
        for _ in range(RETRIES):
            try:
                return await attempt()
            except BenchError as error:
                if "TooManyRequestsException" not in str(error):
                    raise
                self.counts.shed += 1
                await asyncio.sleep(1 + random.random())
        return await attempt()

    async def _call(self, method: str, url: str, body: Any = None) -> Any:
        return await self._patiently(lambda: call(self.session, method, url, self.guest.headers, body))

    async def _renew(self) -> None:
        if time.monotonic() - self.renewed > self.renew_after:
            self.guest = await self._patiently(lambda: refreshed(self.session, self.url, self.guest))
            self.renewed = time.monotonic()
            self.renew_after = RENEW_SECONDS * random.uniform(0.5, 1.0)

    async def listen(self) -> None:
        """Holds the phone's push socket, counting notifications and keeping the newest sync count it was told of;
        opens it again (after a second) when the server closes it or the connection fails."""
        path = f"/identitypools/{self.guest.pool_id}/identity/{self.guest.identity_id}/device/{self.devices['phone']}"
        while True:
            try:
                await self._renew()
                async with self.session.ws_connect(self.url + path + "/push", headers=self.guest.headers) as socket:
                    async for message in socket:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            told = orjson.loads(message.data)
                            if "syncCount" in told:
                                self.counts.notifications += 1
                                self.notified = max(self.notified, int(told["syncCount"]))
                            for count in told.get("syncCounts", {}).values():  # resumed: what it missed, at once
                                self.notified = max(self.notified, int(count))
            except (aiohttp.ClientError, BenchError, TimeoutError) as error:
                self.counts.socket_failures.append(f"{type(error).__name__}: {error}"[:200])
            self.counts.reconnects += 1
            await asyncio.sleep(1)

    async def write(self, interval: float, stop: float) -> None:
        """Writes every ``interval`` seconds until ``stop`` (monotonic), cycling through the keys."""
        dataset = self.guest.dataset_url(self.url, DATASET)
        listed = await self._call("GET", dataset + "/records")
        session_token = listed["SyncSessionToken"]
        counts = {record["Key"]: record["SyncCount"] for record in listed["Records"]}
        due = time.monotonic() + interval * (hash(self.guest.identity_id) % 1000) / 1000
        n = 0
        while (now := time.monotonic()) < stop:
            await asyncio.sleep(max(0.0, due - now))
            due = max(due + interval, time.monotonic() - 1)  # never more than a second of catching up
            await self._renew()
            key = f"k{n % KEYS}"
            n += 1
            patch = {"Op": "replace", "Key": key, "Value": VALUE, "SyncCount": counts.get(key, 0)}
            body = {"SyncSessionToken": session_token, "DeviceId": self.devices["tablet"], "RecordPatches": [patch]}
            answer = await self._send(dataset, body)
            if answer is None:
                continue
            (record,) = answer["Records"]
            counts[key] = record["SyncCount"]
            self.written = max(self.written, record["SyncCount"])
            change = (self.guest.identity_id, int(record["SyncCount"]))
            if change in self.counts.streamed_first:
                self.counts.streamed_first.discard(change)
                self.counts.acked_after_streamed += 1
                self.counts.lags.append(0.0)
            else:
                self.counts.acked[change] = time.monotonic()
            self.counts.writes += 1

    async def _send(self, dataset: str, body: dict[str, Any]) -> Any:
        """UpdateRecords as an AWS SDK sends it (:meth:`_patiently`); None (and the failure noted) when it does not
        get through."""
        try:
            return await self._call("POST", dataset, body)
        except (BenchError, aiohttp.ClientError) as error:
            self.counts.failed.append(f"{self.guest.identity_id}: {error}"[:300])
            return None


async def consume(bootstrap: str, topic: str, counts: Counts, ready: asyncio.Event) -> None:
    consumer = await positioned_consumer(bootstrap, topic, fetch_max_wait_ms=100)
    ready.set()
    try:
        async for message in consumer:
            change = orjson.loads(message.value)
            key = (change["identityId"], int(change["syncCount"]))
            acked = counts.acked.pop(key, None)
            counts.streamed += 1
            if acked is not None:
                counts.lags.append(time.monotonic() - acked)
            else:
                counts.streamed_first.add(key)
    finally:
        await consumer.stop()


def behind(phones: list[Phone]) -> list[Phone]:
    """The phones not (yet) told of their dataset's newest sync count."""
    return [phone for phone in phones if phone.notified < phone.written]


def _rss_and_files(pids: list[int]) -> tuple[int, int]:
    rss = files = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
            files += len(os.listdir(f"/proc/{pid}/fd"))
    return rss, files


async def _sample(
    started: float, system: SyncSvc, client: aioredis.Redis, counts: Counts, last: Sample | None
) -> Sample:
    rss, files = _rss_and_files(system.pids())
    memory = int((await client.info("memory"))["used_memory"])
    shards = Settings.model_fields["shards"].default
    pipe = client.pipeline(transaction=False)
    for shard in range(shards):
        pipe.xlen(rediskeys.outbox(shard))
    backlog = sum(await pipe.execute())
    lags, counts.lags = counts.lags, []
    seconds = time.monotonic() - started
    previous_writes, previous_seconds = (last.writes, last.seconds) if last else (0, 0.0)
    return Sample(
        seconds=round(seconds, 1),
        rss_bytes=rss,
        open_files=files,
        redis_bytes=memory,
        redis_bytes_per_identity=0.0,
        outbox_backlog=backlog,
        stream_lag_p99_ms=round(statistics.quantiles(lags, n=100)[98] * 1000, 2) if len(lags) > 1 else 0.0,
        writes=counts.writes,
        notifications=counts.notifications,
        streamed=counts.streamed,
        writes_per_second=round((counts.writes - previous_writes) / max(seconds - previous_seconds, 1e-9), 1),
    )


def growth(samples: list[Sample], metric: str, window: float) -> dict[str, float]:
    """The least-squares slope of ``metric`` over the last ``window`` seconds, as growth over that window, against
    the samples' scatter around the line; and that growth per write acknowledged in the window (a leak of anything
    per request, even one small object, would be tens of bytes per write or more)."""
    judged = [s for s in samples if s.seconds >= samples[-1].seconds - window]
    xs, ys = [s.seconds for s in judged], [float(getattr(s, metric)) for s in judged]
    if len(judged) < 3:
        return {"samples": len(judged), "growth": 0.0, "mean": statistics.fmean(ys) if ys else 0.0, "noise": 0.0}
    slope, intercept = statistics.linear_regression(xs, ys)
    residuals = [y - (slope * x + intercept) for x, y in zip(xs, ys, strict=True)]
    mean = statistics.fmean(ys)
    spread = xs[-1] - xs[0]
    return {
        "samples": len(judged),
        "mean": mean,
        "growth": slope * spread,
        "growth_share": slope * spread / mean if mean else 0.0,
        "growth_per_write": slope * spread / max(judged[-1].writes - judged[0].writes, 1),
        "noise": 2 * statistics.pstdev(residuals),
        "within_noise": abs(slope * spread) <= 2 * statistics.pstdev(residuals),
    }


async def drive(
    system: SyncSvc, bootstrap: str, redis_url: str, *, identities: int, rate: float, seconds: float
) -> dict[str, Any]:
    counts = Counts()
    await create_topic(bootstrap, system.topic)
    ready = asyncio.Event()
    consumer = asyncio.create_task(consume(bootstrap, system.topic, counts, ready))
    client = aioredis.Redis.from_url(redis_url)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        guests = await new_guests(session, system.url, system.pool_id, identities, parallel=32)
        phones = [Phone(session, system.url, guest, counts) for guest in guests]
        for start in range(0, len(phones), 50):
            await asyncio.gather(*(phone.setup() for phone in phones[start : start + 50]))
        await asyncio.wait_for(ready.wait(), 60)
        listeners = [asyncio.create_task(phone.listen()) for phone in phones]
        base_memory = int((await client.info("memory"))["used_memory"])
        started = time.monotonic()
        stop = started + seconds
        writers = asyncio.gather(*(phone.write(identities / rate, stop) for phone in phones))
        samples: list[Sample] = []
        while time.monotonic() < stop:
            await asyncio.sleep(min(SAMPLE_SECONDS, max(0.0, stop - time.monotonic())))
            sample = await _sample(started, system, client, counts, samples[-1] if samples else None)
            sample.redis_bytes_per_identity = round((sample.redis_bytes - base_memory) / identities, 1)
            samples.append(sample)
            print(json.dumps(asdict(sample)), flush=True)
            if writers.done() and writers.exception() is not None:
                raise BenchError(f"a tablet stopped: {writers.exception()!r}")
            if consumer.done():
                raise BenchError(f"the stream consumer stopped: {consumer.exception()!r}")
        await writers
        deadline = time.monotonic() + STREAM_GRACE_SECONDS
        while (counts.acked or behind(phones)) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        for task in [*listeners, consumer]:
            task.cancel()
        await asyncio.gather(*listeners, consumer, return_exceptions=True)
    await client.aclose()
    window = min(JUDGED_SECONDS, seconds * 2 / 3)
    metrics = ("rss_bytes", "open_files", "redis_bytes_per_identity", "outbox_backlog", "stream_lag_p99_ms")
    return {
        "identities": identities,
        "rate": rate,
        "seconds": seconds,
        "judged_seconds": window,
        "writes": counts.writes,
        "failed": counts.failed[:20],
        "failed_count": len(counts.failed),
        "never_streamed": len(counts.acked),
        #: (identity, sync count, seconds into the run it was acknowledged) of some that never reached the stream
        "never_streamed_examples": [
            [identity, count, round(at - started, 1)] for (identity, count), at in list(counts.acked.items())[:20]
        ],
        "streamed": counts.streamed,
        "acked_after_streamed": counts.acked_after_streamed,
        "notifications": counts.notifications,
        "shed_and_retried": counts.shed,
        "push_reconnects": counts.reconnects,
        "push_failures": counts.socket_failures[:20],
        "phones_behind": len(behind(phones)),
        "growth": {metric: growth(samples, metric, window) for metric in metrics},
        "samples": [asdict(sample) for sample in samples],
    }


def chart(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [s["seconds"] / 60 for s in samples]
    panels = [
        ("rss_bytes", "server RSS, MiB", 1 / 2**20),
        ("open_files", "server open files", 1),
        ("redis_bytes_per_identity", "Redis bytes per identity (over the start)", 1),
        ("stream_lag_p99_ms", "stream lag p99, ms", 1),
        ("outbox_backlog", "outbox backlog (entries)", 1),
        ("writes_per_second", "writes/s", 1),
    ]
    figure, axes = plt.subplots(2, 3, figsize=(15, 7))
    for axis, (metric, title, scale) in zip(axes.flat, panels, strict=True):
        axis.plot(minutes, [s[metric] * scale for s in samples], marker=".", linewidth=1)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("minutes")
        axis.axvline((result["seconds"] - result["judged_seconds"]) / 60, color="grey", linestyle=":", linewidth=1)
        axis.grid(True, alpha=0.3)
    figure.suptitle(
        f"soak: {result['identities']} identities, {result['rate']:,.0f} writes/s offered, push + stream on "
        "(dotted: start of the judged window)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(out / "soak.png", dpi=100)
    plt.close(figure)


def run(minutes: float, identities: int, rate: float | None, out: Path, *, kafka: str | None = None) -> dict[str, Any]:
    """The whole soak (its own Redis; its own Kafka broker unless ``kafka`` is given); writes the report into
    ``out``."""
    with tempfile.TemporaryDirectory(prefix="syncsvc-soak-") as scratch:
        folder = Path(scratch)
        with infrastructure(folder, None, kafka) as (infra, _):
            system = SyncSvc(infra, workers=1)
            system.start(folder / system.name, free_port())
            try:
                if rate is None:
                    templates = asyncio.run(system.write_templates(Plan().write_users))
                    peak = run_wrk(system.url, templates, connections=64, seconds=5, server_pids=system.pids())
                    rate = peak.throughput / 2
                    print(f"peak {peak.throughput:,.0f} writes/s: soaking at {rate:,.0f}/s", flush=True)
                result = asyncio.run(
                    drive(
                        system,
                        infra.kafka_bootstrap,
                        infra.redis_url,
                        identities=identities,
                        rate=rate,
                        seconds=minutes * 60,
                    )
                )
            finally:
                system.stop()
    result["machine"] = machine_description()
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    chart(result, out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--identities", type=int, default=400)
    parser.add_argument("--rate", type=float, help="writes per second (default: half the peak measured first)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "soak")
    args = parser.parse_args()
    result = run(args.minutes, args.identities, args.rate, args.out)
    for metric, judged in result["growth"].items():
        print(
            f"{metric}: mean {judged['mean']:,.1f}, growth {judged['growth']:+,.1f} over the judged window, "
            f"noise ±{judged['noise']:,.1f} ({judged.get('growth_per_write', 0.0):+,.3f} per write)"
        )
    print(
        f"writes {result['writes']:,}, failed {result['failed_count']}, never streamed {result['never_streamed']}, "
        f"notifications {result['notifications']:,}, phones behind {result['phones_behind']}, push reconnects "
        f"{result['push_reconnects']}"
    )
    if result["failed_count"] or result["never_streamed"] or result["phones_behind"]:
        raise SystemExit("soak: writes failed, never reached the stream, or a phone was not told (see soak.json)")


if __name__ == "__main__":
    main()
