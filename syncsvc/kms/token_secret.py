"""The token secret at rest: generated once per deployment, stored in Redis sealed by the root key.

The secret signs session and pagination tokens and derives temporary credentials' secrets; sealed, a copy of Redis
alone cannot forge any of them. Earlier releases stored it in plaintext (:func:`in_plaintext`); the composition root
replaces such a secret at start-up.
"""

from __future__ import annotations

import secrets

from syncsvc.kms.root import RootKey

#: The name the token secret is sealed under (associated data of its seal).
SEALED_AS = "tokens"


async def sealed_new(root: RootKey) -> bytes:
    """A new random token secret, sealed by ``root``."""
    return await root.seal_secret(SEALED_AS, secrets.token_bytes(32))


async def open_token_secret(root: RootKey, stored: bytes) -> bytes:
    """The token secret from what Redis stores; MaterialError under another root key."""
    return await root.open_secret(SEALED_AS, stored)


async def reseal_token_secret(root: RootKey, stored: bytes) -> bytes | None:
    """The stored token secret sealed by the root key instead of the previous one; None when it is already."""
    return await root.resealed_secret(SEALED_AS, stored)


def in_plaintext(stored: bytes) -> bool:
    """What earlier releases stored: 64 hex characters (a sealed secret is 60 bytes)."""
    return len(stored) == 64 and all(byte in b"0123456789abcdef" for byte in stored)
