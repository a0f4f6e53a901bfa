"""Background loops of a server: one shape for every periodic sweep (bulk publish jobs, KMS key deletion/rotation)."""

from __future__ import annotations

import asyncio
import logging
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
