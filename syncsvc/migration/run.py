"""The import as phases — the pool, the identities, their datasets — each with its cursor in Redis, so a run killed
at any moment (kill -9 included) continues where it stopped when started again, and nothing finished is done twice.

* **pool**: the source's settings (DescribeIdentityPool, the Sync configuration, Cognito Events) become the
  destination pool (``ImportTarget.put_pool``); the cursor keeps the destination pool id.
* **identities**: ListIdentities page by page; each identity is stored (``put_identity``: id, dates, the logins
  whose subjects are known) and joins the run's roster, a page at a time, with the listing's NextToken as the cursor.
  A NextToken the source no longer accepts (it expired while the run was stopped) starts the listing again from the
  first page; identities already on the roster are not stored again.
* **datasets**: the roster in id order, ``concurrency`` identities at a time; each identity's datasets are read
  whole (ListRecords from 0, tombstones included) and put. The cursor is the last id of the roster up to which every
  identity is done, plus the few done past it; an identity is done once all its datasets are in.

``--since`` (``Plan.since_ms``) is the cut-over's delta pass: every identity is listed again (new ones come over),
only datasets whose LastModifiedDate is at or after ``since`` are read and put with ``delta=True`` (the target's
rules: a source change wins by sync count, a record changed on both sides is a conflict and is kept), and a dataset
the destination has that the source no longer lists is deleted through ``delete_dataset(delta=True)`` (the target
keeps one that changed at the destination, as a conflict).

Problems — conflicts, and identities or datasets the destination refused (a login linked to another identity there,
a dataset over this deployment's limits) — are shown as they are found, kept with the run's cursors and listed again
in the summary; the run goes on. A refused identity stays off the roster (its datasets are not imported).

``--dry-run`` (``Plan.dry_run``) reads everything, the destination too, and writes nothing (no cursor either): each
dataset is counted as it would go (imported, unchanged, updated).

The run's cursors belong to one run id (:func:`run_id`: the source, the pools and the pass), so a full pass and each
delta pass resume independently. Verification is :mod:`syncsvc.migration.verify`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from syncsvc.clock import Clock
from syncsvc.errors import SyncsvcError
from syncsvc.migration.cursors import Cursors
from syncsvc.migration.model import SourceDataset, SourceIdentity, SourcePool
from syncsvc.migration.report import Display, Tally, describe_problem, problem_line
from syncsvc.migration.source import CognitoSource, IdentityPage, SourceError
from syncsvc.migration.verify import differences

#: Identities read from the roster at a time (the cursor moves once such a batch is done).
ROSTER_BATCH = 64
#: The source's error codes for an input it refuses (a NextToken that expired while the run was stopped).
_REFUSED_INPUT = ("InvalidParameterException", "ValidationException")
#: A deletion's outcome, counted as: "updated" deleted it; "unchanged" left a dataset no import wrote (created here
#: after the switch) or already deleted; "conflict" kept one that changed here since the import.
_DELETION_COUNTERS = {"updated": "deleted", "unchanged": "kept"}


class Outcome(Protocol):
    """What the target answers for a dataset (``syncsvc.migration.target.DatasetOutcome``)."""

    @property
    def status(self) -> str: ...

    @property
    def conflicts(self) -> tuple[str, ...]: ...


class Target(Protocol):
    """The destination as the import uses it (``syncsvc.migration.target.ImportTarget``)."""

    async def put_pool(
        self, pool: SourcePool, *, into: str | None = None, triggers: Mapping[str, str] | None = None
    ) -> str:
        """Creates or updates the destination pool; returns its id."""

    async def put_identity(self, pool_id: str, identity: SourceIdentity) -> None: ...

    async def put_dataset(self, pool_id: str, dataset: SourceDataset, *, delta: bool = False) -> Outcome: ...

    async def delete_dataset(self, pool_id: str, identity_id: str, name: str, *, delta: bool) -> Outcome: ...

    async def read_dataset(self, pool_id: str, identity_id: str, name: str) -> SourceDataset | None: ...

    async def list_dataset_names(self, pool_id: str, identity_id: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run does."""

    #: The destination pool (None: the target's choice, the source pool's id).
    into: str | None = None
    #: Lambda ARN -> trigger name, for the pool's Cognito Events.
    triggers: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = False
    #: The delta pass: only datasets modified at or after this time (epoch ms) are read again.
    since_ms: int | None = None
    #: Identities worked on at once.
    concurrency: int = 8


def run_id(source: str, source_pool: str, plan: Plan) -> str:
    """The id of a run's cursors: the source (endpoint and region), the pools and the pass (full, or since when)."""
    since = "full" if plan.since_ms is None else f"since {plan.since_ms}"
    text = "\0".join((source, source_pool, plan.into or "", since))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Summary:
    """What a run did (``counts``: this invocation; ``totals``: the run's, over every invocation)."""

    pool_id: str = ""
    counts: Tally = field(default_factory=Tally)
    totals: dict[str, int] = field(default_factory=dict)
    #: Identities whose datasets an earlier invocation of the run had finished (not done again).
    resumed: int = 0
    #: When the run's first invocation started reading (epoch ms): the ``--since`` of the next delta pass.
    started_ms: int = 0
    #: The problems reported (``report.problem_line``), this run's and those of its earlier invocations.
    problems: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    #: The run had finished before this invocation (at this time, epoch ms): nothing was done.
    finished_before_ms: int = 0
    dry_run: bool = False


class Importer:
    """One run of the import: ``await Importer(...).run()``. A source or destination that fails (unreachable, an
    error of its own) ends the run with the error: run again to resume. The destination refusing one identity or one
    dataset (a login linked elsewhere, a dataset over this deployment's limits) is a problem reported and counted
    (``refused``); the run goes on."""

    def __init__(
        self,
        source: CognitoSource,
        target: Target,
        cursors: Cursors,
        plan: Plan,
        display: Display,
        *,
        clock: Clock,
    ) -> None:
        self.source = source
        self.target = target
        self.cursors = cursors
        self.plan = plan
        self.display = display
        self.clock = clock
        self.summary = Summary(dry_run=plan.dry_run)
        self._gate = asyncio.Semaphore(max(plan.concurrency, 1))

    async def run(self) -> Summary:
        started = time.monotonic()
        cursor = await self.cursors.cursor()
        if cursor.finished_ms:
            self.summary.finished_before_ms = cursor.finished_ms
            self.summary.started_ms = cursor.started_ms
            self.summary.pool_id = cursor.pool_id or ""
            self.summary.totals = cursor.counters
            self.summary.problems = await self.cursors.problems()
            return self.summary
        now_ms = self.clock.now_ms()
        await self.cursors.begin(now_ms=now_ms, about=f"{self.source.pool_id} -> {self.plan.into or ''}")
        self.summary.started_ms = cursor.started_ms or now_ms
        pool = await self.source.pool()  # always read: the identity phase needs the developer provider's name
        pool_id = cursor.pool_id or await self._pool_phase(pool)
        self.summary.pool_id = pool_id
        if not cursor.listed:
            await self._identity_phase(pool_id, cursor.token or "")
        await self._dataset_phase(pool_id, cursor.after)
        await self.cursors.finish(now_ms=self.clock.now_ms())
        if self.plan.dry_run:
            self.summary.totals = dict(self.summary.counts.counts)
        else:
            self.summary.totals = (await self.cursors.cursor()).counters
            self.summary.problems = await self.cursors.problems()
        self.summary.elapsed_s = time.monotonic() - started
        return self.summary

    def _report(self, problems: Sequence[str]) -> None:
        for line in problems:
            self.display.note(describe_problem(line))
        if self.plan.dry_run:
            self.summary.problems.extend(problems)

    # --- the pool -----------------------------------------------------------------------------------------------

    async def _pool_phase(self, pool: SourcePool) -> str:
        self.display.phase("pool", total=1)
        name = pool.description.get("IdentityPoolName", "")
        if self.plan.dry_run:
            pool_id = self.plan.into or pool.identity_pool_id
            self.display.note(f"would import pool {pool.identity_pool_id} ({name}) into {pool_id}")
        else:
            pool_id = await self.target.put_pool(pool, into=self.plan.into, triggers=self.plan.triggers)
            await self.cursors.pool_done(pool_id)
        for event, arn in sorted(pool.events.items()):
            self.display.note(f"Cognito Events {event}: {arn} -> {self.plan.triggers.get(arn, arn)}")
        self.summary.counts.add("pools")
        self.display.advance()
        return pool_id

    # --- identities ---------------------------------------------------------------------------------------------

    async def _identity_phase(self, pool_id: str, token: str) -> None:
        self.display.phase("identities")
        while True:
            try:
                page = await self.source.identity_page(token or None)
            except SourceError as exc:
                if not token or exc.code not in _REFUSED_INPUT:
                    raise
                self.display.note(f"the source refused the saved listing position ({exc}); listing from the start")
                await self.cursors.relist()
                token = ""
                continue
            stored, counts, problems = await self._put_identities(pool_id, page)
            await self.cursors.listed(stored, page.next_token, counts, problems)
            self.summary.counts.merge(counts)
            self._report(problems)
            self.display.advance(len(page.identities))
            if page.next_token is None:
                return
            token = page.next_token

    async def _put_identities(self, pool_id: str, page: IdentityPage) -> tuple[list[str], dict[str, int], list[str]]:
        """Stores the page's identities not on the roster yet; (the ids stored, counts, problems)."""
        known = await self.cursors.on_roster([identity.identity_id for identity in page.identities])
        fresh = [identity for identity in page.identities if identity.identity_id not in known]
        refusals = await asyncio.gather(*(self._put_identity(pool_id, identity) for identity in fresh))
        counts, stored, problems = Tally(), [], []
        for identity, refusal in zip(fresh, refusals, strict=True):
            if refusal is not None:
                counts.add("refused_identities")
                problems.append(problem_line("refused", identity.identity_id, reason=refusal))
                continue
            stored.append(identity.identity_id)
            counts.add("identities")
            subjects = {provider for provider, _ in identity.logins}
            if identity.logins:
                counts.add("with_logins")
            if any(provider not in subjects for provider in identity.providers):
                counts.add("unmapped")
        return stored, counts.counts, problems

    async def _put_identity(self, pool_id: str, identity: SourceIdentity) -> str | None:
        """None when stored (or a dry run); the reason when the destination refused it."""
        if self.plan.dry_run:
            return None
        async with self._gate:
            try:
                await self.target.put_identity(pool_id, identity)
            except SyncsvcError as exc:
                return _refusal(exc)
        return None

    # --- datasets -----------------------------------------------------------------------------------------------

    async def _dataset_phase(self, pool_id: str, after: str) -> None:
        total = await self.cursors.roster_size()
        already = await self.cursors.position(after)
        self.summary.resumed += already
        self.display.phase("datasets (identities done)", total=total, done=already)
        while batch := await self.cursors.roster(after=after, limit=ROSTER_BATCH):
            finished = await self.cursors.done_among(batch)
            self.summary.resumed += len(finished)
            self.display.advance(len(finished))
            await asyncio.gather(*(self._identity_datasets(pool_id, i) for i in batch if i not in finished))
            await self.cursors.advance(batch[-1], batch)
            after = batch[-1]

    async def _identity_datasets(self, pool_id: str, identity_id: str) -> None:
        async with self._gate:
            counts: Tally = Tally()
            problems: list[str] = []
            summaries = await self.source.datasets(identity_id)
            for summary in summaries:
                if self.plan.since_ms is not None and summary.last_modified_ms < self.plan.since_ms:
                    counts.add("skipped")
                    continue
                dataset = await self.source.dataset(identity_id, summary)
                status, keys = await self._put_dataset(pool_id, dataset, problems)
                counts.add(status)
                if status in ("imported", "updated"):
                    counts.add("records", sum(1 for record in dataset.records if record.value is not None))
                    counts.add("tombstones", sum(1 for record in dataset.records if record.value is None))
                if status == "conflict":
                    problems.append(problem_line("conflict", identity_id, dataset.name, keys=keys))
            if self.plan.since_ms is not None:
                await self._deletions(pool_id, identity_id, {summary.name for summary in summaries}, counts, problems)
            await self.cursors.identity_done(identity_id, counts.counts, problems)
            self.summary.counts.merge(counts.counts)
            self._report(problems)
            self.display.advance()

    async def _deletions(
        self, pool_id: str, identity_id: str, listed: set[str], counts: Tally, problems: list[str]
    ) -> None:
        """The delta pass: datasets here that the source no longer lists."""
        for name in await self.target.list_dataset_names(pool_id, identity_id):
            if name in listed:
                continue
            if self.plan.dry_run:
                counts.add("deleted")
                continue
            outcome = await self.target.delete_dataset(pool_id, identity_id, name, delta=True)
            counts.add(_DELETION_COUNTERS.get(outcome.status, outcome.status))
            if outcome.status == "conflict":
                problems.append(problem_line("conflict", identity_id, name, keys=outcome.conflicts))

    async def _put_dataset(
        self, pool_id: str, dataset: SourceDataset, problems: list[str]
    ) -> tuple[str, tuple[str, ...]]:
        """(status, conflicting keys); "refused" (and a problem) when the destination refused the dataset."""
        if self.plan.dry_run:
            held = await self.target.read_dataset(pool_id, dataset.identity_id, dataset.name)
            return ("imported" if held is None else "updated" if differences(dataset, held) else "unchanged"), ()
        try:
            outcome = await self.target.put_dataset(pool_id, dataset, delta=self.plan.since_ms is not None)
        except SyncsvcError as exc:
            problems.append(problem_line("refused", dataset.identity_id, dataset.name, reason=_refusal(exc)))
            return "refused", ()
        return outcome.status, tuple(outcome.conflicts)


def _refusal(exc: SyncsvcError) -> str:
    """The reason the destination refused one item; re-raises an error that is not about the item (the store
    unreachable, an internal error), which ends the run."""
    if exc.status >= 500:
        raise exc
    return f"{exc.code}: {exc.message}"
