"""RedisIdentityStore: the identity registry (profiles, the login index).

A profile lives in its identity's shard (``rediskeys.profile``) next to the pool's member set, so creating one is one
script. A login (provider + subject) maps to its identity through a key of its own slot (``rediskeys.login``), claimed
with SET NX so that two concurrent first logins agree on one identity.

Order of writes, so that a crash between two steps never leaves a usable credential behind: logins are claimed
*before* the profile that lists them is written, and a profile is deleted *before* its logins are released. A
login left pointing at a missing profile is found and healed by the broker (it re-creates the profile).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from syncsvc import rediskeys
from syncsvc.model import IdentityProfile, Login, Standing
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient
from syncsvc.store.scripts import confirmed, register


def _profile(identity_id: str, flat: Sequence[bytes | str]) -> IdentityProfile | None:
    if not flat:
        return None
    items = [text(item) for item in flat]
    fields = dict(zip(items[::2], items[1::2], strict=True))
    return IdentityProfile(
        identity_id=identity_id,
        identity_pool_id=fields["pool"],
        logins=tuple((provider, subject) for provider, subject in orjson.loads(fields["logins"])),
        created_ms=int(fields["created"]),
        modified_ms=int(fields["modified"]),
        generation=int(fields["gen"]),
        revision=int(fields.get("rev", 0)),
    )


def stands(standing: Standing, pool: bytes | str | None, gen: bytes | str | None, rev: bytes | str | None) -> bool:
    """Whether a profile's (pool, gen, rev) fields, as read, still hold ``standing``."""
    if pool is None or gen is None or text(pool) != standing.identity_pool_id or int(gen) != standing.generation:
        return False
    return standing.revision is None or int(rev or 0) == standing.revision


def _encode(logins: Sequence[Login]) -> bytes:
    return orjson.dumps([list(pair) for pair in logins])


class RedisIdentityStore:
    def __init__(self, client: RedisClient, *, shards: int) -> None:
        self.client = client
        self._shards = shards
        self._create = register(client, "create_identity.lua")
        self._change = register(client, "change_logins.lua")
        self._move = register(client, "move_login.lua")
        self._replace_if_exists = register(client, "replace_if_exists.lua")

    def _profile_key(self, identity_id: str) -> str:
        return rediskeys.profile(identity_id, self._shards)

    def _members_key(self, identity_pool_id: str, identity_id: str) -> str:
        return rediskeys.pool_members(identity_pool_id, rediskeys.shard_of(identity_id, self._shards))

    # --- profiles ---------------------------------------------------------------------------------------------------

    async def create(self, identity_id: str, identity_pool_id: str, logins: Sequence[Login], now_ms: int) -> bool:
        """Registers a new identity; False when the id already exists."""
        script_keys = [self._profile_key(identity_id), self._members_key(identity_pool_id, identity_id)]
        async with backend():
            created = await self._create(
                keys=script_keys, args=[identity_pool_id, identity_id, now_ms, _encode(logins)]
            )
        return bool(created)

    async def get(self, identity_id: str) -> IdentityProfile | None:
        async with backend():
            mapping = await self.client.hgetall(self._profile_key(identity_id))
        return _profile(identity_id, [item for pair in mapping.items() for item in pair])

    async def generation(self, identity_id: str) -> tuple[str, int] | None:
        """(pool id, generation) of a registered identity: the one read an identity-signed request costs."""
        async with backend():
            pool, gen = await self.client.hmget(self._profile_key(identity_id), ["pool", "gen"])
        if pool is None or gen is None:
            return None
        return text(pool), int(gen)

    async def change_logins(
        self,
        identity_id: str,
        *,
        now_ms: int,
        add: Sequence[Login] = (),
        remove: Sequence[Login] = (),
        revoke: bool = False,
    ) -> IdentityProfile | None:
        """Adds and removes logins (and with ``revoke`` invalidates every credential issued so far); the profile
        records ``now_ms`` as its modification time."""
        args: list[int | bytes | str] = [now_ms, _encode(add), _encode(remove), "1" if revoke else "0"]
        async with backend():
            flat = await self._change(keys=[self._profile_key(identity_id)], args=args)
        return _profile(identity_id, flat)

    async def delete(
        self, identity_id: str, identity_pool_id: str, *, merged_into: str | None = None, remember_seconds: int = 0
    ) -> bool:
        """Removes the profile and the pool membership in one transaction (same slot). True if it existed. With
        ``merged_into``, the same transaction leaves a marker (``rediskeys.merged``) naming the identity that now
        answers for this one, kept ``remember_seconds``."""
        async with backend():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._profile_key(identity_id))
            pipe.zrem(self._members_key(identity_pool_id, identity_id), identity_id)
            if merged_into is not None:
                marker = rediskeys.merged(identity_id, self._shards)
                pipe.hset(marker, mapping={"into": merged_into, "pool": identity_pool_id, "purged": "0"})
                pipe.expire(marker, remember_seconds)
            deleted, *_ = await pipe.execute()
        return bool(deleted)

    async def merged_into(self, identity_id: str) -> tuple[str, str, bool] | None:
        """(identity it was merged into, pool id, whether its data was purged) of an identity merged away, or None."""
        async with backend():
            into, pool, purged = await self.client.hmget(
                rediskeys.merged(identity_id, self._shards), ["into", "pool", "purged"]
            )
        if into is None or pool is None:
            return None
        return text(into), text(pool), purged is not None and text(purged) == "1"

    async def note_purged(self, identity_id: str) -> None:
        """Records on a merge marker that the merged identity's data is gone (see :meth:`merged_into`)."""
        async with backend():
            await self._replace_if_exists(keys=[rediskeys.merged(identity_id, self._shards)], args=["purged", "1"])

    async def members(self, identity_pool_id: str, shard: int, *, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` identity ids of the pool in one shard, in id order, after ``after``."""
        start = f"({after}" if after is not None else "-"
        async with backend():
            ids = await self.client.zrangebylex(rediskeys.pool_members(identity_pool_id, shard), start, "+", 0, limit)
        return [text(identity_id) for identity_id in ids]

    # --- the login index --------------------------------------------------------------------------------------------

    async def owners(self, identity_pool_id: str, logins: Sequence[Login]) -> list[str | None]:
        """The identity each login belongs to (None where it belongs to none), in order."""
        if not logins:
            return []
        async with backend():
            # One GET each in one pipeline, not MGET: each login key has a slot of its own on a cluster.
            pipe = self.client.pipeline(transaction=False)
            for login in logins:
                pipe.get(rediskeys.login(identity_pool_id, *login))
            found = await pipe.execute()
        return [None if owner is None else text(owner) for owner in found]

    async def claim(self, identity_pool_id: str, login: Login, identity_id: str) -> str:
        """Links a free login to ``identity_id``; returns the login's owner afterwards (another id if it was taken)."""
        key = rediskeys.login(identity_pool_id, *login)
        async with backend():
            (claimed,) = await confirmed(self.client, key, lambda pipe: pipe.set(key, identity_id, nx=True))
            if claimed:
                return identity_id
            owner = await self.client.get(key)
        return identity_id if owner is None else text(owner)

    async def move(self, identity_pool_id: str, login: Login, *, owner: str, to: str | None) -> bool:
        """Hands a login of ``owner`` to ``to`` (None: forgets it). False when ``owner`` no longer has it."""
        async with backend():
            moved = await self._move(keys=[rediskeys.login(identity_pool_id, *login)], args=[owner, to or ""])
        return bool(moved)

    async def profiles(self, identity_ids: Sequence[str]) -> list[IdentityProfile | None]:
        """Several profiles in one pipelined round trip."""
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            for identity_id in identity_ids:
                pipe.hgetall(self._profile_key(identity_id))
            replies = await pipe.execute()
        return [
            _profile(identity_id, [item for pair in reply.items() for item in pair])
            for identity_id, reply in zip(identity_ids, replies, strict=True)
        ]
