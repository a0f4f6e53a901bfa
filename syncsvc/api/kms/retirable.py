"""ListRetirableGrants: the grants whose RetiringPrincipal is the one asked for, across every key of the public view.

Developer credentials (KMS checks its IAM permission, not a key policy); RetiringPrincipal is required and must be an
IAM or STS ARN (InvalidArnException otherwise); syncsvc has no AWS service principals (a RetiringServicePrincipal is
UnsupportedOperationException). Grants come in (key id, grant id) order, at most 100 a page as KMS's reference says;
the walk is ``syncsvc.kms.retirable``'s.
"""

from __future__ import annotations

from syncsvc.api.kms.inputs import ListRetirableGrantsIn
from syncsvc.api.kms.markers import Markers
from syncsvc.api.kms.outputs import GrantListEntry, ListGrantsOut, grant_entry
from syncsvc.api.operations import Call
from syncsvc.errors import KmsValidationError, UnsupportedOperationError
from syncsvc.kms.policy import check_principal
from syncsvc.kms.retirable import retirable_grants
from syncsvc.runtime import Services

_PAGE_MOST = 100


async def list_retirable_grants(services: Services, call: Call[ListRetirableGrantsIn]) -> ListGrantsOut:
    given, keys, markers = call.given, services.kms.public.keys, Markers(services.signer, "ListRetirableGrants")
    if given.RetiringServicePrincipal is not None:
        raise UnsupportedOperationError("syncsvc has no AWS service principals: use RetiringPrincipal")
    if given.RetiringPrincipal is None:
        raise KmsValidationError("You must specify either RetiringPrincipal or RetiringServicePrincipal")
    check_principal("RetiringPrincipal", given.RetiringPrincipal)
    after = markers.after(given.Marker)
    key_id, _, grant_id = (after or "").partition(" ")
    limit = min(given.Limit, _PAGE_MOST)
    grants = await retirable_grants(
        keys, given.RetiringPrincipal, after=(key_id, grant_id) if after else None, limit=limit + 1
    )
    listed: list[tuple[GrantListEntry, str]] = [
        (grant_entry(grant, keys.key_arn(grant.key_id)), f"{grant.key_id} {grant.grant_id}") for grant in grants
    ]
    entries, page = markers.page(listed, limit)
    return {"Grants": entries, **page}
