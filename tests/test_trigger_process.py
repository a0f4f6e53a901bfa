"""Process isolation: ProcessWorkers runs a handler in worker processes it kills and replaces (no server, no Redis)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from syncsvc.triggers import CognitoIdentity, LambdaContext, Rejected, TriggerRegistry
from syncsvc.triggers.failures import TriggerCrashed, TriggerOutputError, TriggerRaised, TriggerTimeout
from syncsvc.triggers.process import ProcessWorkers
from tests import process_handlers

Start = Callable[..., Awaitable[ProcessWorkers]]
IDENTITY = CognitoIdentity("us-east-1:identity", "us-east-1:pool")
EVENT: dict[str, Any] = {
    "version": 2,
    "eventType": "SyncTrigger",
    "region": "us-east-1",
    "identityPoolId": "us-east-1:pool",
    "identityId": "us-east-1:identity",
    "datasetName": "settings",
    "datasetRecords": {"theme": {"oldValue": "dark", "newValue": "light", "op": "replace"}},
}


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Starts ProcessWorkers for a handler (``start(handler, timeout_seconds=…, max_concurrency=…)``); all closed
    when the test ends."""
    started: list[ProcessWorkers] = []

    async def make(
        handler: Callable[..., Any], *, timeout_seconds: float = 5, max_concurrency: int = 2
    ) -> ProcessWorkers:
        spec = TriggerRegistry().register(
            handler.__name__,
            handler,
            isolation="process",
            timeout_seconds=timeout_seconds,
            max_concurrency=max_concurrency,
        )
        workers = ProcessWorkers(spec)
        started.append(workers)
        await workers.start()
        return workers

    try:
        yield make
    finally:
        for workers in started:
            await workers.close()


def context(timeout_seconds: float = 5) -> LambdaContext:
    return LambdaContext(
        function_name="scripted",
        aws_request_id=str(uuid.uuid4()),
        invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:scripted",
        deadline=time.monotonic() + timeout_seconds,
        identity=IDENTITY,
        log_group_name="/aws/lambda/scripted",
    )


async def call(workers: ProcessWorkers, timeout_seconds: float = 5, **event: Any) -> Any:
    return await workers.call(event, context(timeout_seconds))


async def appeared(path: Path) -> None:
    """Returns once ``path`` exists (a handler announced it is running)."""
    async with asyncio.timeout(10):
        while not await asyncio.to_thread(path.exists):
            await asyncio.sleep(0.01)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_handler_returns_the_modified_event(start: Start) -> None:
    workers = await start(process_handlers.uppercase)
    answer = await workers.call(EVENT, context())
    assert answer == {**EVENT, "datasetRecords": {"theme": {"oldValue": "dark", "newValue": "LIGHT", "op": "replace"}}}


async def test_the_handler_sees_the_lambda_context(start: Start) -> None:
    workers = await start(process_handlers.show_context)
    given = context(timeout_seconds=3)
    answer = await workers.call(EVENT, given)
    assert 2000 < answer.pop("remaining_ms") <= 3000
    assert answer == {
        "function_name": "scripted",
        "aws_request_id": given.aws_request_id,
        "invoked_function_arn": given.invoked_function_arn,
        "identity": ["us-east-1:identity", "us-east-1:pool"],
        "log_group_name": "/aws/lambda/scripted",
    }


async def test_an_async_handler_runs_on_one_event_loop_kept_by_the_worker(start: Start) -> None:
    workers = await start(process_handlers.async_uppercase)
    first = await workers.call(EVENT, context())
    second = await workers.call(EVENT, context())
    assert first["event"]["datasetRecords"]["theme"]["newValue"] == "LIGHT"
    assert first["loop"] == second["loop"]


async def test_rejected_comes_back_as_rejected_with_its_message(start: Start) -> None:
    workers = await start(process_handlers.scripted)
    with pytest.raises(Rejected) as raised:
        await call(workers, do="reject")
    assert raised.value.message == "theme cannot be empty"


async def test_an_exception_is_trigger_raised_and_the_worker_is_reused(start: Start) -> None:
    workers = await start(process_handlers.scripted)
    pids = workers.pids
    with pytest.raises(TriggerRaised) as raised:
        await call(workers, do="raise")
    assert "ValueError: the handler broke: bad value" in str(raised.value)
    assert "Traceback" in str(raised.value)
    assert (await call(workers))["pid"] == pids[0]
    assert workers.pids == pids


async def test_an_endless_loop_times_out_and_the_next_call_gets_a_new_worker(start: Start) -> None:
    workers = await start(process_handlers.scripted, timeout_seconds=0.5)
    (stuck,) = workers.pids
    started = time.monotonic()
    with pytest.raises(TriggerTimeout, match=r"no answer within 0\.5 s"):
        await call(workers, 0.5, do="loop")
    assert time.monotonic() - started < 0.5 + 1.0  # at its timeout, give or take what a loaded machine adds
    answer = await call(workers)
    assert answer["pid"] != stuck
    assert not alive(stuck)


async def test_a_worker_exiting_is_trigger_crashed_with_its_exit_code_and_the_next_call_works(start: Start) -> None:
    workers = await start(process_handlers.scripted)
    (crashed,) = workers.pids
    with pytest.raises(TriggerCrashed, match=r"trigger 'scripted': worker process exited with code 3 before answering"):
        await call(workers, do="exit")
    assert (await call(workers))["pid"] != crashed


async def test_a_cancelled_call_kills_its_worker(start: Start, tmp_path: Path) -> None:
    workers = await start(process_handlers.scripted)
    (busy,) = workers.pids
    running = tmp_path / "running"
    task = asyncio.create_task(call(workers, do="sleep", seconds=30, announce=str(running)))
    await appeared(running)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await call(workers))["pid"] != busy
    assert not alive(busy)


async def test_handler_prints_do_not_break_the_protocol(start: Start) -> None:
    workers = await start(process_handlers.scripted)
    assert (await call(workers, do="print"))["event"] == {"do": "print"}
    assert (await call(workers))["event"] == {}


async def test_an_unencodable_return_value_is_trigger_output_error(start: Start) -> None:
    workers = await start(process_handlers.scripted)
    with pytest.raises(TriggerOutputError, match="Type is not JSON serializable: set"):
        await call(workers, do="set")


async def test_an_answer_over_16_mib_is_trigger_output_error(start: Start) -> None:
    workers = await start(process_handlers.scripted)
    with pytest.raises(TriggerOutputError, match="more than the limit of 16777216"):
        await call(workers, do="huge")


async def test_calls_up_to_max_concurrency_run_in_parallel(start: Start, tmp_path: Path) -> None:
    workers = await start(process_handlers.scripted, max_concurrency=3)
    await asyncio.gather(*(call(workers) for _ in range(3)))  # three warm workers
    # each call waits for all three to run: calls run one or two at a time would never meet
    meeting = (call(workers, do="meet", folder=str(tmp_path), parties=3, seconds=4) for _ in range(3))
    answers = await asyncio.gather(*meeting)
    assert len({answer["pid"] for answer in answers}) == 3
    assert len(workers.pids) == 3


async def test_close_leaves_no_worker_process(start: Start) -> None:
    workers = await start(process_handlers.scripted, max_concurrency=3)
    busy = asyncio.create_task(call(workers, do="loop"))
    await asyncio.gather(*(call(workers) for _ in range(2)))
    pids = workers.pids
    assert len(pids) == 3
    await workers.close()
    for pid in pids:
        assert not alive(pid)
    with pytest.raises(TriggerCrashed):
        await busy
    await workers.close()  # idempotent


async def test_a_handler_that_cannot_be_imported_fails_start_with_trigger_crashed(start: Start) -> None:
    with pytest.raises(TriggerCrashed) as crashed:
        await start(process_handlers.ghost)
    message = str(crashed.value)
    assert message.startswith("trigger 'ghost': worker process cannot load the handler: ")
    assert "No module named 'tests.no_such_module'" in message
