"""KeyService: KMS's master keys, their lifecycle and the cryptographic operations under them, as one object.

It composes the parts of the key service around their compare-and-set core, and holds nothing else:

* ``keystore.py`` (:attr:`KeyService.keys`): keys found by reference (id, ARN, alias), read, and changed by
  compare-and-set; the public view's not-found rule for internal keys.
* ``lifecycle.py`` (:attr:`KeyService.lifecycle`): creation, state, rotation, deletion scheduling, aliases;
  ``imports.py`` (``lifecycle.imports``): imported key material (Origin EXTERNAL); ``tags.py``: a key's tags.
* ``crypto.py`` (:attr:`KeyService.crypto`): symmetric and asymmetric cryptography, data keys, signatures.
* ``hsm_keys.py`` (``keys.hsm``): the keys whose material is in a custom key store's token (Origin AWS_CLOUDHSM).
* ``permissions.py`` (:attr:`KeyService.permissions`): grants, key policies and the decision they make.
* ``sweeper.py`` (:attr:`KeyService.sweeper`): deletions and automatic rotations as they fall due.

What a caller of the KMS API may do is ``access.py``'s (``KeyAccess``), on top of these.

Why one object: syncsvc's own code (``envelope.py``, ``identity/issuer.py``, the token keyring's discard, the app's
sweep task) and the tests hold a single ``KeyService`` and call the few operations they need on it directly (the
methods below); the public KMS API works on :attr:`KeyService.public`, the view without syncsvc's internal keys (see
``keystore.py``), and calls the parts.

The hot path of syncsvc does not come here per request: record values are encrypted with data keys that
``syncsvc.kms.envelope`` caches.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from syncsvc.clock import SYSTEM, Clock
from syncsvc.kms.crypto import DataKey, KeyCrypto
from syncsvc.kms.hsm_keys import HsmKeys
from syncsvc.kms.keystore import MasterKeys
from syncsvc.kms.lifecycle import KeyLifecycle
from syncsvc.kms.model import MasterKey
from syncsvc.kms.permissions import KeyPermissions
from syncsvc.kms.root import RootKey
from syncsvc.kms.sweeper import Sweep, Sweeper
from syncsvc.store.kms import RedisKeyStore


class KeyService:
    """The key service. ``internal`` says whether syncsvc's internal keys exist in it: True for syncsvc's own use
    (envelope encryption, token signing, the sweep), False for :attr:`public`, the public KMS API's view."""

    def __init__(
        self,
        store: RedisKeyStore,
        root: RootKey,
        *,
        region: str,
        quota: int,
        internal: bool = True,
        clock: Clock = SYSTEM,
        hsm: HsmKeys | None = None,
    ) -> None:
        self.keys = MasterKeys(store, root, region=region, internal=internal, clock=clock, hsm=hsm)
        self.lifecycle = KeyLifecycle(self.keys, quota=quota)
        self.crypto = KeyCrypto(self.keys)
        self.permissions = KeyPermissions(self.keys)
        self.sweeper = Sweeper(self.keys)
        self._quota = quota

    @functools.cached_property
    def public(self) -> KeyService:
        """The same keys without the internal ones (see ``keystore.py``): what the KMS API works on."""
        if not self.keys.internal:
            return self
        keys = self.keys
        return KeyService(
            keys.store,
            keys.root,
            region=keys.region,
            quota=self._quota,
            internal=False,
            clock=keys.clock,
            hsm=keys.hsm,
        )

    # --- what syncsvc's own code calls --------------------------------------------------------------------------------

    async def discard(self, key_id: str) -> None:
        await self.lifecycle.discard(key_id)

    async def key(self, key_ref: str) -> MasterKey:
        return await self.keys.key(key_ref)

    async def rotate(self, key_ref: str) -> MasterKey:
        return await self.lifecycle.rotate(key_ref)

    async def create_alias(self, alias: str, target_ref: str) -> None:
        await self.lifecycle.create_alias(alias, target_ref)

    async def encrypt(self, key_ref: str, plaintext: bytes, context: Mapping[str, str] | None = None) -> bytes:
        return await self.crypto.encrypt(key_ref, plaintext, context)

    async def decrypt(
        self, blob: bytes, context: Mapping[str, str] | None = None, *, key_ref: str | None = None
    ) -> tuple[bytes, MasterKey]:
        return await self.crypto.decrypt(blob, context, key_ref=key_ref)

    async def generate_data_key(
        self, key_ref: str, context: Mapping[str, str] | None = None, *, number_of_bytes: int = 32
    ) -> DataKey:
        return await self.crypto.generate_data_key(key_ref, context, number_of_bytes=number_of_bytes)

    async def sign(self, key_ref: str, message: bytes, algorithm: str, *, digest: bool) -> tuple[bytes, MasterKey]:
        return await self.crypto.sign(key_ref, message, algorithm, digest=digest)

    async def public_key(self, key_ref: str) -> tuple[bytes, MasterKey]:
        return await self.crypto.public_key(key_ref)

    async def sweep(self, now_ms: int | None = None) -> Sweep:
        return await self.sweeper.sweep(now_ms)

    async def run(self) -> None:
        await self.sweeper.run()
