"""Time, as the service reads it: one :class:`Clock` built by the composition root and passed down.

Domain code asks its clock for the time instead of calling ``time.time()``, so tests move time by handing in a
:class:`ManualClock` rather than by patching modules, and every "now" of a request comes from one place.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in epoch milliseconds."""

    def now_ms(self) -> int: ...


class SystemClock:
    """The machine's clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told (tests, replays)."""

    def __init__(self, now_ms: int) -> None:
        self._now_ms = now_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, ms: int) -> None:
        self._now_ms += ms

    def set(self, now_ms: int) -> None:
        """Moves the clock to ``now_ms`` (backwards too)."""
        self._now_ms = now_ms


#: The machine's clock: the default of the few classes also built outside the composition root (tests, tools).
SYSTEM = SystemClock()
