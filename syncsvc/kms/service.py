"""KeyService: KMS's master keys, their lifecycle and the cryptographic operations under them.

Every call reads the key from Redis (one HGETALL), so a key disabled, rotated or scheduled for deletion through any
instance takes effect at once everywhere. The hot path of syncsvc does not come here per request: record values are
encrypted with data keys that ``syncsvc.kms.envelope`` caches.

A change to a key applies one of ``MasterKey``'s rules to the key as read, then stores the result only if the key did
not change meanwhile (compare-and-set on its revision); otherwise it reads again and re-applies the rule. So two
instances rotating, disabling or scheduling one key at once never lose a change, and a backing key is never
overwritten.

The sweep (:meth:`KeyService.run`, every :data:`SWEEP_SECONDS` on every instance) deletes the keys whose deletion date
has passed and performs the automatic rotations that are due; the compare-and-set makes overlapping sweeps harmless.

Key references (``key_ref``) are what KMS accepts: a key id, a key ARN, ``alias/<name>`` or an alias ARN.

Access (:meth:`KeyService.authorize`): the key's policy and grants live in the key's own hash, so the one HGETALL
that reads a key reads them too, and a grant created, retired or revoked through any instance counts at the next
request (no eventual consistency). The rules are ``syncsvc.kms.policy``'s.

Internal keys (:attr:`KeyService.public`): keys syncsvc makes for itself (``MasterKey.owner`` set: an identity
pool's master key ``pool:<id>``, an identity-token signing key ``oidc:<kid>``) serve syncsvc only. The public KMS API
works on :attr:`KeyService.public`, a view of the same keys in which internal keys do not exist: every operation on
one answers NotFoundException exactly as for a key id that was never made, ListKeys and ListAliases leave them out,
and no alias or grant can be made on them. So a developer can neither use them (Sign a token with the service's
signing key, Decrypt a wrapped data key) nor change them (DisableKey, ScheduleKeyDeletion: a denial of service of
token issuing or crypto-shredding of a whole pool), and the API does not even tell which key ids are internal.
Invisible rather than AccessDeniedException: as with KMS's AWS owned keys, which a customer can neither see, list
nor use. Only syncsvc's own code (``envelope.py``, ``identity/issuer.py``, the sweep) works on them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from syncsvc.background import every
from syncsvc.errors import (
    IncorrectKeyError,
    InvalidArnError,
    InvalidCiphertextError,
    InvalidGrantIdError,
    KmsAccessDeniedError,
    KmsAlreadyExistsError,
    KmsConflictError,
    KmsInvalidSignatureError,
    KmsLimitExceededError,
    KmsNotFoundError,
    KmsValidationError,
    MalformedPolicyDocumentError,
)
from syncsvc.kms import material
from syncsvc.kms.material import MaterialError, RootKey
from syncsvc.kms.model import (
    ACCOUNT,
    DEFAULT_PENDING_WINDOW_DAYS,
    DEFAULT_ROTATION_DAYS,
    MasterKey,
    alias_arn,
    check_alias_name,
    check_key_spec,
    key_arn,
)
from syncsvc.kms.policy import DEFAULT_POLICY, Grant, Policy, allowed, parse_policy
from syncsvc.store.kms import Outcome, RedisKeyStore, StoredKey

log = logging.getLogger("syncsvc.kms")
SWEEP_SECONDS = 60.0
#: Reads and re-applications of a rule before a change gives up with ConflictException.
_ATTEMPTS = 5
_SWEEP_PAGE = 200
#: Every pattern is matched in full (``fullmatch``): ``$`` would also match before a final newline.
_ARN = re.compile(r"arn:aws[a-z-]*:kms:([a-z0-9-]*):([0-9]*):((?:key|alias)/.+)")
#: Grants per key (KMS's quota).
GRANT_QUOTA = 50_000
_GRANT_ID = re.compile(r"[0-9a-f]{64}")
_LOCKOUT = (
    "The new key policy will not allow you to update the key policy in the future "
    "(set BypassPolicyLockoutSafetyCheck to store it anyway)."
)


@dataclass(frozen=True, slots=True)
class DataKey:
    """A data key from GenerateDataKey: its plaintext (keep in memory only) and the blob that wraps it."""

    plaintext: bytes
    blob: bytes
    key_arn: str


@dataclass(frozen=True, slots=True)
class Alias:
    name: str
    key_id: str


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one sweep did: the ids of the keys it deleted and of those it rotated."""

    deleted: tuple[str, ...] = ()
    rotated: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Loaded:
    key: MasterKey
    versions: dict[int, bytes]
    revision: int
    policy: Policy
    grants: tuple[Grant, ...] = ()


Rule = Callable[[MasterKey], MasterKey]


class KeyService:
    """The key service. ``internal`` says whether syncsvc's internal keys exist in it: True for syncsvc's own use
    (envelope encryption, token signing, the sweep), False for :attr:`public`, the public KMS API's view."""

    def __init__(self, store: RedisKeyStore, root: RootKey, *, region: str, quota: int, internal: bool = True) -> None:
        self._store = store
        self._root = root
        self._region = region
        self._quota = quota
        self._internal = internal

    @functools.cached_property
    def public(self) -> KeyService:
        """The same keys without the internal ones (see the module docstring): what the KMS API works on."""
        if not self._internal:
            return self
        return KeyService(self._store, self._root, region=self._region, quota=self._quota, internal=False)

    # --- keys ---------------------------------------------------------------------------------------------------------

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
        now = _now_ms()
        key = MasterKey(
            key_id=str(uuid.uuid4()),
            region=self._region,
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
        wrapped = self._root.wrap(secret, key.key_id, 1)
        if not await self._store.create(key.key_id, key.stored(), wrapped, quota=self._quota):
            raise KmsLimitExceededError(f"This deployment already holds its limit of {self._quota} keys")
        return key

    async def key(self, key_ref: str) -> MasterKey:
        """The key ``key_ref`` names, in any state; NotFoundException when there is none."""
        return (await self._load(await self.resolve(key_ref))).key

    async def resolve(self, key_ref: str) -> str:
        """The key id of a key id, key ARN, alias name or alias ARN (not checked to exist). InvalidArnException for
        a malformed ARN; NotFoundException for an unknown alias or an ARN of another region or account."""
        name = key_ref
        if key_ref.startswith("arn:"):
            match = _ARN.fullmatch(key_ref)
            if match is None:
                raise InvalidArnError(f"Invalid arn {key_ref[:2048]}")
            region, account, name = match.groups()
            if (region, account) != (self._region, ACCOUNT):
                raise KmsNotFoundError(f"Key '{key_ref[:2048]}' does not exist")
        if name.startswith("alias/"):
            target = await self._store.alias_target(name)
            if target is None:
                raise KmsNotFoundError(f"Alias {key_ref[:2048]} is not found.")
            return target
        return name.removeprefix("key/") if key_ref.startswith("arn:") else name

    def key_arn(self, key_id: str) -> str:
        return key_arn(self._region, key_id)

    async def key_ids(self, *, after: str | None, limit: int) -> list[str]:
        """Every key id in order (ListKeys), ``limit`` at a time after ``after``; internal keys only where they
        exist (not in :attr:`public`)."""
        if self._internal:
            return await self._store.key_ids(after=after, limit=limit)
        shown: list[str] = []
        while len(shown) < limit:
            page = await self._store.key_ids(after=after, limit=limit)
            owners = await self._store.owners(page)
            shown += [key_id for key_id, owner in zip(page, owners, strict=True) if owner == ""]
            if len(page) < limit:
                break
            after = page[-1]
        return shown[:limit]

    async def enable(self, key_ref: str) -> MasterKey:
        return await self._change(key_ref, lambda key: key.enabled())

    async def disable(self, key_ref: str) -> MasterKey:
        return await self._change(key_ref, lambda key: key.disabled())

    async def enable_rotation(self, key_ref: str, period_days: int = DEFAULT_ROTATION_DAYS) -> MasterKey:
        now = _now_ms()
        return await self._change(key_ref, lambda key: key.with_rotation(period_days, now))

    async def disable_rotation(self, key_ref: str) -> MasterKey:
        return await self._change(key_ref, lambda key: key.without_rotation())

    async def rotate(self, key_ref: str) -> MasterKey:
        """A new backing key becomes current; every older one stays, so old ciphertexts still decrypt."""
        now = _now_ms()
        return await self._change(key_ref, lambda key: key.rotated(now))

    async def rotate_on_demand(self, key_ref: str) -> MasterKey:
        """RotateKeyOnDemand: as :meth:`rotate`, within KMS's quota, without moving the automatic schedule."""
        now = _now_ms()
        return await self._change(key_ref, lambda key: key.rotated_on_demand(now))

    async def schedule_deletion(self, key_ref: str, window_days: int = DEFAULT_PENDING_WINDOW_DAYS) -> MasterKey:
        """The key becomes PendingDeletion; the sweep deletes it, its material and its aliases after the window."""
        now = _now_ms()
        return await self._change(key_ref, lambda key: key.scheduled_for_deletion(window_days, now))

    async def cancel_deletion(self, key_ref: str) -> MasterKey:
        return await self._change(key_ref, lambda key: key.deletion_cancelled())

    async def discard(self, key_id: str) -> None:
        """Removes a key at once, material included: only for a key syncsvc made and never used (a pool's key made
        twice by instances racing); every other key goes through ScheduleKeyDeletion."""
        await self._store.delete(key_id)

    # --- aliases ------------------------------------------------------------------------------------------------------

    async def create_alias(self, alias: str, target_ref: str) -> None:
        """A new alias of a key (by key id or key ARN); AlreadyExistsException when the name is taken."""
        check_alias_name(alias)
        key = (await self._load(await self._key_id_only(target_ref, "TargetKeyId"))).key
        key.require_not_pending()
        outcome = await self._store.create_alias(alias, key.key_id)
        if outcome == "stale":
            raise KmsAlreadyExistsError(f"An alias with the name {alias_arn(self._region, alias)} already exists")
        if outcome == "gone":
            raise self._not_found(key.key_id)

    async def aliases(self, key_ref: str | None = None) -> list[Alias]:
        """Every alias by name, or those of one key (by key id or key ARN); those of keys that do not exist here
        (internal keys in :attr:`public`) left out."""
        every = await self._store.aliases()
        if key_ref is not None:
            key_id = (await self._load(await self._key_id_only(key_ref, "KeyId"))).key.key_id
            every = {name: target for name, target in every.items() if target == key_id}
        elif not self._internal and every:
            targets = sorted(set(every.values()))
            shown = {
                key_id for key_id, owner in zip(targets, await self._store.owners(targets), strict=True) if owner == ""
            }
            every = {name: target for name, target in every.items() if target in shown}
        return [Alias(name, target) for name, target in sorted(every.items())]

    def alias_arn(self, alias: str) -> str:
        return alias_arn(self._region, alias)

    # --- cryptography -------------------------------------------------------------------------------------------------

    async def seal(
        self, key_ref: str, plaintext: bytes, context: Mapping[str, str] | None = None
    ) -> tuple[bytes, MasterKey]:
        """(ciphertext blob, the key that sealed it) under the key's current backing key."""
        loaded = await self._usable(key_ref)
        key = loaded.key
        backing = self._root.unwrap(loaded.versions[key.current_version], key.key_id, key.current_version)
        return material.seal(backing, key.key_id, key.current_version, plaintext, context), key

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
        if key_ref is not None and await self.resolve(key_ref) != header.key_id:
            raise IncorrectKeyError("The key ID in the request does not identify the key that encrypted the ciphertext")
        loaded = await self._usable(header.key_id)
        key, wrapped = loaded.key, loaded.versions.get(header.version)
        if wrapped is None:
            raise InvalidCiphertextError("The ciphertext refers to a backing key this key does not have")
        try:
            return material.open_blob(self._root.unwrap(wrapped, key.key_id, header.version), blob, context), key
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
        plaintext = os.urandom(number_of_bytes)
        blob, key = await self.seal(key_ref, plaintext, context)
        return DataKey(plaintext, blob, key.arn)

    # --- asymmetric cryptography --------------------------------------------------------------------------------------

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

    async def _private(self, key_ref: str, check: Callable[[MasterKey], None]) -> tuple[MasterKey, bytes]:
        """A key that passes ``check`` and its private key (DER PKCS#8), unwrapped."""
        loaded = await self._load(await self.resolve(key_ref))
        key = loaded.key
        check(key)
        return key, self._root.unwrap(loaded.versions[key.current_version], key.key_id, key.current_version)

    # --- access: key policies and grants --------------------------------------------------------------------------

    async def authorize(
        self,
        key_ref: str,
        principal: str,
        operation: str,
        *,
        developer: bool,
        context: Mapping[str, str] | None = None,
    ) -> str:
        """The key id of ``key_ref`` when ``principal`` may perform ``operation`` on it (``syncsvc.kms.policy``);
        AccessDeniedException otherwise, NotFoundException (or InvalidArnException) when there is no such key."""
        loaded = await self._load(await self.resolve(key_ref))
        if not allowed(loaded.policy, loaded.grants, principal, operation, developer=developer, context=context):
            raise self.access_denied(principal, operation, key_ref)
        return loaded.key.key_id

    def access_denied(self, principal: str, operation: str, key_ref: str) -> KmsAccessDeniedError:
        """KMS's refusal of ``operation`` on ``key_ref``. It names the key as the caller did (its ARN), never what
        an alias resolved to, so that it reads the same whether the key exists or not."""
        return KmsAccessDeniedError(
            f"User: {principal} is not authorized to perform: kms:{operation} on resource: "
            f"{self.reference_arn(key_ref)} because no key policy or grant allows the kms:{operation} action"
        )

    def reference_arn(self, key_ref: str) -> str:
        """The ARN a key reference stands for, as written (not resolved, not checked to exist)."""
        if key_ref.startswith("arn:"):
            return key_ref
        return self.alias_arn(key_ref) if key_ref.startswith("alias/") else self.key_arn(key_ref)

    @staticmethod
    def key_of_blob(blob: bytes) -> str | None:
        """The key id a symmetric ciphertext names (None when it is not one of ours)."""
        try:
            return material.blob_header(blob).key_id
        except MaterialError:
            return None

    async def create_grant(
        self,
        key_ref: str,
        *,
        grantee: str,
        operations: Sequence[str],
        retiring: str | None = None,
        name: str | None = None,
        context_equals: Mapping[str, str] | None = None,
        context_subset: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> Grant:
        """A new grant on an Enabled key (DisabledException, KMSInvalidStateException), within :data:`GRANT_QUOTA`;
        with ``dry_run`` nothing is stored."""
        key = (await self._load(await self._key_id_only(key_ref, "KeyId"))).key
        key.require_enabled()
        grant = Grant(
            grant_id=secrets.token_hex(32),
            key_id=key.key_id,
            grantee=grantee,
            operations=tuple(dict.fromkeys(operations)),
            created_ms=_now_ms(),
            retiring=retiring,
            name=name,
            context_equals=None if context_equals is None else dict(context_equals),
            context_subset=None if context_subset is None else dict(context_subset),
        )
        if dry_run:
            return grant
        outcome = await self._store.add_grant(key.key_id, grant.grant_id, grant.stored(), quota=GRANT_QUOTA)
        if outcome == "stale":
            raise KmsLimitExceededError(f"{key.arn} has its limit of {GRANT_QUOTA} grants")
        if outcome == "gone":
            raise self._not_found(key.key_id)
        return grant

    async def grants(self, key_ref: str) -> list[Grant]:
        """Every grant of a key (by key id or key ARN), in grant id order."""
        loaded = await self._load(await self._key_id_only(key_ref, "KeyId"))
        return sorted(loaded.grants, key=lambda grant: grant.grant_id)

    async def grant(self, key_ref: str, grant_id: str) -> Grant:
        """One grant of a key; InvalidGrantIdException for a malformed id, NotFoundException for no such grant."""
        return (await self._grant(key_ref, grant_id))[0]

    async def _grant(self, key_ref: str, grant_id: str) -> tuple[Grant, _Loaded]:
        check_grant_id(grant_id)
        loaded = await self._load(await self._key_id_only(key_ref, "KeyId"))
        for grant in loaded.grants:
            if grant.grant_id == grant_id:
                return grant, loaded
        raise KmsNotFoundError(f"Grant ID {grant_id} not found for key {loaded.key.arn}")

    async def retire_grant(
        self, key_ref: str, grant_id: str, principal: str, *, developer: bool, dry_run: bool = False
    ) -> None:
        """RetireGrant: allowed to the grant's RetiringPrincipal, to its GranteePrincipal when the grant lists
        RetireGrant, and to a developer whom the key policy allows kms:RetireGrant (AccessDeniedException
        otherwise). With ``dry_run`` everything is checked and nothing retired.

        An identity gets the same AccessDeniedException for a key or grant that does not exist as for a grant it
        may not retire (as :func:`syncsvc.api.kms._authorize` does for keys): the answer tells nothing of what
        exists. A developer gets NotFoundException."""
        refused = KmsAccessDeniedError(
            f"User: {principal} is not authorized to perform: kms:RetireGrant on grant {grant_id}: only its "
            "retiring principal, its grantee (with RetireGrant) or the key's administrators may retire it"
        )
        try:
            grant, loaded = await self._grant(key_ref, grant_id)
        except KmsNotFoundError:
            if developer:
                raise
            raise refused from None
        may = (
            principal == grant.retiring
            or (principal == grant.grantee and "RetireGrant" in grant.operations)
            or (developer and loaded.policy.decide(principal, "kms:RetireGrant") == "allow")
        )
        if not may:
            raise refused
        if not dry_run:
            await self.remove_grant(grant.key_id, grant_id)

    async def remove_grant(self, key_ref: str, grant_id: str) -> None:
        """Deletes a grant at once (RevokeGrant, RetireGrant); NotFoundException when there is none."""
        check_grant_id(grant_id)
        key_id = await self._key_id_only(key_ref, "KeyId")
        await self._stored(key_id)  # NotFoundException for a key that is not here (e.g. internal, in public)
        outcome = await self._store.remove_grant(key_id, grant_id)
        if outcome == "gone":
            raise self._not_found(key_id)
        if outcome == "stale":
            raise KmsNotFoundError(f"Grant ID {grant_id} not found for key {self.key_arn(key_id)}")

    async def key_policy(self, key_ref: str) -> str:
        """The key policy document of a key (by key id or key ARN): as stored, or KMS's default policy."""
        stored = await self._stored(await self._key_id_only(key_ref, "KeyId"))
        return stored.policy or DEFAULT_POLICY

    @staticmethod
    def check_policy(document: str, principal: str, *, bypass_lockout: bool) -> None:
        """MalformedPolicyDocumentException for a document syncsvc does not evaluate, or one that would not let
        ``principal`` change it again (unless ``bypass_lockout``)."""
        policy = _policy_of(document)
        if not bypass_lockout and policy.decide(principal, "kms:PutKeyPolicy") != "allow":
            raise MalformedPolicyDocumentError(_LOCKOUT)

    async def put_key_policy(self, key_ref: str, document: str, principal: str, *, bypass_lockout: bool) -> None:
        self.check_policy(document, principal, bypass_lockout=bypass_lockout)
        key = (await self._load(await self._key_id_only(key_ref, "KeyId"))).key
        key.require_not_pending()
        if await self._store.put_policy(key.key_id, document) == "gone":
            raise self._not_found(key.key_id)

    # --- the sweep ----------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: :meth:`sweep` at once and every :data:`SWEEP_SECONDS`."""
        await every(SWEEP_SECONDS, "KMS sweep", self.sweep)

    async def sweep(self, now_ms: int | None = None) -> Sweep:
        """Deletes the keys whose deletion date is past (material and aliases gone for good) and rotates the keys
        whose automatic rotation is due, as of ``now_ms`` (default: now)."""
        now = _now_ms() if now_ms is None else now_ms
        deleted: list[str] = []
        rotated: list[str] = []
        after = None
        while page := await self._store.key_ids(after=after, limit=_SWEEP_PAGE):
            for key_id in page:
                done = await self._sweep_key(key_id, now)
                if done == "deleted":
                    deleted.append(key_id)
                elif done == "rotated":
                    rotated.append(key_id)
            after = page[-1]
        return Sweep(tuple(deleted), tuple(rotated))

    async def _sweep_key(self, key_id: str, now_ms: int) -> Literal["deleted", "rotated"] | None:
        stored = await self._store.load(key_id)
        if stored is None:
            return None
        loaded = self._loaded(stored)
        key = loaded.key
        if key.deletion_due(now_ms):
            if await self._store.delete(key_id, revision=loaded.revision) != "written":
                return None
            log.warning("KMS key %s deleted for good (owner %r): its ciphertexts are unreadable", key_id, key.owner)
            return "deleted"
        if key.rotation_due(now_ms) and await self._write(loaded, key.rotated(now_ms)) == "written":
            log.info("KMS key %s rotated automatically (every %d days)", key_id, key.rotation_period_days)
            return "rotated"
        return None

    # --- helpers ------------------------------------------------------------------------------------------------------

    async def _change(self, key_ref: str, rule: Rule) -> MasterKey:
        """Applies ``rule`` to the key as stored and stores the result (compare-and-set, re-read on a race)."""
        key_id = await self.resolve(key_ref)
        for _ in range(_ATTEMPTS):
            loaded = await self._load(key_id)
            changed = rule(loaded.key)
            outcome = await self._write(loaded, changed)
            if outcome == "written":
                return changed
            if outcome == "gone":
                raise self._not_found(key_id)
        raise KmsConflictError(f"{self.key_arn(key_id)} is being changed by other requests; retry")

    async def _write(self, loaded: _Loaded, changed: MasterKey) -> Outcome:
        """Stores ``changed`` over ``loaded``; a new current version gets new material."""
        new_version = None
        version = changed.current_version
        if version != loaded.key.current_version:
            new_version = (version, self._root.wrap(material.new_material(), changed.key_id, version))
        return await self._store.update(
            changed.key_id, changed.stored(), revision=loaded.revision, new_version=new_version
        )

    async def _key_id_only(self, key_ref: str, member: str) -> str:
        """The key id of a key id or key ARN (where KMS accepts no alias)."""
        if key_ref.startswith("alias/") or (key_ref.startswith("arn:") and ":alias/" in key_ref):
            raise KmsValidationError(f"{member} must be a key ID or key ARN, not an alias: {key_ref[:2048]}")
        return await self.resolve(key_ref)

    async def _load(self, key_id: str) -> _Loaded:
        return self._loaded(await self._stored(key_id))

    async def _stored(self, key_id: str) -> StoredKey:
        """The key as stored; NotFoundException when there is no such key here (an internal key is not in
        :attr:`public`: the same answer, word for word, as for a key id never made)."""
        stored = await self._store.load(key_id) if _looks_like_key_id(key_id) else None
        if stored is None or not (self._internal or stored.meta.get("owner", "") == ""):
            raise self._not_found(key_id)
        return stored

    @staticmethod
    def _loaded(stored: StoredKey) -> _Loaded:
        grants = tuple(Grant.from_stored(raw) for raw in stored.grants.values())
        policy = _policy_of(stored.policy or DEFAULT_POLICY)
        return _Loaded(MasterKey.from_stored(stored.meta), stored.versions, stored.revision, policy, grants)

    async def _usable(self, key_ref: str) -> _Loaded:
        """A key that can encrypt and decrypt now: Enabled and symmetric."""
        loaded = await self._load(await self.resolve(key_ref))
        loaded.key.require_usable()
        return loaded

    def _not_found(self, key_id: str) -> KmsNotFoundError:
        return KmsNotFoundError(f"Key '{self.key_arn(key_id[:64])}' does not exist")


@functools.lru_cache(maxsize=256)
def _policy_of(document: str) -> Policy:
    return parse_policy(document)


def check_grant_id(grant_id: str) -> None:
    """InvalidGrantIdException unless ``grant_id`` is one syncsvc could have made (64 lowercase hex digits)."""
    if not _GRANT_ID.fullmatch(grant_id):
        raise InvalidGrantIdError(f"Invalid grant ID {grant_id[:128]}")


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


def _looks_like_key_id(key_id: str) -> bool:
    try:
        return str(uuid.UUID(key_id)) == key_id
    except ValueError:
        return False


def _now_ms() -> int:
    return int(time.time() * 1000)
