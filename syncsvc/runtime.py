"""The composition root: the object graph of one syncsvc instance, opened and closed as one async context.

``async with open_services(settings) as services:`` connects to Redis, checks the deployment (shard and relay lane
counts), gets the shared token secret, builds every service once, and closes what it opened on the way out.
``async with serving(services):`` runs what a server runs besides answering requests (the push hub, trigger workers,
the sweeps, the relay). The HTTP app (``syncsvc.api.app``) and the operator CLI (``syncsvc.cli``) both run inside it
and read the one typed :class:`Services` object, so this is the one place that knows how the parts fit together: to
wire a new service, add its field to :class:`Services` and build it in :func:`_build`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import orjson

from syncsvc.access import DataAccess
from syncsvc.background import StallWatch, every
from syncsvc.clock import SYSTEM, Clock
from syncsvc.config import Settings, connection_limit
from syncsvc.errors import SyncsvcError
from syncsvc.identity.authenticator import Authenticator
from syncsvc.identity.broker import IdentityBroker, RateLimits
from syncsvc.identity.credentials import CredentialAuthority
from syncsvc.identity.issuer import TokenIssuer
from syncsvc.identity.oidc import OidcVerifier
from syncsvc.identity.pools import PoolDirectory
from syncsvc.kms import token_secret
from syncsvc.kms.access import KeyAccess
from syncsvc.kms.custom_keystores import CustomKeystores
from syncsvc.kms.envelope import CacheLimits, DataKeyCache, Envelope
from syncsvc.kms.hsm_keys import HsmKeys
from syncsvc.kms.keyservice import KeyService
from syncsvc.kms.material import MaterialError
from syncsvc.kms.model import ACCOUNT
from syncsvc.kms.root import RootKey, RootKeyError, open_root_key
from syncsvc.outbox.bulk import BulkPublisher
from syncsvc.outbox.relay import Relay
from syncsvc.pool_sync import PoolSync
from syncsvc.push.devices import PushLimits, PushService
from syncsvc.push.hub import PushHub
from syncsvc.store import RedisStore, health
from syncsvc.store.bulk import RedisBulkJobs
from syncsvc.store.channels import ShardedChannels
from syncsvc.store.connection import RedisUrlError
from syncsvc.store.console import RedisConsoleSessions
from syncsvc.store.custom_keystores import RedisCustomKeystores
from syncsvc.store.datakeys import RedisDataKeys
from syncsvc.store.health import EPISODE_SECONDS, RedisWatch
from syncsvc.store.identities import RedisIdentityStore
from syncsvc.store.instances import RedisInstances
from syncsvc.store.keyring import RedisKeyRing
from syncsvc.store.kms import RedisKeyStore
from syncsvc.store.outbox import RedisOutbox
from syncsvc.store.push import RedisPushStore
from syncsvc.store.rates import RedisRates
from syncsvc.store.scripts import Durability
from syncsvc.store.userpools import RedisUserPools
from syncsvc.store.usersessions import RedisUserSessions
from syncsvc.sync import SyncService
from syncsvc.tokens import TokenSigner
from syncsvc.triggers.failures import TriggerFailure
from syncsvc.triggers.registry import TriggerError, TriggerRegistry, load_registry
from syncsvc.triggers.runner import TriggerRunner
from syncsvc.userpools.accounts import Accounts
from syncsvc.userpools.codes import CodeSender, LogSender, SmtpSender, SmtpServer
from syncsvc.userpools.directory import UserDirectory
from syncsvc.userpools.hooks import UserPoolHooks
from syncsvc.userpools.sealing import PoolSecrets
from syncsvc.userpools.signin import SignIn
from syncsvc.userpools.tokens import UserPoolTokens

log = logging.getLogger("syncsvc")


class StartupError(Exception):
    """The service cannot start; ``str()`` is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    #: The one clock every service reads the time from (a ManualClock in tests that move time).
    clock: Clock
    store: RedisStore
    signer: TokenSigner
    pools: PoolDirectory
    sync: SyncService
    #: The pool-wide Cognito Sync operations: usage, configuration, Cognito Events.
    pool_sync: PoolSync
    issuer: TokenIssuer
    authenticator: Authenticator
    broker: IdentityBroker
    outbox: RedisOutbox
    #: BulkPublish and its workers (closed with the services: its workers give their leases back).
    bulk: BulkPublisher
    #: Sync triggers: code registrations, entry points and SYNCSVC_TRIGGERS, checked before anything connects.
    triggers: TriggerRegistry
    #: RegisterDevice, Subscribe/UnsubscribeFromDataset and the checks of a device socket.
    push: PushService
    #: KMS: master keys and the operations under them.
    kms: KeyService
    #: Who may use which KMS key (key policies, grants, grant tokens), on the public view of ``kms``.
    key_access: KeyAccess
    #: KMS custom key stores on PKCS#11 tokens (this instance's sessions are closed with the services).
    keystores: CustomKeystores
    #: Record values at rest: per-identity data keys, cached unwrapped.
    envelope: Envelope
    #: Calls the triggers. A server starts it (warming process workers); it is closed with the services.
    runner: TriggerRunner
    #: Device sockets of this instance and the Pub/Sub fan-out between instances (started by :func:`serving`).
    hub: PushHub
    #: Publishes the outbox to Kafka (run by :func:`serving` when ``settings.relay``; ``syncsvc relay`` runs it alone).
    relay: Relay
    #: Redis's eviction policy and memory, watched while serving (see ``syncsvc.store.health``).
    redis_watch: RedisWatch
    #: Cognito user pools: pools, app clients, users, groups, passwords (``syncsvc.userpools.directory``).
    userpools: UserDirectory
    #: Sign-up, confirmation, forgotten passwords, invitations and their codes.
    user_accounts: Accounts
    #: Delivers user pools' codes: SMTP when SYNCSVC_SMTP_URL is set, else a log line.
    code_sender: CodeSender
    #: User pools' ID, access and refresh tokens; their JWKS and OpenID discovery.
    userpool_tokens: UserPoolTokens
    #: InitiateAuth, RespondToAuthChallenge and the operations an access or refresh token opens.
    signin: SignIn
    #: The web console's sign-in sessions (``syncsvc.api.console``).
    console_sessions: RedisConsoleSessions
    #: The deployment's serving instances as each last reported itself (:func:`serving` reports this one's).
    instances: RedisInstances
    #: This instance's id in ``instances`` (new at every start).
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    #: When this instance's services opened (epoch seconds).
    started: float = field(default_factory=time.time)


@asynccontextmanager
async def open_services(
    settings: Settings, *, triggers: TriggerRegistry | None = None, clock: Clock | None = None
) -> AsyncIterator[Services]:
    """``triggers``: triggers registered in code (embedding, tests); entry points and SYNCSVC_TRIGGERS are added.
    ``clock``: the time every service reads (default: the machine's)."""
    registry = build_triggers(settings, triggers)
    root = await open_root(settings)
    try:
        async with _opened_services(settings, registry, root, clock) as services:
            yield services
    finally:
        await root.close()


@asynccontextmanager
async def _opened_services(
    settings: Settings, registry: TriggerRegistry, root: RootKey, clock: Clock | None
) -> AsyncIterator[Services]:
    try:
        store = RedisStore.connect(
            settings.redis_url, Durability(settings.redis_replica_acks, settings.redis_replica_ack_timeout_ms)
        )
    except RedisUrlError as exc:
        raise StartupError(f"SYNCSVC_REDIS_URL: {exc}") from None
    oidc = OidcVerifier(settings.oidc_providers)
    try:
        try:
            secret = await _check_deployment(store, settings, root)
        except SyncsvcError as exc:
            raise StartupError(f"cannot reach Redis at {_safe_url(settings.redis_url)}: {exc.message}") from None
        services = _build(settings, store, secret, oidc, registry, root, clock or SYSTEM)
        try:
            yield services
        finally:
            await services.bulk.close()
            await services.runner.close()
            await services.keystores.close()
    finally:
        await oidc.close()
        await store.close()


async def _check_deployment(store: RedisStore, settings: Settings, root: RootKey) -> bytes:
    """Checks that Redis cannot evict keys (see ``store/health.py``; before anything is written), the root key, the
    shard and relay lane counts against the ones Redis recorded; returns the token secret."""
    try:
        await health.check(store.client, allow_eviction=settings.redis_allow_eviction)
    except health.UnsafeRedisError as exc:
        raise StartupError(str(exc)) from None
    check = await root.check_value()
    recorded_check = await store.check_root_key(check)
    if not await root.matches(recorded_check):
        raise StartupError(
            f"{root} is not the root key this Redis's data is sealed under (its check value is {check}, Redis "
            f"recorded {recorded_check}); start with that deployment's root key"
        )
    recorded = await store.check_shards(settings.shards)
    if recorded != settings.shards:
        raise StartupError(
            f"SYNCSVC_SHARDS is {settings.shards} but this Redis holds data for {recorded} shards; "
            f"the shard count cannot change"
        )
    moved = await RedisKeyStore(store.client).move_legacy_layout()
    if moved:
        log.warning("moved %d KMS keys to their cluster-ready names (hash tag {kms})", moved)
    lanes = await RedisOutbox(store.client).check_lanes(settings.relay_lanes)
    if lanes != settings.relay_lanes:
        raise StartupError(
            f"SYNCSVC_RELAY_LANES is {settings.relay_lanes} but this deployment's relays publish in {lanes} lanes; "
            f"the lane count cannot change"
        )
    if settings.token_secret:
        return settings.token_secret.get_secret_value().encode()
    return await _token_secret(store, root)


async def _token_secret(store: RedisStore, root: RootKey) -> bytes:
    """The token secret (it signs session tokens and derives temporary credentials' secrets): generated once, stored
    sealed by the root key, so a copy of Redis alone cannot forge a token. A secret stored in plaintext by an earlier
    release is replaced (whoever had a copy of Redis had it): tokens and credentials issued before stop working."""
    fresh = await token_secret.sealed_new(root)
    stored = await store.token_secret(fresh)
    if token_secret.in_plaintext(stored):
        log.warning(
            "the token secret was stored in plaintext in Redis (an earlier release); replaced it with a new one "
            "sealed by the root key: temporary credentials and session tokens issued before are no longer accepted"
        )
        await store.replace_token_secret(stored, fresh)
        stored = await store.token_secret(fresh)
    try:
        return await token_secret.open_token_secret(root, stored)
    except MaterialError as exc:
        raise StartupError(f"{exc}: the token secret in Redis was sealed under another root key") from None


@asynccontextmanager
async def serving(services: Services) -> AsyncIterator[None]:
    """Runs, while the context is open, what a server runs besides answering requests: the push hub, the trigger
    workers (StartupError when one cannot start), the bulk-publish sweep (resumes jobs whose worker is gone), the KMS
    sweep (deletions and automatic rotations that are due), the Redis watch (eviction policy, out-of-memory episodes)
    and, when ``settings.relay``, the relay. Device sockets are closed by the app at shutdown (``PushHub.close``)."""
    services.hub.start()
    await start_triggers(services)
    tasks = [
        asyncio.create_task(services.bulk.run(), name="bulk-publish sweep"),
        asyncio.create_task(services.kms.run(), name="kms sweep"),
        asyncio.create_task(every(EPISODE_SECONDS, "redis watch", services.redis_watch.tick), name="redis watch"),
        asyncio.create_task(every(REPORT_SECONDS, "instance report", partial(report, services)), name="report"),
    ]
    if services.settings.relay:
        tasks.append(asyncio.create_task(services.relay.run(), name="relay"))
    if services.settings.stall_log_ms:
        watch = StallWatch(services.settings.stall_log_ms / 1000)
        tasks.append(asyncio.create_task(watch.run(), name="stall watch"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


#: How often a serving instance reports itself in ``Services.instances``.
REPORT_SECONDS = 5.0


async def report(services: Services) -> None:
    """This instance's record in ``Services.instances``: where it runs, since when, its push sockets."""
    now = time.time()
    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": services.started,
        "at": now,
        "sockets": services.hub.socket_count,
        "relay": services.settings.relay,
    }
    await services.instances.report(services.instance_id, orjson.dumps(record), now=now)


async def start_triggers(services: Services) -> None:
    """Starts the trigger runner of a server (warms process workers); StartupError when a worker cannot start."""
    try:
        await services.runner.start()
    except TriggerFailure as exc:
        raise StartupError(str(exc)) from None


def build_triggers(settings: Settings, code: TriggerRegistry | None = None) -> TriggerRegistry:
    """Every trigger this instance knows; StartupError (one line) when a registration fails its checks."""
    try:
        return load_registry(settings.triggers, base=code)
    except TriggerError as exc:
        raise StartupError(str(exc)) from None


async def open_root(settings: Settings) -> RootKey:
    """The KMS root key (with the previous one while a rotation runs), from a key file or a PKCS#11 token; StartupError
    (one line) when it is not configured or cannot be read or opened. Close it (:meth:`RootKey.close`) when done."""
    if settings.root_key is None:
        raise StartupError(
            "neither SYNCSVC_ROOT_KEY_FILE nor SYNCSVC_ROOT_KEY_PKCS11 is set: the KMS root key is required (create "
            "one with `syncsvc keys root-key PATH`, or in an HSM with `syncsvc keys root-key 'pkcs11:...'`)"
        )
    root = await read_root_key(settings.root_key, settings)
    if settings.previous_root_key is not None:
        try:
            root = root.replacing(await read_root_key(settings.previous_root_key, settings))
        except BaseException:
            await root.close()
            raise
    return root


async def read_root_key(where: str, settings: Settings, *, create: bool = False) -> RootKey:
    """The root key in a file or a PKCS#11 token (``syncsvc.kms.root.open_root_key``); StartupError when it cannot be
    read or opened."""
    try:
        return await open_root_key(where, default_module=settings.pkcs11_module, create=create)
    except RootKeyError as exc:
        raise StartupError(str(exc)) from None


def _build(
    settings: Settings,
    store: RedisStore,
    secret: bytes,
    oidc: OidcVerifier,
    triggers: TriggerRegistry,
    root: RootKey,
    clock: Clock,
) -> Services:
    signer = TokenSigner(secret, clock=clock)
    pools = PoolDirectory(
        store, region=settings.region, cache_seconds=settings.pool_cache_seconds, shards=settings.shards
    )
    identities = RedisIdentityStore(store.client, shards=settings.shards)
    credentials = CredentialAuthority(signer, secret, lifetime_seconds=settings.credentials_ttl_seconds, clock=clock)
    runner = TriggerRunner(
        triggers,
        region=settings.region,
        trace=settings.trace_triggers,
        trace_values=settings.trace_trigger_values,
    )
    keystores = CustomKeystores(RedisCustomKeystores(store.client), root, module=settings.pkcs11_module, clock=clock)
    kms = KeyService(
        RedisKeyStore(store.client),
        root,
        region=settings.region,
        quota=settings.kms_key_quota,
        clock=clock,
        hsm=HsmKeys(keystores),
    )
    issuer = TokenIssuer(
        RedisKeyRing(store.client, kms.discard),
        kms,
        issuer_url=settings.issuer_url,
        rotation_seconds=settings.token_rotation_seconds,
        clock=clock,
    )
    cache = DataKeyCache(
        CacheLimits(
            entries=settings.data_key_cache_entries,
            max_age_seconds=settings.data_key_cache_seconds,
            max_uses=settings.data_key_cache_uses,
            max_bytes=settings.data_key_cache_bytes,
        )
    )
    envelope = Envelope(kms, RedisDataKeys(store.client), cache)
    access = DataAccess(pools, shards=settings.shards)
    counters = RedisRates(store.client)
    sync = SyncService(store, pools, signer, settings, runner, envelope, access, clock=clock, rates=counters)
    userpool_store = RedisUserPools(store.client)
    userpool_secrets = PoolSecrets(secret)
    userpools = UserDirectory(userpool_store, userpool_secrets, region=settings.region, account=ACCOUNT, clock=clock)
    user_sessions = RedisUserSessions(store.client)
    userpool_tokens = UserPoolTokens(
        issuer,
        user_sessions,
        userpools,
        public_url=settings.issuer_url,
        secret=secret,
        clock=clock,
        hooks=UserPoolHooks(runner, userpools),
    )
    broker = IdentityBroker(
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
        counters=counters,
        clock=clock,
        user_pools=userpool_tokens,
    )
    authenticator = Authenticator(settings, credentials=credentials, identities=identities, issuer=issuer, clock=clock)
    outbox = RedisOutbox(store.client)
    bulk = BulkPublisher(RedisBulkJobs(store.client), store, outbox, pools, settings, clock=clock)
    push_limits = PushLimits(
        devices=settings.push_max_devices_per_identity, subscriptions=settings.max_datasets_per_identity
    )
    push = PushService(access, pools, RedisPushStore(store.client), push_limits, clock=clock)
    hub = PushHub(
        ShardedChannels(store.client),
        push.catch_up,
        queue_size=settings.push_queue_size,
        max_sockets=settings.push_max_sockets or max(1, connection_limit(settings) * 9 // 10),
    )
    code_sender = _code_sender(settings)
    return Services(
        settings=settings,
        clock=clock,
        store=store,
        signer=signer,
        pools=pools,
        sync=sync,
        pool_sync=PoolSync(store, pools, signer, settings, triggers),
        issuer=issuer,
        authenticator=authenticator,
        broker=broker,
        outbox=outbox,
        bulk=bulk,
        triggers=triggers,
        push=push,
        kms=kms,
        key_access=KeyAccess(kms, signer),
        keystores=keystores,
        envelope=envelope,
        runner=runner,
        hub=hub,
        relay=Relay(outbox, settings, envelope, clock=clock),
        redis_watch=RedisWatch(store.client, allow_eviction=settings.redis_allow_eviction),
        userpools=userpools,
        user_accounts=Accounts(
            userpools, userpool_store, userpool_secrets, code_sender, clock=clock, hooks=userpool_tokens.hooks
        ),
        code_sender=code_sender,
        userpool_tokens=userpool_tokens,
        signin=SignIn(userpools, userpool_tokens, user_sessions, secret=secret, clock=clock),
        console_sessions=RedisConsoleSessions(store.client),
        instances=RedisInstances(store.client),
    )


def _code_sender(settings: Settings) -> CodeSender:
    """SMTP when ``smtp_url`` is set (StartupError when it does not parse), else the log."""
    if settings.smtp_url is None:
        return LogSender(log_codes=settings.log_codes)
    try:
        server = SmtpServer.from_url(settings.smtp_url.get_secret_value())
    except ValueError as exc:
        raise StartupError(f"SYNCSVC_SMTP_URL: {exc}") from None
    return SmtpSender(server, sender=settings.smtp_from, log_codes=settings.log_codes)


def _safe_url(url: str) -> str:
    """A Redis URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"
