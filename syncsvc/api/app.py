"""The aiohttp application factory and its lifecycle (one async context: connect, check, serve, close)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from syncsvc.api import identity, sync
from syncsvc.api.middleware import auth_middleware, errors_middleware
from syncsvc.api.protocol import AUTHENTICATOR, BROKER, ISSUER, POOLS, SETTINGS, SIGNER, STORE, SYNC, respond
from syncsvc.config import Settings
from syncsvc.errors import SyncsvcError
from syncsvc.identity.authenticator import Authenticator
from syncsvc.identity.broker import IdentityBroker, RateLimits
from syncsvc.identity.credentials import CredentialAuthority
from syncsvc.identity.issuer import TokenIssuer
from syncsvc.identity.oidc import OidcVerifier
from syncsvc.identity.pools import PoolDirectory
from syncsvc.service import SyncService
from syncsvc.store import RedisStore
from syncsvc.store.identities import RedisIdentityStore
from syncsvc.store.keyring import RedisKeyRing
from syncsvc.tokens import TokenSigner

log = logging.getLogger("syncsvc")


class StartupError(Exception):
    """The service cannot start; ``str()`` is one line for the operator."""


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = RedisStore.connect(settings.redis_url)
    try:
        secret = await _check_deployment(store, settings)
    except SyncsvcError as exc:
        await store.close()
        raise StartupError(f"cannot reach Redis at {_safe_url(settings.redis_url)}: {exc.message}") from None
    except StartupError:
        await store.close()
        raise
    if not settings.developer_credentials:
        log.warning("no developer credentials configured (SYNCSVC_DEVELOPER_CREDENTIALS): signed requests will fail")
    oidc = OidcVerifier(settings.oidc_providers)
    _wire(app, settings, store, secret, oidc)
    yield
    await oidc.close()
    await store.close()


async def _check_deployment(store: RedisStore, settings: Settings) -> bytes:
    """Checks the shard count against the one Redis recorded; returns the token-signing secret."""
    recorded = await store.check_shards(settings.shards)
    if recorded != settings.shards:
        raise StartupError(
            f"SYNCSVC_SHARDS is {settings.shards} but this Redis holds data for {recorded} shards; "
            f"the shard count cannot change"
        )
    if settings.token_secret:
        return settings.token_secret.get_secret_value().encode()
    return await store.token_secret()


def _wire(app: web.Application, settings: Settings, store: RedisStore, secret: bytes, oidc: OidcVerifier) -> None:
    """Builds the services once and puts them on the app (the explicit object graph of one instance)."""
    signer = TokenSigner(secret)
    pools = PoolDirectory(
        store, region=settings.region, cache_seconds=settings.pool_cache_seconds, shards=settings.shards
    )
    identities = RedisIdentityStore(store.client, shards=settings.shards)
    issuer = TokenIssuer(
        RedisKeyRing(store.client), issuer_url=settings.issuer_url, rotation_seconds=settings.token_rotation_seconds
    )
    credentials = CredentialAuthority(signer, secret, lifetime_seconds=settings.credentials_ttl_seconds)
    sync = SyncService(store, pools, signer, settings)
    app[STORE] = store
    app[SIGNER] = signer
    app[POOLS] = pools
    app[SYNC] = sync
    app[ISSUER] = issuer
    app[AUTHENTICATOR] = Authenticator(settings, credentials=credentials, identities=identities, issuer=issuer)
    app[BROKER] = IdentityBroker(
        identities=identities,
        store=store,
        pools=pools,
        sync=sync,
        oidc=oidc,
        issuer=issuer,
        credentials=credentials,
        region=settings.region,
        shards=settings.shards,
        rates=RateLimits(get_id=settings.get_id_per_second, tokens=settings.token_calls_per_second),
    )


def _safe_url(url: str) -> str:
    """A Redis URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"


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
