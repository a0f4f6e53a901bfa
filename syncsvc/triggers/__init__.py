"""Sync triggers (Cognito Events): the developer contract is documented in :mod:`syncsvc.triggers.spec`."""

from __future__ import annotations

from syncsvc.triggers.registry import TriggerError, TriggerRegistry
from syncsvc.triggers.spec import (
    CognitoIdentity,
    Isolation,
    LambdaContext,
    Rejected,
    SyncTriggerEvent,
    SyncTriggerRecord,
    TriggerSource,
    TriggerSpec,
)

__all__ = [
    "CognitoIdentity",
    "Isolation",
    "LambdaContext",
    "Rejected",
    "SyncTriggerEvent",
    "SyncTriggerRecord",
    "TriggerError",
    "TriggerRegistry",
    "TriggerSource",
    "TriggerSpec",
]
