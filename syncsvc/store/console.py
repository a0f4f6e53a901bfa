"""RedisConsoleSessions: the web console's sign-in sessions (``syncsvc.api.console.sessions``).

A session is stored under the SHA-256 digest of its cookie (256 random bits, so the digest cannot be turned back
into a cookie: a copy of Redis signs no one in), as one string with a time to live that every use renews; signing
out deletes it. Each key carries its own hash tag, so every command touches one slot and sessions spread across a
cluster; any instance serves any session. Driver errors become
:class:`~syncsvc.errors.BackendUnavailableError` (``syncsvc.store.backend``).
"""

from __future__ import annotations

from syncsvc.rediskeys import PREFIX
from syncsvc.store.backend import backend
from syncsvc.store.connection import RedisClient
from syncsvc.store.scripts import confirmed


def session_key(digest: str) -> str:
    """String with a time to live: one console session's record (JSON), by the digest of its cookie."""
    return f"{PREFIX}:console:session:{{{digest}}}"


class RedisConsoleSessions:
    """Console sessions. Holds no state of its own: every call asks Redis."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client

    async def put(self, digest: str, record: bytes, *, ttl_ms: int) -> None:
        key = session_key(digest)
        async with backend():
            await confirmed(self.client, key, lambda pipe: pipe.set(key, record, px=ttl_ms))

    async def use(self, digest: str, *, ttl_ms: int) -> bytes | None:
        """The session's record, its time to live renewed in the same round trip; None when it is unknown, signed
        out or expired."""
        key = session_key(digest)
        async with backend():
            pipe = self.client.pipeline(transaction=False)
            pipe.get(key)
            pipe.pexpire(key, ttl_ms)
            record, _ = await pipe.execute()
        return record.encode() if isinstance(record, str) else record

    async def delete(self, digest: str) -> None:
        key = session_key(digest)
        async with backend():
            await confirmed(self.client, key, lambda pipe: pipe.delete(key))
