"""RedisUserSessions: what user-pool sign-in keeps between requests — challenge sessions and sign-in origins.

* A **challenge** is the server's side of a sign-in that answered a challenge (NEW_PASSWORD_REQUIRED,
  PASSWORD_VERIFIER) instead of tokens: stored under the digest of the ``Session`` string the client got, with a
  time to live (3 minutes), and taken with GETDEL, so a session string works once, on any instance.
* An **origin** is one sign-in, named by the ``origin_jti`` its tokens carry: the pool, client and user it was for,
  the user's generation then, and the digest of its refresh token. Every token the sign-in produced (its refresh
  token and every ID/access token issued from it, refreshes included) stands only while its origin does: RevokeToken
  deletes it, which revokes them all on every instance at once.

Each key holds one record and carries its own hash tag (the digest or the origin id), so every command touches one
slot and the records spread across a cluster. Nothing here is secret in itself: refresh tokens and session strings
are stored only as HMAC digests (the caller's, keyed by a sealed secret), so a copy of Redis yields neither.

Driver errors never leave this module raw: they become :class:`~syncsvc.errors.BackendUnavailableError`
(``syncsvc.store.backend``).
"""

from __future__ import annotations

from syncsvc.rediskeys import PREFIX
from syncsvc.store.backend import backend
from syncsvc.store.connection import RedisClient
from syncsvc.store.scripts import confirmed


def challenge_key(digest: str) -> str:
    """String with a time to live: a pending challenge's server state, by the digest of its Session string."""
    return f"{PREFIX}:up:challenge:{{{digest}}}"


def origin_key(origin_jti: str) -> str:
    """String with a time to live: one sign-in's record (JSON, ``syncsvc.userpools.tokens.Origin``)."""
    return f"{PREFIX}:up:origin:{{{origin_jti}}}"


class RedisUserSessions:
    """Challenge sessions and sign-in origins. Holds no state of its own: every call asks Redis."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client

    async def put_challenge(self, digest: str, state: bytes, *, ttl_ms: int) -> None:
        key = challenge_key(digest)
        async with backend():
            await confirmed(self.client, key, lambda pipe: pipe.set(key, state, px=ttl_ms))

    async def take_challenge(self, digest: str) -> bytes | None:
        """The challenge's state, deleted in the same command (a Session string works once); None when it is
        unknown, used or expired."""
        key = challenge_key(digest)
        async with backend():
            (state,) = await confirmed(self.client, key, lambda pipe: pipe.getdel(key))
        return state.encode() if isinstance(state, str) else state

    async def put_origin(self, origin_jti: str, record: bytes, *, ttl_ms: int) -> None:
        key = origin_key(origin_jti)
        async with backend():
            await confirmed(self.client, key, lambda pipe: pipe.set(key, record, px=ttl_ms))

    async def origin(self, origin_jti: str) -> bytes | None:
        """The sign-in's record; None when it was revoked or has expired."""
        async with backend():
            record = await self.client.get(origin_key(origin_jti))
        return record.encode() if isinstance(record, str) else record

    async def revoke_origin(self, origin_jti: str) -> bool:
        """Deletes the sign-in's record (its refresh token and every token issued from it stop working); whether
        there was one."""
        key = origin_key(origin_jti)
        async with backend():
            (deleted,) = await confirmed(self.client, key, lambda pipe: pipe.delete(key))
        return bool(deleted)
