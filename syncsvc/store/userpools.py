"""RedisUserPools: user pools, app clients, users, aliases, one-time codes, failed sign-ins and groups in Redis.

Every key of one user pool carries the pool's hash tag ``{up:<poolId>}``, so each script touches one Redis Cluster
slot (a pool lives on one master: a pool's users are bounded by that master's memory). Two keys are deployment-wide:
the sorted set of pool ids (ListUserPools) and one key per app client id naming its pool (InitiateAuth gives only a
ClientId). What is stored is never a secret in the clear: argon2id password hashes, sealed client secrets and SRP
verifiers, HMAC digests of codes (the use-case, ``syncsvc.userpools.directory``, seals and digests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from syncsvc.errors import AliasExistsError, UsernameExistsError, UserNotFoundError
from syncsvc.rediskeys import PREFIX
from syncsvc.store.backend import backend, text
from syncsvc.store.connection import RedisClient
from syncsvc.store.scripts import confirmed, register

#: Sorted set (scores 0) of every user pool id.
POOL_IDS = f"{PREFIX}:userpools"
_CODE_PURPOSES = ("signup", "reset", "attribute")


def _key(pool_id: str, *parts: str) -> str:
    return ":".join((f"{PREFIX}:up:{{up:{pool_id}}}", *parts))


def client_index(client_id: str) -> str:
    """String: the pool id of an app client."""
    return f"{PREFIX}:upclient:{client_id}"


@dataclass(frozen=True, slots=True)
class StoredUser:
    """A user as stored (``syncsvc.userpools.model.User`` is built from it): the SRP material sealed, the password
    as its argon2id hash; ``version`` is the optimistic-concurrency check of the next update; ``aliases`` the alias
    keys (``email:a@b.c``) the user holds."""

    username: str
    sub: str
    attributes: dict[str, str]
    status: str
    enabled: bool
    created_ms: int
    modified_ms: int
    generation: int = 0
    password_hash: str | None = field(default=None, repr=False)
    sealed_srp: str | None = field(default=None, repr=False)
    password_expires_ms: int | None = None
    mfa_options: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    aliases: tuple[str, ...] = ()

    def fields(self) -> dict[str, str]:
        """The hash fields (all but ``ver`` and ``gen``, which the script keeps)."""
        return {
            "sub": self.sub,
            "attrs": orjson.dumps(self.attributes).decode(),
            "status": self.status,
            "enabled": "1" if self.enabled else "0",
            "created": str(self.created_ms),
            "modified": str(self.modified_ms),
            "pw": self.password_hash or "",
            "srp": self.sealed_srp or "",
            "pwexp": "" if self.password_expires_ms is None else str(self.password_expires_ms),
            "mfa": orjson.dumps(self.mfa_options).decode(),
            "aliases": orjson.dumps(list(self.aliases)).decode(),
        }


class StaleUserError(Exception):
    """The user changed between a read and a write (the caller reads again and retries)."""


def _user(username: str, fields: Mapping[str, str]) -> StoredUser:
    expires = fields.get("pwexp")
    return StoredUser(
        username=username,
        sub=fields["sub"],
        attributes=orjson.loads(fields["attrs"]),
        status=fields["status"],
        enabled=fields["enabled"] == "1",
        created_ms=int(fields["created"]),
        modified_ms=int(fields["modified"]),
        generation=int(fields.get("gen", "0")),
        password_hash=fields.get("pw") or None,
        sealed_srp=fields.get("srp") or None,
        password_expires_ms=int(expires) if expires else None,
        mfa_options=orjson.loads(fields.get("mfa", "{}")),
        version=fields.get("ver", "0"),
        aliases=tuple(orjson.loads(fields.get("aliases", "[]"))),
    )


class RedisUserPools:
    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._write_user = register(client, "userpool_write_user.lua")
        self._delete_user = register(client, "userpool_delete_user.lua")
        self._code_attempt = register(client, "userpool_code_attempt.lua")
        self._note_failure = register(client, "userpool_note_failure.lua")

    # --- pools and clients ------------------------------------------------------------------------------------------

    async def put_pool(self, pool_id: str, wire: Mapping[str, Any], *, new: bool) -> bool:
        """Stores a pool's description; ``new``: only when the id is free (False when taken)."""
        key = _key(pool_id, "pool")
        async with backend():
            stored = await self.client.set(key, orjson.dumps(wire), nx=new, xx=not new)
            if stored and new:
                await self.client.zadd(POOL_IDS, {pool_id: 0})
        return bool(stored)

    async def pool(self, pool_id: str) -> str | None:
        async with backend():
            value = await self.client.get(_key(pool_id, "pool"))
        return None if value is None else text(value)

    async def pool_ids(self, *, after: str | None, limit: int) -> list[str]:
        start = f"({after}" if after else "-"
        async with backend():
            ids = await self.client.zrangebylex(POOL_IDS, start, "+", start=0, num=limit)
        return [text(item) for item in ids]

    async def put_client(self, pool_id: str, client_id: str, wire: str, *, new: bool) -> bool:
        async with backend():
            if new and not await self.client.set(client_index(client_id), pool_id, nx=True):
                return False
            await self.client.hset(_key(pool_id, "clients"), client_id, wire)
        return True

    async def client_pool(self, client_id: str) -> str | None:
        async with backend():
            value = await self.client.get(client_index(client_id))
        return None if value is None else text(value)

    async def app_client(self, pool_id: str, client_id: str) -> str | None:
        async with backend():
            value = await self.client.hget(_key(pool_id, "clients"), client_id)
        return None if value is None else text(value)

    async def app_clients(self, pool_id: str) -> dict[str, str]:
        async with backend():
            mapping = await self.client.hgetall(_key(pool_id, "clients"))
        return {text(k): text(v) for k, v in mapping.items()}

    async def delete_client(self, pool_id: str, client_id: str) -> bool:
        async with backend():
            removed = await self.client.hdel(_key(pool_id, "clients"), client_id)
            if removed:
                await self.client.delete(client_index(client_id))
        return bool(removed)

    async def delete_pool(self, pool_id: str) -> bool:
        """Deletes a pool: its description first (so nothing uses it any more), then its clients, users and groups."""
        async with backend():
            if not await self.client.delete(_key(pool_id, "pool")):
                return False
            await self.client.zrem(POOL_IDS, pool_id)
            for client_id in await self.client.hkeys(_key(pool_id, "clients")):
                await self.client.delete(client_index(text(client_id)))
            while names := [text(n) for n in await self.client.zrangebylex(_key(pool_id, "users"), "-", "+", 0, 200)]:
                doomed = [_key(pool_id, kind, name) for name in names for kind in ("user", "ugroups", "fail")]
                doomed += [_key(pool_id, "code", purpose, name) for name in names for purpose in _CODE_PURPOSES]
                await self.client.delete(*doomed)
                await self.client.zrem(_key(pool_id, "users"), *names)
            groups = [_key(pool_id, "group", text(g)) for g in await self.client.hkeys(_key(pool_id, "groups"))]
            fixed = [_key(pool_id, kind) for kind in ("clients", "users", "alias", "groups")]
            await self.client.delete(*fixed, *groups)
        return True

    # --- users ----------------------------------------------------------------------------------------------------

    async def user(self, pool_id: str, username: str) -> StoredUser | None:
        async with backend():
            mapping = await self.client.hgetall(_key(pool_id, "user", username))
        if not mapping:
            return None
        return _user(username, {text(k): text(v) for k, v in mapping.items()})

    async def alias_owner(self, pool_id: str, alias: str) -> str | None:
        """The username holding ``alias`` (``email:a@b.c``, ``sub:<uuid>``), if any."""
        async with backend():
            value = await self.client.hget(_key(pool_id, "alias"), alias)
        return None if value is None else text(value)

    async def write_user(
        self,
        pool_id: str,
        username: str,
        fields: Mapping[str, str],
        *,
        version: str | None,
        claim: Sequence[str] = (),
        release: Sequence[str] = (),
        new_generation: bool = False,
        alias_error: type[AliasExistsError | UsernameExistsError] = AliasExistsError,
    ) -> int:
        """Creates (``version`` None) or updates a user; returns its generation. UsernameExistsException (create,
        taken), UserNotFoundException, ``alias_error`` (an alias held by another user), StaleUserError."""
        args = [
            "create" if version is None else "update",
            username,
            version or "",
            orjson.dumps(dict(fields)),
            orjson.dumps(list(claim)),
            orjson.dumps(list(release)),
            "1" if new_generation else "0",
        ]
        keys = [_key(pool_id, "user", username), _key(pool_id, "users"), _key(pool_id, "alias")]
        async with backend():
            reply = [
                text(item) if isinstance(item, bytes) else item for item in await self._write_user(keys=keys, args=args)
            ]
        outcome = reply[0]
        if outcome == "ok":
            return int(reply[2])
        if outcome == "exists":
            raise UsernameExistsError("User account already exists")
        if outcome == "missing":
            raise UserNotFoundError("User does not exist.")
        if outcome == "stale":
            raise StaleUserError(username)
        attribute = str(reply[1]).split(":", 1)[0]
        if alias_error is UsernameExistsError:
            raise UsernameExistsError(f"An account with the given {attribute} already exists.")
        raise AliasExistsError(f"An account with the {attribute} already exists.")

    async def delete_user(self, pool_id: str, username: str) -> bool:
        async with backend():
            groups = [text(g) for g in await self.client.smembers(_key(pool_id, "ugroups", username))]
            keys = [
                _key(pool_id, "user", username),
                _key(pool_id, "users"),
                _key(pool_id, "alias"),
                _key(pool_id, "ugroups", username),
                *(_key(pool_id, "group", group) for group in groups),
                *(_key(pool_id, "code", purpose, username) for purpose in _CODE_PURPOSES),
                _key(pool_id, "fail", username),
            ]
            deleted = await self._delete_user(keys=keys, args=[username, len(groups)])
        return bool(deleted)

    async def usernames(self, pool_id: str, *, after: str | None, limit: int) -> list[str]:
        start = f"({after}" if after else "-"
        async with backend():
            names = await self.client.zrangebylex(_key(pool_id, "users"), start, "+", start=0, num=limit)
        return [text(name) for name in names]

    async def users(self, pool_id: str, usernames: Sequence[str]) -> list[StoredUser]:
        """The users of ``usernames`` that exist, in that order (one round trip)."""
        if not usernames:
            return []
        async with backend():
            pipe: Any = self.client.pipeline(transaction=False)
            for name in usernames:
                pipe.hgetall(_key(pool_id, "user", name))
            replies = await pipe.execute()
        return [
            _user(name, {text(k): text(v) for k, v in mapping.items()})
            for name, mapping in zip(usernames, replies, strict=True)
            if mapping
        ]

    async def count_users(self, pool_id: str) -> int:
        async with backend():
            return int(await self.client.zcard(_key(pool_id, "users")))

    # --- one-time codes and failed sign-ins ---------------------------------------------------------------------

    async def put_code(self, pool_id: str, purpose: str, username: str, digest: str, expires_ms: int) -> None:
        """Stores a code's digest, replacing the user's previous code of that purpose."""
        key = _key(pool_id, "code", purpose, username)

        def queue(pipe: Any) -> None:
            pipe.delete(key)
            pipe.hset(key, mapping={"digest": digest, "expires": expires_ms, "tries": 0})
            pipe.pexpireat(key, expires_ms)

        async with backend():
            await confirmed(self.client, key, queue)

    async def code_attempt(self, pool_id: str, purpose: str, username: str, *, tries: int, now_ms: int) -> list[str]:
        """``['try', digest]``, ``['none']``, ``['expired']`` or ``['exhausted']`` (userpool_code_attempt.lua)."""
        async with backend():
            reply = await self._code_attempt(keys=[_key(pool_id, "code", purpose, username)], args=[tries, now_ms])
        return [text(item) for item in reply]

    async def consume_code(self, pool_id: str, purpose: str, username: str) -> bool:
        """Deletes the code; True only for the one caller that deleted it."""
        async with backend():
            return bool(await self.client.delete(_key(pool_id, "code", purpose, username)))

    async def note_failure(
        self, pool_id: str, username: str, *, now_ms: int, window_ms: int, threshold: int, max_lock_ms: int
    ) -> int:
        async with backend():
            locked = await self._note_failure(
                keys=[_key(pool_id, "fail", username)], args=[now_ms, window_ms, threshold, max_lock_ms]
            )
        return int(locked)

    async def locked_until(self, pool_id: str, username: str) -> int:
        async with backend():
            value = await self.client.hget(_key(pool_id, "fail", username), "until")
        return int(value) if value else 0

    async def clear_failures(self, pool_id: str, username: str) -> None:
        async with backend():
            await self.client.delete(_key(pool_id, "fail", username))

    # --- groups ---------------------------------------------------------------------------------------------------

    async def put_group(self, pool_id: str, name: str, wire: str, *, new: bool) -> bool:
        async with backend():
            if new:
                return bool(await self.client.hsetnx(_key(pool_id, "groups"), name, wire))
            await self.client.hset(_key(pool_id, "groups"), name, wire)
        return True

    async def groups(self, pool_id: str) -> dict[str, str]:
        async with backend():
            mapping = await self.client.hgetall(_key(pool_id, "groups"))
        return {text(k): text(v) for k, v in mapping.items()}

    async def group(self, pool_id: str, name: str) -> str | None:
        async with backend():
            value = await self.client.hget(_key(pool_id, "groups"), name)
        return None if value is None else text(value)

    async def set_membership(self, pool_id: str, group: str, username: str, *, member: bool) -> None:
        group_key, user_key = _key(pool_id, "group", group), _key(pool_id, "ugroups", username)

        def queue(pipe: Any) -> None:
            if member:
                pipe.zadd(group_key, {username: 0})
                pipe.sadd(user_key, group)
            else:
                pipe.zrem(group_key, username)
                pipe.srem(user_key, group)

        async with backend():
            await confirmed(self.client, group_key, queue)

    async def groups_of(self, pool_id: str, username: str) -> list[str]:
        async with backend():
            names = await self.client.smembers(_key(pool_id, "ugroups", username))
        return sorted(text(name) for name in names)
