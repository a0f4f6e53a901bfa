"""The KMS operations on what a key allows: CreateGrant, ListGrants, RetireGrant, RevokeGrant, GetKeyPolicy and
PutKeyPolicy.

Each checks the caller against the key (``Services.key_access``; RetireGrant's rule is the grant's own,
``KeyPermissions.retire_grant``), calls ``KeyService.public.permissions`` and shapes KMS's answer. A GrantToken is the
key id and grant id sealed by ``KeyAccess``. syncsvc has no AWS service principals (UnsupportedOperationException)
and a key has one policy, named ``default``. The writes take ``dry_run`` and store nothing when DryRun is set.
"""

from __future__ import annotations

from syncsvc.api.kms.inputs import (
    CreateGrantIn,
    GetKeyPolicyIn,
    GrantConstraints,
    ListGrantsIn,
    PutKeyPolicyIn,
    RetireGrantIn,
    RevokeGrantIn,
)
from syncsvc.api.kms.markers import Markers
from syncsvc.api.kms.outputs import (
    CreateGrantOut,
    Empty,
    GrantListEntry,
    KeyPolicyOut,
    ListGrantsOut,
    grant_entry,
)
from syncsvc.api.operations import Call
from syncsvc.errors import KmsNotFoundError, KmsValidationError, UnsupportedOperationError
from syncsvc.kms.permissions import check_grant_id
from syncsvc.kms.policy import check_principal, principal_of
from syncsvc.runtime import Services

# --- grants -----------------------------------------------------------------------------------------------------------


async def create_grant(services: Services, call: Call[CreateGrantIn]) -> CreateGrantOut:
    given = call.given
    if given.GranteeServicePrincipal is not None or given.RetiringServicePrincipal is not None:
        raise UnsupportedOperationError("syncsvc has no AWS service principals: use GranteePrincipal")
    if given.GranteePrincipal is None:
        raise KmsValidationError("GranteePrincipal is required")
    check_principal("GranteePrincipal", given.GranteePrincipal)
    check_principal("RetiringPrincipal", given.RetiringPrincipal)
    await services.key_access.authorize(call.caller, "CreateGrant", given.KeyId, grant_tokens=given.GrantTokens)
    constraints = given.Constraints or GrantConstraints()
    grant = await services.kms.public.permissions.create_grant(
        given.KeyId,
        grantee=given.GranteePrincipal,
        operations=given.Operations,
        retiring=given.RetiringPrincipal,
        name=given.Name,
        context_equals=constraints.EncryptionContextEquals,
        context_subset=constraints.EncryptionContextSubset,
        dry_run=given.DryRun,
    )
    return {"GrantToken": services.key_access.grant_token(grant), "GrantId": grant.grant_id}


async def list_grants(services: Services, call: Call[ListGrantsIn]) -> ListGrantsOut:
    """In grant id order; GrantId and GranteePrincipal filter."""
    given, kms, markers = call.given, services.kms.public, Markers(services.signer, "ListGrants")
    if given.GranteeServicePrincipal is not None:
        raise UnsupportedOperationError("syncsvc has no AWS service principals")
    if given.GrantId is not None:
        check_grant_id(given.GrantId)
    await services.key_access.authorize(call.caller, "ListGrants", given.KeyId)
    after = markers.after(given.Marker)
    grants = [
        grant
        for grant in await kms.permissions.grants(given.KeyId)
        if (after is None or grant.grant_id > after)
        and given.GrantId in (None, grant.grant_id)
        and given.GranteePrincipal in (None, grant.grantee)
    ]
    listed: list[tuple[GrantListEntry, str]] = [
        (grant_entry(grant, kms.keys.key_arn(grant.key_id)), grant.grant_id) for grant in grants[: given.Limit + 1]
    ]
    entries, page = markers.page(listed, given.Limit)
    return {"Grants": entries, **page}


async def retire_grant(services: Services, call: Call[RetireGrantIn]) -> Empty:
    """By GrantToken, or by KeyId and GrantId (``KeyPermissions.retire_grant`` says who may)."""
    given = call.given
    key_ref, grant_id = services.key_access.named_grant(given.GrantToken, given.KeyId, given.GrantId)
    await services.kms.public.permissions.retire_grant(key_ref, grant_id, call.caller, dry_run=given.DryRun)
    return {}


async def revoke_grant(services: Services, call: Call[RevokeGrantIn]) -> Empty:
    given = call.given
    await services.key_access.authorize(call.caller, "RevokeGrant", given.KeyId)
    await services.kms.public.permissions.revoke_grant(given.KeyId, given.GrantId, dry_run=given.DryRun)
    return {}


# --- key policies -----------------------------------------------------------------------------------------------------


def _policy_name(name: str) -> None:
    if name != "default":
        raise KmsNotFoundError(f"Policy {name[:128]} does not exist: a key has only the policy named default")


async def get_key_policy(services: Services, call: Call[GetKeyPolicyIn]) -> KeyPolicyOut:
    given = call.given
    await services.key_access.authorize(call.caller, "GetKeyPolicy", given.KeyId)
    _policy_name(given.PolicyName)
    return {"Policy": await services.kms.public.permissions.key_policy(given.KeyId), "PolicyName": "default"}


async def put_key_policy(services: Services, call: Call[PutKeyPolicyIn]) -> Empty:
    given = call.given
    await services.key_access.authorize(call.caller, "PutKeyPolicy", given.KeyId)
    _policy_name(given.PolicyName)
    await services.kms.public.permissions.put_key_policy(
        given.KeyId, given.Policy, principal_of(call.caller), bypass_lockout=given.BypassPolicyLockoutSafetyCheck
    )
    return {}
