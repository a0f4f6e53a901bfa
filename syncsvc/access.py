"""Who may call what: every authorization rule of the service, in one place.

Two questions, two answers:

* **May this caller call this operation at all?** Each wire operation declares one :class:`Access` rule (the
  operation tables in ``syncsvc.api``); :func:`admits` decides it before the request body is even parsed.
* **May this caller touch this identity's data?** :class:`DataAccess` (the data rule of Cognito Sync and push sync):
  a developer may act on any identity of an existing pool, an identity only on itself.

What a KMS key's policy and grants allow is the key's own business: ``syncsvc.kms.access`` evaluates it for every
operation on a key, once the operation's rule admitted the caller (developers pass when the key policy allows them,
identities only through a grant).
"""

from __future__ import annotations

from enum import StrEnum

from syncsvc.errors import NotAuthorizedError
from syncsvc.identity.pools import PoolDirectory
from syncsvc.model import Caller, CallerKind, check_identity_id
from syncsvc.rediskeys import IdentityKeyspace


class Access(StrEnum):
    """Who may call an operation."""

    #: Anyone, signed or not (AWS marks the operation ``authtype: none``: GetId, GetCredentialsForIdentity, …).
    ANONYMOUS = "anonymous"
    #: Any signed caller; the use-case then holds an identity to its own data (:class:`DataAccess`).
    CALLER = "caller"
    #: Developers; identities too, when a KMS grant allows it (checked per key by ``syncsvc.kms.access``).
    GRANTED = "granted"
    #: Developer credentials only.
    DEVELOPER = "developer"

    @property
    def needs_signature(self) -> bool:
        return self is not Access.ANONYMOUS


def admits(access: Access, caller: Caller) -> bool:
    """Whether ``caller`` may call an operation whose rule is ``access`` (an anonymous caller has no signature)."""
    if access is Access.ANONYMOUS or caller.is_developer:
        return True
    return access in (Access.CALLER, Access.GRANTED) and caller.kind is CallerKind.IDENTITY


class DataAccess:
    """The data rule: whose datasets, records, devices and subscriptions a caller may act on."""

    def __init__(self, pools: PoolDirectory, *, shards: int) -> None:
        self._pools = pools
        self._shards = shards

    async def authorize(self, caller: Caller, pool_id: str, identity_id: str) -> IdentityKeyspace:
        """Checks that the caller may act on the identity and that the pool exists; returns the identity's keys.

        A developer may act on any identity of an existing pool; an identity only on itself. The caller is checked
        *before* the pool, so an identity learns nothing about other pools or identities: every foreign target
        answers the same NotAuthorizedException."""
        check_identity_id(identity_id)
        if not caller.is_developer and (caller.identity_id, caller.identity_pool_id) != (identity_id, pool_id):
            raise NotAuthorizedError("Access to this identity's data is not allowed")
        await self._pools.require(pool_id)
        return IdentityKeyspace.of(pool_id, identity_id, self._shards)
