"""The checks of a chaos run, pure functions of its :class:`~chaos.history.History`: no process, no network.

A dataset is (identity, dataset name). Every UpdateRecords of the workload writes one record with a value no other
operation writes, so a value names the operation that wrote it, and every sync count of a dataset is one commit: a
write (its value) or a deletion. What a run saw of each commit (an ok answer, a ListRecords, the final read, a record
on the stream) is a *claim* that the commit sits at that count. The checks:

* ``claims``: every count of a dataset holds one commit (two values, or a value and a deletion, under one count is a
  sync count reused); every value is at one count (a value under two counts is a write applied twice: an
  indeterminate write may appear once or not at all, never twice; the one exception, counted as
  ``reapplied_after_deletion``, is the documented one: a write re-sent after a concurrent DeleteDataset of its dataset
  is applied again, see :func:`reapplied_after_deletion`); a value no operation wrote (a tombstone too:
  nothing removes records here), one whose operation definitely failed (a refused conflict, a 4xx), or one outside
  its own identity's dataset, appears nowhere.
* ``conflict``: an acknowledged write named, in its patch, the SyncCount its record had when it committed (the last
  known commit of that key below it, 0 after a deletion); otherwise the server acknowledged what Cognito's rule says
  is a conflict. Where unobserved commits lie in between (indeterminate writes later overwritten, deletions), the
  patch may name one of them.
* ``order``: sync counts only rise in real time: an operation that began after an acknowledged one ended sees its
  count or more (a write or deletion: strictly more). Together with the final read (the last operation) this is
  "every acknowledged write is visible".
* ``visible``: in the final state each acknowledged write is there, at its count, or superseded (its key at a later
  count, or removed by a later deletion).
* ``stream``: the read_committed topic, read to the end after the relay drained the outbox, holds every
  acknowledged write and every indeterminate one found committed, each exactly once, and per dataset in increasing
  sync-count order; nothing else (deletions are not streamed).
* ``push``: each device's push listener reached each dataset's final sync count (by notifications, and by resuming
  after each reconnect), or, when the last commits were its own writes naming the device (the writer is never
  notified of its own change; its answer told it), the commit before them.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from chaos.history import Final, History, Op

Dataset = tuple[str, str]
#: what a claim says committed at a count: a value written, or DELETION
DELETION = "<deletion>"


@dataclass(frozen=True)
class Anomaly:
    check: str
    detail: str


@dataclass
class Report:
    anomalies: list[Anomaly] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, check: str, detail: str) -> None:
        self.anomalies.append(Anomaly(check, detail))

    def summary(self) -> str:
        """One line: the run's figures and the anomalies per check."""
        by_check = Counter(anomaly.check for anomaly in self.anomalies)
        parts = [f"{name}={value}" for name, value in self.figures.items()]
        parts.append(f"anomalies={len(self.anomalies)}" + (f" {dict(by_check)}" if by_check else ""))
        return "chaos: " + " ".join(parts)


class Commits:
    """What the run saw committed, per dataset and count, and where each value was seen."""

    def __init__(self, history: History) -> None:
        self.writes = {op.value: op for op in history.ops if op.kind == "update" and op.value is not None}
        #: dataset -> count -> the values (or DELETION) claimed there, with where each claim came from
        self.at: dict[Dataset, dict[int, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
        #: value -> (dataset, count) for every claim of it
        self.where: dict[str, set[tuple[Dataset, int]]] = defaultdict(set)
        for op in history.ops:
            self._from_op(op)
        for final in history.final:
            self._from_final(final)
        for record in history.stream:
            identity, dataset = record.key.split("/", 2)[1:]
            for _, value in record.records:
                self.claim((identity, dataset), record.sync_count, value, f"stream offset {record.offset}")

    def claim(self, dataset: Dataset, count: int, value: str | None, source: str) -> None:
        what = DELETION if value is None else value
        self.at[dataset][count].setdefault(what, source)
        if what != DELETION:
            self.where[what].add((dataset, count))

    def _from_op(self, op: Op) -> None:
        if op.outcome != "ok" or op.sync_count is None:
            return
        dataset = (op.identity, op.dataset)
        if op.kind == "update":
            self.claim(dataset, op.sync_count, op.value, f"op {op.index} answer")
        elif op.kind == "delete":
            self.claim(dataset, op.sync_count, None, f"op {op.index} answer")
        for key, (value, count) in op.records.items():
            self.claim(dataset, count, _listed(key, value), f"op {op.index} list")

    def _from_final(self, final: Final) -> None:
        dataset = (final.identity, final.dataset)
        for key, (value, count) in final.records.items():
            self.claim(dataset, count, _listed(key, value), "final read")
        if not final.exists and final.sync_count > 0:
            self.claim(dataset, final.sync_count, None, "final read (deleted)")

    def key_at(self, dataset: Dataset, count: int) -> str | None:
        """The record key the commit at ``count`` wrote (DELETION for a deletion; None: unknown count)."""
        claims = self.at[dataset].get(count)
        if not claims:
            return None
        what = next(iter(claims))
        if what == DELETION:
            return DELETION
        op = self.writes.get(what)
        return None if op is None else op.key

    def unknown_between(self, dataset: Dataset, low: int, high: int) -> list[int]:
        """Counts strictly between ``low`` and ``high`` that no claim explains."""
        return [count for count in range(low + 1, high) if not self.at[dataset].get(count)]


def _listed(key: str, value: str | None) -> str:
    """A listed record's claim: its value; a tombstone (no value) is a removal, which no operation makes here."""
    return value if value is not None else f"<tombstone of {key}>"


def check(history: History) -> Report:
    """Runs every check; the report's figures count what the run did."""
    report = Report(figures=figures(history))
    commits = Commits(history)
    check_claims(history, commits, report)
    check_conflicts(history, commits, report)
    check_order(history, report)
    check_visible(history, commits, report)
    check_stream(history, commits, report)
    check_push(history, commits, report)
    return report


def figures(history: History) -> dict[str, Any]:
    outcomes = Counter(op.outcome for op in history.ops)
    writes = [op for op in history.ops if op.kind == "update"]
    faults = Counter(fault.kind for fault in history.faults)
    return {
        "seed": history.seed,
        "operations": len(history.ops),
        "ok": outcomes["ok"],
        "failed": outcomes["fail"],
        "indeterminate": outcomes["info"],
        "writes_acknowledged": sum(op.outcome == "ok" for op in writes),
        "conflicts_refused": sum(op.outcome == "fail" and "Conflict" in (op.error or "") for op in writes),
        "deletes_acknowledged": sum(op.outcome == "ok" and op.kind == "delete" for op in history.ops),
        "writes_ok_after_resend": sum(
            op.kind == "update" and op.outcome == "ok" and op.attempts > 1 for op in history.ops
        ),
        "faults": sum(faults.values()),
        "faults_by_kind": dict(sorted(faults.items())),
        "streamed": len(history.stream),
        "push_devices": len({pushed.device for pushed in history.pushed}),
        "seconds": history.phases,
    }


def reapplied_after_deletion(history: History, commits: Commits, op: Op, places: set[tuple[Dataset, int]]) -> bool:
    """Whether ``op``'s value at two counts is the documented exception (README, *Version vectors*): DeleteDataset
    forgets the dataset's writers, so a write sent more than once (``attempts``) whose re-send reached the server
    after a concurrent deletion of its dataset is applied again. That needs: two counts in its own dataset, a
    DeleteDataset of that dataset overlapping the write in real time, and a deletion between the two counts (a
    deletion claimed there, or counts no claim explains: boto3 hides a deletion's count)."""
    dataset = (op.identity, op.dataset)
    if op.attempts < 2 or len(places) != 2 or {where for where, _ in places} != {dataset}:
        return False
    low, high = sorted(count for _, count in places)
    between = range(low + 1, high)
    if not any(DELETION in commits.at[dataset].get(count, {}) for count in between) and not (
        commits.unknown_between(dataset, low, high)
    ):
        return False
    ended = op.completed if op.completed is not None else float("inf")
    return any(
        other.kind == "delete"
        and (other.identity, other.dataset) == dataset
        and other.outcome in ("ok", "info")
        and other.invoked < ended
        and (other.completed if other.completed is not None else float("inf")) > op.invoked
        for other in history.ops
    )


def check_claims(history: History, commits: Commits, report: Report) -> None:
    for (identity, name), counts in commits.at.items():
        for count, claims in counts.items():
            if len(claims) > 1:
                report.add("claims", f"{identity}/{name} sync count {count} holds several commits: {claims}")
    report.figures["reapplied_after_deletion"] = 0
    for value, places in commits.where.items():
        op = commits.writes.get(value)
        if op is None:
            report.add("claims", f"value {value!r} at {sorted(places)} was written by no operation")
            continue
        if len(places) > 1 and reapplied_after_deletion(history, commits, op, places):
            report.figures["reapplied_after_deletion"] += 1
        elif len(places) > 1:
            report.add("claims", f"op {op.index} ({op.outcome}) value {value!r} under several counts: {sorted(places)}")
        if op.outcome == "fail":
            report.add("claims", f"op {op.index} failed ({op.error}) but its value {value!r} is at {sorted(places)}")
        if {(op.identity, op.dataset)} != {dataset for dataset, _ in places}:
            report.add("claims", f"op {op.index} value {value!r} seen in another dataset: {sorted(places)}")


def check_conflicts(history: History, commits: Commits, report: Report) -> None:
    """Each acknowledged write's patch named the SyncCount its record had when it committed."""
    unseen = _unseen(history, commits)
    for op in history.ops:
        if op.kind != "update" or op.outcome != "ok" or op.sync_count is None:
            continue
        dataset = (op.identity, op.dataset)
        below = 0
        base = 0
        for count in range(op.sync_count - 1, 0, -1):
            key = commits.key_at(dataset, count)
            if key == op.key or key == DELETION:
                below, base = count, (count if key == op.key else 0)
                break
        if op.given == base:
            continue
        gaps = commits.unknown_between(dataset, below, op.sync_count)
        if (op.given in gaps and op.key in unseen[dataset]) or (op.given == 0 and gaps and DELETION in unseen[dataset]):
            continue
        report.add(
            "conflict",
            f"op {op.index} acknowledged at {op.sync_count} with SyncCount {op.given} for {op.key!r}, but the record "
            f"was at {base} (a conflict answered as a success)",
        )


def _unseen(history: History, commits: Commits) -> dict[Dataset, set[str | None]]:
    """Per dataset, what may have committed at a count no claim explains: the keys of indeterminate writes seen
    nowhere, and DELETION when a deletion's count is unknown (indeterminate, or answered by boto3, whose parser drops
    the SyncCount extension member)."""
    unseen: dict[Dataset, set[str | None]] = defaultdict(set)
    for op in history.ops:
        dataset = (op.identity, op.dataset)
        if op.kind == "update" and op.outcome == "info" and op.value not in commits.where:
            unseen[dataset].add(op.key)
        elif op.kind == "delete" and (op.outcome == "info" or (op.outcome == "ok" and op.sync_count is None)):
            unseen[dataset].add(DELETION)
    return unseen


def check_order(history: History, report: Report) -> None:
    """An ok operation that began after an ok one ended (same dataset) sees its count, or more for a write."""
    by_dataset: dict[Dataset, list[Op]] = defaultdict(list)
    for op in history.ops:
        if op.outcome == "ok" and op.sync_count is not None and op.completed is not None:
            by_dataset[(op.identity, op.dataset)].append(op)
    for ops in by_dataset.values():
        ended = sorted(ops, key=lambda op: op.completed or 0.0)
        ends = [op.completed or 0.0 for op in ended]
        highest: list[tuple[int, int]] = []  # running max of (count, op index) over ``ended``
        for op in ended:
            count = op.sync_count or 0
            highest.append(max(highest[-1], (count, op.index)) if highest else (count, op.index))
        for op in ops:
            before = bisect.bisect_left(ends, op.invoked)
            if before == 0:
                continue
            floor, after = highest[before - 1]
            count = op.sync_count or 0
            if count < floor or (count == floor and op.kind != "list"):
                report.add(
                    "order",
                    f"op {op.index} ({op.kind}) saw sync count {count} after op {after} had been answered {floor}",
                )


def check_visible(history: History, commits: Commits, report: Report) -> None:
    """Every acknowledged write is in the final state at its count, or superseded by a later commit."""
    finals = {(final.identity, final.dataset): final for final in history.final}
    unseen = _unseen(history, commits)
    last_deletion = {
        dataset: max((at for at, claims in counts.items() if DELETION in claims), default=0)
        for dataset, counts in commits.at.items()
    }
    highest: dict[Dataset, int] = defaultdict(int)
    for op in history.ops:
        dataset = (op.identity, op.dataset)
        if op.outcome == "ok" and op.sync_count is not None:
            highest[dataset] = max(highest[dataset], op.sync_count)
        if op.kind != "update" or op.outcome != "ok" or op.sync_count is None or op.key is None:
            continue
        final = finals.get(dataset)
        if final is None:
            report.add("visible", f"op {op.index}: dataset {dataset} was not read at the end")
            continue
        stored = final.records.get(op.key)
        if stored == (op.value, op.sync_count) or (stored is not None and stored[1] > op.sync_count):
            continue
        # gone: a later deletion removed it, known or hidden in a count nothing explains (one whose count is unknown)
        if stored is None and (
            last_deletion.get(dataset, 0) > op.sync_count
            or (DELETION in unseen[dataset] and commits.unknown_between(dataset, op.sync_count, final.sync_count + 1))
        ):
            continue
        report.add("visible", f"op {op.index} acknowledged {op.key}={op.value!r} at {op.sync_count}; final: {stored}")
    for final in history.final:
        dataset = (final.identity, final.dataset)
        if final.error is not None:
            report.add("visible", f"{dataset} could not be read at the end: {final.error}")
        if final.sync_count < highest[dataset]:
            report.add(
                "visible",
                f"{dataset}: final sync count {final.sync_count}, an operation was answered {highest[dataset]}",
            )


def check_stream(history: History, commits: Commits, report: Report) -> None:
    """The topic holds every committed write once, in per-dataset order."""
    seen: Counter[tuple[str, int]] = Counter()
    last: dict[str, int] = {}
    for record in sorted(history.stream, key=lambda record: (record.partition, record.offset)):
        seen[(record.key, record.sync_count)] += 1
        if record.sync_count <= last.get(record.key, 0):
            report.add("stream", f"{record.key}: sync count {record.sync_count} after {last[record.key]}")
        last[record.key] = max(record.sync_count, last.get(record.key, 0))
    for (key, count), times in seen.items():
        if times > 1:
            report.add("stream", f"{key} sync count {count} is on the topic {times} times")
    if not history.stream_complete:
        report.add("stream", "the topic was not read to the end (the outbox did not drain)")
        return
    for value, op in commits.writes.items():
        committed = op.outcome == "ok" or (op.outcome == "info" and value in commits.where)
        if not committed:
            continue
        places = {(op.identity, op.dataset, count) for (_, _), count in commits.where.get(value, set())}
        if op.outcome == "ok" and op.sync_count is not None:
            places = {(op.identity, op.dataset, op.sync_count)}
        for identity, dataset, count in places:
            if not seen[(f"{history.pool}/{identity}/{dataset}", count)]:
                report.add("stream", f"op {op.index} ({op.outcome}) committed at {count} is not on the topic")


def check_push(history: History, commits: Commits, report: Report) -> None:
    """Each device's listener reached its datasets' final counts; a device that named itself (DeviceId) in the last
    writes is not notified of them, so it must have reached the last commit before its own trailing writes."""
    finals = {(final.identity, final.dataset): final.sync_count for final in history.final}
    for pushed in history.pushed:
        if pushed.stopped is not None:
            report.add("push", f"device {pushed.device}'s listener stopped ({pushed.stopped}) on {pushed.dataset}")
        dataset = (pushed.identity, pushed.dataset)
        final = finals.get(dataset, 0)
        due = push_due(commits, dataset, final, pushed.device)
        if not due <= pushed.reached <= final:
            report.add(
                "push",
                f"device {pushed.device} reached {pushed.reached} on {pushed.identity}/{pushed.dataset}, final "
                f"{final}, due {due} ({pushed.connections} connections)",
            )


def push_due(commits: Commits, dataset: Dataset, final: int, device: str) -> int:
    """The count ``device``'s listener must reach on ``dataset``: the final one, less the device's own trailing
    writes that named it (it is not notified of those)."""
    due = final
    while due > 0 and _own_named(commits, dataset, due, device):
        due -= 1
    return due


def _own_named(commits: Commits, dataset: Dataset, count: int, device: str) -> bool:
    """The commit at ``count`` is, or may be (an unexplained count), a write by ``device`` naming itself."""
    claims = commits.at[dataset].get(count)
    if not claims:
        return True
    ops = [commits.writes.get(value) for value in claims]
    return all(op is not None and op.device == device and op.named for op in ops)
