"""What a chaos run recorded: every operation a device invoked (with its invoke and complete times and its outcome),
every fault the nemesis injected, and what was found afterwards (each dataset's final state, the stream's records,
how far each device's push socket got). Pure data; JSON lines in and out, so a failing run can be kept as a file and
checked again (``python -m chaos --check FILE``).

Outcomes, in the vocabulary of history checkers (Jepsen's ok / fail / info):

* ``ok``: the server answered success; the operation took effect (for a write: at the sync count it answered).
* ``fail``: it definitely did not take effect: a 4xx answer (a conflict, a refusal), or the connection was refused
  before a byte was sent.
* ``info``: indeterminate: a timeout, a connection cut mid-request, a 5xx. It may or may not have taken effect, but
  never twice: the checker allows it to appear once, at one sync count, or not at all.

It touches nothing: no process, no network, no file but the one ``write``/``read`` are given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

Kind = Literal["update", "list", "delete"]
Outcome = Literal["ok", "fail", "info"]
#: A record as a device sees it: (value, or None for a tombstone; its SyncCount).
Seen = tuple[str | None, int]


@dataclass
class Op:
    """One call of one device on one dataset (``client``: how the device calls, see chaos.workload.KINDS).

    ``key``/``value``/``given`` (update): the one record written, with a value no other operation writes, and the
    SyncCount its patch named. ``sync_count`` when ok: the count the write was committed at (update), the
    DatasetSyncCount read (list), the count the deletion took (delete). ``records`` (an ok list): what it returned.
    """

    index: int
    device: str
    client: str
    identity: str
    dataset: str
    kind: Kind
    invoked: float
    completed: float | None = None
    outcome: Outcome | None = None
    key: str | None = None
    value: str | None = None
    given: int | None = None
    sync_count: int | None = None
    error: str | None = None
    records: dict[str, Seen] = field(default_factory=dict)
    #: the call named the device (DeviceId): the server does not notify that device of the change
    named: bool = False
    #: HTTP attempts the call took (boto3's retries re-send; an answer after a re-send says so)
    attempts: int = 1

    def complete(self, at: float, outcome: Outcome, *, sync_count: int | None = None, error: str | None = None) -> None:
        self.completed, self.outcome, self.sync_count, self.error = at, outcome, sync_count, error


@dataclass
class Fault:
    """One fault the nemesis injected: its kind, what it hit, when it began and when it was healed."""

    kind: str
    target: str
    started: float
    healed: float | None = None


@dataclass
class Final:
    """A dataset as read after the run, every page (lastSyncCount=0): its live records and its sync count; or the
    error that answered instead (``error``, the rest then empty)."""

    identity: str
    dataset: str
    sync_count: int
    exists: bool
    records: dict[str, Seen]
    error: str | None = None


@dataclass
class Streamed:
    """One record a read_committed consumer read from the topic, in partition order: its key
    (``pool/identity/dataset``), partition, offset, sync count and (key, value) per record it carries."""

    key: str
    partition: int
    offset: int
    sync_count: int
    records: list[tuple[str, str | None]]


@dataclass
class Pushed:
    """How far one device's push listener got on one dataset it follows, once everything had settled: the sync
    count of its local copy (pulled on each notification, and on each resume after a reconnect)."""

    device: str
    identity: str
    dataset: str
    reached: int
    connections: int
    #: the listener stopped by itself: the refusal it took as final
    stopped: str | None = None


@dataclass
class History:
    """Everything a run recorded, and everything the checker reads."""

    seed: int = 0
    pool: str = ""
    ops: list[Op] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    final: list[Final] = field(default_factory=list)
    stream: list[Streamed] = field(default_factory=list)
    pushed: list[Pushed] = field(default_factory=list)
    #: whether ``stream`` was read to the end (the relay had drained the outbox first)
    stream_complete: bool = True
    #: seconds each phase of the run took (setup, load, final read, push settle, drain, stream read)
    phases: dict[str, float] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        """JSON lines: a header, then one line per op, fault, final dataset, streamed record, push figure."""
        header = {
            "type": "run",
            "seed": self.seed,
            "pool": self.pool,
            "stream_complete": self.stream_complete,
            "phases": self.phases,
        }
        lines = [orjson.dumps(header)]
        for kind, items in (
            ("op", self.ops),
            ("fault", self.faults),
            ("final", self.final),
            ("stream", self.stream),
            ("pushed", self.pushed),
        ):
            lines += [orjson.dumps({"type": kind, **asdict(item)}) for item in items]
        path.write_bytes(b"\n".join(lines) + b"\n")

    @classmethod
    def read(cls, path: Path) -> History:
        history = cls()
        makers: dict[str, Any] = {"op": _op, "fault": Fault, "final": _final, "stream": _streamed, "pushed": Pushed}
        lists: dict[str, list[Any]] = {
            "op": history.ops,
            "fault": history.faults,
            "final": history.final,
            "stream": history.stream,
            "pushed": history.pushed,
        }
        for line in path.read_bytes().splitlines():
            item = orjson.loads(line)
            kind = item.pop("type")
            if kind == "run":
                history.seed, history.pool = item["seed"], item["pool"]
                history.stream_complete, history.phases = item["stream_complete"], item.get("phases", {})
            else:
                lists[kind].append(makers[kind](**item))
        return history


def _seen(records: dict[str, list[Any]]) -> dict[str, Seen]:
    return {key: (value, count) for key, (value, count) in records.items()}


def _op(records: dict[str, list[Any]], **fields: Any) -> Op:
    return Op(records=_seen(records), **fields)


def _final(records: dict[str, list[Any]], **fields: Any) -> Final:
    return Final(records=_seen(records), **fields)


def _streamed(records: list[list[Any]], **fields: Any) -> Streamed:
    return Streamed(records=[(key, value) for key, value in records], **fields)
