"""A master key's life: creation, state, rotation settings and rotations, deletion scheduling, and aliases.

Each change is one of ``MasterKey``'s rules applied through the compare-and-set core (``syncsvc.kms.keystore``);
deletion itself is the sweeper's (``syncsvc.kms.sweeper``), once the pending window has passed. It touches the key
store through the core only (and the root key, to wrap a new key's material).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from syncsvc.errors import KmsAlreadyExistsError, KmsLimitExceededError
from syncsvc.kms import material
from syncsvc.kms.keystore import MasterKeys
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

    async def create_key(
        self,
        *,
        description: str = "",
        owner: str = "",
        spec: str = "SYMMETRIC_DEFAULT",
        usage: str = "ENCRYPT_DECRYPT",
        tags: Mapping[str, str] | None = None,
    ) -> MasterKey:
        """A new master key: symmetric (AES-256-GCM), RSA_2048 (ENCRYPT_DECRYPT or SIGN_VERIFY) or ECC_NIST_P256
        (SIGN_VERIFY); UnsupportedOperationException for another KeySpec, ValidationException for a KeyUsage the
        KeySpec does not take, LimitExceededException past the quota."""
        check_key_spec(spec, usage)
        now = self._keys.clock.now_ms()
        key = MasterKey(
            key_id=str(uuid.uuid4()),
            region=self._keys.region,
            created_ms=now,
            description=description,
            usage="SIGN_VERIFY" if usage == "SIGN_VERIFY" else "ENCRYPT_DECRYPT",
            spec=spec,
            rotated_ms=now,
            owner=owner,
            tags=dict(tags or {}),
        )
        if key.symmetric:
            secret = material.new_material()
        else:  # an RSA key takes a moment to generate: not on the event loop
            secret = await asyncio.to_thread(material.new_private_key, spec)
        wrapped = self._keys.root.wrap(secret, key.key_id, 1)
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
