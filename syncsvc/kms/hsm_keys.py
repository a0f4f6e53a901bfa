"""KMS keys in a custom key store (Origin AWS_CLOUDHSM): the key's material is an AES-256 key made *inside* the store's
PKCS#11 token, sensitive and not extractable, labelled ``syncsvc-kms:<key id>`` (:func:`token_label`). The KMS key
itself (its hash in Redis) holds no material at all: only its metadata, with its origin, store id and token label.

* Creation: the store must exist (CustomKeyStoreNotFoundException) and be CONNECTED
  (CustomKeyStoreInvalidStateException). The AES key is made in the token first, then the KMS key is stored and counted
  in the store by one script, which checks again that the store is CONNECTED; when that script refuses, the AES key is
  destroyed again.
* Cryptography: the same ciphertext blobs as every symmetric key (``syncsvc.kms.material``: ``sk1 | key id | version
  | nonce | ciphertext and tag``, one version: these keys do not rotate), AES-GCM run by the token with the blob's
  associated data (key id, version, encryption context); data keys come from the token's random generator. A key whose
  store is not CONNECTED (or whose token fails) answers KMSInvalidStateException, as KMS answers for a key in a
  disconnected custom key store.
* Deletion (the sweep, once the waiting period has passed): the KMS key is deleted and uncounted by one script, then
  its AES key is destroyed in the token, as far as it can be: KMS makes "a best effort" too, and the key of a store
  that is not connected then stays in the token (logged, with its label, for an operator to destroy).

It touches the custom key stores (``syncsvc.kms.custom_keystores``: their tokens and their count of keys) only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson

from syncsvc.errors import (
    CustomKeyStoreInvalidStateError,
    CustomKeyStoreNotFoundError,
    InvalidCiphertextError,
    KmsInvalidStateError,
    KmsLimitExceededError,
    UnsupportedOperationError,
)
from syncsvc.kms import material
from syncsvc.kms.custom_keystores import CustomKeystores
from syncsvc.kms.hsm import HsmError, HsmToken
from syncsvc.kms.model import MasterKey
from syncsvc.store.kms import WriteStatus

log = logging.getLogger("syncsvc.kms")
ORIGIN = "AWS_CLOUDHSM"
#: The one backing-key version of a key in a custom key store (KMS does not rotate them).
VERSION = 1


def token_label(key_id: str) -> str:
    """The label of a KMS key's AES key in its store's token."""
    return f"syncsvc-kms:{key_id}"


async def create_in_store(hsm: HsmKeys | None, key: MasterKey, store_id: str, *, quota: int) -> MasterKey:
    """CreateKey with Origin AWS_CLOUDHSM: ``key`` made in the store ``store_id`` (CustomKeyStoreNotFoundException
    from a key service without custom key stores)."""
    if hsm is None:
        raise CustomKeyStoreNotFoundError(f"Custom key store with ID '{store_id}' does not exist")
    return await hsm.create(key, store_id, quota=quota)


class HsmKeys:
    """The KMS keys whose material is in a custom key store's token."""

    def __init__(self, keystores: CustomKeystores) -> None:
        self._keystores = keystores

    async def create(self, key: MasterKey, store_id: str, *, quota: int) -> MasterKey:
        """``key`` made in the store ``store_id``: its AES key made in the token, then the key stored and counted."""
        if not key.symmetric or key.usage != "ENCRYPT_DECRYPT":
            raise UnsupportedOperationError(
                f"KeySpec {key.spec} with KeyUsage {key.usage} cannot be made in a custom key store: only symmetric "
                "encryption keys (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT) can"
            )
        store = await self._keystores.get(store_id)
        if store.state != "CONNECTED":
            raise _not_connected(store_id, store.state)
        token = await self._keystores.token(store_id)
        made = key.evolve(origin=ORIGIN, custom_key_store_id=store_id, cloud_hsm_cluster_id=store.token_label)
        label = token_label(key.key_id)
        await token.create_aes_key(label)
        outcome = await self._keystores.add_key(store_id, key.key_id, orjson.dumps(made.stored()), quota=quota)
        if outcome.status == "done":
            return made
        try:
            await token.destroy_key(label)
        except HsmError as exc:  # the session closed meanwhile (the store was disconnected here): left in the token
            log.warning("the AES key %r of a KMS key not made stays in the token: %s", label, exc.message)
        if outcome.status == "gone":
            raise CustomKeyStoreNotFoundError(f"Custom key store with ID '{store_id}' does not exist")
        if outcome.status == "quota":
            raise KmsLimitExceededError(f"This deployment already holds its limit of {quota} keys")
        raise _not_connected(store_id, outcome.state)

    async def seal(self, key: MasterKey, plaintext: bytes, context: Mapping[str, str] | None) -> bytes:
        """A ciphertext blob of ``plaintext``, sealed by the token."""
        token = await self._token(key)
        associated = material.blob_associated_data(key.key_id, VERSION, context)
        try:
            sealed = await token.encrypt(token_label(key.key_id), plaintext, associated)
        except HsmError as exc:
            raise _unavailable(key, exc) from None
        return material.assemble_blob(key.key_id, VERSION, sealed)

    async def open(self, key: MasterKey, blob: bytes, version: int, context: Mapping[str, str] | None) -> bytes:
        """The plaintext of a blob of ``key`` (its header read: ``version``), opened by the token;
        InvalidCiphertextException when it does not open (altered, or another encryption context)."""
        if version != VERSION:
            raise InvalidCiphertextError("The ciphertext refers to a backing key this key does not have")
        token = await self._token(key)
        associated = material.blob_associated_data(key.key_id, VERSION, context)
        try:
            return await token.decrypt(token_label(key.key_id), material.blob_sealed(blob), associated)
        except HsmError as exc:
            if exc.reason == "ciphertext":
                raise InvalidCiphertextError(
                    "The ciphertext does not decrypt: it was altered, or the encryption context differs"
                ) from None
            raise _unavailable(key, exc) from None

    async def random(self, key: MasterKey, size: int) -> bytes:
        """``size`` random bytes from the token of ``key``'s store (a data key's plaintext)."""
        token = await self._token(key)
        try:
            return await token.random(size)
        except HsmError as exc:
            raise _unavailable(key, exc) from None

    async def delete(self, key: MasterKey, *, revision: int) -> WriteStatus:
        """Deletes ``key`` for good if its revision is still ``revision`` (the sweep's decision: ``written``, else
        ``stale`` or ``gone`` as ``RedisKeyStore.delete`` answers), then destroys its AES key in the token as far as it
        can (see the module docstring)."""
        removed = await self._keystores.remove_key(key.custom_key_store_id, key.key_id, revision=revision)
        if removed != "written":
            return removed
        label = token_label(key.key_id)
        try:
            token = await self._keystores.token(key.custom_key_store_id)
            await token.destroy_key(label)
        except (CustomKeyStoreInvalidStateError, CustomKeyStoreNotFoundError, UnsupportedOperationError) as exc:
            log.warning(
                "KMS key %s deleted; its AES key %r stays in the token %s (destroy it there): %s",
                key.key_id, label, key.cloud_hsm_cluster_id, exc.message,
            )  # fmt: skip
        except HsmError as exc:
            if exc.reason != "key_missing":
                log.warning("KMS key %s deleted; its AES key %r was not destroyed: %s", key.key_id, label, exc.message)
        return removed

    async def _token(self, key: MasterKey) -> HsmToken:
        """The session on ``key``'s token; KMSInvalidStateException when its store is not connected here."""
        try:
            return await self._keystores.token(key.custom_key_store_id)
        except (CustomKeyStoreInvalidStateError, CustomKeyStoreNotFoundError, HsmError) as exc:
            raise KmsInvalidStateError(
                f"{key.arn} is unavailable: its custom key store {key.custom_key_store_id} is not connected"
            ) from exc


def _not_connected(store_id: str, state: str) -> CustomKeyStoreInvalidStateError:
    return CustomKeyStoreInvalidStateError(
        f"Custom key store {store_id} is {state}: KMS keys are made only in a CONNECTED custom key store"
    )


def _unavailable(key: MasterKey, exc: HsmError) -> KmsInvalidStateError:
    log.warning("KMS key %s: its custom key store's token failed (%s): %s", key.key_id, exc.reason, exc.message)
    return KmsInvalidStateError(
        f"{key.arn} is unavailable: the token of its custom key store {key.custom_key_store_id} failed"
    )
