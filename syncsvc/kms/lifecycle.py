"""A master key's life: creation, state, description, tags, rotation settings and rotations (and their history),
deletion scheduling, and aliases.

Each change is one of ``MasterKey``'s rules (or ``syncsvc.kms.tags``'s) applied through the compare-and-set core
(``syncsvc.kms.keystore``), which also records each rotation as it stores the new backing key; deletion itself is the
sweeper's (``syncsvc.kms.sweeper``), once the pending window has passed. Aliases change by the store's scripts, each
checked against the key it names. It touches the key store through the core only (and the root key, to wrap a new
key's material). A key made for imported material (Origin EXTERNAL) is ``syncsvc.kms.imports``'s
(:attr:`KeyLifecycle.imports`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from syncsvc.errors import (
    KmsAlreadyExistsError,
    KmsConflictError,
    KmsLimitExceededError,
    KmsNotFoundError,
    KmsValidationError,
    UnsupportedOperationError,
)
from syncsvc.kms import hsm_keys, material
from syncsvc.kms import tags as tags_module
from syncsvc.kms.imports import ORIGIN as EXTERNAL
from syncsvc.kms.imports import KeyImports
from syncsvc.kms.keystore import MasterKeys, Rotation
from syncsvc.kms.model import (
    DEFAULT_PENDING_WINDOW_DAYS,
    DEFAULT_ROTATION_DAYS,
    MasterKey,
    check_alias_name,
    check_key_spec,
)


@dataclass(frozen=True, slots=True)
class Alias:
    name: str
    key_id: str


class KeyLifecycle:
    """Makes keys (at most ``quota`` in the deployment), changes their state and rotation, and names them."""

    def __init__(self, keys: MasterKeys, *, quota: int) -> None:
        self._keys = keys
        self._quota = quota
        #: Imported key material (Origin EXTERNAL): GetParametersForImport, ImportKeyMaterial and their kin.
        self.imports = KeyImports(keys)

    async def create_key(
        self,
        *,
        description: str = "",
        owner: str = "",
        spec: str = "SYMMETRIC_DEFAULT",
        usage: str = "ENCRYPT_DECRYPT",
        tags: Sequence[tuple[str, str]] = (),
        origin: str = "AWS_KMS",
        custom_key_store_id: str | None = None,
    ) -> MasterKey:
        """A new master key: symmetric (AES-256-GCM), RSA_2048 (ENCRYPT_DECRYPT or SIGN_VERIFY) or ECC_NIST_P256
        (SIGN_VERIFY); UnsupportedOperationException for another KeySpec, ValidationException for a KeyUsage the
        KeySpec does not take, TagException for tags KMS refuses, LimitExceededException past the quota. With
        ``origin`` EXTERNAL, a key without material, for material to be imported (``syncsvc.kms.imports``); with
        ``origin`` AWS_CLOUDHSM, a key whose material is made in the token of ``custom_key_store_id``
        (``syncsvc.kms.hsm_keys``)."""
        key_usage = check_key_spec(spec, usage)
        given_tags = tags_module.new_tags(tags)
        now = self._keys.clock.now_ms()
        key = MasterKey(
            key_id=str(uuid.uuid4()),
            region=self._keys.region,
            created_ms=now,
            description=description,
            usage=key_usage,
            spec=spec,
            rotated_ms=now,
            owner=owner,
            tags=given_tags,
        )
        if origin == EXTERNAL:
            return await self.imports.create(key, quota=self._quota)
        if origin == hsm_keys.ORIGIN and custom_key_store_id is not None:
            return await hsm_keys.create_in_store(self._keys.hsm, key, custom_key_store_id, quota=self._quota)
        if key.symmetric:
            secret = material.new_material()
        else:  # an RSA key takes a moment to generate: not on the event loop
            secret = await asyncio.to_thread(material.new_private_key, spec)
        wrapped = await self._keys.root.wrap(secret, key.key_id, 1)
        if not await self._keys.store.create(key.key_id, key.stored(), wrapped, quota=self._quota):
            raise KmsLimitExceededError(f"This deployment already holds its limit of {self._quota} keys")
        return key

    async def discard(self, key_id: str) -> None:
        """Removes a key at once, material included: only for a key syncsvc made and never used (a pool's key made
        twice by instances racing); every other key goes through ScheduleKeyDeletion."""
        await self._keys.store.delete(key_id)

    # --- state and rotation -------------------------------------------------------------------------------------------

    async def enable(self, key_ref: str) -> MasterKey:
        return await self._keys.change(key_ref, lambda key: key.enabled())

    async def disable(self, key_ref: str) -> MasterKey:
        return await self._keys.change(key_ref, lambda key: key.disabled())

    async def enable_rotation(self, key_ref: str, period_days: int = DEFAULT_ROTATION_DAYS) -> MasterKey:
        now = self._keys.clock.now_ms()
        return await self._keys.change(key_ref, lambda key: key.with_rotation(period_days, now))

    async def disable_rotation(self, key_ref: str) -> MasterKey:
        return await self._keys.change(key_ref, lambda key: key.without_rotation())

    async def rotate(self, key_ref: str) -> MasterKey:
        """A new backing key becomes current; every older one stays, so old ciphertexts still decrypt."""
        now = self._keys.clock.now_ms()
        return await self._keys.change(key_ref, lambda key: key.rotated(now))

    async def rotate_on_demand(self, key_ref: str) -> MasterKey:
        """RotateKeyOnDemand: as :meth:`rotate`, within KMS's quota, without moving the automatic schedule."""
        now = self._keys.clock.now_ms()
        return await self._keys.change(key_ref, lambda key: key.rotated_on_demand(now))

    async def rotations(self, key_ref: str) -> tuple[MasterKey, tuple[Rotation, ...]]:
        """ListKeyRotations: the key (by key id or key ARN) and its completed rotations, oldest first;
        UnsupportedOperationException for a key KMS does not rotate (anything but a symmetric encryption key, and
        keys in a custom key store)."""
        loaded = await self._keys.load(await self._keys.key_id_only(key_ref))
        key = loaded.key
        if not key.symmetric or key.usage != "ENCRYPT_DECRYPT":
            raise UnsupportedOperationError(
                f"{key.arn} key spec is {key.spec}: only symmetric encryption keys have key rotations"
            )
        if key.custom_key_store_id:
            raise UnsupportedOperationError(
                f"{key.arn} is in custom key store {key.custom_key_store_id}: keys in a custom key store have no key "
                "rotations"
            )
        return key, loaded.rotations

    # --- description and tags -----------------------------------------------------------------------------------------

    async def update_description(self, key_ref: str, description: str) -> MasterKey:
        """UpdateKeyDescription (KMSInvalidStateException for a key pending deletion)."""

        def described(key: MasterKey) -> MasterKey:
            key.require_not_pending()
            return key.evolve(description=description)

        return await self._keys.change(key_ref, described)

    async def tag(self, key_ref: str, given: Sequence[tuple[str, str]]) -> MasterKey:
        """TagResource: adds ``given`` (key, value) tags, replacing the value of a tag key the key has already."""
        new = tags_module.new_tags(given)
        return await self._keys.change(key_ref, lambda key: tags_module.tagged(key, new))

    async def untag(self, key_ref: str, tag_keys: Iterable[str]) -> MasterKey:
        """UntagResource: removes the tags of ``tag_keys`` (those the key does not have are no error)."""
        removed = tuple(tag_keys)
        return await self._keys.change(key_ref, lambda key: tags_module.untagged(key, removed))

    async def schedule_deletion(self, key_ref: str, window_days: int = DEFAULT_PENDING_WINDOW_DAYS) -> MasterKey:
        """The key becomes PendingDeletion; the sweep deletes it, its material and its aliases after the window."""
        now = self._keys.clock.now_ms()
        return await self._keys.change(key_ref, lambda key: key.scheduled_for_deletion(window_days, now))

    async def cancel_deletion(self, key_ref: str) -> MasterKey:
        return await self._keys.change(key_ref, lambda key: key.deletion_cancelled())

    # --- aliases ------------------------------------------------------------------------------------------------------

    async def create_alias(self, alias: str, target_ref: str) -> None:
        """A new alias of a key (by key id or key ARN); AlreadyExistsException when the name is taken."""
        check_alias_name(alias)
        key = (await self._keys.load(await self._keys.key_id_only(target_ref, "TargetKeyId"))).key
        key.require_not_pending()
        outcome = await self._keys.store.create_alias(alias, key.key_id)
        if outcome == "stale":
            raise KmsAlreadyExistsError(f"An alias with the name {self._keys.alias_arn(alias)} already exists")
        if outcome == "gone":
            raise self._keys.not_found(key.key_id)

    async def update_alias(self, alias: str, target_ref: str) -> None:
        """Points an existing alias at another key (by key id or key ARN) of the same type (symmetric, asymmetric or
        HMAC) and key usage, as KMS requires (ValidationException otherwise); the new key must not be pending
        deletion."""
        current = await self.alias_key(alias)
        new = (await self._keys.load(await self._keys.key_id_only(target_ref, "TargetKeyId"))).key
        new.require_not_pending()
        if (_key_type(current), current.usage) != (_key_type(new), new.usage):
            raise KmsValidationError(
                f"{alias[:256]} names {current.arn} ({_key_type(current)}, {current.usage}); it cannot name {new.arn} "
                f"({_key_type(new)}, {new.usage}): the current and new key must be the same type and key usage"
            )
        outcome = await self._keys.store.update_alias(alias, new.key_id, current=current.key_id)
        if outcome == "gone":
            raise self._keys.not_found(new.key_id)
        if outcome == "stale":
            raise KmsConflictError(f"{self._keys.alias_arn(alias[:256])} was changed by another request; retry")

    async def delete_alias(self, alias: str) -> None:
        """Removes an alias (its key is not touched); NotFoundException when there is no such alias here."""
        await self.alias_key(alias)
        if not await self._keys.store.delete_alias(alias):
            raise self._alias_not_found(alias)

    async def alias_key(self, alias: str) -> MasterKey:
        """The key an alias names; NotFoundException when there is no such alias in this view (an alias of an
        internal key does not exist in the public view)."""
        target = await self._keys.store.alias_target(alias)
        if target is None:
            raise self._alias_not_found(alias)
        try:
            return (await self._keys.load(target)).key
        except KmsNotFoundError:
            raise self._alias_not_found(alias) from None

    def _alias_not_found(self, alias: str) -> KmsNotFoundError:
        return KmsNotFoundError(f"Alias {self._keys.alias_arn(alias[:256])} is not found.")

    async def aliases(self, key_ref: str | None = None) -> list[Alias]:
        """Every alias by name, or those of one key (by key id or key ARN); those of keys that do not exist here
        (internal keys in the public view) left out."""
        every = await self._keys.store.aliases()
        if key_ref is not None:
            key_id = (await self._keys.load(await self._keys.key_id_only(key_ref, "KeyId"))).key.key_id
            every = {name: target for name, target in every.items() if target == key_id}
        elif not self._keys.internal and every:
            shown = set(await self._keys.public_ids(sorted(set(every.values()))))
            every = {name: target for name, target in every.items() if target in shown}
        return [Alias(name, target) for name, target in sorted(every.items())]


def _key_type(key: MasterKey) -> str:
    """The type UpdateAlias compares: symmetric, asymmetric or HMAC."""
    if key.spec.startswith("HMAC_"):
        return "HMAC"
    return "symmetric" if key.symmetric else "asymmetric"
