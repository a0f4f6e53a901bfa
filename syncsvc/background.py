"""Background loops of a server: one shape for every periodic sweep (bulk publish jobs, KMS key deletion/rotation),
and a watch for stalls of the event loop (a diagnostic)."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable

from syncsvc.errors import BackendUnavailableError

log = logging.getLogger("syncsvc")


async def every(seconds: float, what: str, step: Callable[[], Awaitable[object]]) -> None:
    """Runs ``step`` at once and then every ``seconds``, until cancelled. A step that fails is logged (Redis away:
    at debug level, as the requests already say so) and tried again next time. The loop ends on cancellation even
    when a driver swallowed it: redis-py (8.1) can, when it lands while a connection is being opened."""
    task = asyncio.current_task()
    while True:
        try:
            await step()
        except BackendUnavailableError as exc:
            log.debug("%s: %s", what, exc.message)
        except Exception:
            log.exception("%s failed; trying again in %.0f s", what, seconds)
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(seconds)


class StallWatch:
    """Finds what holds the event loop: a task on the loop beats every ``beat`` seconds, and a thread of its own
    logs, once per stall, the loop thread's stack when no beat came for ``threshold`` seconds (a callback that runs
    long: CPU work, a blocking call) and how long the stall lasted once it ends. A diagnostic (``SYNCSVC_STALL_LOG_MS``,
    off by default): it costs a wake-up per beat."""

    def __init__(self, threshold: float, *, beat: float = 0.005) -> None:
        self.threshold = threshold
        self.beat = beat
        self._last = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()

    async def run(self) -> None:
        """Beats until cancelled, with the watching thread running meanwhile."""
        self._loop_thread = threading.get_ident()
        watcher = threading.Thread(target=self._watch, name="stall watch", daemon=True)
        watcher.start()
        try:
            while True:
                self._last = time.monotonic()
                await asyncio.sleep(self.beat)
        finally:
            self._stop.set()

    def _watch(self) -> None:
        stalled_since: float | None = None
        while not self._stop.wait(self.beat):
            quiet = time.monotonic() - self._last
            if quiet < self.threshold:
                if stalled_since is not None:
                    log.warning("event loop stall ended after %.1f ms", (time.monotonic() - stalled_since) * 1000)
                    stalled_since = None
                continue
            if stalled_since is None:
                stalled_since = self._last
                frame = sys._current_frames().get(self._loop_thread)
                stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no stack)\n"
                log.warning("event loop stalled for %.1f ms so far, running:\n%s", quiet * 1000, stack.rstrip())
