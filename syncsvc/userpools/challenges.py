"""Challenges: the server's side of a sign-in that answered a challenge (NEW_PASSWORD_REQUIRED, PASSWORD_VERIFIER,
SOFTWARE_TOKEN_MFA, MFA_SETUP) instead of tokens, kept between requests.

A challenge is stored in Redis (``RedisUserSessions``) under the HMAC digest of the ``Session`` string the client
got — never the string itself — for CHALLENGE_SECONDS, and taken once (GETDEL): a Session string cannot be replayed,
on any instance. A use-case that lets a Session survive a refused answer (a wrong MFA code, a password the policy
refuses) stores the taken challenge again for the rest of its life (:meth:`Challenges.keep`), or under a new Session
string (:meth:`Challenges.renew`, the MFA set-up steps). No HTTP; I/O only through ``RedisUserSessions``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson

from syncsvc.clock import Clock
from syncsvc.store.usersessions import RedisUserSessions

#: How long a challenge's Session string works (Cognito: 3 minutes).
CHALLENGE_SECONDS = 180
#: Wrong codes a challenge's Session survives (the next one ends it).
MFA_TRIES = 5
_SESSION_KEY_LABEL = b"syncsvc user-pool challenge sessions"


@dataclass(frozen=True, slots=True)
class Challenge:
    """A pending challenge as stored: which, for whom (None: a user that does not exist), through which client."""

    name: str
    pool_id: str
    client_id: str
    username: str | None
    expires_ms: int
    srp_state: str | None = None  # base64 of srp.ServerState.to_bytes()
    failures: int = 0  # wrong MFA codes so far

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "name": self.name,
                "pool_id": self.pool_id,
                "client_id": self.client_id,
                "username": self.username,
                "expires_ms": self.expires_ms,
                "srp_state": self.srp_state,
                "failures": self.failures,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Challenge:
        return cls(**orjson.loads(raw))


class Challenges:
    """Pending challenges by Session string (``secret``: the deployment secret the digests are keyed by)."""

    def __init__(self, sessions: RedisUserSessions, *, secret: bytes, clock: Clock) -> None:
        self._sessions = sessions
        self._key = hmac.new(secret, _SESSION_KEY_LABEL, hashlib.sha256).digest()
        self._clock = clock

    async def open(
        self,
        name: str,
        pool_id: str,
        client_id: str,
        username: str | None,
        *,
        srp_state: str | None = None,
        session: str | None = None,
    ) -> str:
        """Stores a new challenge; its Session string (random unless given: a PASSWORD_VERIFIER's is its
        SECRET_BLOCK, which Cognito's clients answer with, Session or not)."""
        session = session or secrets.token_urlsafe(48)
        expires_ms = self._clock.now_ms() + CHALLENGE_SECONDS * 1000
        stored = Challenge(name, pool_id, client_id, username, expires_ms, srp_state)
        await self._sessions.put_challenge(self._digest(session), stored.encode(), ttl_ms=CHALLENGE_SECONDS * 1000)
        return session

    async def take(self, session: str) -> Challenge | None:
        """The challenge, deleted in the same command; None when unknown, used or expired."""
        raw = await self._sessions.take_challenge(self._digest(session))
        challenge = Challenge.decode(raw) if raw is not None else None
        if challenge is None or challenge.expires_ms <= self._clock.now_ms():
            return None
        return challenge

    async def keep(self, challenge: Challenge, session: str) -> bool:
        """Stores a taken challenge again under ``session`` for the rest of its life — unless that is over or it
        has seen MFA_TRIES wrong codes; whether it was kept."""
        left_ms = challenge.expires_ms - self._clock.now_ms()
        if left_ms <= 0 or challenge.failures >= MFA_TRIES:
            return False
        await self._sessions.put_challenge(self._digest(session), challenge.encode(), ttl_ms=left_ms)
        return True

    async def renew(self, challenge: Challenge) -> str | None:
        """The taken challenge stored again under a new Session string (the same expiry); None when it is over."""
        session = secrets.token_urlsafe(48)
        return session if await self.keep(challenge, session) else None

    def _digest(self, session: str) -> str:
        return hmac.new(self._key, session.encode(), hashlib.sha256).hexdigest()
