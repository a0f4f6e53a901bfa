"""HTTP messages as every AWS surface reads and writes them: the request body (read once), query integers, JSON
responses, and the typed keys under which the app and each request keep what the handlers share.

Query parameters that are numbers are read into the range of their AWS type (:func:`query_int`). Bodies are validated
by the operation dispatchers (``syncsvc.api.operations``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from syncsvc.config import Settings
from syncsvc.errors import InvalidParameterError
from syncsvc.model import Caller
from syncsvc.runtime import Services

REST_JSON = "application/json"
AMZ_JSON = "application/x-amz-json-1.1"
#: request key under which the raw body is kept once read (the signature check needs it too)
BODY = web.RequestKey("body", bytes)
#: The ranges of the AWS model's Integer (32-bit) and Long (64-bit) types, for :func:`query_int`.
INTEGER = (-(2**31), 2**31 - 1)
LONG = (-(2**63), 2**63 - 1)
#: A decimal integer short enough for ``int()`` to read at once (a Long has at most 19 digits).
_DECIMAL = re.compile(r"[+-]?[0-9]{1,20}")


async def body_of(request: web.Request) -> bytes:
    """The raw request body, read once (aiohttp enforces the size limit while reading)."""
    body: bytes | None = request.get(BODY)
    if body is None:
        body = await request.read()
        request[BODY] = body
    return body


def respond(payload: Mapping[str, Any], *, content_type: str = REST_JSON, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type=content_type)


def query_int(request: web.Request, name: str, bounds: tuple[int, int]) -> int | None:
    """The query parameter ``name`` as an integer of the AWS type whose ``bounds`` are given (:data:`INTEGER`,
    :data:`LONG`); None when absent or empty. Decimal ASCII digits with an optional sign only: not what ``int()``
    also reads (``1_000``, spaces, other scripts' digits). The operation checks its own rules on the value."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    low, high = bounds
    if _DECIMAL.fullmatch(raw) is None or not low <= (value := int(raw)) <= high:
        raise InvalidParameterError(f"{name} must be an integer from {low} to {high}, not '{raw[:40]}'")
    return value


#: The settings, set by the app factory (before the services open: error mapping needs them).
SETTINGS = web.AppKey("settings", Settings)
#: The one services object every operation runs on, set when the app starts (``syncsvc.runtime``).
SERVICES = web.AppKey("services", Services)
#: The authenticated caller of a request (set by ``syncsvc.api.middleware``).
CALLER = web.RequestKey("caller", Caller)
