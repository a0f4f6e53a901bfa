"""The aiohttp application factory and its lifecycle (one async context: connect, check, serve, close)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from syncsvc.api import identity, sync
from syncsvc.api.middleware import errors_middleware, make_auth_middleware
from syncsvc.api.protocol import POOLS, SETTINGS, SIGNER, STORE, SYNC, respond
from syncsvc.config import Settings
from syncsvc.errors import SyncsvcError
from syncsvc.identity.pools import PoolDirectory
from syncsvc.service import SyncService
from syncsvc.store import RedisStore
from syncsvc.tokens import TokenSigner

log = logging.getLogger("syncsvc")


class StartupError(Exception):
    """The service cannot start; ``str()`` is one line for the operator."""


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = RedisStore.connect(settings.redis_url)
    try:
        recorded = await store.check_shards(settings.shards)
        if recorded != settings.shards:
            raise StartupError(
                f"SYNCSVC_SHARDS is {settings.shards} but this Redis holds data for {recorded} shards; "
                f"the shard count cannot change"
            )
        secret = (
            settings.token_secret.get_secret_value().encode() if settings.token_secret else await store.token_secret()
        )
    except SyncsvcError as exc:
        await store.close()
        raise StartupError(f"cannot reach Redis at {_safe_url(settings.redis_url)}: {exc.message}") from None
    if not settings.developer_credentials:
        log.warning("no developer credentials configured (SYNCSVC_DEVELOPER_CREDENTIALS): signed requests will fail")
    signer = TokenSigner(secret)
    pools = PoolDirectory(
        store, region=settings.region, cache_seconds=settings.pool_cache_seconds, shards=settings.shards
    )
    app[STORE] = store
    app[SIGNER] = signer
    app[POOLS] = pools
    app[SYNC] = SyncService(store, pools, signer, settings)
    yield
    await store.close()


def _safe_url(url: str) -> str:
    """A Redis URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"


async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return respond({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The process can serve: Redis answers."""
    await request.app[STORE].ping()
    return respond({"status": "ok", "redis": "ok"})


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, make_auth_middleware(settings)],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_lifecycle)
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz)])
    app.add_routes(sync.routes())
    app.add_routes([web.post("/", identity.dispatch)])
    return app
