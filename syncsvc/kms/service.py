"""KeyService: KMS's master keys and the cryptographic operations under them.

Every call reads the key from Redis (one HGETALL), so a key disabled, rotated or scheduled for deletion through any
instance takes effect at once everywhere. The hot path of syncsvc does not come here per request: record values are
encrypted with data keys that ``syncsvc.kms.envelope`` caches.

Key references (``key_ref``) are what KMS accepts: a key id, a key ARN, ``alias/<name>`` or an alias ARN.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from syncsvc.errors import (
    IncorrectKeyError,
    InvalidCiphertextError,
    InvalidKeyUsageError,
    KmsDisabledError,
    KmsInvalidStateError,
    KmsLimitExceededError,
    KmsNotFoundError,
)
from syncsvc.kms import material
from syncsvc.kms.material import MaterialError, RootKey
from syncsvc.kms.model import ACCOUNT, MasterKey
from syncsvc.store.kms import RedisKeyStore

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class DataKey:
    """A data key from GenerateDataKey: its plaintext (keep in memory only) and the blob that wraps it."""

    plaintext: bytes
    blob: bytes
    key_arn: str


class KeyService:
    def __init__(self, store: RedisKeyStore, root: RootKey, *, region: str, quota: int) -> None:
        self._store = store
        self._root = root
        self._region = region
        self._quota = quota

    # --- keys ---------------------------------------------------------------------------------------------------------

    async def create_key(self, *, description: str = "", owner: str = "") -> MasterKey:
        """A new symmetric (AES-256-GCM) master key; LimitExceededException past the quota."""
        now = _now_ms()
        key = MasterKey(
            key_id=str(uuid.uuid4()),
            region=self._region,
            created_ms=now,
            description=description,
            rotated_ms=now,
            owner=owner,
        )
        wrapped = self._root.wrap(material.new_material(), key.key_id, 1)
        if not await self._store.create(key.key_id, key.stored(), wrapped, quota=self._quota):
            raise KmsLimitExceededError(f"This deployment already holds its limit of {self._quota} keys")
        return key

    async def key(self, key_ref: str) -> MasterKey:
        """The key ``key_ref`` names, in any state; NotFoundException when there is none."""
        return (await self._load(await self.resolve(key_ref)))[0]

    async def resolve(self, key_ref: str) -> str:
        """The key id of a key id, key ARN, alias name or alias ARN (not checked to exist)."""
        alias_prefix = f"arn:aws:kms:{self._region}:{ACCOUNT}:"
        name = key_ref.removeprefix(alias_prefix)
        if name.startswith("alias/"):
            target = await self._store.alias_target(name)
            if target is None:
                raise KmsNotFoundError(f"Alias {key_ref} is not found.")
            return target
        return name.removeprefix("key/")

    async def rotate(self, key_ref: str) -> MasterKey:
        """A new backing key becomes current; every older one stays, so old ciphertexts still decrypt."""
        key, _ = await self._usable(key_ref)
        version = key.current_version + 1
        rotated = key.evolve(current_version=version, rotated_ms=_now_ms())
        wrapped = self._root.wrap(material.new_material(), key.key_id, version)
        await self._store.save_meta(key.key_id, rotated.stored(), new_version=(version, wrapped))
        return rotated

    async def save(self, key: MasterKey) -> None:
        if not await self._store.save_meta(key.key_id, key.stored()):
            raise KmsNotFoundError(f"Key '{key.arn}' does not exist")

    # --- cryptography -------------------------------------------------------------------------------------------------

    async def encrypt(self, key_ref: str, plaintext: bytes, context: Mapping[str, str] | None = None) -> bytes:
        key, versions = await self._usable(key_ref)
        backing = self._root.unwrap(versions[key.current_version], key.key_id, key.current_version)
        return material.seal(backing, key.key_id, key.current_version, plaintext, context)

    async def decrypt(
        self, blob: bytes, context: Mapping[str, str] | None = None, *, key_ref: str | None = None
    ) -> tuple[bytes, MasterKey]:
        """(plaintext, the key that sealed it). With ``key_ref``, the blob must be of that key (IncorrectKey)."""
        try:
            header = material.blob_header(blob)
        except MaterialError:
            raise InvalidCiphertextError("The ciphertext is invalid or was not made by this service") from None
        if key_ref is not None and await self.resolve(key_ref) != header.key_id:
            raise IncorrectKeyError("The key ID in the request does not identify the key that encrypted the ciphertext")
        key, versions = await self._usable(header.key_id)
        wrapped = versions.get(header.version)
        if wrapped is None:
            raise InvalidCiphertextError("The ciphertext refers to a backing key this key does not have")
        try:
            return material.open_blob(self._root.unwrap(wrapped, key.key_id, header.version), blob, context), key
        except MaterialError:
            raise InvalidCiphertextError(
                "The ciphertext does not decrypt: it was altered, or the encryption context differs"
            ) from None

    async def generate_data_key(
        self, key_ref: str, context: Mapping[str, str] | None = None, *, number_of_bytes: int = 32
    ) -> DataKey:
        plaintext = os.urandom(number_of_bytes)
        key, _ = await self._usable(key_ref)
        return DataKey(plaintext, await self.encrypt(key.key_id, plaintext, context), key.arn)

    # --- helpers ------------------------------------------------------------------------------------------------------

    async def _load(self, key_id: str) -> tuple[MasterKey, dict[int, bytes]]:
        loaded = await self._store.load(key_id) if _looks_like_key_id(key_id) else None
        if loaded is None:
            raise KmsNotFoundError(f"Key 'arn:aws:kms:{self._region}:{ACCOUNT}:key/{key_id[:64]}' does not exist")
        meta, versions = loaded
        return MasterKey.from_stored(meta), versions

    async def _usable(self, key_ref: str) -> tuple[MasterKey, dict[int, bytes]]:
        """A key that can encrypt and decrypt now: Enabled and symmetric."""
        key, versions = await self._load(await self.resolve(key_ref))
        if key.state == "Disabled":
            raise KmsDisabledError(f"{key.arn} is disabled.")
        if key.state != "Enabled":
            raise KmsInvalidStateError(f"{key.arn} is pending deletion.")
        if not key.symmetric or key.usage != "ENCRYPT_DECRYPT":
            raise InvalidKeyUsageError(f"{key.arn} key usage is {key.usage}, not symmetric ENCRYPT_DECRYPT")
        return key, versions


def _looks_like_key_id(key_id: str) -> bool:
    try:
        return str(uuid.UUID(key_id)) == key_id
    except ValueError:
        return False


def _now_ms() -> int:
    return int(time.time() * 1000)
