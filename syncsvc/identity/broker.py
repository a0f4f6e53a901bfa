"""IdentityBroker: the Cognito Identity use-cases — identities, logins, OpenID tokens and temporary credentials.

Who may call which operation is decided by the API's operation table (developer-only operations); this module
decides what a login proves.

Logins arrive as a Cognito ``Logins`` map ``{provider: token}``. A provider is usable in a pool when it is in the
pool's ``SupportedLoginProviders`` (the value is the app client id, or several separated by commas, accepted as the
token's audience) or when one of the pool's ``OpenIdConnectProviderARNs`` ends with ``oidc-provider/<provider>``;
in both cases the provider must also be configured (``SYNCSVC_OIDC_PROVIDERS``). The provider
``cognito-identity.amazonaws.com`` takes a token this service issued (the "enhanced" developer flow). A user pool
of this service (``cognito-idp.<region>.amazonaws.com/<userPoolId>``) is usable when one of the pool's
``CognitoIdentityProviders`` names it: its ID tokens, for one of the listed ClientIds, are checked by the
:class:`UserPoolLogins` verifier the composition root hands in (the subject is the user's ``sub``). The pool's
``DeveloperProviderName`` is reserved to developer calls (GetOpenIdTokenForDeveloperIdentity).

The same login always maps to the same identity; several logins of one call link to one identity; a login that
already belongs to another identity is a ResourceConflictException — except for a guest. A guest (unauthenticated
identity) that signs in with a login another identity already has is merged into that identity, as Cognito does
("Switching unauthenticated users to authenticated users"): its datasets are copied there as ``<name>.<guest id>``
(Cognito Sync's MergedDatasetNames), the call answers the other identity's IdentityId (the SDKs' identity-changed
listener), and the guest is deleted, which revokes its credentials and tokens. Each step is idempotent, so a merge
interrupted by a crash completes when the device retries; a marker left where the guest was (``rediskeys.merged``)
lets a retry with the old id find the identity it became. Two authenticated identities are never merged implicitly
(ResourceConflictException; MergeDeveloperIdentities is the explicit way).

A token this service issued stands for the login it was issued for (its ``amr``) only while that login stays linked,
and a guest's token only while the identity is a guest (:func:`token_opens`): unlinking a login revokes its tokens
as well as the identity's credentials. An identity whose every login was unlinked is no longer accessible, not even
as a guest (:func:`abandoned`).

(About 480 lines on purpose: every operation here goes through one core that verifies logins and links, merges or
unlinks them (``_verify_logins``, ``_link``, ``_merge_guest``, ``_unlink``); splitting the operations off would split
that core.)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from syncsvc import metrics
from syncsvc.clock import Clock
from syncsvc.errors import (
    InvalidParameterError,
    NotAuthorizedError,
    RateExceededError,
    ResourceConflictError,
    ResourceNotFoundError,
)
from syncsvc.identity.credentials import CredentialAuthority, TemporaryCredentials
from syncsvc.identity.issuer import TokenIssuer
from syncsvc.identity.oidc import OidcVerifier
from syncsvc.identity.pools import CognitoIdentityProvider, IdentityPool, PoolDirectory
from syncsvc.model import IdentityProfile, Login
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store import RedisStore
from syncsvc.store.identities import RedisIdentityStore
from syncsvc.store.rates import Rate, RedisRates
from syncsvc.sync import SyncService

log = logging.getLogger("syncsvc.identity")

COGNITO_PROVIDER = "cognito-identity.amazonaws.com"
OPENID_TOKEN_SECONDS = 600  # GetOpenIdToken: 10 minutes (reference §3)
DEVELOPER_TOKEN_SECONDS = 900  # GetOpenIdTokenForDeveloperIdentity default: 15 minutes
_NO_MATCH = "Logins don't match. Please include at least one valid login for this identity or identity pool."
_NO_GUESTS = "Unauthenticated access is not supported for this identity pool."
_FIRST_GENERATION = 1  # a new identity's generation (create_identity.lua)
_ABANDONED = "Every login of this identity was unlinked: it is no longer accessible."
_STALE_LOGIN = "Invalid login token: the identity's logins changed since it was issued"
_TAKEN = "These logins are already linked to different identities"
#: How long a merged identity's id keeps leading to the identity it was merged into (a device that retries a sign-in
#: after a timeout, or comes back online with the old id cached). Afterwards the old id is simply not found.
MERGED_MARKER_SECONDS = 90 * 24 * 3600
_MAX_MERGE_HOPS = 8  # an identity merged into one that was itself merged later, and so on


class UserPoolLogins(Protocol):
    """Verifies a user pool's ID token given in ``Logins`` under the pool's provider name
    (``cognito-idp.<region>.amazonaws.com/<userPoolId>``, listed in the identity pool's ``CognitoIdentityProviders``):
    returns its subject (the user's ``sub``), or raises NotAuthorizedError. The token's ``aud`` must be one of
    ``client_ids``; with ``server_side_check`` the user must still be enabled and not signed out since. Built by the
    composition root from ``syncsvc.userpools`` (a sibling package this one may not import)."""

    async def verify(self, provider: str, token: str, client_ids: Sequence[str], *, server_side_check: bool) -> str: ...


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Calls per second per pool (0 = unlimited). Cognito's quotas: GetId 25, token operations 200."""

    get_id: int = 25
    tokens: int = 200


class IdentityBroker:
    def __init__(
        self,
        *,
        identities: RedisIdentityStore,
        store: RedisStore,
        pools: PoolDirectory,
        sync: SyncService,
        oidc: OidcVerifier,
        issuer: TokenIssuer,
        credentials: CredentialAuthority,
        region: str,
        shards: int,
        rates: RateLimits,
        counters: RedisRates,
        clock: Clock,
        user_pools: UserPoolLogins | None = None,
    ) -> None:
        self._identities = identities
        self._store = store
        self._pools = pools
        self._sync = sync
        self._oidc = oidc
        self._issuer = issuer
        self._credentials = credentials
        self._region = region
        self._shards = shards
        self._rates = rates
        self._counters = counters
        self._clock = clock
        self._user_pools = user_pools

    # --- GetId, credentials and tokens --------------------------------------------------------------------------------

    async def get_id(self, identity_pool_id: str, logins: Mapping[str, str]) -> str:
        pool = await self._pools.require(identity_pool_id)
        await self._limit(pool, "GetId", self._rates.get_id)
        verified = await self._verify_logins(pool, logins)
        if not verified:
            if not pool.AllowUnauthenticatedIdentities:
                raise NotAuthorizedError(_NO_GUESTS)
            identity_id = self._new_id()
            await self._identities.create(identity_id, pool.IdentityPoolId, (), self._clock.now_ms())
            return identity_id
        return await self._link(pool, verified)

    async def credentials_for(
        self, identity_id: str, logins: Mapping[str, str]
    ) -> tuple[IdentityProfile, TemporaryCredentials]:
        """GetCredentialsForIdentity."""
        profile = await self._authorize(identity_id, logins)
        return profile, self._credentials.issue(profile)

    async def open_id_token(self, identity_id: str, logins: Mapping[str, str]) -> tuple[str, str]:
        """GetOpenIdToken: (identity id, a 10-minute token for it) — the id differs from the one given when a guest
        was merged into the identity its logins belong to."""
        profile = await self._authorize(identity_id, logins)
        return profile.identity_id, await self._token(profile, OPENID_TOKEN_SECONDS)

    async def developer_token(
        self,
        identity_pool_id: str,
        identity_id: str | None,
        logins: Mapping[str, str],
        duration_seconds: int | None,
    ) -> tuple[str, str]:
        """GetOpenIdTokenForDeveloperIdentity: (identity id, token) for the developer's own user id."""
        pool = await self._pools.require(identity_pool_id)
        await self._limit(pool, "Tokens", self._rates.tokens)
        provider = _developer_provider(pool)
        if provider not in logins:
            raise InvalidParameterError(f"Logins must include the pool's developer provider '{provider}'")
        others = {name: token for name, token in logins.items() if name != provider}
        verified = [(provider, logins[provider]), *await self._verify_logins(pool, others)]
        if identity_id is not None:
            identity_id = (await self._current(identity_id, pool)).identity_id
        linked = await self._link(pool, verified, identity_id=identity_id)
        profile = await self._profile_in(pool, linked)
        return linked, await self._token(profile, duration_seconds or DEVELOPER_TOKEN_SECONDS, login=verified[0])

    # --- developer identities -----------------------------------------------------------------------------------------

    async def lookup_developer_identity(
        self, identity_pool_id: str, identity_id: str | None, user_identifier: str | None
    ) -> tuple[str, list[str]]:
        """LookupDeveloperIdentity: (identity id, every developer user identifier linked to it)."""
        pool = await self._pools.require(identity_pool_id)
        provider = _developer_provider(pool)
        if identity_id is None and user_identifier is None:
            raise InvalidParameterError("Give IdentityId or DeveloperUserIdentifier")
        if user_identifier is not None:
            (owner,) = await self._identities.owners(pool.IdentityPoolId, [(provider, user_identifier)])
            if owner is None:
                raise ResourceNotFoundError(f"Developer user '{user_identifier}' is not linked to an identity")
            if identity_id is not None and identity_id != owner:
                raise ResourceConflictError("DeveloperUserIdentifier is linked to another identity")
            identity_id = owner
        assert identity_id is not None
        profile = await self._profile_in(pool, identity_id)
        return identity_id, [subject for subject in profile.subjects(provider) if subject]

    async def merge_developer_identities(
        self, identity_pool_id: str, provider: str, source_user: str, destination_user: str
    ) -> str:
        """MergeDeveloperIdentities: the source user's identity (logins and datasets) joins the destination's.
        Each source dataset arrives as ``<name>.<source identity id>`` (Cognito's MergedDatasetNames); then the source
        identity is deleted."""
        pool = await self._pools.require(identity_pool_id)
        if provider != _developer_provider(pool):
            raise InvalidParameterError(f"DeveloperProviderName '{provider}' is not this pool's developer provider")
        source_id, destination_id = await self._identities.owners(
            pool.IdentityPoolId, [(provider, source_user), (provider, destination_user)]
        )
        if source_id is None:
            raise ResourceNotFoundError(f"Developer user '{source_user}' is not linked to an identity")
        if destination_id is None:
            destination_id = await self._link(pool, [(provider, destination_user)])
        if source_id == destination_id:
            return destination_id
        source = await self._profile_in(pool, source_id)
        await self._profile_in(pool, destination_id)
        await self._sync.merge_datasets(pool.IdentityPoolId, source_id, destination_id)
        for login in source.logins:
            await self._identities.move(pool.IdentityPoolId, login, owner=source_id, to=destination_id)
        await self._identities.change_logins(destination_id, add=source.logins, now_ms=self._clock.now_ms())
        await self._delete(source, merged_into=destination_id)
        return destination_id

    async def unlink_developer_identity(
        self, identity_pool_id: str, identity_id: str, provider: str, user_identifier: str
    ) -> None:
        pool = await self._pools.require(identity_pool_id)
        profile = await self._profile_in(pool, identity_id)
        login = (provider, user_identifier)
        if login not in profile.logins:
            raise ResourceNotFoundError(f"Developer user '{user_identifier}' is not linked to identity {identity_id}")
        await self._unlink(profile, [login])

    async def unlink_identity(
        self, identity_id: str, logins: Mapping[str, str], providers_to_remove: Sequence[str]
    ) -> None:
        """UnlinkIdentity: the caller proves the identity with its logins, then removes whole providers."""
        profile = await self._authorize(identity_id, logins)
        removed = [login for login in profile.logins if login[0] in set(providers_to_remove)]
        await self._unlink(profile, removed)

    # --- administration -------------------------------------------------------------------------------------------

    async def owner_of(self, identity_pool_id: str, provider: str, subject: str) -> str | None:
        """The identity of a pool a login (provider + subject) is linked to, if any (the console's "find by login")."""
        pool = await self._pools.require(identity_pool_id)
        (owner,) = await self._identities.owners(pool.IdentityPoolId, [(provider, subject)])
        return owner

    async def describe(self, identity_id: str) -> IdentityProfile:
        profile = await self._identities.get(identity_id)
        if profile is None:
            raise ResourceNotFoundError(f"Identity '{identity_id}' not found.")
        return profile

    async def page(
        self, identity_pool_id: str, *, shard: int, after: str | None, limit: int
    ) -> tuple[list[IdentityProfile], tuple[int, str] | None]:
        """ListIdentities: up to ``limit`` registered identities from (shard, after); and where the next page starts."""
        pool = await self._pools.require(identity_pool_id)
        found: list[IdentityProfile] = []
        while shard < self._shards and len(found) < limit:
            ids = await self._identities.members(pool.IdentityPoolId, shard, after=after, limit=limit - len(found))
            if not ids:
                shard, after = shard + 1, None
                continue
            after = ids[-1]
            found += [p for p in await self._identities.profiles(ids) if p is not None]
        more = shard < self._shards and after is not None
        return found, ((shard, after) if more and after is not None else None)

    async def delete_pool(self, identity_pool_id: str) -> None:
        """DeleteIdentityPool: the pool, then each of its identities whole (profile, logins, data)."""

        async def purge(identity_id: str) -> None:
            profile = await self._identities.get(identity_id)
            if profile is not None and profile.identity_pool_id == identity_pool_id:
                await self._delete(profile)
            else:  # data stored by a developer for an identity never registered
                await self._store.purge_identity(IdentityKeyspace.of(identity_pool_id, identity_id, self._shards))

        await self._pools.delete(identity_pool_id, purge_identity=purge)

    async def delete_identities(self, identity_ids: Sequence[str]) -> list[str]:
        """DeleteIdentities: profile, logins and data. Returns the ids that could not be processed."""
        failed: list[str] = []
        for identity_id in identity_ids:
            profile = await self._identities.get(identity_id)
            if profile is None:
                continue  # already gone: deleting is idempotent
            try:
                await self._delete(profile)
            except Exception:
                log.exception("DeleteIdentities: %s could not be deleted", identity_id)
                failed.append(identity_id)
        return failed

    # --- the rules ------------------------------------------------------------------------------------------------

    async def _authorize(self, identity_id: str, logins: Mapping[str, str]) -> IdentityProfile:
        """The identity, when the logins given prove it (or it is a guest of a pool that allows guests); links any
        new verified logins to it, or merges a guest into the identity its logins belong to (then that identity is
        the one answered). An id merged away earlier stands for the identity it was merged into."""
        profile = await self._current(identity_id)
        pool = await self._pools.require(profile.identity_pool_id)
        await self._limit(pool, "Tokens", self._rates.tokens)
        if abandoned(profile):
            raise NotAuthorizedError(_ABANDONED)
        verified = await self._verify_logins(pool, logins, identity=profile)
        if profile.authenticated:
            if not any(login in profile.logins or login[0] == COGNITO_PROVIDER for login in verified):
                raise NotAuthorizedError(_NO_MATCH)
        elif not pool.AllowUnauthenticatedIdentities:
            raise NotAuthorizedError(_NO_GUESTS)
        fresh = [login for login in verified if login not in profile.logins and login[0] != COGNITO_PROVIDER]
        if fresh:
            linked = await self._link(pool, fresh, identity_id=profile.identity_id)
            profile = await self._profile_in(pool, linked)
        return profile

    async def _verify_logins(
        self, pool: IdentityPool, logins: Mapping[str, str], *, identity: IdentityProfile | None = None
    ) -> list[Login]:
        verified: list[Login] = []
        for provider, token in logins.items():
            if provider == COGNITO_PROVIDER:
                issued = await self._issuer.verify(token)
                if identity is None or (issued.identity_pool_id, issued.identity_id) != (
                    pool.IdentityPoolId,
                    identity.identity_id,
                ):
                    raise NotAuthorizedError("Invalid login token: it was issued for another identity")
                if not token_opens(issued.amr, identity):
                    raise NotAuthorizedError(_STALE_LOGIN)
                verified.append((provider, issued.identity_id))
                continue
            if provider == pool.DeveloperProviderName:
                raise NotAuthorizedError(f"Logins of '{provider}' are only accepted from the developer's backend")
            user_pool_clients = _user_pool_clients(pool, provider)
            if user_pool_clients and self._user_pools is not None:
                subject = await self._user_pools.verify(
                    provider,
                    token,
                    [entry.ClientId for entry in user_pool_clients if entry.ClientId],
                    server_side_check=any(entry.ServerSideTokenCheck for entry in user_pool_clients),
                )
                verified.append((provider, subject))
                continue
            audiences = _audiences(pool, provider)
            if audiences is None:
                raise NotAuthorizedError(f"Login provider '{provider}' is not configured for this identity pool")
            login = await self._oidc.verify(provider, token, audiences=audiences)
            verified.append((provider, login.subject))
        return verified

    async def _link(self, pool: IdentityPool, logins: Sequence[Login], *, identity_id: str | None = None) -> str:
        """The identity the logins belong to (created when none does), with every login linked to it. Given an
        ``identity_id`` whose logins belong to another identity: a guest is merged into that identity (which is
        returned), an authenticated identity is a conflict.

        Logins are claimed before the profile is written, so a crash leaves at worst a login that points at a
        missing profile — which the next call heals by creating that profile."""
        owners = await self._identities.owners(pool.IdentityPoolId, logins)
        known = {owner for owner in owners if owner is not None}
        if identity_id is not None and known - {identity_id}:
            guest = await self._identities.get(identity_id)
            if len(known) == 1 and guest is not None and not guest.authenticated and not abandoned(guest):
                return await self._merge_guest(pool, guest, known.pop(), logins)
            raise ResourceConflictError(_TAKEN)
        if identity_id is not None:
            known.add(identity_id)
        if len(known) > 1:
            raise ResourceConflictError(_TAKEN)
        target = known.pop() if known else self._new_id()
        fresh = identity_id is None and not any(owners)
        for index, (login, owner) in enumerate(zip(logins, owners, strict=True)):
            if owner is not None:
                continue
            holder = await self._identities.claim(pool.IdentityPoolId, login, target)
            if holder != target:
                if fresh and index == 0:  # a concurrent first login won the race: join its identity
                    target = holder
                    continue
                raise ResourceConflictError(f"The login of '{login[0]}' is already linked to another identity")
        profile = await self._identities.get(target)
        if profile is None:
            await self._identities.create(target, pool.IdentityPoolId, logins, self._clock.now_ms())
        elif missing := [login for login in logins if login not in profile.logins]:
            await self._identities.change_logins(target, add=missing, now_ms=self._clock.now_ms())
        return target

    async def _merge_guest(
        self, pool: IdentityPool, guest: IdentityProfile, destination: str, logins: Sequence[Login]
    ) -> str:
        """Merges a guest into the identity its logins belong to; returns that identity. Copies the guest's datasets
        first (each copy atomic; a copy made before a crash is kept), then links the logins no one has yet, then
        deletes the guest leaving the merge marker (its credentials stop working at once), then its data. Every step
        can be repeated, so a retry after a crash anywhere finishes the merge."""
        await self._sync.merge_datasets(pool.IdentityPoolId, guest.identity_id, destination)
        destination = await self._link(pool, logins)
        await self._delete(guest, merged_into=destination)
        log.info("Guest identity %s signed in as identity %s: merged into it", guest.identity_id, destination)
        return destination

    async def _current(self, identity_id: str, pool: IdentityPool | None = None) -> IdentityProfile:
        """The identity's profile; for an id merged into another identity, that identity's (finishing the removal
        of the merged identity's data if a crash interrupted it). ResourceNotFoundException when there is none, or
        when ``pool`` is given and the identity belongs to another pool."""
        for _ in range(_MAX_MERGE_HOPS):
            profile = await self._identities.get(identity_id)
            if profile is not None:
                if pool is not None and profile.identity_pool_id != pool.IdentityPoolId:
                    break
                return profile
            merge = await self._identities.merged_into(identity_id)
            if merge is None:
                break
            into, pool_id, purged = merge
            if not purged:
                await self._store.purge_identity(IdentityKeyspace.of(pool_id, identity_id, self._shards))
                await self._identities.note_purged(identity_id)
            identity_id = into
        raise ResourceNotFoundError(f"Identity '{identity_id}' not found.")

    async def _unlink(self, profile: IdentityProfile, removed: Sequence[Login]) -> None:
        """Removes logins from the profile first (revoking its credentials), then frees them in the index. Removing
        nothing changes nothing: the generation only rises when a login goes (see :func:`abandoned`)."""
        if not removed:
            return
        await self._identities.change_logins(
            profile.identity_id, remove=removed, revoke=True, now_ms=self._clock.now_ms()
        )
        for login in removed:
            await self._identities.move(profile.identity_pool_id, login, owner=profile.identity_id, to=None)

    async def _delete(self, profile: IdentityProfile, *, merged_into: str | None = None) -> None:
        """Profile first (revokes its credentials at once; an identity merged into another leaves the merge marker
        in the same transaction), then the login index, then the data."""
        await self._identities.delete(
            profile.identity_id,
            profile.identity_pool_id,
            merged_into=merged_into,
            remember_seconds=MERGED_MARKER_SECONDS,
        )
        for login in profile.logins:
            await self._identities.move(profile.identity_pool_id, login, owner=profile.identity_id, to=None)
        await self._store.purge_identity(
            IdentityKeyspace.of(profile.identity_pool_id, profile.identity_id, self._shards)
        )
        if merged_into is not None:
            await self._identities.note_purged(profile.identity_id)

    async def _profile_in(self, pool: IdentityPool, identity_id: str) -> IdentityProfile:
        profile = await self._identities.get(identity_id)
        if profile is None or profile.identity_pool_id != pool.IdentityPoolId:
            raise ResourceNotFoundError(f"Identity '{identity_id}' not found.")
        return profile

    async def _token(self, profile: IdentityProfile, lifetime: int, *, login: Login | None = None) -> str:
        if not profile.authenticated:
            amr = ["unauthenticated"]
        else:
            # a login whose subject is known (an imported identity may list a provider without it)
            provider, subject = login or next((item for item in profile.logins if item[1]), profile.logins[0])
            amr = ["authenticated", provider, f"{provider}:{profile.identity_pool_id}:{subject}"]
        return await self._issuer.issue(
            identity_pool_id=profile.identity_pool_id,
            identity_id=profile.identity_id,
            amr=amr,
            lifetime_seconds=lifetime,
        )

    async def _limit(self, pool: IdentityPool, operation: str, per_second: int) -> None:
        rate = Rate(pool.IdentityPoolId, operation, per_second)
        if await self._counters.exceeded([rate], now_ms=self._clock.now_ms()):
            metrics.RATE_LIMITED.labels(operation).inc()
            raise RateExceededError(f"Rate exceeded: at most {per_second} {operation} calls per second per pool")

    def _new_id(self) -> str:
        return f"{self._region}:{uuid.uuid4()}"


def abandoned(profile: IdentityProfile) -> bool:
    """Whether every login of the identity was unlinked. Cognito: removing the last login makes the identity
    inaccessible, so it can no longer be reached as a guest. Only unlinking a login raises the generation, so an
    identity without logins whose generation rose had logins once (a guest's generation never rises)."""
    return not profile.logins and profile.generation > _FIRST_GENERATION


def token_opens(amr: Sequence[str], profile: IdentityProfile) -> bool:
    """Whether a token this service issued for the identity (its ``amr``) still stands for it: an authenticated
    token while the login it was issued for is still linked (so unlinking a login revokes its tokens too), a guest
    token while the identity is still a guest."""
    if len(amr) == 3 and amr[0] == "authenticated":
        return amr[2] in {f"{provider}:{profile.identity_pool_id}:{subject}" for provider, subject in profile.logins}
    return list(amr) == ["unauthenticated"] and not profile.authenticated and not abandoned(profile)


def _developer_provider(pool: IdentityPool) -> str:
    if not pool.DeveloperProviderName:
        raise InvalidParameterError("This identity pool has no DeveloperProviderName")
    return pool.DeveloperProviderName


def _user_pool_clients(pool: IdentityPool, provider: str) -> list[CognitoIdentityProvider]:
    """The pool's ``CognitoIdentityProviders`` entries for ``provider`` (a user pool; one entry per app client)."""
    return [entry for entry in pool.CognitoIdentityProviders or () if entry.ProviderName == provider]


def _audiences(pool: IdentityPool, provider: str) -> list[str] | None:
    """The client ids the pool accepts for a provider's tokens, or None when the pool does not allow it."""
    supported = (pool.SupportedLoginProviders or {}).get(provider)
    if supported is not None:
        return [client.strip() for client in supported.split(",") if client.strip()]
    if any(arn.endswith(f"oidc-provider/{provider}") for arn in pool.OpenIdConnectProviderARNs or ()):
        return []
    return None
