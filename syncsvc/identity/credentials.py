"""Temporary AWS credentials for one identity (GetCredentialsForIdentity), verified without a lookup table.

* ``AccessKeyId``: ``ASIA`` + 16 random base32 characters (the shape of AWS temporary keys).
* ``SecretKey``: HMAC-SHA256(deployment secret, "temporary-credentials" NUL access key id), base64url. Nothing is
  stored: any instance re-derives it from the access key id.
* ``SessionToken``: a sealed token (``syncsvc.tokens``) naming the access key id, the identity, its pool, the
  identity's *generation* and the expiry. A request signed with these credentials must carry it as
  ``X-Amz-Security-Token``; the verifier checks the seal, the access key id, the expiry (``ExpiredTokenException``)
  and that the identity still exists at that generation. Unlinking a login raises the generation and deleting the
  identity removes it, so both revoke every credential issued before, at once and on every instance.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from syncsvc import metrics
from syncsvc.clock import SYSTEM, Clock
from syncsvc.errors import ExpiredTokenError, InvalidParameterError, UnrecognizedClientError
from syncsvc.model import IdentityProfile
from syncsvc.tokens import TokenSigner

_PURPOSE = "TemporaryCredentials"
_ISSUED = metrics.CREDENTIALS_ISSUED.labels("temporary_credentials")
_INVALID = "The security token included in the request is invalid."
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@dataclass(frozen=True, slots=True)
class TemporaryCredentials:
    access_key_id: str
    secret_key: str
    session_token: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class CredentialClaims:
    """What a verified session token says."""

    access_key_id: str
    identity_id: str
    identity_pool_id: str
    generation: int
    expires_at: int


class CredentialAuthority:
    """Issues temporary credentials and opens their session tokens."""

    def __init__(self, signer: TokenSigner, secret: bytes, *, lifetime_seconds: int, clock: Clock = SYSTEM) -> None:
        self._signer = signer
        self._clock = clock
        self._key = hmac.new(secret, b"temporary-credentials", hashlib.sha256).digest()
        self._lifetime = lifetime_seconds

    def secret_for(self, access_key_id: str) -> str:
        mac = hmac.new(self._key, access_key_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def issue(self, profile: IdentityProfile) -> TemporaryCredentials:
        _ISSUED.inc()
        access_key_id = "ASIA" + "".join(secrets.choice(_BASE32) for _ in range(16))
        expires_at = self._clock.now_ms() // 1000 + self._lifetime
        claims = {
            "a": access_key_id,
            "i": profile.identity_id,
            "p": profile.identity_pool_id,
            "g": profile.generation,
            "x": expires_at,
        }
        return TemporaryCredentials(
            access_key_id=access_key_id,
            secret_key=self.secret_for(access_key_id),
            session_token=self._signer.seal(_PURPOSE, claims),
            expires_at=expires_at,
        )

    def open(self, session_token: str, access_key_id: str) -> CredentialClaims:
        """The claims of a session token presented with ``access_key_id``; raises what AWS raises otherwise."""
        try:
            claims = self._signer.open(_PURPOSE, session_token, name="X-Amz-Security-Token")
        except InvalidParameterError:
            raise UnrecognizedClientError(_INVALID) from None
        # An access key id is ASCII; compare_digest refuses text that is not (the Credential header may hold any byte).
        if not access_key_id.isascii() or not hmac.compare_digest(str(claims.get("a", "")), access_key_id):
            raise UnrecognizedClientError(_INVALID)
        if self._clock.now_ms() >= claims["x"] * 1000:
            raise ExpiredTokenError("The security token included in the request is expired")
        return CredentialClaims(
            access_key_id=access_key_id,
            identity_id=claims["i"],
            identity_pool_id=claims["p"],
            generation=int(claims["g"]),
            expires_at=int(claims["x"]),
        )
