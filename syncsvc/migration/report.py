"""What ``syncsvc import`` shows while it runs and when it ends: a progress bar per phase on a terminal (rich), one
line per phase and per tenth of it otherwise (a log, a pipe), notes (conflicts, refusals, differences) above the
bar, the summary's count lines, and problems (a conflict, a refusal) as one JSON line each, the form a run keeps them
in with its cursors. Prints and formats only; knows nothing of the source or the destination."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class Display(Protocol):
    """Where a run reports its progress."""

    def phase(self, name: str, *, total: int | None = None, done: int = 0) -> None:
        """A new phase starts (the previous one is complete); ``total`` None while unknown."""

    def advance(self, count: int = 1) -> None: ...

    def note(self, line: str) -> None:
        """A line that must not be lost in the bar (a conflict, a difference, a warning)."""

    def close(self) -> None: ...


def display_for(console: Console) -> Display:
    """A bar on a terminal, lines otherwise."""
    return BarDisplay(console) if console.is_terminal else LineDisplay(console)


class BarDisplay:
    """A rich progress bar, one task per phase."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._task: TaskID | None = None
        self._progress.start()

    def phase(self, name: str, *, total: int | None = None, done: int = 0) -> None:
        self._finish_task()
        self._task = self._progress.add_task(name, total=total, completed=done)

    def advance(self, count: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, count)

    def note(self, line: str) -> None:
        self._progress.console.print(escape(line), highlight=False, soft_wrap=True)

    def _finish_task(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, total=task.completed)

    def close(self) -> None:
        self._finish_task()
        self._progress.stop()


class LineDisplay:
    """Plain lines: a phase's start, each tenth of it (or every 10 s while its total is unknown), its end."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._name = ""
        self._total: int | None = None
        self._done = 0
        self._shown = 0.0
        self._started = 0.0

    def _print(self, line: str) -> None:
        self._console.print(escape(line), highlight=False, soft_wrap=True)

    def phase(self, name: str, *, total: int | None = None, done: int = 0) -> None:
        self._end()
        self._name, self._total, self._done = name, total, done
        self._started = self._shown = time.monotonic()
        of = f" of {total}" if total is not None else ""
        self._print(f"{name}: started ({done}{of} done)")

    def advance(self, count: int = 1) -> None:
        before, self._done = self._done, self._done + count
        now = time.monotonic()
        if self._total:
            step = max(self._total // 10, 1)
            if before // step != self._done // step and self._done < self._total:
                self._print(f"{self._name}: {self._done} of {self._total}")
        elif now - self._shown >= 10:
            self._shown = now
            self._print(f"{self._name}: {self._done}")

    def note(self, line: str) -> None:
        self._print(line)

    def _end(self) -> None:
        if self._name:
            self._print(f"{self._name}: {self._done} done in {time.monotonic() - self._started:.1f} s")
            self._name = ""

    def close(self) -> None:
        self._end()


@dataclass(slots=True)
class Tally:
    """Counts by name (``identities``, ``imported``, ``records`` …)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, count: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + count

    def merge(self, other: Mapping[str, int]) -> None:
        for name, count in other.items():
            self.add(name, count)

    def __getitem__(self, name: str) -> int:
        return self.counts.get(name, 0)


def count_lines(counts: Mapping[str, int], *, dry_run: bool = False) -> list[str]:
    """The summary's count lines (``would`` wording for a dry run)."""

    def get(name: str) -> int:
        return counts.get(name, 0)

    imported = "would import" if dry_run else "imported"
    updated = "would update" if dry_run else "updated"
    deleted = "would delete" if dry_run else "deleted"
    return [
        f"pools: {get('pools')}",
        f"identities: {get('identities')} ({get('with_logins')} with login subjects, {get('unmapped')} unmapped: "
        f"a login whose subject the source does not give; {get('refused_identities')} refused)",
        f"datasets: {get('imported')} {imported}, {get('unchanged')} unchanged, {get('updated')} {updated}, "
        f"{get('conflict')} conflicts, {get('refused')} refused, {get('deleted')} {deleted}, "
        f"{get('skipped')} skipped (not modified since), {get('kept')} kept (only at the destination)",
        f"records: {get('records')} (tombstones {get('tombstones')})",
    ]


def problem_line(
    kind: str, identity_id: str, dataset: str | None = None, *, keys: Sequence[str] = (), reason: str = ""
) -> str:
    """A problem to report, as kept with the run's cursors: ``conflict`` (the keys changed on both sides, kept as the
    destination has them) or ``refused`` (the destination refused the identity or dataset: the reason)."""
    found: dict[str, object] = {"kind": kind, "identity": identity_id, "dataset": dataset}
    if kind == "conflict":
        found["keys"] = list(keys)
    else:
        found["reason"] = reason
    return json.dumps(found, separators=(",", ":"))


def describe_problem(line: str) -> str:
    """A stored problem line for people."""
    found = json.loads(line)
    where = f"identity {found['identity']}" + (f" dataset {found['dataset']}" if found.get("dataset") else "")
    if found["kind"] == "conflict":
        return f"conflict: {where} keys {', '.join(found['keys']) or '(the dataset)'}"
    return f"refused: {where}: {found['reason']}"


def problem_kind(line: str) -> str:
    kind: str = json.loads(line)["kind"]
    return kind
