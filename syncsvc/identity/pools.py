"""Identity pools: the Cognito Identity pool resource, its validation and an instance-local read cache.

Pools are rarely written and read on every Sync request, so :class:`PoolDirectory` keeps each pool it has seen for
``Settings.pool_cache_seconds``. A pool changed or deleted through this instance is dropped from the cache at once;
through another instance it is noticed within that many seconds (documented in the README).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from syncsvc.errors import InvalidParameterError, ResourceNotFoundError
from syncsvc.model import IDENTITY_ID_PATTERN
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store import RedisStore

#: AWS's ``[\w\s+=,.@-]+`` with Java's ASCII classes (see syncsvc.model).
_POOL_NAME = r"^[A-Za-z0-9_ \t\n\x0b\f\r+=,.@-]+$"
PoolName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_POOL_NAME)]
ProviderName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Arn = Annotated[str, StringConstraints(min_length=20, max_length=2048)]


class CognitoIdentityProvider(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    ProviderName: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    ClientId: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    ServerSideTokenCheck: bool | None = None


class IdentityPoolSpec(BaseModel):
    """The settable members of an identity pool (CreateIdentityPool input; UpdateIdentityPool adds the id)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    IdentityPoolName: PoolName
    AllowUnauthenticatedIdentities: bool
    AllowClassicFlow: bool | None = None
    SupportedLoginProviders: Annotated[dict[ProviderName, str], Field(max_length=10)] | None = None
    DeveloperProviderName: (
        Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")] | None
    ) = None
    OpenIdConnectProviderARNs: list[Arn] | None = None
    CognitoIdentityProviders: list[CognitoIdentityProvider] | None = None
    SamlProviderARNs: list[Arn] | None = None
    IdentityPoolTags: dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], str] | None = None


class IdentityPool(IdentityPoolSpec):
    """A stored pool: the spec plus its id (``<region>:<uuid>``)."""

    IdentityPoolId: Annotated[str, StringConstraints(min_length=1, max_length=55, pattern=rf"^{IDENTITY_ID_PATTERN}$")]

    def wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


SnsArnText = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=2048, pattern=r"^arn:aws:sns:[-0-9a-z]+:[0-9]+:app/[A-Z_]+/[a-zA-Z0-9_.-]+$"
    ),
]
_ROLE_ARN = r"^arn:aws:iam::[0-9]+:role/.*$"
RoleArnText = Annotated[str, StringConstraints(min_length=20, max_length=2048, pattern=_ROLE_ARN)]
#: A stream name is a Kafka topic name: 1-128 of letters, digits, '.', '_' and '-' (and not "." or "..").
StreamNameText = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9._-]+$")]


class PushSyncSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    ApplicationArns: list[SnsArnText] | None = None
    RoleArn: RoleArnText | None = None


class CognitoStreamsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    StreamName: StreamNameText | None = None
    RoleArn: RoleArnText | None = None
    StreamingStatus: Literal["ENABLED", "DISABLED"] | None = None

    @field_validator("StreamName")
    @classmethod
    def _not_dots(cls, name: str | None) -> str | None:
        if name in {".", ".."}:
            raise ValueError("a stream name cannot be '.' or '..'")
        return name


class SyncConfiguration(BaseModel):
    """A pool's Cognito Sync configuration (Get/SetIdentityPoolConfiguration). Streams publish to the Kafka topic
    named ``CognitoStreams.StreamName`` while ``StreamingStatus`` is ENABLED; the RoleArns are stored as given."""

    model_config = ConfigDict(extra="forbid", strict=True)

    PushSync: PushSyncSettings | None = None
    CognitoStreams: CognitoStreamsSettings | None = None
    #: Cognito Events (Get/SetCognitoEvents, not part of the pool configuration operations): event type → the
    #: registered trigger's name (a Lambda ARN given to SetCognitoEvents is stored as the name it stands for).
    #: Kept here so that every Sync request finds it in the cached configuration.
    Events: dict[str, str] | None = None

    @property
    def streaming_topic(self) -> str | None:
        """The topic changes go to, or None while streaming is off."""
        streams = self.CognitoStreams
        if streams is None or streams.StreamingStatus != "ENABLED":
            return None
        return streams.StreamName

    @property
    def push_enabled(self) -> bool:
        """Push sync is on once ``PushSync`` names an application or a role (Cognito's "configured")."""
        push = self.PushSync
        return push is not None and bool(push.ApplicationArns or push.RoleArn)

    def merged(self, change: SyncConfiguration) -> SyncConfiguration:
        """This configuration with the members ``change`` gives replaced (members it leaves out are unchanged)."""
        merged = SyncConfiguration(
            PushSync=change.PushSync or self.PushSync,
            CognitoStreams=_merged_streams(self.CognitoStreams, change.CognitoStreams),
            Events=_merged_events(self.Events, change.Events),
        )
        streams = merged.CognitoStreams
        if streams is not None and streams.StreamingStatus == "ENABLED" and not streams.StreamName:
            raise InvalidParameterError("CognitoStreams.StreamName is required to enable streaming")
        return merged


def _merged_events(old: dict[str, str] | None, new: dict[str, str] | None) -> dict[str, str] | None:
    """The events of ``old`` with those ``new`` gives replaced; an empty name removes its event type."""
    merged = {**(old or {}), **(new or {})}
    return {kind: name for kind, name in merged.items() if name} or None


def _merged_streams(
    old: CognitoStreamsSettings | None, new: CognitoStreamsSettings | None
) -> CognitoStreamsSettings | None:
    if new is None:
        return old
    if old is None:
        return new
    return old.model_copy(update=new.model_dump(exclude_none=True))


class PoolDirectory:
    """Creates, reads, updates and deletes pools; :meth:`require` is the cached lookup of every Sync request."""

    def __init__(self, store: RedisStore, *, region: str, cache_seconds: float, shards: int) -> None:
        self._store = store
        self._region = region
        self._cache_seconds = cache_seconds
        self._shards = shards
        self._cache: dict[str, tuple[float, IdentityPool, SyncConfiguration]] = {}

    async def create(self, spec: IdentityPoolSpec) -> IdentityPool:
        pool = IdentityPool(IdentityPoolId=f"{self._region}:{uuid.uuid4()}", **spec.model_dump())
        await self._store.put_pool(pool.IdentityPoolId, pool.wire(), create=True)
        return pool

    async def describe(self, identity_pool_id: str) -> IdentityPool:
        return (await self._load(identity_pool_id))[0]

    async def _load(self, identity_pool_id: str) -> tuple[IdentityPool, SyncConfiguration]:
        found = await self._store.get_pool(identity_pool_id)
        if found is None:
            raise ResourceNotFoundError(f"IdentityPool '{identity_pool_id}' not found.")
        pool, config = IdentityPool.model_validate(found[0]), SyncConfiguration.model_validate(found[1])
        self._remember(pool, config)
        return pool, config

    async def require(self, identity_pool_id: str) -> IdentityPool:
        """The pool, from the cache when fresh; ResourceNotFoundError when it does not exist."""
        cached = self._cache.get(identity_pool_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return await self.describe(identity_pool_id)

    async def configuration(self, identity_pool_id: str) -> SyncConfiguration:
        """The pool's Sync configuration, from the cache when fresh; ResourceNotFoundError for an unknown pool."""
        cached = self._cache.get(identity_pool_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[2]
        return (await self._load(identity_pool_id))[1]

    async def configure(self, identity_pool_id: str, change: SyncConfiguration) -> SyncConfiguration:
        """SetIdentityPoolConfiguration and SetCognitoEvents: merges ``change`` into the stored configuration."""
        pool, config = await self._load(identity_pool_id)
        merged = config.merged(change)
        if not await self._store.put_sync_configuration(identity_pool_id, merged.model_dump(exclude_none=True)):
            raise ResourceNotFoundError(f"IdentityPool '{identity_pool_id}' not found.")
        self._remember(pool, merged)
        return merged

    async def update(self, pool: IdentityPool) -> IdentityPool:
        if not await self._store.put_pool(pool.IdentityPoolId, pool.wire(), create=False):
            raise ResourceNotFoundError(f"IdentityPool '{pool.IdentityPoolId}' not found.")
        self._cache.pop(pool.IdentityPoolId, None)
        return pool

    async def page(self, *, after: str | None, limit: int) -> list[IdentityPool]:
        pools = []
        for pool_id in await self._store.list_pools(after=after, limit=limit):
            found = await self._store.get_pool(pool_id)
            if found is not None:
                pools.append(IdentityPool.model_validate(found[0]))
        return pools

    async def delete(
        self, identity_pool_id: str, *, purge_identity: Callable[[str], Awaitable[None]] | None = None
    ) -> None:
        """Deletes the pool, then purges every identity in it, batch by batch: ``purge_identity`` (the broker's,
        which also removes profiles and logins) or, by default, the identity's data alone."""
        self._cache.pop(identity_pool_id, None)
        if not await self._store.delete_pool(identity_pool_id):
            raise ResourceNotFoundError(f"IdentityPool '{identity_pool_id}' not found.")
        async for batch in self._store.pool_members(identity_pool_id, self._shards):
            for identity_id in batch:
                if purge_identity is not None:
                    await purge_identity(identity_id)
                else:
                    await self._store.purge_identity(IdentityKeyspace.of(identity_pool_id, identity_id, self._shards))
        await self._store.forget_pool_members(identity_pool_id, self._shards)

    def _remember(self, pool: IdentityPool, config: SyncConfiguration) -> None:
        if self._cache_seconds > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[pool.IdentityPoolId] = (time.monotonic() + self._cache_seconds, pool, config)
