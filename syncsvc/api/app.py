"""The aiohttp application factory and its lifecycle (one async context: connect, check, serve, close)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from syncsvc.api import identity, push, sync
from syncsvc.api.bodies import BODIES, BodyBudget
from syncsvc.api.connections import CONNECTIONS, ConnectionGuard, busy_middleware, connection_limit
from syncsvc.api.middleware import PUBLIC_PATHS, Handler, auth_middleware, error_response, errors_middleware
from syncsvc.api.protocol import (
    AUTHENTICATOR,
    BROKER,
    BULK,
    HUB,
    ISSUER,
    KMS,
    POOLS,
    PUSH,
    RELAY,
    SETTINGS,
    SIGNER,
    STORE,
    SYNC,
    respond,
)
from syncsvc.background import every
from syncsvc.config import Settings
from syncsvc.errors import BackendUnavailableError, StoreOutOfMemoryError
from syncsvc.outbox.relay import Relay
from syncsvc.push.hub import PushHub
from syncsvc.runtime import open_services, start_triggers
from syncsvc.store.health import EPISODE_SECONDS, RedisWatch
from syncsvc.triggers import TriggerRegistry

log = logging.getLogger("syncsvc")
#: /readyz reports "degraded" when a committed change has waited this long for the stream.
STALE_SECONDS = 10.0
#: Triggers registered in code for this app (``create_app(settings, triggers=…)``); the rest load at start-up.
CODE_TRIGGERS = web.AppKey("code_triggers", TriggerRegistry)
#: Redis's eviction policy and memory, watched while serving (see ``syncsvc.store.health``).
WATCH = web.AppKey("redis_watch", RedisWatch)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_services(settings, triggers=app[CODE_TRIGGERS]) as services:
        if not settings.developer_credentials:
            log.warning("no developer credentials configured (SYNCSVC_DEVELOPER_CREDENTIALS): signed requests fail")
        app[STORE] = services.store
        app[SIGNER] = services.signer
        app[POOLS] = services.pools
        app[SYNC] = services.sync
        app[ISSUER] = services.issuer
        app[AUTHENTICATOR] = services.authenticator
        app[BROKER] = services.broker
        app[BULK] = services.bulk
        app[PUSH] = services.push
        app[KMS] = services.kms
        watch = RedisWatch(services.store.client, allow_eviction=settings.redis_allow_eviction)
        app[WATCH] = watch
        hub = PushHub(
            services.store.client,
            services.push.catch_up,
            queue_size=settings.push_queue_size,
            max_sockets=settings.push_max_sockets or max(1, app[CONNECTIONS].limit * 9 // 10),
        )
        app[HUB] = hub
        hub.start()
        await start_triggers(services)
        # resumes bulk publish jobs whose worker is gone; open_services stops the workers themselves
        sweep = asyncio.create_task(services.bulk.run(), name="bulk-publish sweep")
        # deletes KMS keys whose deletion date passed and performs the automatic rotations that are due
        key_sweep = asyncio.create_task(services.kms.run(), name="kms sweep")
        # re-checks Redis's eviction policy (also after a restart or failover) and tells out-of-memory episodes
        redis_watch = asyncio.create_task(every(EPISODE_SECONDS, "redis watch", watch.tick), name="redis watch")
        relay = Relay(services.outbox, settings, services.envelope) if settings.relay else None
        app[RELAY] = relay
        task = asyncio.create_task(relay.run(), name="relay") if relay else None
        try:
            yield
        finally:
            for background in (sweep, key_sweep, redis_watch):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _close_sockets(app: web.Application) -> None:
    """Shutdown begins: device sockets close with 1001 so devices reconnect to another instance at once."""
    hub = app.get(HUB)
    if hub is not None:
        await hub.close()


async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return respond({"status": "ok"})


async def openid_configuration(request: web.Request) -> web.Response:
    """OpenID discovery for the tokens this service issues (GetOpenIdToken*)."""
    return respond(request.app[ISSUER].openid_configuration())


async def jwks(request: web.Request) -> web.Response:
    """The public keys that verify the tokens this service issues, rotated keys included until their tokens expire."""
    return respond(await request.app[ISSUER].jwks())


async def readyz(request: web.Request) -> web.Response:
    """The process can serve: Redis answers (else 503) with an eviction policy syncsvc accepts (else 503, ``"status":
    "unsafe"``). Redis out of memory (writes refused, reads served) and Kafka trouble (writes go on) show as
    ``"status": "degraded"`` with a 200; the outbox backlog per shard tells how far behind the stream is."""
    watch = request.app[WATCH]
    await watch.inspect()
    if watch.refusal is not None:
        return respond({"status": "unsafe", "redis": watch.refusal}, status=503)
    redis = watch.out_of_memory or "ok"
    relay = request.app[RELAY]
    if relay is None:
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


@web.middleware
async def redis_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuses every request but the health and discovery paths while Redis may evict keys (503 + Retry-After, the
    watch's one line). Answers a write Redis refused for want of memory (503 + Retry-After) without a log line per
    request: the watch logs the episode once."""
    watch = request.app[WATCH]
    if watch.refusal is not None and request.path not in PUBLIC_PATHS:
        return error_response(request, BackendUnavailableError(watch.refusal))
    try:
        return await handler(request)
    except StoreOutOfMemoryError as error:
        watch.refused_write()
        log.debug("%s %s refused: %s", request.method, request.path, error.message)
        return error_response(request, error)


def create_app(settings: Settings, *, triggers: TriggerRegistry | None = None) -> web.Application:
    """The app; ``triggers`` adds triggers registered in code to those of entry points and SYNCSVC_TRIGGERS."""
    app = web.Application(
        middlewares=[busy_middleware, errors_middleware, redis_middleware, auth_middleware],
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
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_close_sockets)
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/.well-known/openid-configuration", openid_configuration),
            web.get("/.well-known/jwks.json", jwks),
        ]
    )
    app.add_routes(sync.routes())
    app.add_routes(push.routes())
    app.add_routes([web.post("/", identity.dispatch)])
    return app
