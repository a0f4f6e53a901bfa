"""The key service's core: master keys found by reference, read, and changed by compare-and-set.

Every read goes to Redis (one HGETALL), so a key disabled, rotated or scheduled for deletion through any instance
takes effect at once everywhere. The key's policy and grants live in the key's own hash: the read that loads a key
loads them too (:class:`LoadedKey`).

A change to a key (:meth:`MasterKeys.change`) applies one of ``MasterKey``'s rules to the key as read, then stores the
result only if the key did not change meanwhile (compare-and-set on its revision); otherwise it reads again and
re-applies the rule. So two instances rotating, disabling or scheduling one key at once never lose a change, and a
backing key is never overwritten.

Key references (``key_ref``) are what KMS accepts: a key id, a key ARN, ``alias/<name>`` or an alias ARN.

Internal keys: keys syncsvc makes for itself (``MasterKey.owner`` set: an identity pool's master key ``pool:<id>``,
an identity-token signing key ``oidc:<kid>``) serve syncsvc only. The public KMS API works on a view of the same keys
(``internal=False``, ``KeyService.public``) in which internal keys do not exist: every operation on one answers
NotFoundException exactly as for a key id that was never made, ListKeys and ListAliases leave them out, and no alias
or grant can be made on them. So a developer can neither use them (Sign a token with the service's signing key,
Decrypt a wrapped data key) nor change them (DisableKey, ScheduleKeyDeletion: a denial of service of token issuing or
crypto-shredding of a whole pool), and the API does not even tell which key ids are internal. Invisible rather than
AccessDeniedException: as with KMS's AWS owned keys, which a customer can neither see, list nor use. Only syncsvc's
own code (``envelope.py``, ``identity/issuer.py``, the sweep) works on them.

It touches the key store (``syncsvc.store.kms``) and the root key; the other parts of the key service (lifecycle,
crypto, permissions, sweeper) read and write keys through it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import orjson

from syncsvc.clock import Clock
from syncsvc.errors import InvalidArnError, KmsConflictError, KmsNotFoundError
from syncsvc.kms import material
from syncsvc.kms.hsm_keys import HsmKeys
from syncsvc.kms.model import ACCOUNT, MasterKey, alias_arn, key_arn
from syncsvc.kms.policy import DEFAULT_POLICY, Grant, Policy, parse_policy
from syncsvc.kms.root import RootKey
from syncsvc.store.kms import RedisKeyStore, StoredMasterKey, WriteStatus

#: Reads and re-applications of a rule before a change gives up with ConflictException.
_ATTEMPTS = 5
#: Every pattern is matched in full (``fullmatch``): ``$`` would also match before a final newline.
_ARN = re.compile(r"arn:aws[a-z-]*:kms:([a-z0-9-]*):([0-9]*):((?:key|alias)/.+)")

#: One of ``MasterKey``'s rules: the key as it should be stored, given the key as read.
Rule = Callable[[MasterKey], MasterKey]
RotationType = Literal["AUTOMATIC", "ON_DEMAND"]


@dataclass(frozen=True, slots=True, order=True)
class Rotation:
    """One completed rotation: the backing-key version it made current, when, and how (AUTOMATIC or ON_DEMAND)."""

    version: int
    date_ms: int
    kind: RotationType

    def stored(self) -> bytes:
        return orjson.dumps({"date": self.date_ms, "type": self.kind})

    @classmethod
    def from_stored(cls, version: int, raw: bytes) -> Rotation:
        fields = orjson.loads(raw)
        return cls(version, int(fields["date"]), fields["type"])


@dataclass(frozen=True, slots=True)
class LoadedKey:
    """A key as one read found it: its metadata, wrapped backing keys by version, revision, policy, grants and
    rotation history."""

    key: MasterKey
    versions: dict[int, bytes]
    revision: int
    policy: Policy
    grants: tuple[Grant, ...] = ()
    #: The key's completed rotations, oldest first (keys rotated before the history was kept have none).
    rotations: tuple[Rotation, ...] = ()


class MasterKeys:
    """The master keys of one view: with ``internal`` False (the public API's view) internal keys do not exist."""

    def __init__(
        self,
        store: RedisKeyStore,
        root: RootKey,
        *,
        region: str,
        internal: bool,
        clock: Clock,
        hsm: HsmKeys | None = None,
    ) -> None:
        self.store = store
        self.root = root
        self.region = region
        self.internal = internal
        self.clock = clock
        #: The keys whose material is in a custom key store's token (None: this deployment has no custom key stores).
        self.hsm = hsm

    # --- references ---------------------------------------------------------------------------------------------------

    async def resolve(self, key_ref: str) -> str:
        """The key id of a key id, key ARN, alias name or alias ARN (not checked to exist). InvalidArnException for
        a malformed ARN; NotFoundException for an unknown alias or an ARN of another region or account."""
        name = key_ref
        if key_ref.startswith("arn:"):
            match = _ARN.fullmatch(key_ref)
            if match is None:
                raise InvalidArnError(f"Invalid arn {key_ref[:2048]}")
            region, account, name = match.groups()
            if (region, account) != (self.region, ACCOUNT):
                raise KmsNotFoundError(f"Key '{key_ref[:2048]}' does not exist")
        if name.startswith("alias/"):
            target = await self.store.alias_target(name)
            if target is None:
                raise KmsNotFoundError(f"Alias {key_ref[:2048]} is not found.")
            return target
        return name.removeprefix("key/") if key_ref.startswith("arn:") else name

    async def key_id_only(self, key_ref: str, member: str = "KeyId") -> str:
        """The key id of a key id or key ARN, for the operations whose ``member`` KMS documents as "the key ID or key
        ARN": an alias name or alias ARN there is NotFoundException, as KMS answers it (it reads the value as a key id
        that does not exist), never the key the alias names."""
        if key_ref.startswith("alias/") or (key_ref.startswith("arn:") and ":alias/" in key_ref):
            raise KmsNotFoundError(f"Invalid {member[:1].lower()}{member[1:]} {key_ref[:2048]}")
        return await self.resolve(key_ref)

    def key_arn(self, key_id: str) -> str:
        return key_arn(self.region, key_id)

    def alias_arn(self, alias: str) -> str:
        return alias_arn(self.region, alias)

    def reference_arn(self, key_ref: str) -> str:
        """The ARN a key reference stands for, as written (not resolved, not checked to exist)."""
        if key_ref.startswith("arn:"):
            return key_ref
        return self.alias_arn(key_ref) if key_ref.startswith("alias/") else self.key_arn(key_ref)

    def not_found(self, key_id: str) -> KmsNotFoundError:
        return KmsNotFoundError(f"Key '{self.key_arn(key_id[:64])}' does not exist")

    # --- reads --------------------------------------------------------------------------------------------------------

    async def key(self, key_ref: str) -> MasterKey:
        """The key ``key_ref`` names, in any state; NotFoundException when there is none."""
        return (await self.load(await self.resolve(key_ref))).key

    async def load(self, key_id: str) -> LoadedKey:
        return self.loaded(await self.stored(key_id))

    async def stored(self, key_id: str) -> StoredMasterKey:
        """The key as stored; NotFoundException when there is no such key here (an internal key is not in the public
        view: the same answer, word for word, as for a key id never made)."""
        stored = await self.store.load(key_id) if _looks_like_key_id(key_id) else None
        if stored is None or not (self.internal or stored.meta.get("owner", "") == ""):
            raise self.not_found(key_id)
        return stored

    @staticmethod
    def loaded(stored: StoredMasterKey) -> LoadedKey:
        grants = tuple(Grant.from_stored(raw) for raw in stored.grants.values())
        policy = parse_policy(stored.policy or DEFAULT_POLICY)
        rotations = tuple(sorted(Rotation.from_stored(version, raw) for version, raw in stored.rotations.items()))
        return LoadedKey(
            MasterKey.from_stored(stored.meta), stored.versions, stored.revision, policy, grants, rotations
        )

    async def backing(self, loaded: LoadedKey, version: int | None = None) -> bytes:
        """A backing key (the current one by default), unwrapped: key material in the clear, keep it in memory."""
        key = loaded.key
        version = key.current_version if version is None else version
        return await self.root.unwrap(loaded.versions[version], key.key_id, version)

    async def key_ids(self, *, after: str | None, limit: int) -> list[str]:
        """Every key id in order (ListKeys), ``limit`` at a time after ``after``; internal keys only where they
        exist (not in the public view)."""
        if self.internal:
            return await self.store.key_ids(after=after, limit=limit)
        shown: list[str] = []
        while len(shown) < limit:
            page = await self.store.key_ids(after=after, limit=limit)
            shown += await self.public_ids(page)
            if len(page) < limit:
                break
            after = page[-1]
        return shown[:limit]

    async def public_ids(self, key_ids: Sequence[str]) -> list[str]:
        """Those of ``key_ids`` that are keys made through the API (not internal, not gone), in order."""
        owners = await self.store.owners(key_ids)
        return [key_id for key_id, owner in zip(key_ids, owners, strict=True) if owner == ""]

    # --- changes ------------------------------------------------------------------------------------------------------

    async def change(self, key_ref: str, rule: Rule) -> MasterKey:
        """Applies ``rule`` to the key as stored and stores the result (compare-and-set, re-read on a race)."""
        key_id = await self.resolve(key_ref)
        for _ in range(_ATTEMPTS):
            loaded = await self.load(key_id)
            changed = rule(loaded.key)
            outcome = await self.write(loaded, changed)
            if outcome == "written":
                return changed
            if outcome == "gone":
                raise self.not_found(key_id)
        raise KmsConflictError(f"{self.key_arn(key_id)} is being changed by other requests; retry")

    async def write(self, loaded: LoadedKey, changed: MasterKey) -> WriteStatus:
        """Stores ``changed`` over ``loaded`` if the key's revision is still ``loaded``'s; a new current version gets
        new material and, in the same write, its entry in the key's rotation history (ListKeyRotations): ON_DEMAND
        when the change counted an on-demand rotation, AUTOMATIC otherwise (the sweep's, dated the period's start)."""
        if changed.current_version == loaded.key.current_version:
            return await self.store.update(changed.key_id, changed.stored(), revision=loaded.revision)
        version = changed.current_version
        on_demand = changed.on_demand_rotations > loaded.key.on_demand_rotations
        rotation = Rotation(
            version, self.clock.now_ms() if on_demand else changed.rotated_ms, "ON_DEMAND" if on_demand else "AUTOMATIC"
        )
        return await self.store.update(
            changed.key_id,
            changed.stored(),
            revision=loaded.revision,
            new_version=(version, await self.root.wrap(material.new_material(), changed.key_id, version)),
            rotation=rotation.stored(),
        )


def _looks_like_key_id(key_id: str) -> bool:
    try:
        return str(uuid.UUID(key_id)) == key_id
    except ValueError:
        return False
