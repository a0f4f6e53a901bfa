"""The cryptography under master keys: symmetric seal/decrypt/re-encrypt and data keys, RSAES-OAEP encryption,
signatures and public keys of asymmetric keys, and the MACs of HMAC keys.

Nothing here writes: each operation reads the key through the core (``syncsvc.kms.keystore``), checks the key's
state and usage (``MasterKey.require_*``), unwraps the backing key it needs with the root key, and keeps the material
in memory only for the call. The formats are ``syncsvc.kms.material``'s. A key in a custom key store
(``MasterKey.custom_key_store_id``) has no material here: its symmetric operations run in its token
(``syncsvc.kms.hsm_keys``), with the same blobs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from syncsvc.errors import (
    IncorrectKeyError,
    InvalidCiphertextError,
    KmsInvalidMacError,
    KmsInvalidSignatureError,
    KmsInvalidStateError,
    KmsValidationError,
)
from syncsvc.kms import material
from syncsvc.kms.hsm_keys import HsmKeys
from syncsvc.kms.keystore import LoadedKey, MasterKeys
from syncsvc.kms.material import MaterialError
from syncsvc.kms.model import MasterKey


@dataclass(frozen=True, slots=True)
class DataKey:
    """A data key from GenerateDataKey: its plaintext (keep in memory only) and the blob that wraps it."""

    plaintext: bytes
    blob: bytes
    key_arn: str


class KeyCrypto:
    """Encrypts, decrypts, signs and verifies under the keys of one view (``MasterKeys``)."""

    def __init__(self, keys: MasterKeys) -> None:
        self._keys = keys

    # --- symmetric ----------------------------------------------------------------------------------------------------

    async def seal(
        self, key_ref: str, plaintext: bytes, context: Mapping[str, str] | None = None
    ) -> tuple[bytes, MasterKey]:
        """(ciphertext blob, the key that sealed it) under the key's current backing key."""
        loaded = await self._usable(key_ref)
        return await self._seal(loaded, plaintext, context), loaded.key

    async def _seal(self, loaded: LoadedKey, plaintext: bytes, context: Mapping[str, str] | None) -> bytes:
        key = loaded.key
        if key.custom_key_store_id:
            return await self._hsm(key).seal(key, plaintext, context)
        return material.seal(await self._keys.backing(loaded), key.key_id, key.current_version, plaintext, context)

    async def encrypt(self, key_ref: str, plaintext: bytes, context: Mapping[str, str] | None = None) -> bytes:
        return (await self.seal(key_ref, plaintext, context))[0]

    async def decrypt(
        self, blob: bytes, context: Mapping[str, str] | None = None, *, key_ref: str | None = None
    ) -> tuple[bytes, MasterKey]:
        """(plaintext, the key that sealed it). With ``key_ref``, the blob must be of that key (IncorrectKey)."""
        try:
            header = material.blob_header(blob)
        except MaterialError:
            raise InvalidCiphertextError("The ciphertext is invalid or was not made by this service") from None
        if key_ref is not None and await self._keys.resolve(key_ref) != header.key_id:
            raise IncorrectKeyError("The key ID in the request does not identify the key that encrypted the ciphertext")
        loaded = await self._usable(header.key_id)
        if loaded.key.custom_key_store_id:
            return await self._hsm(loaded.key).open(loaded.key, blob, header.version, context), loaded.key
        if header.version not in loaded.versions:
            raise InvalidCiphertextError("The ciphertext refers to a backing key this key does not have")
        try:
            return material.open_blob(await self._keys.backing(loaded, header.version), blob, context), loaded.key
        except MaterialError:
            raise InvalidCiphertextError(
                "The ciphertext does not decrypt: it was altered, or the encryption context differs"
            ) from None

    async def re_encrypt(
        self,
        blob: bytes,
        destination_ref: str,
        *,
        source_context: Mapping[str, str] | None = None,
        source_key_ref: str | None = None,
        destination_context: Mapping[str, str] | None = None,
    ) -> tuple[bytes, MasterKey, MasterKey]:
        """(the blob sealed again under ``destination_ref``, source key, destination key); the plaintext never
        leaves the service."""
        plaintext, source = await self.decrypt(blob, source_context, key_ref=source_key_ref)
        sealed, destination = await self.seal(destination_ref, plaintext, destination_context)
        return sealed, source, destination

    async def generate_data_key(
        self, key_ref: str, context: Mapping[str, str] | None = None, *, number_of_bytes: int = 32
    ) -> DataKey:
        """A new data key, sealed under ``key_ref``: its bytes from the operating system's generator, or from the
        token's for a key in a custom key store."""
        loaded = await self._usable(key_ref)
        key = loaded.key
        if key.custom_key_store_id:
            plaintext = await self._hsm(key).random(key, number_of_bytes)
        else:
            plaintext = os.urandom(number_of_bytes)
        return DataKey(plaintext, await self._seal(loaded, plaintext, context), key.arn)

    async def _usable(self, key_ref: str) -> LoadedKey:
        """A key that can encrypt and decrypt now: Enabled and symmetric."""
        loaded = await self._keys.load(await self._keys.resolve(key_ref))
        loaded.key.require_usable()
        return loaded

    def _hsm(self, key: MasterKey) -> HsmKeys:
        """The keys in custom key stores (KMSInvalidStateException for such a key where the service has none)."""
        if self._keys.hsm is None:
            raise KmsInvalidStateError(f"{key.arn} is in a custom key store, and this service has no custom key stores")
        return self._keys.hsm

    # --- asymmetric ---------------------------------------------------------------------------------------------------

    async def sign(self, key_ref: str, message: bytes, algorithm: str, *, digest: bool) -> tuple[bytes, MasterKey]:
        """(signature, key) of ``message`` (a digest already when ``digest``) with a SIGN_VERIFY key."""
        key, private = await self._private(key_ref, lambda key: key.require_signing(algorithm))
        _check_digest(message, algorithm, digest)
        return material.sign(private, algorithm, message, digest=digest), key

    async def verify(
        self, key_ref: str, message: bytes, signature: bytes, algorithm: str, *, digest: bool
    ) -> MasterKey:
        """The key, when ``signature`` is valid; KMSInvalidSignatureException when it is not."""
        key, private = await self._private(key_ref, lambda key: key.require_signing(algorithm))
        _check_digest(message, algorithm, digest)
        if not material.verify(private, algorithm, message, signature, digest=digest):
            raise KmsInvalidSignatureError("The signature is not valid for this message, key and signing algorithm")
        return key

    async def public_key(self, key_ref: str) -> tuple[bytes, MasterKey]:
        """(DER SubjectPublicKeyInfo, key) of an asymmetric key."""
        key, private = await self._private(key_ref, lambda key: key.require_public_key())
        return material.public_key(private), key

    async def encrypt_asymmetric(
        self, key_ref: str, plaintext: bytes, algorithm: str, context: Mapping[str, str] | None = None
    ) -> tuple[bytes, MasterKey]:
        """(RSAES-OAEP ciphertext, key) under an RSA ENCRYPT_DECRYPT key; no encryption context, and a plaintext
        no longer than the algorithm allows (ValidationException)."""
        key, private = await self._private(key_ref, lambda key: key.require_asymmetric_encryption(algorithm))
        _no_context(context)
        limit = material.oaep_limit(private, algorithm)
        if len(plaintext) > limit:
            raise KmsValidationError(
                f"Plaintext is {len(plaintext)} bytes; {algorithm} with a {key.spec} key takes at most {limit} bytes"
            )
        return material.rsa_encrypt(private, algorithm, plaintext), key

    async def decrypt_asymmetric(
        self, blob: bytes, key_ref: str | None, algorithm: str, context: Mapping[str, str] | None = None
    ) -> tuple[bytes, MasterKey]:
        """(plaintext, key) of an RSAES-OAEP ciphertext; the KeyId is required (the ciphertext does not name its
        key): without one, or with a ciphertext that does not decrypt, InvalidCiphertextException."""
        if key_ref is None:
            raise InvalidCiphertextError(
                "The ciphertext is invalid: a ciphertext of an asymmetric key decrypts only with its KeyId"
            )
        key, private = await self._private(key_ref, lambda key: key.require_asymmetric_encryption(algorithm))
        _no_context(context)
        try:
            return material.rsa_decrypt(private, algorithm, blob), key
        except MaterialError:
            raise InvalidCiphertextError(
                "The ciphertext does not decrypt with this key and encryption algorithm"
            ) from None

    # --- HMAC ---------------------------------------------------------------------------------------------------------

    async def generate_mac(self, key_ref: str, message: bytes, algorithm: str) -> tuple[bytes, MasterKey]:
        """(HMAC of ``message``, key) with a GENERATE_VERIFY_MAC key and its MAC algorithm."""
        key, secret = await self._private(key_ref, lambda key: key.require_mac(algorithm))
        return material.mac(secret, algorithm, message), key

    async def verify_mac(self, key_ref: str, message: bytes, given: bytes, algorithm: str) -> MasterKey:
        """The key, when ``given`` is the HMAC of ``message`` (compared in constant time); KMSInvalidMacException
        when it is not."""
        key, secret = await self._private(key_ref, lambda key: key.require_mac(algorithm))
        if not material.mac_matches(secret, algorithm, message, given):
            raise KmsInvalidMacError("The MAC is not valid for this message, key and MAC algorithm")
        return key

    async def _private(self, key_ref: str, check: Callable[[MasterKey], None]) -> tuple[MasterKey, bytes]:
        """A key that passes ``check`` and its secret material (an asymmetric key's private key, DER PKCS#8, or an
        HMAC key's secret key), unwrapped."""
        loaded = await self._keys.load(await self._keys.resolve(key_ref))
        check(loaded.key)
        return loaded.key, await self._keys.backing(loaded)


def key_of_blob(blob: bytes) -> str | None:
    """The key id a symmetric ciphertext names (None when it is not one of ours)."""
    try:
        return material.blob_header(blob).key_id
    except MaterialError:
        return None


def _check_digest(message: bytes, algorithm: str, digest: bool) -> None:
    """A DIGEST message must be as long as the signing algorithm's hash (ValidationException)."""
    size = material.algorithm_hash(algorithm).digest_size
    if digest and len(message) != size:
        raise KmsValidationError(
            f"Digest is {len(message)} bytes: {algorithm} takes a {size}-byte digest with MessageType DIGEST"
        )


def _no_context(context: Mapping[str, str] | None) -> None:
    if context:
        raise KmsValidationError("EncryptionContext is valid only with symmetric encryption keys")
