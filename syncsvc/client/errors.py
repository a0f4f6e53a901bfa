"""The one exception type the client raises, with the AWS error name of the failure."""

from __future__ import annotations

from typing import Any

#: ``code`` of failures that never reached the server or got no HTTP answer (``status`` is then 0).
CONNECTION_ERROR = "ConnectionError"
#: ``code`` of a sync that a callback cancelled (an ``on_conflict`` that left a conflict unresolved).
SYNC_CANCELLED = "SyncCancelled"
#: ``code`` of a push call made before :meth:`SyncClient.register_device`.
DEVICE_NOT_REGISTERED = "DeviceNotRegistered"
#: ``code`` of a token refresh whose logins now open another identity than the client's (sign in again).
IDENTITY_CHANGED = "IdentityChanged"
#: ``code`` of a WebSocket closed with 4009: a newer connection of the same device replaced this one.
CONNECTION_REPLACED = "ConnectionReplaced"


class SyncClientError(Exception):
    """A failed call: ``code`` is the AWS error name (``ResourceConflictException``, ``NotAuthorizedException``, …)
    or one of this module's client-side codes, ``status`` the HTTP status (0 when there was no HTTP answer), and
    ``details`` the rest of the error body (a ResourceConflictException carries the stored ``Records``)."""

    def __init__(self, code: str, message: str, status: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.details: dict[str, Any] = details or {}


class SyncRetriesExceededError(SyncClientError):
    """``synchronize`` met a ResourceConflictException on every attempt (another device kept writing between its
    pull and its push). ``code`` stays ``ResourceConflictException``; ``attempts`` says how many were made."""

    def __init__(self, dataset: str, attempts: int, last: SyncClientError) -> None:
        super().__init__(
            last.code,
            f"dataset {dataset!r}: sync exceeded the maximum retries ({attempts} attempts, each pushed onto a "
            f"dataset changed since its pull); last error: {last.message}",
            last.status,
            last.details,
        )
        self.attempts = attempts


def error_code(header: str | None, body: dict[str, Any], status: int) -> str:
    """The AWS error name as botocore reads a rest-json error: the ``x-amzn-ErrorType`` header, else body ``code`` /
    ``__type``; ``Name:uri`` and ``namespace#Name`` forms are normalised; the status when none is given."""
    raw = header or body.get("code") or body.get("Code") or body.get("__type")
    if not isinstance(raw, str) or not raw:
        return str(status)
    return raw.split(":")[0].rsplit("#")[-1]


def error_message(body: dict[str, Any]) -> str:
    message = body.get("message", body.get("Message", ""))
    return message if isinstance(message, str) else str(message)
