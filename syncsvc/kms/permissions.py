"""Who may use a key, as stored with it: its grants and its key policy, and the decision they make together.

The policy and grants live in the key's own hash, so the one HGETALL that reads a key (``syncsvc.kms.keystore``)
reads them too, and a grant created, retired or revoked through any instance counts at the next request (no
eventual consistency). The rules are ``syncsvc.kms.policy``'s; what a caller of the API may do on top of them is
``syncsvc.kms.access``'s. It touches the key store through the core only.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence

from syncsvc.errors import (
    InvalidGrantIdError,
    KmsAccessDeniedError,
    KmsLimitExceededError,
    KmsNotFoundError,
    MalformedPolicyDocumentError,
)
from syncsvc.kms.keystore import LoadedKey, MasterKeys
from syncsvc.kms.policy import DEFAULT_POLICY, Grant, allowed, parse_policy, principal_of
from syncsvc.model import Caller

#: Grants per key (KMS's quota).
GRANT_QUOTA = 50_000
#: Matched in full (``fullmatch``): ``$`` would also match before a final newline.
_GRANT_ID = re.compile(r"[0-9a-f]{64}")
_LOCKOUT = (
    "The new key policy will not allow you to update the key policy in the future "
    "(set BypassPolicyLockoutSafetyCheck to store it anyway)."
)


def check_grant_id(grant_id: str) -> None:
    """InvalidGrantIdException unless ``grant_id`` is one syncsvc could have made (64 lowercase hex digits)."""
    if not _GRANT_ID.fullmatch(grant_id):
        raise InvalidGrantIdError(f"Invalid grant ID {grant_id[:128]}")


class KeyPermissions:
    """The grants and key policies of the keys of one view, and the decisions they make."""

    def __init__(self, keys: MasterKeys) -> None:
        self._keys = keys

    # --- the decision -------------------------------------------------------------------------------------------------

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
        loaded = await self._keys.load(await self._keys.resolve(key_ref))
        if not allowed(loaded.policy, loaded.grants, principal, operation, developer=developer, context=context):
            raise self.access_denied(principal, operation, key_ref)
        return loaded.key.key_id

    def access_denied(self, principal: str, operation: str, key_ref: str) -> KmsAccessDeniedError:
        """KMS's refusal of ``operation`` on ``key_ref``. It names the key as the caller did (its ARN), never what
        an alias resolved to, so that it reads the same whether the key exists or not."""
        return KmsAccessDeniedError(
            f"User: {principal} is not authorized to perform: kms:{operation} on resource: "
            f"{self._keys.reference_arn(key_ref)} because no key policy or grant allows the kms:{operation} action"
        )

    # --- grants -------------------------------------------------------------------------------------------------------

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
        key = (await self._keys.load(await self._keys.key_id_only(key_ref, "KeyId"))).key
        key.require_enabled()
        grant = Grant(
            grant_id=secrets.token_hex(32),
            key_id=key.key_id,
            grantee=grantee,
            operations=tuple(dict.fromkeys(operations)),
            created_ms=self._keys.clock.now_ms(),
            retiring=retiring,
            name=name,
            context_equals=None if context_equals is None else dict(context_equals),
            context_subset=None if context_subset is None else dict(context_subset),
        )
        if dry_run:
            return grant
        outcome = await self._keys.store.add_grant(key.key_id, grant.grant_id, grant.stored(), quota=GRANT_QUOTA)
        if outcome == "stale":
            raise KmsLimitExceededError(f"{key.arn} has its limit of {GRANT_QUOTA} grants")
        if outcome == "gone":
            raise self._keys.not_found(key.key_id)
        return grant

    async def grants(self, key_ref: str) -> list[Grant]:
        """Every grant of a key (by key id or key ARN), in grant id order."""
        loaded = await self._keys.load(await self._keys.key_id_only(key_ref, "KeyId"))
        return sorted(loaded.grants, key=lambda grant: grant.grant_id)

    async def grant(self, key_ref: str, grant_id: str) -> tuple[Grant, LoadedKey]:
        """One grant of a key, and the key; InvalidGrantIdException for a malformed id, NotFoundException for no
        such grant."""
        check_grant_id(grant_id)
        loaded = await self._keys.load(await self._keys.key_id_only(key_ref, "KeyId"))
        for grant in loaded.grants:
            if grant.grant_id == grant_id:
                return grant, loaded
        raise KmsNotFoundError(f"Grant ID {grant_id} not found for key {loaded.key.arn}")

    async def retire_grant(self, key_ref: str, grant_id: str, caller: Caller, *, dry_run: bool = False) -> None:
        """RetireGrant: allowed to the grant's RetiringPrincipal, to its GranteePrincipal when the grant lists
        RetireGrant, and to a developer whom the key policy allows kms:RetireGrant (AccessDeniedException
        otherwise). With ``dry_run`` everything is checked and nothing retired.

        An identity gets the same AccessDeniedException for a key or grant that does not exist as for a grant it
        may not retire (as ``KeyAccess.authorize`` does for keys): the answer tells nothing of what exists. A
        developer gets NotFoundException."""
        principal = principal_of(caller)
        refused = KmsAccessDeniedError(
            f"User: {principal} is not authorized to perform: kms:RetireGrant on grant {grant_id}: only its "
            "retiring principal, its grantee (with RetireGrant) or the key's administrators may retire it"
        )
        try:
            grant, loaded = await self.grant(key_ref, grant_id)
        except KmsNotFoundError:
            if caller.is_developer:
                raise
            raise refused from None
        may = (
            principal == grant.retiring
            or (principal == grant.grantee and "RetireGrant" in grant.operations)
            or (caller.is_developer and loaded.policy.decide(principal, "kms:RetireGrant") == "allow")
        )
        if not may:
            raise refused
        if not dry_run:
            await self._remove_grant(grant.key_id, grant_id)

    async def revoke_grant(self, key_ref: str, grant_id: str, *, dry_run: bool = False) -> None:
        """RevokeGrant: deletes a grant at once; NotFoundException when there is none. With ``dry_run`` the grant is
        looked up and nothing revoked."""
        if dry_run:
            await self.grant(key_ref, grant_id)
        else:
            await self._remove_grant(key_ref, grant_id)

    async def _remove_grant(self, key_ref: str, grant_id: str) -> None:
        check_grant_id(grant_id)
        key_id = await self._keys.key_id_only(key_ref, "KeyId")
        await self._keys.stored(key_id)  # NotFoundException for a key that is not here (e.g. internal, in public)
        outcome = await self._keys.store.remove_grant(key_id, grant_id)
        if outcome == "gone":
            raise self._keys.not_found(key_id)
        if outcome == "stale":
            raise KmsNotFoundError(f"Grant ID {grant_id} not found for key {self._keys.key_arn(key_id)}")

    # --- key policies -------------------------------------------------------------------------------------------------

    async def key_policy(self, key_ref: str) -> str:
        """The key policy document of a key (by key id or key ARN): as stored, or KMS's default policy."""
        stored = await self._keys.stored(await self._keys.key_id_only(key_ref, "KeyId"))
        return stored.policy or DEFAULT_POLICY

    @staticmethod
    def check_policy(document: str, principal: str, *, bypass_lockout: bool) -> None:
        """MalformedPolicyDocumentException for a document syncsvc does not evaluate, or one that would not let
        ``principal`` change it again (unless ``bypass_lockout``)."""
        policy = parse_policy(document)
        if not bypass_lockout and policy.decide(principal, "kms:PutKeyPolicy") != "allow":
            raise MalformedPolicyDocumentError(_LOCKOUT)

    async def put_key_policy(self, key_ref: str, document: str, principal: str, *, bypass_lockout: bool) -> None:
        self.check_policy(document, principal, bypass_lockout=bypass_lockout)
        key = (await self._keys.load(await self._keys.key_id_only(key_ref, "KeyId"))).key
        key.require_not_pending()
        if await self._keys.store.put_policy(key.key_id, document) == "gone":
            raise self._keys.not_found(key.key_id)
