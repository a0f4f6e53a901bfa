"""What a long-running command does on Ctrl-C or a stop from its supervisor."""

from __future__ import annotations

import asyncio
import signal
from typing import TypeVar

T = TypeVar("T")


def cancelled_on_signals(task: asyncio.Task[T]) -> asyncio.Task[T]:
    """``task``, cancelled on SIGINT or SIGTERM: the command then ends as it does when interrupted."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    return task
