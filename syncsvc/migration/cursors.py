"""Where an import run keeps its place: :class:`Cursors`, the protocol the run reads and moves its cursors through
(``syncsvc.store.import_progress.RedisImportProgress`` keeps them in Redis, where a killed run finds them again), and
:class:`TransientCursors`, the cursors of a dry run, which live as long as the process and write nothing."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Protocol

from syncsvc.store.import_progress import ImportCursor


class Cursors(Protocol):
    """Where a run keeps its place (``syncsvc.store.import_progress.RedisImportProgress``)."""

    async def cursor(self) -> ImportCursor: ...

    async def begin(self, *, now_ms: int, about: str) -> None: ...

    async def pool_done(self, pool_id: str) -> None: ...

    async def listed(
        self, identity_ids: Sequence[str], next_token: str | None, counts: Mapping[str, int], problems: Sequence[str]
    ) -> None: ...

    async def relist(self) -> None: ...

    async def on_roster(self, identity_ids: Sequence[str]) -> set[str]: ...

    async def roster(self, *, after: str, limit: int) -> list[str]: ...

    async def roster_size(self) -> int: ...

    async def position(self, after: str) -> int: ...

    async def done_among(self, identity_ids: Sequence[str]) -> set[str]: ...

    async def identity_done(self, identity_id: str, counts: Mapping[str, int], problems: Sequence[str]) -> None: ...

    async def advance(self, after: str, finished: Sequence[str]) -> None: ...

    async def problems(self) -> list[str]: ...

    async def finish(self, *, now_ms: int) -> None: ...


class TransientCursors:
    """Cursors that live as long as the process: a dry run's, which must write nothing."""

    def __init__(self) -> None:
        self._cursor = ImportCursor()
        self._roster: set[str] = set()
        self._in_order: list[str] | None = None

    async def cursor(self) -> ImportCursor:
        return self._cursor

    async def begin(self, *, now_ms: int, about: str) -> None:
        return None

    async def pool_done(self, pool_id: str) -> None:
        return None

    async def listed(
        self, identity_ids: Sequence[str], next_token: str | None, counts: Mapping[str, int], problems: Sequence[str]
    ) -> None:
        self._roster.update(identity_ids)
        self._in_order = None

    async def relist(self) -> None:
        return None

    async def on_roster(self, identity_ids: Sequence[str]) -> set[str]:
        return self._roster.intersection(identity_ids)

    async def roster(self, *, after: str, limit: int) -> list[str]:
        if self._in_order is None:
            self._in_order = sorted(self._roster)
        start = bisect.bisect_right(self._in_order, after)
        return self._in_order[start : start + limit]

    async def roster_size(self) -> int:
        return len(self._roster)

    async def position(self, after: str) -> int:
        return 0

    async def done_among(self, identity_ids: Sequence[str]) -> set[str]:
        return set()

    async def identity_done(self, identity_id: str, counts: Mapping[str, int], problems: Sequence[str]) -> None:
        return None

    async def advance(self, after: str, finished: Sequence[str]) -> None:
        return None

    async def problems(self) -> list[str]:
        return []

    async def finish(self, *, now_ms: int) -> None:
        return None
