"""The user pools' secrets at rest: AES-GCM seals (client secrets, SRP verifiers) and HMAC digests (one-time codes).

Both keys are derived from the deployment's token secret, which Redis keeps sealed by the KMS root key (or which the
configuration holds): a copy of Redis alone opens no seal and cannot tell a code from its digest. Deriving from that
secret rather than sealing each value under the root key itself keeps root-key rotation free of user-pool work (the
token secret is resealed, its value does not change). No I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SealError(Exception):
    """A sealed value does not open under this deployment's secret (another deployment's data, or tampering)."""


def _derive(secret: bytes, label: bytes) -> bytes:
    return hmac.new(secret, b"syncsvc userpools " + label, hashlib.sha256).digest()


class PoolSecrets:
    """Seals and digests under keys derived from the deployment secret. ``name`` (associated data) binds a seal to
    what it is (``client:<id>``, ``srp:<pool>:<user>``): a sealed value copied to another place does not open."""

    def __init__(self, secret: bytes) -> None:
        self._aead = AESGCM(_derive(secret, b"seal"))
        self._mac_key = _derive(secret, b"codes")

    def seal(self, name: str, plaintext: bytes) -> str:
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, name.encode())
        return base64.b64encode(sealed).decode()

    def open(self, name: str, sealed: str) -> bytes:
        raw = base64.b64decode(sealed)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], name.encode())
        except (InvalidTag, ValueError):
            raise SealError(f"the sealed value of {name} does not open under this deployment's secret") from None

    def digest(self, name: str, code: str) -> str:
        """HMAC-SHA256 of ``code`` bound to ``name`` (``signup:<pool>:<user>``), hex."""
        return hmac.new(self._mac_key, f"{name}\n{code}".encode(), hashlib.sha256).hexdigest()
