"""The operations of the KMS API reference that syncsvc does not serve, each refused with the reason.

Each is a wire operation (so an SDK gets KMS's UnsupportedOperationException with a message saying why, not
UnknownOperationException) for developer credentials (an identity gets the AccessDeniedException of every operation it
may not call), whose use-case refuses at once, before reading the request; the README's KMS section lists the same
operations with the same reasons. Touches nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from syncsvc.api.kms.inputs import AnyIn
from syncsvc.api.kms.outputs import Empty
from syncsvc.api.operations import Call
from syncsvc.errors import UnsupportedOperationError
from syncsvc.runtime import Services

#: Operation name -> why syncsvc does not serve it (the refusal's message).
REASONS: dict[str, str] = {
    "ReplicateKey": (
        "Multi-Region keys are not supported: this syncsvc deployment holds keys of one region only, so there is no "
        "other region to replicate a key to"
    ),
    "UpdatePrimaryRegion": (
        "Multi-Region keys are not supported: this syncsvc deployment holds keys of one region only"
    ),
    "DeriveSharedSecret": "syncsvc makes no key agreement (KEY_AGREEMENT) keys, so it derives no shared secrets",
    "Encapsulate": "syncsvc makes no ML-KEM (ENCAPSULATE_DECAPSULATE) keys",
    "Decapsulate": "syncsvc makes no ML-KEM (ENCAPSULATE_DECAPSULATE) keys",
    "GetKeyLastUsage": "syncsvc does not record when a key was last used",
}


def refused(name: str) -> Callable[[Services, Call[AnyIn]], Awaitable[Empty]]:
    """The use-case of the unserved operation ``name``: UnsupportedOperationException with its reason."""
    reason = REASONS[name]

    async def refuse(services: Services, call: Call[AnyIn]) -> Empty:
        raise UnsupportedOperationError(reason)

    return refuse
