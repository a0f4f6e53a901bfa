"""The aiohttp application: routes, middlewares, health endpoints, and its lifecycle.

The app builds nothing itself: at start-up it opens the composition root (``syncsvc.runtime.open_services``), keeps
the one :class:`~syncsvc.runtime.Services` object under ``SERVICES``, and runs the background work with
``runtime.serving``. Every AWS operation is served from the surfaces' operation tables (``syncsvc.api.operations``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from syncsvc.api import console, metrics, openapi, push, sync
from syncsvc.api.bodies import BODIES, BodyBudget
from syncsvc.api.connections import CONNECTIONS, ConnectionGuard, busy_middleware
from syncsvc.api.messages import SERVICES, SETTINGS, respond
from syncsvc.api.middleware import (
    JSON_SURFACES,
    PUBLIC_PATHS,
    Handler,
    auth_middleware,
    error_response,
    errors_middleware,
)
from syncsvc.api.operations import json_dispatcher, rest_routes
from syncsvc.api.overload import IN_FLIGHT, InFlight, admit_middleware, shed_middleware
from syncsvc.api.tracing import tracing_middleware
from syncsvc.clock import Clock
from syncsvc.config import Settings, connection_limit
from syncsvc.errors import BackendUnavailableError, StoreOutOfMemoryError
from syncsvc.runtime import open_services, serving
from syncsvc.triggers import TriggerRegistry

log = logging.getLogger("syncsvc")
#: /readyz reports "degraded" when a committed change has waited this long for the stream.
STALE_SECONDS = 10.0
#: Triggers registered in code for this app (``create_app(settings, triggers=…)``); the rest load at start-up.
CODE_TRIGGERS = web.AppKey("code_triggers", TriggerRegistry)
#: The time every service reads (``create_app(settings, clock=…)``); None: the machine's.
CLOCK = web.AppKey("clock", Clock)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_services(settings, triggers=app[CODE_TRIGGERS], clock=app.get(CLOCK)) as services:
        if not settings.developer_credentials:
            log.warning("no developer credentials configured (SYNCSVC_DEVELOPER_CREDENTIALS): signed requests fail")
        app[SERVICES] = services
        async with serving(services):
            yield


async def _close_sockets(app: web.Application) -> None:
    """Shutdown begins: device sockets close with 1001 so devices reconnect to another instance at once."""
    services = app.get(SERVICES)
    if services is not None:
        await services.hub.close()


async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return respond({"status": "ok"})


async def openid_configuration(request: web.Request) -> web.Response:
    """OpenID discovery for the tokens this service issues (GetOpenIdToken*)."""
    return respond(request.app[SERVICES].issuer.openid_configuration())


async def jwks(request: web.Request) -> web.Response:
    """The public keys that verify the tokens this service issues, rotated keys included until their tokens expire."""
    return respond(await request.app[SERVICES].issuer.jwks())


async def user_pool_openid_configuration(request: web.Request) -> web.Response:
    """OpenID discovery for a user pool's tokens (its ``iss`` is ``<public URL>/<userPoolId>``)."""
    tokens = request.app[SERVICES].userpool_tokens
    return respond(await tokens.openid_configuration(request.match_info["userPoolId"]))


async def user_pool_jwks(request: web.Request) -> web.Response:
    """The public keys that verify a user pool's tokens (the service's one key ring: ``iss`` tells pools apart)."""
    return respond(await request.app[SERVICES].userpool_tokens.jwks(request.match_info["userPoolId"]))


async def readyz(request: web.Request) -> web.Response:
    """The process can serve: Redis answers (else 503) with an eviction policy syncsvc accepts (else 503, ``"status":
    "unsafe"``). Redis out of memory (writes refused, reads served) and Kafka trouble (writes go on) show as
    ``"status": "degraded"`` with a 200; the outbox backlog per shard tells how far behind the stream is."""
    services = request.app[SERVICES]
    watch = services.redis_watch
    await watch.inspect()
    if watch.refusal is not None:
        return respond({"status": "unsafe", "redis": watch.refusal}, status=503)
    redis = watch.out_of_memory or "ok"
    relay = services.relay
    if not services.settings.relay:
        return respond({"status": "ok" if redis == "ok" else "degraded", "redis": redis, "relay": "off"})
    behind = await relay.behind_seconds()
    healthy = relay.healthy and behind < STALE_SECONDS
    return respond(
        {
            "status": "ok" if healthy and redis == "ok" else "degraded",
            "redis": redis,
            "relay": "ok" if healthy else "behind: Kafka unreachable or slow",
            "relay_behind_seconds": round(behind, 3),
        }
    )


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of every path served here (``syncsvc.api.openapi``)."""
    return respond(openapi.document(), content_type="application/json")


@web.middleware
async def redis_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuses every request but the health and discovery paths while Redis may evict keys (503 + Retry-After, the
    watch's one line). Answers a write Redis refused for want of memory (503 + Retry-After) without a log line per
    request: the watch logs the episode once."""
    watch = request.app[SERVICES].redis_watch
    if watch.refusal is not None and request.path not in PUBLIC_PATHS:
        return error_response(request, BackendUnavailableError(watch.refusal))
    try:
        return await handler(request)
    except StoreOutOfMemoryError as error:
        watch.refused_write()
        log.debug("%s %s refused: %s", request.method, request.path, error.message)
        return error_response(request, error)


def create_app(
    settings: Settings, *, triggers: TriggerRegistry | None = None, clock: Clock | None = None
) -> web.Application:
    """The app; ``triggers`` adds triggers registered in code to those of entry points and SYNCSVC_TRIGGERS;
    ``clock`` is the time every service reads (embedding, tests; default: the machine's)."""
    app = web.Application(
        middlewares=[
            shed_middleware,
            tracing_middleware,
            metrics.metrics_middleware,
            busy_middleware,
            errors_middleware,
            redis_middleware,
            auth_middleware,
            admit_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[CONNECTIONS] = ConnectionGuard(connection_limit(settings), per_address=settings.max_connections_per_address)
    app[BODIES] = BodyBudget(
        total_bytes=max(settings.max_buffered_body_bytes, settings.max_body_bytes),
        max_body_bytes=settings.max_body_bytes,
        timeout_seconds=settings.body_timeout_seconds,
    )
    app[CODE_TRIGGERS] = triggers if triggers is not None else TriggerRegistry()
    app[IN_FLIGHT] = InFlight(settings.max_requests_in_flight)
    if clock is not None:
        app[CLOCK] = clock
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_close_sockets)
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/openapi.json", openapi_json),
            web.get("/.well-known/openid-configuration", openid_configuration),
            web.get("/.well-known/jwks.json", jwks),
            web.get("/{userPoolId}/.well-known/openid-configuration", user_pool_openid_configuration),
            web.get("/{userPoolId}/.well-known/jwks.json", user_pool_jwks),
        ]
    )
    app.add_routes(metrics.routes(settings))
    console.install(app, settings)
    app.add_routes(rest_routes(sync.SURFACE))
    app.add_routes(push.routes())
    app.add_routes([web.post("/", json_dispatcher(JSON_SURFACES))])
    return app
