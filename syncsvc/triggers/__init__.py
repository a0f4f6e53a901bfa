"""Sync triggers (Cognito Events): the developer contract is documented in :mod:`syncsvc.triggers.spec`."""

from __future__ import annotations

from syncsvc.triggers.registry import TriggerError, TriggerRegistry
from syncsvc.triggers.spec import (
    LAST_WRITER_WINS,
    REJECT,
    CognitoIdentity,
    Conflict,
    IncomingVersion,
    Isolation,
    LambdaContext,
    Rejected,
    StoredVersion,
    SyncConflictEvent,
    SyncTriggerEvent,
    SyncTriggerRecord,
    TriggerSource,
    TriggerSpec,
)

__all__ = [
    "LAST_WRITER_WINS",
    "REJECT",
    "CognitoIdentity",
    "Conflict",
    "IncomingVersion",
    "Isolation",
    "LambdaContext",
    "Rejected",
    "StoredVersion",
    "SyncConflictEvent",
    "SyncTriggerEvent",
    "SyncTriggerRecord",
    "TriggerError",
    "TriggerRegistry",
    "TriggerSource",
    "TriggerSpec",
]
