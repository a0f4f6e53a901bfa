"""The event loop stall watch (``SYNCSVC_STALL_LOG_MS``, a diagnostic): a callback that holds the loop is named in the
log, with how long it held it; a loop that keeps turning logs nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from syncsvc.background import StallWatch


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # a blocking call, as a bug would make one


async def watched(watch: StallWatch, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0.05)  # the watching thread is up
    try:
        await body()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_callback_that_holds_the_loop_is_logged_with_its_stack_and_how_long(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stall() -> None:
        hold_the_loop(0.2)
        await asyncio.sleep(0.05)  # the loop turns again: the stall's end is seen

    with caplog.at_level(logging.WARNING, logger="syncsvc"):
        await watched(StallWatch(0.05), stall)
    messages = [record.getMessage() for record in caplog.records]
    stalled = [message for message in messages if message.startswith("event loop stalled")]
    assert len(stalled) == 1
    assert "hold_the_loop" in stalled[0]
    assert "time.sleep(seconds)" in stalled[0]
    ended = [message for message in messages if message.startswith("event loop stall ended after")]
    assert len(ended) == 1
    assert 150 <= float(ended[0].split()[-2]) < 2000


async def test_a_loop_that_keeps_turning_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    async def turning() -> None:
        for _ in range(20):
            await asyncio.sleep(0.005)

    with caplog.at_level(logging.WARNING, logger="syncsvc"):
        await watched(StallWatch(1.0), turning)
    assert not [record for record in caplog.records if "stall" in record.getMessage()]
