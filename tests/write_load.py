"""The load of the fault tests: writers that record what syncsvc acknowledged while something is being killed, and
the checks that all of it was stored and reached the topic exactly once in order (the topic read with
tests/streams.py, the stream kit).

A writer behaves as a device does when an instance fails under it. It owns one dataset of an identity of its own and
writes to it in sequence, one record per UpdateRecords (value ``<n>`` under key ``k<n mod key_space>``, the patch
carrying that record's SyncCount). It sends to one endpoint; on a connection error, a timeout or any answer but 200
it moves to the next endpoint (round robin). The outcome of such a call is unknown (an instance can commit a write
and die before answering), so the writer never re-sends blindly: it re-reads the dataset (ListRecords after the sync
count it holds) and reconciles. The write is there: it was *applied*, acknowledged by its effect (counted apart from
the writes answered 200). The dataset did not move: the same write goes again. A write sent twice can never commit
twice: its patch names the record's SyncCount, which the first commit moved (Cognito's conflict rule).

Every wait is bounded: the load writes for the seconds it is given, and a write in doubt at that moment has
``settle`` seconds more to find out its outcome (else it is ``unresolved``, which the checks report).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp
import orjson

from tests.conftest import REGION, Raw
from tests.streams import read_topic

DATASET = "load"
#: What a writer's call may end in, besides an answer: the instance is gone, or slow past the request timeout.
CONNECTION_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
#: Answers after which the same write may go again (if the dataset shows it was not applied), besides any 5xx.
RETRYABLE = frozenset({408, 409, 429})

# --- what the load committed, and what the topic shows of it ----------------------------------------------------------


class Write(NamedTuple):
    """One write of the load: ``value`` under ``key`` in the dataset at ``path``, committed as ``sync_count``."""

    path: str
    sync_count: int
    key: str
    value: str


@dataclass(frozen=True)
class TopicCheck:
    """The topic against what the load committed: each change once, with its value, in sync-count order."""

    found: int
    duplicates: int
    #: datasets whose changes came out of sync-count order
    out_of_order: list[str]
    #: committed writes not on the topic (or on it with another value)
    missing: list[str]
    #: changes on the topic that the load never committed (a write it does not know of: a harness or product bug)
    unexpected: list[str]


def check_topic(messages: list[Any], load: WriteLoad) -> TopicCheck:
    """Compares the records a read_committed consumer saw with what ``load`` committed."""
    stream_keys = {writer.path: writer.stream_key for writer in load.writers}
    expected = {(stream_keys[write.path], write.sync_count): write for write in load.committed}
    seen: Counter[tuple[bytes, int]] = Counter()
    order: dict[bytes, list[int]] = {}
    matched: set[tuple[bytes, int]] = set()
    unexpected = []
    for message in messages:
        change = orjson.loads(message.value)
        at = (message.key, change["syncCount"])
        seen[at] += 1
        order.setdefault(message.key, []).append(change["syncCount"])
        write = expected.get(at)
        if write is None:
            unexpected.append(f"{message.key.decode()} #{change['syncCount']}")
        elif {record["key"]: record["value"] for record in change["kinesisSyncRecords"]}.get(write.key) == write.value:
            matched.add(at)
    return TopicCheck(
        found=len(matched),
        duplicates=sum(seen.values()) - len(seen),
        out_of_order=[
            key.decode() for key, counts in order.items() if any(b < a for a, b in itertools.pairwise(counts))
        ],
        missing=[
            f"{write.path} #{write.sync_count} {write.key}={write.value}"
            for at, write in expected.items()
            if at not in matched
        ],
        unexpected=unexpected,
    )


def assert_exact(load: WriteLoad, check: TopicCheck) -> None:
    """Prints the load's figures (pytest -s), then asserts every committed change is on the topic exactly once, in
    sync-count order per dataset, and nothing else is."""
    print(load.figures())
    examples = {"missing": check.missing[:5], "unexpected": check.unexpected[:5], "out of order": check.out_of_order}
    counts = (len(check.missing), len(check.unexpected), check.duplicates, len(check.out_of_order))
    assert counts == (0, 0, 0, 0), f"missing, unexpected, duplicates, out of order: {counts}; e.g. {examples}"


# --- the load ---------------------------------------------------------------------------------------------------------


class Writer:
    """One device's writes: its own identity and dataset, in sequence, failing over between the load's endpoints."""

    def __init__(self, load: WriteLoad, pool_id: str, index: int) -> None:
        self.load = load
        identity = f"{REGION}:{uuid.uuid4()}"
        self.path = f"/identitypools/{pool_id}/identities/{identity}/datasets/{DATASET}"
        self.stream_key = f"{pool_id}/{identity}/{DATASET}".encode()
        self.turn = index  # the endpoint it sends to: endpoints[turn % len(endpoints)]
        self.token = ""
        self.sync_count = 0  # the dataset's, as last committed or read
        self.record_counts: dict[str, int] = {}  # each record's SyncCount, as last committed or read
        self.sent = 0
        self.times: list[float] = []  # when each of its writes was acknowledged (or found applied)

    async def run(self, clients: list[Raw], until: float, settled_by: float) -> None:
        if not self.token and await self.reconcile(clients, None, settled_by) is None:
            return
        while time.monotonic() < until and self.sent < self.load.max_writes:
            self.sent += 1
            write = Write(self.path, self.sync_count + 1, f"k{self.sent % self.load.key_space}", str(self.sent))
            if not await self.commit(clients, write, settled_by):
                return
            await asyncio.sleep(self.load.interval)

    async def commit(self, clients: list[Raw], write: Write, settled_by: float) -> bool:
        """Sends ``write`` until its outcome is known; False when the writer has to stop (the outcome stayed unknown
        until ``settled_by``, or the write was refused for good)."""
        delay = 0.05
        while True:
            outcome, body = await self.send(clients[self.turn % len(clients)], write)
            if outcome == "200":
                assert body["Records"][0]["SyncCount"] == write.sync_count, (write, body)
                self.done(write, applied=False)
                return True
            self.load.failures[f"UpdateRecords {outcome}"] += 1
            self.turn += 1
            applied = await self.reconcile(clients, write, settled_by)
            if applied is None:
                self.load.unresolved.append(write)
                return False
            if applied:
                self.done(write, applied=True)
                return True
            if not _retryable(outcome) or time.monotonic() > settled_by:
                self.load.refused.append(write)
                return False
            await asyncio.sleep(delay)
            delay = min(2 * delay, 1.0)

    async def send(self, raw: Raw, write: Write) -> tuple[str, dict[str, Any]]:
        patch = {
            "Op": "replace",
            "Key": write.key,
            "Value": write.value,
            "SyncCount": self.record_counts.get(write.key, 0),
        }
        return await _call(raw, "POST", self.path, {"SyncSessionToken": self.token, "RecordPatches": [patch]})

    async def reconcile(self, clients: list[Raw], write: Write | None, settled_by: float) -> bool | None:
        """Reads the dataset past what this writer holds (any endpoint, round robin, until ``settled_by``): whether
        ``write`` is there (None: no endpoint answered in time). Also takes a new SyncSessionToken."""
        delay = 0.05
        while time.monotonic() <= settled_by:
            raw = clients[self.turn % len(clients)]
            outcome, body = await _call(raw, "GET", f"{self.path}/records?lastSyncCount={self.sync_count}")
            if outcome == "200":
                return self.learn(body, write)
            self.load.failures[f"ListRecords {outcome}"] += 1
            self.turn += 1
            await asyncio.sleep(delay)
            delay = min(2 * delay, 1.0)
        return None

    def learn(self, listed: dict[str, Any], write: Write | None) -> bool:
        self.token = listed["SyncSessionToken"]
        records = {record["Key"]: record for record in listed["Records"]}
        if write is None:  # the first read: whatever is there
            self.sync_count = listed["DatasetSyncCount"]
            self.record_counts = {key: record["SyncCount"] for key, record in records.items()}
            return True
        record = records.get(write.key)
        if record is not None and record.get("Value") == write.value:
            assert (record["SyncCount"], listed["DatasetSyncCount"]) == (write.sync_count,) * 2, (write, listed)
            return True
        assert listed["DatasetSyncCount"] == self.sync_count, f"{self.path} moved without {write}: {listed}"
        return False

    def done(self, write: Write, *, applied: bool) -> None:
        self.sync_count = self.record_counts[write.key] = write.sync_count
        self.times.append(time.monotonic())
        self.load.record(write, applied=applied)


class WriteLoad:
    """``writers`` writers, each on an identity and dataset of its own in ``pool_id``, spread over ``endpoints`` (the
    i-th starts on endpoint i mod n), signed with the developer credentials.

    ``interval``: seconds a writer rests after each write; ``request_timeout``: seconds one call may take; ``settle``:
    seconds after the load's end that a write in doubt may take to learn its outcome; ``key_space``: records per
    dataset (later writes overwrite earlier ones, each patch naming the SyncCount of the write before it: a write
    that was overwritten was stored when the next one committed); ``max_writes``: per writer, after which it stops.
    """

    def __init__(
        self,
        endpoints: list[str],
        pool_id: str,
        writers: int,
        *,
        interval: float = 0.02,
        request_timeout: float = 5.0,
        settle: float = 30.0,
        key_space: int = 500,
        max_writes: int = 100_000,
    ) -> None:
        self.endpoints = endpoints
        self.interval, self.request_timeout, self.settle = interval, request_timeout, settle
        self.key_space, self.max_writes = key_space, max_writes
        self.writers = [Writer(self, pool_id, index) for index in range(writers)]
        #: Writes answered 200, in the order of their answers.
        self.acknowledged: list[Write] = []
        #: Writes whose answer was lost (connection error, 5xx, ...) but which a re-read found committed.
        self.applied: list[Write] = []
        #: Writes whose outcome stayed unknown past the settle time; writes refused for good. Each stops its writer.
        self.unresolved: list[Write] = []
        self.refused: list[Write] = []
        #: Failed calls by operation and status or error name: ``"UpdateRecords 503"``, ``"ListRecords ClientOSError"``.
        self.failures: Counter[str] = Counter()
        #: Set by the checks, for :meth:`figures`.
        self.found_stored: int | None = None
        self.topic: TopicCheck | None = None
        self._times: list[float] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def committed(self) -> list[Write]:
        """Every write the load knows committed: acknowledged, or found applied."""
        return self.acknowledged + self.applied

    async def run(self, seconds: float) -> None:
        """Writes for ``seconds``, then lets each write in doubt settle (``settle`` seconds at most). May run again:
        the writers go on where they stopped."""
        until = time.monotonic() + seconds
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.request_timeout)) as session:
            clients = [Raw(endpoint, session) for endpoint in self.endpoints]
            async with asyncio.TaskGroup() as writers:  # a writer's failed assertion stops the others
                for writer in self.writers:
                    writers.create_task(writer.run(clients, until, until + self.settle))

    @contextlib.asynccontextmanager
    async def running(self, seconds: float) -> AsyncIterator[None]:
        """Runs the load (:meth:`run`) beside the block, whose end waits for it; a block that fails cancels it."""
        task = asyncio.create_task(self.run(seconds))
        try:
            yield
        except BaseException:
            task.cancel()
            await asyncio.wait([task])
            raise
        await task

    def record(self, write: Write, *, applied: bool) -> None:
        (self.applied if applied else self.acknowledged).append(write)
        self._times.append(time.monotonic())
        for count, waiter in self._waiters:
            if len(self._times) >= count and not waiter.done():
                waiter.set_result(None)

    async def wait_committed(self, count: int, timeout: float = 30) -> None:
        """Waits until the load has committed ``count`` writes in all (TimeoutError after ``timeout`` seconds)."""
        if len(self._times) >= count:
            return
        entry = (count, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await entry[1]
        finally:
            self._waiters.remove(entry)

    async def wait_for(self, condition: Callable[[], bool], within: float, failure: str) -> float:
        """Until ``condition()`` holds, checked at each commit; returns when (a time.monotonic()). AssertionError with
        ``failure`` after ``within`` seconds: how fault tests time the first write after a kill."""
        try:
            async with asyncio.timeout(within):
                while not condition():
                    await self.wait_committed(len(self._times) + 1, timeout=within)
        except TimeoutError:
            raise AssertionError(f"{failure} within {within} s") from None
        return time.monotonic()

    def committed_since(self, moment: float) -> list[int]:
        """Per writer, how many of its writes committed after ``moment`` (a time.monotonic())."""
        return [sum(1 for at in writer.times if at > moment) for writer in self.writers]

    @property
    def longest_pause(self) -> float:
        """Seconds: the longest time the load as a whole went without a write committing (its time to resume)."""
        return _longest_gap(self._times)

    @property
    def longest_writer_pause(self) -> float:
        """Seconds: the longest time one writer went between two of its writes (what one device waited)."""
        return max((_longest_gap(writer.times) for writer in self.writers), default=0.0)

    async def verify_stored(self, endpoint: str) -> list[str]:
        """What ListRecords at ``endpoint`` lacks of what the load committed: each record must hold the last write to
        it, and each dataset's sync count must be its last write's (so no commit is missing in between)."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            raw = Raw(endpoint, session)
            missing = [line for writer in self.writers for line in await self._stored(raw, writer)]
        self.found_stored = len(self.committed) - len(missing)
        return missing

    async def _stored(self, raw: Raw, writer: Writer) -> list[str]:
        stored = await list_records(raw, writer.path)
        latest = {write.key: write for write in self.committed if write.path == writer.path}
        missing = [
            f"{write.path} #{write.sync_count} {key}={write.value}: stored {stored.records.get(key)}"
            for key, write in latest.items()
            if stored.records.get(key) != (write.value, write.sync_count)
        ]
        last = max((write.sync_count for write in latest.values()), default=0)
        if stored.sync_count != last:
            missing.append(f"{writer.path}: DatasetSyncCount {stored.sync_count}, last committed {last}")
        return missing

    async def verify_topic(self, bootstrap: str, topic: str, timeout: float = 60) -> TopicCheck:
        """Reads ``topic`` (read_committed) until every committed write is there, or ``timeout``, and checks it."""
        self.topic = check_topic(await read_topic(bootstrap, topic, len(self.committed), timeout), self)
        return self.topic

    def figures(self) -> dict[str, Any]:
        """What a fault test prints: what was committed, what was found of it, how long writes paused."""
        return {
            "acknowledged": len(self.acknowledged),
            "applied_on_retry": len(self.applied),
            "unresolved": len(self.unresolved) + len(self.refused),
            "failures": dict(sorted(self.failures.items())),
            "found_stored": self.found_stored,
            "found_on_topic": None if self.topic is None else self.topic.found,
            "duplicates": None if self.topic is None else self.topic.duplicates,
            "out_of_order": None if self.topic is None else len(self.topic.out_of_order),
            "longest_pause_s": round(self.longest_pause, 3),
            "longest_writer_pause_s": round(self.longest_writer_pause, 3),
        }


class Stored(NamedTuple):
    """A dataset as ListRecords shows it: each record's (value, SyncCount), and the dataset's sync count."""

    records: dict[str, tuple[str | None, int]]
    sync_count: int


async def list_records(raw: Raw, path: str) -> Stored:
    """Every record of the dataset at ``path``, all pages."""
    records: dict[str, tuple[str | None, int]] = {}
    query = "lastSyncCount=0&maxResults=1024"
    async with asyncio.timeout(60):
        while True:
            status, body, _ = await raw.send("GET", f"{path}/records?{query}")
            assert status == 200, body
            records.update({r["Key"]: (r.get("Value"), r["SyncCount"]) for r in body["Records"]})
            if "NextToken" not in body:
                return Stored(records, body["DatasetSyncCount"])
            query = f"lastSyncCount=0&maxResults=1024&nextToken={quote(body['NextToken'], safe='')}"


async def _call(raw: Raw, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """One call: its status and body, or the name of the error that cut it short (and no body)."""
    try:
        status, answer, _ = await raw.send(method, path, body=b"" if body is None else body)
    except CONNECTION_ERRORS as error:
        return type(error).__name__, {}
    return str(status), answer


def _retryable(outcome: str) -> bool:
    """Whether a call that ended in ``outcome`` (a status or an error name) may be sent again."""
    return not outcome.isdigit() or int(outcome) >= 500 or int(outcome) in RETRYABLE


def _longest_gap(times: list[float]) -> float:
    return max((later - earlier for earlier, later in itertools.pairwise(sorted(times))), default=0.0)
