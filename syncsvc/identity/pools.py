"""Identity pools: the Cognito Identity pool resource, its validation and an instance-local read cache.

Pools are rarely written and read on every Sync request, so :class:`PoolDirectory` keeps each pool it has seen for
``Settings.pool_cache_seconds``. A pool changed or deleted through this instance is dropped from the cache at once;
through another instance it is noticed within that many seconds (documented in the README).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from syncsvc.errors import ResourceNotFoundError
from syncsvc.keys import IdentityKeys
from syncsvc.store import RedisStore

PoolName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w\s+=,.@-]+$")]
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
        Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w._-]+$")] | None
    ) = None
    OpenIdConnectProviderARNs: list[Arn] | None = None
    CognitoIdentityProviders: list[CognitoIdentityProvider] | None = None
    SamlProviderARNs: list[Arn] | None = None
    IdentityPoolTags: dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], str] | None = None


class IdentityPool(IdentityPoolSpec):
    """A stored pool: the spec plus its id (``<region>:<uuid>``)."""

    IdentityPoolId: Annotated[str, StringConstraints(min_length=1, max_length=55, pattern=r"^[\w-]+:[0-9a-f-]+$")]

    def wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class PoolDirectory:
    """Creates, reads, updates and deletes pools; :meth:`require` is the cached lookup of every Sync request."""

    def __init__(self, store: RedisStore, *, region: str, cache_seconds: float, shards: int) -> None:
        self._store = store
        self._region = region
        self._cache_seconds = cache_seconds
        self._shards = shards
        self._cache: dict[str, tuple[float, IdentityPool]] = {}

    async def create(self, spec: IdentityPoolSpec) -> IdentityPool:
        pool = IdentityPool(IdentityPoolId=f"{self._region}:{uuid.uuid4()}", **spec.model_dump())
        await self._store.put_pool(pool.IdentityPoolId, pool.wire(), create=True)
        return pool

    async def describe(self, identity_pool_id: str) -> IdentityPool:
        found = await self._store.get_pool(identity_pool_id)
        if found is None:
            raise ResourceNotFoundError(f"IdentityPool '{identity_pool_id}' not found.")
        pool = IdentityPool.model_validate(found)
        self._remember(pool)
        return pool

    async def require(self, identity_pool_id: str) -> IdentityPool:
        """The pool, from the cache when fresh; ResourceNotFoundError when it does not exist."""
        cached = self._cache.get(identity_pool_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return await self.describe(identity_pool_id)

    async def update(self, pool: IdentityPool) -> IdentityPool:
        if not await self._store.put_pool(pool.IdentityPoolId, pool.wire(), create=False):
            raise ResourceNotFoundError(f"IdentityPool '{pool.IdentityPoolId}' not found.")
        self._remember(pool)
        return pool

    async def page(self, *, after: str | None, limit: int) -> list[IdentityPool]:
        pools = []
        for pool_id in await self._store.list_pools(after=after, limit=limit):
            found = await self._store.get_pool(pool_id)
            if found is not None:
                pools.append(IdentityPool.model_validate(found))
        return pools

    async def delete(self, identity_pool_id: str) -> None:
        """Deletes the pool, then purges every identity's data in it (batch by batch)."""
        self._cache.pop(identity_pool_id, None)
        if not await self._store.delete_pool(identity_pool_id):
            raise ResourceNotFoundError(f"IdentityPool '{identity_pool_id}' not found.")
        async for batch in self._store.pool_members(identity_pool_id, self._shards):
            for identity_id in batch:
                await self._store.purge_identity(IdentityKeys.of(identity_pool_id, identity_id, self._shards))
        await self._store.forget_pool_members(identity_pool_id, self._shards)

    def _remember(self, pool: IdentityPool) -> None:
        if self._cache_seconds > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[pool.IdentityPoolId] = (time.monotonic() + self._cache_seconds, pool)
