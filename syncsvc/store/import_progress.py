"""RedisImportProgress: where ``syncsvc import`` keeps its place, so a run killed at any moment continues where it
stopped (``syncsvc.migration.run`` decides what the cursors mean).

One run (a source pool into a destination pool, a full pass or one ``--since`` pass) owns three keys under
``syncsvc:import:{<run>}:``, all with the run's hash tag, so every transaction below stays in one Redis Cluster slot:

* ``state`` (hash): ``started`` / ``finished`` (epoch ms), ``about`` (what the run copies, for people), ``pool``
  (the destination pool id once the pool phase is done), ``token`` (the ListIdentities NextToken the identity phase
  continues with; absent before the first page), ``listed`` ("1" once every identity is on the roster), ``after``
  (the last roster id whose datasets are all done, in roster order), ``n:<counter>`` (the run's totals, each identity
  counted once) and ``problems`` (how many entries ``problems`` holds).
* ``roster`` (sorted set, scores 0, in id order): every identity the listing found.
* ``done`` (set): identities past ``after`` whose datasets are done (the few a batch finished out of order).
* ``problems`` (list): one JSON line per problem to report (a conflict: a dataset the destination kept because it
  changed on both sides; an identity or dataset the destination refused), in the order they were found.

Bookkeeping only: nothing here waits for replicas (a cursor lost in a failover makes a resumed run redo a page,
and every write of the import is idempotent). Driver errors become
:class:`~syncsvc.errors.BackendUnavailableError` (``syncsvc.store.backend``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncsvc import rediskeys
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient

_COUNTER = "n:"


def import_prefix(run: str) -> str:
    """The keys of one import run: ``syncsvc:import:{<run>}`` (its hash tag keeps them in one slot)."""
    return f"{rediskeys.PREFIX}:import:{{{run}}}"


@dataclass(frozen=True, slots=True)
class ImportCursor:
    """Where a run is: nothing started yet is ``started_ms`` 0."""

    started_ms: int = 0
    finished_ms: int = 0
    about: str = ""
    #: The destination pool id, once the pool phase is done.
    pool_id: str | None = None
    #: The ListIdentities NextToken to continue with ("" before the first page, None once every page is listed).
    token: str | None = ""
    #: The last roster id whose datasets are all done ("" when none is).
    after: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    problems: int = 0

    @property
    def listed(self) -> bool:
        return self.token is None


class RedisImportProgress:
    """The cursors of import run ``run`` (a short id the caller derives from what the run copies)."""

    def __init__(self, client: RedisClient, run: str) -> None:
        self._client = client
        prefix = import_prefix(run)
        self._state = f"{prefix}:state"
        self._roster = f"{prefix}:roster"
        self._done = f"{prefix}:done"
        self._problems = f"{prefix}:problems"

    async def cursor(self) -> ImportCursor:
        async with backend():
            stored = {text(name): text(value) for name, value in (await self._client.hgetall(self._state)).items()}
        return ImportCursor(
            started_ms=int(stored.get("started", 0)),
            finished_ms=int(stored.get("finished", 0)),
            about=stored.get("about", ""),
            pool_id=stored.get("pool"),
            token=None if stored.get("listed") == "1" else stored.get("token", ""),
            after=stored.get("after", ""),
            counters={name[len(_COUNTER) :]: int(value) for name, value in stored.items() if name.startswith(_COUNTER)},
            problems=int(stored.get("problems", 0)),
        )

    async def begin(self, *, now_ms: int, about: str) -> None:
        """Marks the run started (kept when it already was)."""
        async with backend():
            pipe = self._client.pipeline(transaction=True)
            pipe.hsetnx(self._state, "started", now_ms)
            pipe.hset(self._state, "about", about)
            await pipe.execute()

    async def pool_done(self, pool_id: str) -> None:
        async with backend():
            await self._client.hset(self._state, "pool", pool_id)

    async def listed(
        self, identity_ids: Sequence[str], next_token: str | None, counts: Mapping[str, int], problems: Sequence[str]
    ) -> None:
        """One listing page is stored: its identities join the roster, ``counts`` are added to the run's totals,
        ``problems`` to its list, and the listing continues at ``next_token`` (None: the listing is complete), in one
        transaction."""
        async with backend():
            pipe = self._client.pipeline(transaction=True)
            if identity_ids:
                pipe.zadd(self._roster, dict.fromkeys(identity_ids, 0))
            for name, count in counts.items():
                if count:
                    pipe.hincrby(self._state, _COUNTER + name, count)
            self._report(pipe, problems)
            if next_token is None:
                pipe.hset(self._state, mapping={"listed": "1", "token": ""})
            else:
                pipe.hset(self._state, "token", next_token)
            await pipe.execute()

    async def relist(self) -> None:
        """The listing starts again from its first page (its NextToken was refused); the roster keeps its ids."""
        async with backend():
            await self._client.hset(self._state, "token", "")

    async def on_roster(self, identity_ids: Sequence[str]) -> set[str]:
        """Those of ``identity_ids`` already on the roster."""
        if not identity_ids:
            return set()
        async with backend():
            scores = await self._client.zmscore(self._roster, list(identity_ids))
        return {identity_id for identity_id, score in zip(identity_ids, scores, strict=True) if score is not None}

    async def roster(self, *, after: str, limit: int) -> list[str]:
        """Up to ``limit`` roster ids after ``after`` ("" = from the first), in id order."""
        start = f"({after}" if after else "-"
        async with backend():
            found = await self._client.zrange(self._roster, start, "+", bylex=True, offset=0, num=limit)
        return [text(identity_id) for identity_id in found if isinstance(identity_id, bytes | str)]

    async def roster_size(self) -> int:
        async with backend():
            return int(await self._client.zcard(self._roster))

    async def position(self, after: str) -> int:
        """How many roster ids are at or before ``after``."""
        if not after:
            return 0
        async with backend():
            return int(await self._client.zlexcount(self._roster, "-", f"[{after}"))

    async def done_among(self, identity_ids: Sequence[str]) -> set[str]:
        """Those of ``identity_ids`` whose datasets a run already finished (past the ``after`` cursor)."""
        if not identity_ids:
            return set()
        async with backend():
            flags = await self._client.smismember(self._done, list(identity_ids))
        return {identity_id for identity_id, flag in zip(identity_ids, flags, strict=True) if flag}

    async def identity_done(self, identity_id: str, counts: Mapping[str, int], problems: Sequence[str]) -> None:
        """The identity's datasets are done: it joins ``done``, its counts are added to the run's totals and its
        problems (JSON lines) to the run's list, in one transaction."""
        async with backend():
            pipe = self._client.pipeline(transaction=True)
            pipe.sadd(self._done, identity_id)
            for name, count in counts.items():
                if count:
                    pipe.hincrby(self._state, _COUNTER + name, count)
            self._report(pipe, problems)
            await pipe.execute()

    async def advance(self, after: str, finished: Sequence[str]) -> None:
        """Every roster id up to ``after`` is done: the cursor moves there and ``finished`` leave ``done``."""
        async with backend():
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(self._state, "after", after)
            if finished:
                pipe.srem(self._done, *finished)
            await pipe.execute()

    def _report(self, pipe: Any, problems: Sequence[str]) -> None:
        if problems:
            pipe.rpush(self._problems, *problems)
            pipe.hincrby(self._state, "problems", len(problems))

    async def problems(self) -> list[str]:
        """The run's problem lines, in the order they were found."""
        async with backend():
            return [text(line) for line in await self._client.lrange(self._problems, 0, -1)]

    async def finish(self, *, now_ms: int) -> None:
        """The run is complete: ``finished`` is set and the roster dropped (the totals and problems stay)."""
        async with backend():
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(self._state, "finished", now_ms)
            pipe.delete(self._roster, self._done)
            await pipe.execute()

    async def clear(self) -> None:
        """Forgets the run (``--restart``): the next one starts from the beginning."""
        async with backend():
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(self._state, self._roster, self._done, self._problems)
            await pipe.execute()
