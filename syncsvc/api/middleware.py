"""Request ids, the one exception-to-response mapping, and SigV4 authentication.

Errors are mapped once, by class (reference §0.1): status = the error's status; body
``{"__type": <Name>, "message": <text>}`` plus any extra members; header ``x-amzn-ErrorType: <Name>`` (rest-json
clients read the header, json 1.1 clients the body's ``__type``); ``Content-Type`` per the surface;
``x-amzn-RequestId`` always. Anything unexpected is logged with its traceback and answered as a generic 500. A
message quoting request bytes that are not UTF-8 shows them as ``?``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from syncsvc.api import identity, kms, sync, userpools, wire
from syncsvc.api.bodies import BODIES
from syncsvc.api.console.paths import is_console
from syncsvc.api.messages import AMZ_JSON, BODY, CALLER, REST_JSON, SERVICES, SETTINGS, respond
from syncsvc.api.operations import anonymous_targets, standing_checked
from syncsvc.errors import (
    MethodNotAllowedError,
    RecordConflictError,
    RequestTooLargeError,
    StandingLostError,
    SyncsvcError,
    UnknownOperationError,
)
from syncsvc.identity import sigv4

log = logging.getLogger("syncsvc.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Paths that need no signature.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/.well-known/openid-configuration", "/.well-known/jwks.json"}
)
#: A user pool's discovery paths (``/<userPoolId>/.well-known/…``), public as the ones above.
USER_POOL_DISCOVERY = re.compile(r"^/[\w-]+_[0-9a-zA-Z]+/\.well-known/(openid-configuration|jwks\.json)$")
JSON_SURFACES = (identity.SURFACE, kms.SURFACE, userpools.SURFACE)
#: Operations AWS serves without a signature (``authtype: none`` in the service model: Access.ANONYMOUS).
UNAUTHENTICATED_TARGETS = anonymous_targets(JSON_SURFACES)
#: Routes whose use-case checks its identity caller's standing in its own script (admission then reads nothing).
STANDING_CHECKED = standing_checked(sync.SURFACE)
#: X-Amz-Target prefix -> SigV4 service name; requests without a target are Cognito Sync (rest-json).
TARGET_SERVICES = {surface.target_prefix: surface.signing_name for surface in JSON_SURFACES if surface.target_prefix}


class _RequestIds:
    """``x-amzn-RequestId`` values: UUID-shaped, unique per process (a random prefix drawn at start and again in every
    forked child, then a counter), and cheaper than ``uuid4()`` (os.urandom per request), which a refused request
    would otherwise spend a good part of its time on. A request id names a request in logs; it is not a secret."""

    def __init__(self) -> None:
        self._draw()
        os.register_at_fork(after_in_child=self._draw)

    def _draw(self) -> None:
        prefix = secrets.token_hex(10)
        self._prefix = f"{prefix[:8]}-{prefix[8:12]}-{prefix[12:16]}-{prefix[16:]}-"
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFF_FFFF_FFFF:012x}"


#: A new request id (see :class:`_RequestIds`).
new_request_id = _RequestIds()


def is_json_protocol(request: web.Request) -> bool:
    """A json 1.1 request: it names its operation by ``X-Amz-Target``, or is sent to ``/``, where only json 1.1
    operations are served (an error to a request missing the header is still answered as json 1.1)."""
    return "X-Amz-Target" in request.headers or request.path == "/"


def error_response(request: web.Request, error: SyncsvcError) -> web.Response:
    body: dict[str, Any] = {"__type": error.code, "message": _utf8(error.message), **error.extra}
    if isinstance(error, RecordConflictError):
        body.update(wire.conflict(error.records, error.dataset))
    json_protocol = is_json_protocol(request)
    status = (error.json_status or error.status) if json_protocol else error.status
    response = respond(body, content_type=AMZ_JSON if json_protocol else REST_JSON, status=status)
    response.headers["x-amzn-ErrorType"] = error.code
    if error.retry_after_seconds is not None:
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


def _utf8(message: str) -> str:
    """``message`` as text JSON can carry. A message may quote a header, and aiohttp keeps the bytes of a header that
    are not UTF-8 as lone surrogates (``\\udcff``), which no JSON encoder writes: each becomes ``?``."""
    return message if message.isascii() else message.encode("utf-8", "replace").decode("utf-8")


def _from_http(exc: web.HTTPException, request: web.Request) -> SyncsvcError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app[SETTINGS].max_body_bytes
        return RequestTooLargeError(f"The request body is larger than {limit} bytes")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowedError(f"{request.method} is not allowed on {request.path}")
    return UnknownOperationError(f"No operation at {request.method} {request.path}")


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = new_request_id()
    try:
        response = await handler(request)
    except SyncsvcError as error:
        if error.status >= 500:
            log.warning("request %s failed: %s %s", request_id, error.code, error.message)
        response = error_response(request, error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(request, _from_http(exc, request))
    except Exception:
        log.exception("request %s: unexpected error in %s %s", request_id, request.method, request.path)
        response = error_response(request, SyncsvcError("An internal error occurred"))
    response.headers["x-amzn-RequestId"] = request_id
    return response


def is_public(request: web.Request) -> bool:
    """Health, discovery and the API description: served to anyone, never an operation."""
    return request.path in PUBLIC_PATHS or USER_POOL_DISCOVERY.match(request.path) is not None


def _service_of(request: web.Request) -> str:
    target = request.headers.get("X-Amz-Target", "")
    for prefix, service in TARGET_SERVICES.items():
        if target.startswith(prefix):
            return service
    return sync.SURFACE.signing_name


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticates every request except :data:`PUBLIC_PATHS` and sets ``request[CALLER]``: the caller is admitted
    on its headers first, then its body is read (within the body budget, see ``syncsvc.api.bodies``) and the
    signature checked over it."""
    if is_public(request) or is_console(request.path):  # the console authenticates its own way (sessions)
        return await handler(request)
    raw_path, _, raw_query = request.raw_path.partition("?")
    headers = tuple(request.headers.items())
    authenticator = request.app[SERVICES].authenticator
    head = sigv4.SignedRequest(request.method, raw_path, raw_query, headers, body=b"")
    service = _service_of(request)
    anonymous_allowed = request.headers.get("X-Amz-Target", "") in UNAUTHENTICATED_TARGETS
    folded = request.match_info.route.name in STANDING_CHECKED
    admission = await authenticator.admit(head, service=service, anonymous_allowed=anonymous_allowed, folded=folded)
    async with request.app[BODIES].read(request) as body:
        request[BODY] = body
        whole = sigv4.SignedRequest(request.method, raw_path, raw_query, headers, body)
        request[CALLER] = admission.verify(whole)
        if not folded:
            return await handler(request)
        try:
            return await handler(request)
        except StandingLostError:  # nothing was written: admit it again the long way (a revoked caller stops here)
            authenticator.forget(request[CALLER])
            admission = await authenticator.admit(head, service=service, anonymous_allowed=anonymous_allowed)
            request[CALLER] = admission.verify(whole)
            return await handler(request)
