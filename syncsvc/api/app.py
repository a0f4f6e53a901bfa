"""The aiohttp application factory and its lifecycle (one async context: connect, check, serve, close)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from syncsvc.api import identity, sync
from syncsvc.api.middleware import auth_middleware, errors_middleware
from syncsvc.api.protocol import AUTHENTICATOR, BROKER, ISSUER, POOLS, SETTINGS, SIGNER, STORE, SYNC, respond
from syncsvc.config import Settings
from syncsvc.runtime import open_services

log = logging.getLogger("syncsvc")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_services(settings) as services:
        if not settings.developer_credentials:
            log.warning("no developer credentials configured (SYNCSVC_DEVELOPER_CREDENTIALS): signed requests fail")
        app[STORE] = services.store
        app[SIGNER] = services.signer
        app[POOLS] = services.pools
        app[SYNC] = services.sync
        app[ISSUER] = services.issuer
        app[AUTHENTICATOR] = services.authenticator
        app[BROKER] = services.broker
        yield


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
    """The process can serve: Redis answers."""
    await request.app[STORE].ping()
    return respond({"status": "ok", "redis": "ok"})


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_lifecycle)
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/.well-known/openid-configuration", openid_configuration),
            web.get("/.well-known/jwks.json", jwks),
        ]
    )
    app.add_routes(sync.routes())
    app.add_routes([web.post("/", identity.dispatch)])
    return app
