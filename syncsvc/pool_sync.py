"""The developer's pool-wide Cognito Sync use-cases: the usage of a pool and of every pool, the pool's sync
configuration (push sync, Cognito Streams) and its Cognito Events (sync trigger, conflict policy).

Developer credentials only: the operation tables' access rule (``syncsvc.access.Access.DEVELOPER``) decides it.
"""

from __future__ import annotations

from syncsvc.config import Settings
from syncsvc.errors import InvalidParameterError
from syncsvc.identity.pools import PoolDirectory, SyncConfiguration
from syncsvc.model import PoolUsage
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store import RedisStore
from syncsvc.sync import page_size
from syncsvc.tokens import TokenSigner
from syncsvc.triggers.events import SYNC_CONFLICT, SYNC_TRIGGER
from syncsvc.triggers.registry import TriggerError, TriggerRegistry, resolve_arn
from syncsvc.triggers.spec import LAST_WRITER_WINS, REJECT

CONFLICT_POLICIES = (REJECT, LAST_WRITER_WINS)


class PoolSync:
    """Usage, configuration and events of identity pools."""

    def __init__(
        self,
        store: RedisStore,
        pools: PoolDirectory,
        signer: TokenSigner,
        settings: Settings,
        triggers: TriggerRegistry,
    ) -> None:
        self._store = store
        self._pools = pools
        self._signer = signer
        self._settings = settings
        self._triggers = triggers

    async def describe_pool_usage(self, pool_id: str) -> PoolUsage:
        """Pool usage, summed over the pool's identities (an admin call: O(identities), pipelined in batches)."""
        await self._pools.require(pool_id)
        sessions = await self._store.pool_sessions(pool_id, self._settings.shards)
        storage, modified = 0, None
        async for batch in self._store.pool_members(pool_id, self._settings.shards):
            identities = [IdentityKeyspace.of(pool_id, identity, self._settings.shards) for identity in batch]
            for usage in await self._store.usage_of(identities):
                storage += usage.storage_bytes
                stamp = usage.modified_ms
                if stamp is not None and (modified is None or stamp > modified):
                    modified = stamp
        return PoolUsage(pool_id, sessions, storage, modified)

    async def list_pool_usage(
        self, *, max_results: int | None, next_token: str | None
    ) -> tuple[list[PoolUsage], int, str | None]:
        """ListIdentityPoolUsage: a page of pool usages, the page size used, and the next page's token."""
        limit = page_size(max_results, default=16, most=60)
        after = None
        if next_token:
            after = str(self._signer.open("ListIdentityPoolUsage", next_token, name="NextToken")["a"])
        pool_ids = await self._store.list_pools(after=after, limit=limit + 1)
        page = [await self.describe_pool_usage(pool_id) for pool_id in pool_ids[:limit]]
        token = None
        if len(pool_ids) > limit:
            token = self._signer.seal("ListIdentityPoolUsage", {"a": pool_ids[limit - 1]})
        return page, limit, token

    # --- configuration and events ---------------------------------------------------------------------------------

    async def configuration(self, pool_id: str) -> SyncConfiguration:
        """GetIdentityPoolConfiguration."""
        return await self._pools.configuration(pool_id)

    async def configure(self, pool_id: str, change: SyncConfiguration) -> SyncConfiguration:
        """SetIdentityPoolConfiguration: the members given replace the stored ones."""
        return await self._pools.configure(pool_id, change)

    async def cognito_events(self, pool_id: str) -> dict[str, str]:
        """GetCognitoEvents: event type → trigger name, ``{}`` when none is set."""
        return dict((await self._pools.configuration(pool_id)).Events or {})

    async def set_cognito_events(self, pool_id: str, events: dict[str, str]) -> None:
        """SetCognitoEvents. ``SyncTrigger``: a registered trigger's name or a Lambda ARN
        ending in one (stored as the name). ``SyncConflict`` (a syncsvc extension): the conflict policy, ``reject``
        (Cognito's behaviour, the default), ``last-writer-wins`` or a registered handler's name. An empty value
        removes the event type; event types not given are left as they are."""
        kinds = (SYNC_TRIGGER, SYNC_CONFLICT)
        if len(events) > len(kinds):
            raise InvalidParameterError(f"Events: at most {len(kinds)} entries are allowed, not {len(events)}")
        resolved = {}
        for kind, value in events.items():
            if kind not in kinds:
                raise InvalidParameterError(
                    f"Events: unknown event type '{kind[:64]}'; the event types are {' and '.join(kinds)}"
                )
            if not value or (kind == SYNC_CONFLICT and value in CONFLICT_POLICIES):
                resolved[kind] = value
                continue
            try:
                resolved[kind] = self._triggers.resolve(value)
            except TriggerError:
                raise InvalidParameterError(
                    f"Events.{kind}: no trigger named '{resolve_arn(value)[:256]}' is registered on this server"
                ) from None
        await self._pools.configure(pool_id, SyncConfiguration(Events=resolved))
