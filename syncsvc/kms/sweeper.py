"""The sweep: deletes the keys whose deletion date has passed, deletes imported key material whose ValidTo has passed
(``syncsvc.kms.imports``: the key becomes PendingImport) and performs the automatic rotations that are due.

Every instance runs it (:meth:`Sweeper.run`, every :data:`SWEEP_SECONDS`) over every key, internal ones included;
the compare-and-set of ``syncsvc.kms.keystore`` makes overlapping sweeps harmless: a key is deleted or rotated only
if it is still as the sweep read it. Each automatic rotation is recorded in the key's rotation history
(ListKeyRotations, type AUTOMATIC, dated the sweep's ``now``) by the same write that stores the new backing key
(``MasterKeys.write``). It touches the key store through the core only (and, for a key in a custom key store, its
store and token through ``MasterKeys.hsm``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from syncsvc.background import every
from syncsvc.kms.imports import KeyImports
from syncsvc.kms.keystore import LoadedKey, MasterKeys
from syncsvc.store.kms import WriteStatus

log = logging.getLogger("syncsvc.kms")
SWEEP_SECONDS = 60.0
_SWEEP_PAGE = 200


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one sweep did: the ids of the keys it deleted, of those whose imported material expired, and of those it
    rotated."""

    deleted: tuple[str, ...] = ()
    rotated: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()


class Sweeper:
    def __init__(self, keys: MasterKeys) -> None:
        self._keys = keys
        self._imports = KeyImports(keys)

    async def run(self) -> None:
        """Until cancelled: :meth:`sweep` at once and every :data:`SWEEP_SECONDS`."""
        await every(SWEEP_SECONDS, "KMS sweep", self.sweep)

    async def sweep(self, now_ms: int | None = None) -> Sweep:
        """Deletes the keys whose deletion date is past (material and aliases gone for good), deletes the imported
        material whose ValidTo is past and rotates the keys whose automatic rotation is due, as of ``now_ms``
        (default: now)."""
        now = self._keys.clock.now_ms() if now_ms is None else now_ms
        done_to: dict[str, list[str]] = {"deleted": [], "rotated": [], "expired": []}
        after = None
        while page := await self._keys.store.key_ids(after=after, limit=_SWEEP_PAGE):
            for key_id in page:
                done = await self._sweep_key(key_id, now)
                if done is not None:
                    done_to[done].append(key_id)
            after = page[-1]
        return Sweep(*(tuple(done_to[done]) for done in ("deleted", "rotated", "expired")))

    async def _sweep_key(self, key_id: str, now_ms: int) -> Literal["deleted", "rotated", "expired"] | None:
        stored = await self._keys.store.load(key_id)
        if stored is None:
            return None
        loaded = self._keys.loaded(stored)
        key = loaded.key
        if key.deletion_due(now_ms):
            if await self._delete(loaded) != "written":
                return None
            log.warning("KMS key %s deleted for good (owner %r): its ciphertexts are unreadable", key_id, key.owner)
            return "deleted"
        if await self._imports.expire(loaded, now_ms):
            log.warning("KMS key %s: its imported key material expired and was deleted", key_id)
            return "expired"
        if key.rotation_due(now_ms) and await self._keys.write(loaded, key.rotated(now_ms)) == "written":
            log.info("KMS key %s rotated automatically (every %d days)", key_id, key.rotation_period_days)
            return "rotated"
        return None

    async def _delete(self, loaded: LoadedKey) -> WriteStatus:
        """Deletes a key as read; one in a custom key store is uncounted from it and destroyed in its token too."""
        key = loaded.key
        if key.custom_key_store_id and self._keys.hsm is not None:
            return await self._keys.hsm.delete(key, revision=loaded.revision)
        return await self._keys.store.delete(key.key_id, revision=loaded.revision)
