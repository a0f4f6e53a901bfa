"""Requests counted and timed (:func:`metrics_middleware`), and ``GET /metrics`` (Prometheus' text format).

Every request the app answers is counted by service, operation and outcome and timed by service and operation
(``syncsvc.metrics``). The labels come from the app's own tables, never from what a client sent: a rest-json
request is named by its route (one per Cognito Sync operation), a json 1.1 request by the operation its
``X-Amz-Target`` names on a surface served here (anything else is ``unknown``), health and discovery by their
route's path; so a client cannot make a label set grow. A push socket is not timed here: it lasts as long as the
device holds it. Requests refused by load shedding are counted apart (``syncsvc.api.overload``). With
``SYNCSVC_ACCESS_LOG`` each request answered is also logged, one line with those labels, its status, its duration and
its request id, and its trace id when traced (``syncsvc.cli.logs``: text, or JSON fields).

``/metrics`` (``SYNCSVC_METRICS``): ``open`` to anyone, as Prometheus' exporters usually are; ``developer``: HTTP
Basic authentication with a developer credential pair (access key id as the user, secret as the password; a
Prometheus scrape config's ``basic_auth``, which it can send where it cannot SigV4-sign), compared in constant time;
``off``: not served. Its text is made at most once a second (``syncsvc.metrics.Exposition``), off the event loop,
one making at a time, so an open ``/metrics`` under a flood costs no more than a scraper.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import time

from aiohttp import web
from prometheus_client import Counter, Histogram

from syncsvc import metrics, tracing
from syncsvc.api.messages import SETTINGS
from syncsvc.api.middleware import JSON_SURFACES, TARGET_SERVICES, Handler
from syncsvc.api.sync import SURFACE as SYNC_SURFACE
from syncsvc.config import Settings

access = logging.getLogger("syncsvc.access")
#: The service label of health, discovery and /metrics itself.
SELF = "syncsvc"
UNKNOWN = "unknown"
_REST_OPERATIONS = frozenset(
    operation.name for operation in SYNC_SURFACE.operations.values() if operation.route is not None
)


class _Recorders:
    """The labelled children of the request metrics, made once per label set (a label lookup costs more than the
    observation)."""

    def __init__(self) -> None:
        self._timers: dict[tuple[str, str], Histogram] = {}
        self._counters: dict[tuple[str, str, str], Counter] = {}

    def record(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        timer = self._timers.get((service, operation))
        if timer is None:
            timer = self._timers[(service, operation)] = metrics.HTTP_REQUEST_SECONDS.labels(service, operation)
        counter = self._counters.get((service, operation, outcome))
        if counter is None:
            counter = metrics.HTTP_REQUESTS.labels(service, operation, outcome)
            self._counters[(service, operation, outcome)] = counter
        timer.observe(seconds)
        counter.inc()


_recorders = _Recorders()


def operation_of(request: web.Request) -> tuple[str, str]:
    """(service, operation) of a request, from the app's tables only (see the module)."""
    route = request.match_info.route
    name = route.name
    if name in _REST_OPERATIONS:
        return SYNC_SURFACE.signing_name, name
    if request.path == "/" and request.method == "POST":
        target = request.headers.get("X-Amz-Target", "")
        for surface in JSON_SURFACES:
            operation = surface.operation_for(target)
            if operation is not None:
                return surface.signing_name, operation.name
        return next((svc for prefix, svc in TARGET_SERVICES.items() if target.startswith(prefix)), UNKNOWN), UNKNOWN
    resource = route.resource
    return SELF, resource.canonical if resource is not None else UNKNOWN


def _outcome(response: web.StreamResponse) -> str:
    if response.status < 400:
        return "ok"
    return response.headers.get("x-amzn-ErrorType", UNKNOWN)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts and times every request answered (see the module), and logs it with ``SYNCSVC_ACCESS_LOG``; a push
    socket is counted when it is refused only."""
    started = time.perf_counter()
    response = await handler(request)
    if isinstance(response, web.WebSocketResponse):
        return response
    seconds = time.perf_counter() - started
    service, operation = operation_of(request)
    outcome = _outcome(response)
    _recorders.record(service, operation, outcome, seconds)
    if request.app[SETTINGS].access_log:
        _log_access(response, service, operation, outcome, seconds)
    return response


def _log_access(response: web.StreamResponse, service: str, operation: str, outcome: str, seconds: float) -> None:
    """One line per request: the labels above, the status, the time and the request id; nothing a client sent."""
    request_id = response.headers.get("x-amzn-RequestId", "")
    duration_ms = round(seconds * 1000, 3)
    fields = {"request_id": request_id, "service": service, "operation": operation, "outcome": outcome}
    if trace_id := tracing.trace_id():
        fields["trace_id"] = trace_id
    access.info(
        "%s %s %s %d %.3f ms %s",
        service,
        operation,
        outcome,
        response.status,
        duration_ms,
        request_id,
        extra={**fields, "status": response.status, "duration_ms": duration_ms},
    )


class MetricsEndpoint:
    """``GET /metrics`` under the ``SYNCSVC_METRICS`` setting (see the module)."""

    def __init__(self, settings: Settings) -> None:
        self._developer = settings.metrics == "developer"
        self._pairs = [
            (credential.access_key_id.encode(), credential.secret.get_secret_value().encode())
            for credential in settings.developer_credentials
        ]
        self._exposition = metrics.Exposition()
        self._making = asyncio.Lock()

    async def serve(self, request: web.Request) -> web.Response:
        if self._developer and not self._admits(request.headers.get("Authorization", "")):
            return web.Response(
                status=401,
                text="/metrics needs a developer credential pair (HTTP Basic: access key id, secret)\n",
                headers={"WWW-Authenticate": 'Basic realm="syncsvc metrics"'},
            )
        async with self._making:
            text = await asyncio.to_thread(self._exposition.text)
        return web.Response(body=text, headers={"Content-Type": metrics.CONTENT_TYPE})

    def _admits(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        admitted = False
        for key_id, secret in self._pairs:  # every pair compared, in constant time each
            admitted |= bool(sep) & hmac.compare_digest(user, key_id) & hmac.compare_digest(password, secret)
        return admitted


def routes(settings: Settings) -> list[web.RouteDef]:
    """``GET /metrics``, unless ``SYNCSVC_METRICS=off``."""
    if settings.metrics == "off":
        return []
    return [web.get("/metrics", MetricsEndpoint(settings).serve)]
