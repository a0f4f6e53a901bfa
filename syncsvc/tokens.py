"""Signed, opaque tokens: SyncSessionTokens and pagination NextTokens.

A token is ``base64url(JSON claims) "." base64url(HMAC-SHA256(purpose "\\0" claims))``. The purpose is bound into the
MAC, so a NextToken can never pass as a session token or as another operation's NextToken. Tokens are checked in
constant time. They are stateless, so any instance that shares the secret accepts them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from syncsvc.clock import SYSTEM, Clock
from syncsvc.errors import InvalidParameterError


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Seals and opens tokens for one ``purpose`` family with one secret; ``clock`` dates and checks expiries."""

    def __init__(self, secret: bytes, *, clock: Clock = SYSTEM) -> None:
        self._secret = secret
        self._clock = clock

    def _mac(self, purpose: str, body: bytes) -> bytes:
        return hmac.new(self._secret, purpose.encode() + b"\0" + body, hashlib.sha256).digest()

    def seal(self, purpose: str, claims: dict[str, Any], ttl_seconds: int | None = None) -> str:
        """A token carrying ``claims``; with a ttl it carries its expiry (``exp``, epoch seconds) too."""
        if ttl_seconds is not None:
            claims = {**claims, "exp": self._clock.now_ms() // 1000 + ttl_seconds}
        body = orjson.dumps(claims)
        return f"{_b64encode(body)}.{_b64encode(self._mac(purpose, body))}"

    def open(self, purpose: str, token: str, *, name: str) -> dict[str, Any]:
        """The claims of a token sealed for ``purpose``; InvalidParameterError naming ``name`` otherwise."""
        encoded_body, _, encoded_mac = token.partition(".")
        try:
            body, mac = _b64decode(encoded_body), _b64decode(encoded_mac)
        except (binascii.Error, ValueError):
            raise InvalidParameterError(f"{name} is not a valid token") from None
        if not hmac.compare_digest(mac, self._mac(purpose, body)):
            raise InvalidParameterError(f"{name} is not a valid token")
        claims: dict[str, Any] = orjson.loads(body)
        expiry = claims.get("exp")
        if expiry is not None and self._clock.now_ms() > expiry * 1000:
            raise InvalidParameterError(f"{name} has expired")
        return claims
