"""Small sync triggers the tests register (by import path, as SYNCSVC_TRIGGERS does)."""

from __future__ import annotations

import os
from typing import Any

from syncsvc.triggers import LambdaContext, Rejected, SyncTriggerEvent


def validate(event: SyncTriggerEvent, context: LambdaContext) -> SyncTriggerEvent:
    """Refuses empty values, keeps everything else."""
    for key, record in event["datasetRecords"].items():
        if record["op"] == "replace" and record["newValue"] == "":
            raise Rejected(f"{key} cannot be empty")
    return event


async def uppercase(event: SyncTriggerEvent, context: LambdaContext) -> SyncTriggerEvent:
    for record in event["datasetRecords"].values():
        if record["newValue"] is not None:
            record["newValue"] = record["newValue"].upper()
    return event


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A handler as written for AWS Lambda: untyped, returns the event unchanged."""
    return event


def no_context(event: SyncTriggerEvent) -> SyncTriggerEvent:
    return event


NOT_CALLABLE = "a string"


def misbehave(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """For process isolation: a written value "loop" loops forever, "exit" ends the interpreter; else upper-cases."""
    for record in event["datasetRecords"].values():
        if record["op"] == "replace" and record["oldValue"] != record["newValue"]:
            if record["newValue"] == "loop":
                while True:
                    pass
            if record["newValue"] == "exit":
                os._exit(3)
            record["newValue"] = record["newValue"].upper()
    return event
