"""What is shared by the AWS protocol surfaces: request parsing, responses, request ids, and the typed app keys.

Bodies are validated with pydantic models (strict, unknown members forbidden). A body that is not JSON, or a
member of the wrong JSON type, is a ``SerializationException`` (what real AWS answers); a missing member or a value
out of range is an ``InvalidParameterException``. Either way the message names the member, e.g.
``RecordPatches[0].SyncCount: Input should be greater than or equal to 0``. Query parameters that are numbers are
read into the range of their AWS type (:func:`query_int`).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from syncsvc.config import Settings
from syncsvc.errors import InvalidParameterError, SerializationError, SyncsvcError
from syncsvc.identity.authenticator import Authenticator
from syncsvc.identity.broker import IdentityBroker
from syncsvc.identity.issuer import TokenIssuer
from syncsvc.identity.pools import PoolDirectory
from syncsvc.kms.service import KeyService
from syncsvc.outbox.bulk import BulkPublisher
from syncsvc.outbox.relay import Relay
from syncsvc.push.hub import PushHub
from syncsvc.push.service import PushService
from syncsvc.service import SyncService
from syncsvc.store import RedisStore
from syncsvc.tokens import TokenSigner

ModelT = TypeVar("ModelT", bound=BaseModel)

REST_JSON = "application/json"
AMZ_JSON = "application/x-amz-json-1.1"
#: request key under which the raw body is kept once read (the signature check needs it too)
BODY = web.RequestKey("body", bytes)
#: The ranges of the AWS model's Integer (32-bit) and Long (64-bit) types, for :func:`query_int`.
INTEGER = (-(2**31), 2**31 - 1)
LONG = (-(2**63), 2**63 - 1)
#: A decimal integer short enough for ``int()`` to read at once (a Long has at most 19 digits).
_DECIMAL = re.compile(r"[+-]?[0-9]{1,20}")

_TYPE_ERRORS = frozenset(
    {
        "json_invalid",
        "json_type",
        "model_type",
        "model_attributes_type",
        "dict_type",
        "list_type",
        "string_type",
        "int_type",
        "int_from_float",
        "float_type",
        "bool_type",
        "int_parsing",
        "float_parsing",
        "bool_parsing",
        "string_unicode",
        "literal_error_type",
    }
)


async def body_of(request: web.Request) -> bytes:
    """The raw request body, read once (aiohttp enforces the size limit while reading)."""
    body: bytes | None = request.get(BODY)
    if body is None:
        body = await request.read()
        request[BODY] = body
    return body


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validation_error(exc: ValidationError) -> SyncsvcError:
    first = exc.errors(include_url=False)[0]
    where = _location(tuple(first["loc"]))
    kind = first["type"]
    if kind == "json_invalid":
        return SerializationError("The request body is not valid JSON")
    if kind == "missing":
        return InvalidParameterError(f"{where} is required")
    if kind == "extra_forbidden":
        return InvalidParameterError(f"{where} is not a known member of this request")
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    if kind in _TYPE_ERRORS:
        return SerializationError(message)
    return InvalidParameterError(message)


async def parse(request: web.Request, model: type[ModelT]) -> ModelT:
    """The request body validated as ``model``; an empty body counts as ``{}``."""
    body = await body_of(request) or b"{}"
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise validation_error(exc) from None


def respond(payload: dict[str, Any], *, content_type: str = REST_JSON, status: int = 200) -> web.Response:
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


#: Typed application keys, set by the app factory (syncsvc.api.app) at start-up.
SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", RedisStore)
POOLS = web.AppKey("pools", PoolDirectory)
SYNC = web.AppKey("sync", SyncService)
SIGNER = web.AppKey("signer", TokenSigner)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
BROKER = web.AppKey("broker", IdentityBroker)
ISSUER = web.AppKey("issuer", TokenIssuer)
RELAY: web.AppKey[Relay | None] = web.AppKey("relay")
BULK = web.AppKey("bulk", BulkPublisher)
PUSH = web.AppKey("push", PushService)
HUB = web.AppKey("hub", PushHub)
KMS = web.AppKey("kms", KeyService)
