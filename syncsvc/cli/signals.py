"""What a long-running command does on Ctrl-C or a stop from its supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def cancelled_on_signals(task: asyncio.Task[T]) -> asyncio.Task[T]:
    """``task``, cancelled on SIGINT or SIGTERM: the command then ends as it does when interrupted."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    return task


async def until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Runs ``work`` until it ends or SIGINT/SIGTERM stops it (a stop is a normal end)."""
    task = cancelled_on_signals(asyncio.create_task(work))
    with contextlib.suppress(asyncio.CancelledError):
        await task
