"""Imported key material (KMS's Origin EXTERNAL): keys made without material, the wrapping keys and import tokens of
GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial and the expiry of material.

* A key made for import (:meth:`KeyImports.create`) is a symmetric encryption key in state PendingImport with no
  backing key; it gets a random commitment secret, root-wrapped like a backing key (``v0``, see ``syncsvc.store.kms``).
* GetParametersForImport (:meth:`KeyImports.parameters`) makes a fresh RSA key pair per request (in a worker thread),
  keeps its private half sealed by the root key in the key's hash, and answers its public half with an import token:
  the key id, the wrapping key's id, algorithm and expiry (24 hours), sealed by the root key so that it cannot be
  forged or moved to another key.
* ImportKeyMaterial (:meth:`KeyImports.import_material`) unwraps the material with the token's private key (RSAES-OAEP,
  or RSA-AES key wrap: an RSAES-OAEP-wrapped AES key, then AES key wrap with padding, RFC 5649), checks it is 32
  bytes, and stores it as backing key 1, root-wrapped like every backing key; the key becomes Enabled. The first
  import keeps an HMAC of the material under the commitment secret, and every later import must match it (KMS:
  only the same material can be imported again). The token's wrapping key is used up by the import.
* DeleteImportedKeyMaterial (:meth:`KeyImports.delete_material`) and the expiry of material (the sweep calls
  :meth:`KeyImports.expire`) remove backing key 1: the key is PendingImport (a key pending deletion stays so), and
  its ciphertexts do not decrypt until the same material is imported again.

Every write is one of the store's ``kms_import_*.lua`` scripts, a compare-and-set on the key's revision. It touches
the key store through ``syncsvc.kms.keystore`` and the root key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from dataclasses import dataclass

import orjson
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from syncsvc.errors import (
    ExpiredImportTokenError,
    IncorrectKeyMaterialError,
    InvalidCiphertextError,
    InvalidImportTokenError,
    KmsConflictError,
    KmsInvalidStateError,
    KmsLimitExceededError,
    KmsValidationError,
    UnsupportedOperationError,
)
from syncsvc.kms import material
from syncsvc.kms.keystore import LoadedKey, MasterKeys
from syncsvc.kms.material import MaterialError
from syncsvc.kms.model import DAY_MS, MasterKey
from syncsvc.kms.root import RootKey

ORIGIN = "EXTERNAL"
EXPIRES = "KEY_MATERIAL_EXPIRES"
DOES_NOT_EXPIRE = "KEY_MATERIAL_DOES_NOT_EXPIRE"
#: The wrapping algorithms syncsvc serves, each with the RSAES-OAEP hash it wraps with (the material itself, or the
#: AES key that wraps it for RSA_AES_KEY_WRAP_*).
WRAPPING_ALGORITHMS: dict[str, str] = {
    "RSAES_OAEP_SHA_1": "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256": "RSAES_OAEP_SHA_256",
    "RSA_AES_KEY_WRAP_SHA_1": "RSAES_OAEP_SHA_1",
    "RSA_AES_KEY_WRAP_SHA_256": "RSAES_OAEP_SHA_256",
}
#: KMS's wrapping algorithms and key specs that syncsvc does not serve, and why.
REFUSED_WRAPPING: dict[str, str] = {
    "RSAES_PKCS1_V1_5": "KMS no longer supports the RSAES_PKCS1_V1_5 wrapping algorithm",
    "SM2PKE": "KMS offers SM2 wrapping only in its China Regions, and syncsvc serves none",
    "SM2": "KMS offers SM2 wrapping keys only in its China Regions, and syncsvc serves none",
}
WRAPPING_KEY_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
TOKEN_LIFETIME_MS = DAY_MS
_TOKEN_SEALED_AS = "kms-import-token"  # noqa: S105 (a sealing label, not a password)
_COMMITMENT_VERSION = 0
_IMPORTED_VERSION = 1
_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class ImportToken:
    """What an import token names: its key, its wrapping key (by id), the wrapping algorithm and when it expires."""

    key_id: str
    token_id: str
    algorithm: str
    spec: str
    expires_ms: int

    @property
    def wrapping_field(self) -> str:
        """The field of the key's hash that holds the wrapping key's sealed private half."""
        return f"imp:{self.expires_ms}:{self.token_id}"

    async def sealed(self, root: RootKey) -> bytes:
        fields = {"k": self.key_id, "t": self.token_id, "a": self.algorithm, "s": self.spec, "e": self.expires_ms}
        return await root.seal_secret(_TOKEN_SEALED_AS, orjson.dumps(fields))

    @classmethod
    async def opened(cls, root: RootKey, token: bytes) -> ImportToken:
        """The token KMS gave; InvalidImportTokenException for anything else."""
        try:
            fields = orjson.loads(await root.open_secret(_TOKEN_SEALED_AS, token))
        except MaterialError:
            raise InvalidImportTokenError("The import token is invalid: it was not issued by this service") from None
        return cls(fields["k"], fields["t"], fields["a"], fields["s"], int(fields["e"]))


@dataclass(frozen=True, slots=True)
class ImportParameters:
    """GetParametersForImport's answer: the key, the wrapping public key (DER SubjectPublicKeyInfo) and the token."""

    key: MasterKey
    public_key: bytes
    token: bytes
    valid_to_ms: int


class KeyImports:
    """The imported material of the keys of one view (``MasterKeys``)."""

    def __init__(self, keys: MasterKeys) -> None:
        self._keys = keys

    async def create(self, key: MasterKey, *, quota: int) -> MasterKey:
        """``key`` made for imported material: PendingImport, no backing key; UnsupportedOperationException for any
        KeySpec but SYMMETRIC_DEFAULT (ENCRYPT_DECRYPT), LimitExceededException past the quota."""
        if not key.symmetric or key.usage != "ENCRYPT_DECRYPT":
            raise UnsupportedOperationError(
                f"KeySpec {key.spec} with KeyUsage {key.usage} cannot be made with Origin EXTERNAL: syncsvc imports "
                "symmetric encryption key material (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT) only"
            )
        made = key.evolve(origin=ORIGIN, state="PendingImport")
        secret = await self._keys.root.wrap(material.new_material(), key.key_id, _COMMITMENT_VERSION)
        if not await self._keys.store.create_external(key.key_id, made.stored(), secret, quota=quota):
            raise KmsLimitExceededError(f"This deployment already holds its limit of {quota} keys")
        return made

    async def parameters(self, key_ref: str, algorithm: str, spec: str) -> ImportParameters:
        """A new wrapping key pair and import token for an EXTERNAL key (by key id or key ARN) that is not pending
        deletion."""
        for refused in (algorithm, spec):
            if refused in REFUSED_WRAPPING:
                raise UnsupportedOperationError(f"{refused} is not supported: {REFUSED_WRAPPING[refused]}")
        key = (await self._keys.load(await self._keys.key_id_only(key_ref))).key
        _require_external(key)
        key.require_not_pending()
        private = await asyncio.to_thread(material.new_private_key, spec)
        now = self._keys.clock.now_ms()
        token = ImportToken(key.key_id, uuid.uuid4().hex, algorithm, spec, now + TOKEN_LIFETIME_MS)
        sealed = await self._keys.root.seal_secret(_private_name(token), private)
        if await self._keys.store.add_wrapping_key(key.key_id, token.wrapping_field, sealed, now_ms=now) == "gone":
            raise self._keys.not_found(key.key_id)
        sealed_token = await token.sealed(self._keys.root)
        return ImportParameters(key, material.public_key(private), sealed_token, token.expires_ms)

    async def import_material(
        self, key_ref: str, token_blob: bytes, encrypted: bytes, *, expiration_model: str, valid_to_ms: int | None
    ) -> MasterKey:
        """Imports the material ``encrypted`` under the wrapping key of ``token_blob`` into a PendingImport EXTERNAL
        key (by key id or key ARN); the key becomes Enabled."""
        now = self._keys.clock.now_ms()
        _check_expiration(expiration_model, valid_to_ms, now)
        key_id = await self._keys.key_id_only(key_ref)
        for _ in range(_ATTEMPTS):
            loaded = await self._keys.load(key_id)
            key = loaded.key
            _require_external(key)
            if key.state != "PendingImport":
                raise KmsInvalidStateError(f"{key.arn} is {key.state}: key material is imported in PendingImport only")
            token = await ImportToken.opened(self._keys.root, token_blob)
            if token.key_id != key_id:
                raise InvalidImportTokenError("The import token is invalid: it was issued for another KMS key")
            if token.expires_ms <= now:
                raise ExpiredImportTokenError("The import token has expired: call GetParametersForImport again")
            secret = await self._unwrapped(token, encrypted)
            commitment = await self._commitment(loaded, secret)
            imported = key.evolve(
                state="Enabled",
                expiration_model=expiration_model,
                valid_to_ms=valid_to_ms if expiration_model == EXPIRES else None,
            )
            outcome = await self._keys.store.import_material(
                key_id,
                imported.stored(),
                revision=loaded.revision,
                wrapped=await self._keys.root.wrap(secret, key_id, _IMPORTED_VERSION),
                commitment=commitment,
                wrapping_field=token.wrapping_field,
            )
            if outcome == "written":
                return imported
            if outcome == "gone":
                raise self._keys.not_found(key_id)
            if outcome == "token_used":
                raise InvalidImportTokenError("The import token is invalid: it was used already, or has expired")
            if outcome == "other_material":
                raise _other_material(key)
        raise KmsConflictError(f"{self._keys.key_arn(key_id)} is being changed by other requests; retry")

    async def delete_material(self, key_ref: str) -> MasterKey:
        """DeleteImportedKeyMaterial on an EXTERNAL key (by key id or key ARN) that has material."""
        key_id = await self._keys.key_id_only(key_ref)
        for _ in range(_ATTEMPTS):
            loaded = await self._keys.load(key_id)
            key = loaded.key
            _require_external(key)
            if key.awaits_material:
                raise KmsInvalidStateError(f"{key.arn} is {key.state}: it has no imported key material to delete")
            outcome = await self._removed(loaded)
            if outcome == "written":
                return _without_material(key)
            if outcome == "gone":
                raise self._keys.not_found(key_id)
        raise KmsConflictError(f"{self._keys.key_arn(key_id)} is being changed by other requests; retry")

    async def expire(self, loaded: LoadedKey, now_ms: int) -> bool:
        """The sweep's part: removes ``loaded``'s material if it expired by ``now_ms`` and the key did not change
        since it was read; whether it did."""
        key = loaded.key
        if key.valid_to_ms is None or key.valid_to_ms > now_ms or key.awaits_material:
            return False
        return await self._removed(loaded) == "written"

    async def _removed(self, loaded: LoadedKey) -> str:
        key = loaded.key
        return await self._keys.store.delete_material(
            key.key_id, _without_material(key).stored(), revision=loaded.revision
        )

    async def _unwrapped(self, token: ImportToken, encrypted: bytes) -> bytes:
        """The material ``encrypted`` wraps, unwrapped with the token's private key: InvalidImportTokenException when
        that key is gone (used or expired), InvalidCiphertextException when it does not unwrap,
        IncorrectKeyMaterialException when it is not 32 bytes."""
        sealed = await self._keys.store.wrapping_key(token.key_id, token.wrapping_field)
        if sealed is None:
            raise InvalidImportTokenError("The import token is invalid: it was used already, or has expired")
        private = await self._keys.root.open_secret(_private_name(token), sealed)
        try:
            secret = await asyncio.to_thread(_unwrap, private, token, encrypted)
        except (MaterialError, InvalidUnwrap):
            raise InvalidCiphertextError(
                f"The EncryptedKeyMaterial does not unwrap with the wrapping key of this import token and "
                f"{token.algorithm}"
            ) from None
        if len(secret) != material.MATERIAL_BYTES:
            raise IncorrectKeyMaterialError(
                f"The key material is {len(secret)} bytes: a symmetric encryption key takes "
                f"{material.MATERIAL_BYTES} bytes (256 bits)"
            )
        return secret

    async def _commitment(self, loaded: LoadedKey, secret: bytes) -> bytes:
        """The material's commitment: HMAC-SHA256 under the key's commitment secret (never the material itself)."""
        commitment_key = await self._keys.root.unwrap(
            loaded.versions[_COMMITMENT_VERSION], loaded.key.key_id, _COMMITMENT_VERSION
        )
        return hmac.new(commitment_key, secret, hashlib.sha256).digest()


def _unwrap(private: bytes, token: ImportToken, encrypted: bytes) -> bytes:
    oaep = WRAPPING_ALGORITHMS[token.algorithm]
    if token.algorithm == oaep:
        return material.rsa_decrypt(private, oaep, encrypted)
    split = WRAPPING_KEY_BITS[token.spec] // 8
    aes_key = material.rsa_decrypt(private, oaep, encrypted[:split])
    return aes_key_unwrap_with_padding(aes_key, encrypted[split:])


def _private_name(token: ImportToken) -> str:
    return f"kms-import-wrapping-key:{token.key_id}:{token.token_id}"


def _require_external(key: MasterKey) -> None:
    if key.origin != ORIGIN:
        raise UnsupportedOperationError(
            f"{key.arn} has key material from {key.origin}: only a key with Origin EXTERNAL takes imported material"
        )


def _other_material(key: MasterKey) -> IncorrectKeyMaterialError:
    return IncorrectKeyMaterialError(
        f"The key material is not the key material that was previously imported into {key.arn}: only the same "
        "key material can be imported again"
    )


def _without_material(key: MasterKey) -> MasterKey:
    """``key`` once its material is gone: PendingImport (a key pending deletion stays so), no expiration."""
    state = key.state if key.state == "PendingDeletion" else "PendingImport"
    return key.evolve(state=state, expiration_model="", valid_to_ms=None)


def _check_expiration(expiration_model: str, valid_to_ms: int | None, now_ms: int) -> None:
    """KMS's ExpirationModel and ValidTo rules: ValidTo with KEY_MATERIAL_EXPIRES only, required there, and in the
    future."""
    if expiration_model == EXPIRES and valid_to_ms is None:
        raise KmsValidationError("A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES")
    if expiration_model == DOES_NOT_EXPIRE and valid_to_ms is not None:
        raise KmsValidationError(
            "A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE"
        )
    if valid_to_ms is not None and valid_to_ms <= now_ms:
        raise KmsValidationError("The validTo date must be in the future")
