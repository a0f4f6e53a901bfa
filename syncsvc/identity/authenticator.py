"""Authenticator: who is calling. The one place that turns request credentials into a :class:`Caller`.

Accepted, in this order:

* ``Authorization: Bearer <token>`` — a token this service issued (GetOpenIdToken / developer identity): the caller
  is that identity, while the identity exists and the token still stands for it (``broker.token_opens``).
* SigV4 with ``X-Amz-Security-Token`` — temporary credentials from GetCredentialsForIdentity: the caller is that
  identity, while it exists at the generation the credentials were issued for (unlink and delete revoke them).
* SigV4 with a developer access key from ``SYNCSVC_DEVELOPER_CREDENTIALS``: the caller is a developer.
* Nothing at all, for the few operations AWS marks as unauthenticated (GetId, GetCredentialsForIdentity,
  GetOpenIdToken, UnlinkIdentity): the caller is anonymous.

What a caller may then do is decided where the data lives (``SyncService.authorize``, developer-only checks).

**Folded checks.** Checking that an identity still stands costs a Redis read. For the operations that check it
in their own script (``Operation.checks_standing``: UpdateRecords, ListRecords) admission is told ``folded`` and
reads nothing: temporary credentials carry their pool and generation; a Bearer token is decided on the identity's
profile as last read (a bounded cache, :data:`PROFILE_CACHE_ENTRIES`). The caller then carries a
:class:`~syncsvc.model.Standing` that the script compares with the profile, atomically with what it does. A profile
that changed since (a login linked or unlinked, the identity deleted or merged) makes the script write nothing; the
API then :meth:`forget`s the cached profile and admits the caller again the long way, so a revoked caller is refused
at once, on every instance, as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from syncsvc.clock import Clock
from syncsvc.config import Settings
from syncsvc.errors import NotAuthorizedError, UnrecognizedClientError
from syncsvc.identity import sigv4
from syncsvc.identity.broker import token_opens
from syncsvc.identity.credentials import CredentialAuthority
from syncsvc.identity.issuer import TokenIssuer
from syncsvc.model import ANONYMOUS, Caller, IdentityProfile, Standing
from syncsvc.store.identities import RedisIdentityStore

_INVALID = "The security token included in the request is invalid."
#: Identity profiles a folded Bearer admission decides on without reading (least recently used ones leave first).
PROFILE_CACHE_ENTRIES = 20_000


@dataclass(frozen=True, slots=True)
class Admission:
    """A caller admitted on its headers; for SigV4, the signature still to check against the whole request."""

    caller: Caller
    signature: sigv4.Signature | None = None
    secret: str = ""

    def verify(self, request: sigv4.SignedRequest) -> Caller:
        """The caller, once the signature covers exactly this request (body included)."""
        if self.signature is not None:
            sigv4.check(request, self.signature, self.secret)
        return self.caller


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        *,
        credentials: CredentialAuthority,
        identities: RedisIdentityStore,
        issuer: TokenIssuer,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._credentials = credentials
        self._identities = identities
        self._issuer = issuer
        self._profiles: OrderedDict[str, IdentityProfile] = OrderedDict()

    async def admit(
        self, request: sigv4.SignedRequest, *, service: str, anonymous_allowed: bool, folded: bool = False
    ) -> Admission:
        """Who the request's headers and query say is calling, checked before its body is read (``request.body`` is
        not looked at): a Bearer token in full; for SigV4 the header's shape, scope and time, a known developer key
        or a valid session token of a live identity. Only the signature, which covers the body, is left to
        :meth:`Admission.verify`. So a caller nobody knows never gets a body buffered. ``folded``: the operation
        checks the identity's standing itself (see the module)."""
        authorization = _header(request, "authorization")
        if authorization is not None and authorization[:7].lower() == "bearer ":
            return Admission(await self._bearer(authorization[7:].strip(), folded))
        if anonymous_allowed and authorization is None and "X-Amz-Algorithm=" not in request.raw_query:
            return Admission(ANONYMOUS)
        claim = sigv4.parse(
            request,
            service=service,
            region=self._settings.region,
            now=datetime.fromtimestamp(self._clock.now_ms() / 1000, UTC),
            max_skew_seconds=self._settings.clock_skew_seconds,
        )
        if claim.security_token is not None:
            caller = await self._temporary(claim, claim.security_token, folded)
            return Admission(caller, claim, self._credentials.secret_for(claim.access_key_id))
        secret = self._settings.developer_secret(claim.access_key_id)
        if secret is None:
            raise UnrecognizedClientError(_INVALID)
        return Admission(Caller.developer(claim.access_key_id), claim, secret)

    def forget(self, caller: Caller) -> None:
        """Drops the cached profile of ``caller``'s identity (its standing was found lost)."""
        if caller.identity_id is not None:
            self._profiles.pop(caller.identity_id, None)

    async def _temporary(self, claim: sigv4.Signature, token: str, folded: bool) -> Caller:
        claims = self._credentials.open(token, claim.access_key_id)
        if folded:
            standing = Standing(claims.identity_pool_id, claims.identity_id, claims.generation)
            return Caller.identity(claims.identity_pool_id, claims.identity_id, claim.access_key_id, standing)
        current = await self._identities.generation(claims.identity_id)
        if current != (claims.identity_pool_id, claims.generation):
            raise UnrecognizedClientError(_INVALID)  # the identity was deleted, or a login unlinked: revoked
        return Caller.identity(claims.identity_pool_id, claims.identity_id, claim.access_key_id)

    async def _bearer(self, token: str, folded: bool) -> Caller:
        issued = await self._issuer.verify(token)
        profile = self._profiles.get(issued.identity_id) if folded else None
        if profile is None or not _stands_for(issued.identity_pool_id, issued.amr, profile):
            profile = await self._identities.get(issued.identity_id)  # never refused on a cached profile alone
        if profile is None or profile.identity_pool_id != issued.identity_pool_id:
            raise NotAuthorizedError("Invalid identity token: the identity no longer exists")
        if not token_opens(issued.amr, profile):
            raise NotAuthorizedError("Invalid identity token: the identity's logins changed since it was issued")
        if not folded:
            return Caller.identity(issued.identity_pool_id, issued.identity_id)
        self._remember(profile)
        standing = Standing(profile.identity_pool_id, profile.identity_id, profile.generation, profile.revision)
        return Caller.identity(issued.identity_pool_id, issued.identity_id, standing=standing)

    def _remember(self, profile: IdentityProfile) -> None:
        self._profiles[profile.identity_id] = profile
        self._profiles.move_to_end(profile.identity_id)
        if len(self._profiles) > PROFILE_CACHE_ENTRIES:
            self._profiles.popitem(last=False)


def _stands_for(identity_pool_id: str, amr: Sequence[str], profile: IdentityProfile) -> bool:
    return profile.identity_pool_id == identity_pool_id and token_opens(amr, profile)


def _header(request: sigv4.SignedRequest, name: str) -> str | None:
    for key, value in request.headers:
        if key.lower() == name:
            return value
    return None
