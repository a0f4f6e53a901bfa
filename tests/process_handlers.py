"""Handlers the process-isolation tests run in worker processes (module-level, so a worker can import them)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from syncsvc.triggers import LambdaContext, Rejected


def scripted(event: dict[str, Any], context: LambdaContext) -> Any:
    """Does what ``event["do"]`` says, so one worker can misbehave and then answer normally. First creates the file
    ``event["announce"]`` when given: a test waits for it to know the handler is running."""
    if "announce" in event:
        Path(event["announce"]).touch()
    action = event.get("do", "echo")
    if action == "loop":
        while True:
            pass
    if action == "exit":
        os._exit(3)
    if action == "raise":
        raise ValueError("the handler broke: bad value")
    if action == "reject":
        raise Rejected("theme cannot be empty")
    if action == "print":
        print("a handler print " * 1000)
        sys.stdout.flush()
        os.write(1, b"\x00\x00\x00\x05junk written to fd 1\n")
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "meet":
        meet(Path(event["folder"]), event["parties"], event["seconds"])
    if action == "set":
        return {1, 2}
    if action == "huge":
        return "x" * (17 * 1024 * 1024)
    return {"pid": os.getpid(), "event": event}


def meet(folder: Path, parties: int, seconds: float) -> None:
    """Signs in ``folder``, then waits until ``parties`` calls in all have: calls get past it only if that many run at
    the same time. TimeoutError after ``seconds``."""
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + seconds
    while len(list(folder.iterdir())) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{parties} calls did not run at the same time")
        time.sleep(0.01)


def uppercase(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Upper-cases every new value, as a real trigger would."""
    for record in event["datasetRecords"].values():
        if record["newValue"] is not None:
            record["newValue"] = record["newValue"].upper()
    return event


def show_context(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    identity = context.identity
    return {
        "function_name": context.function_name,
        "aws_request_id": context.aws_request_id,
        "invoked_function_arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "identity": [identity.cognito_identity_id, identity.cognito_identity_pool_id] if identity else None,
        "log_group_name": context.log_group_name,
    }


async def async_uppercase(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"loop": id(asyncio.get_running_loop()), "event": uppercase(event, context)}


def ghost(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Registered under a module name that does not exist (see the import failure test)."""
    return event


ghost.__module__ = "tests.no_such_module"
