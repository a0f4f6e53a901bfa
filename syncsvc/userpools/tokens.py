"""UserPoolTokens: user pools' ID, access and refresh tokens — issued, verified, refreshed, revoked; per-pool JWKS.

ID and access tokens are RS256 JWTs shaped as Cognito's (claims below), ``iss`` = ``<public URL>/<userPoolId>``, so
a verifier fetches ``<iss>/.well-known/jwks.json`` as it does from Cognito. They are signed through the identity
TokenIssuer's KMS-backed rotating keys (:class:`JwtSigner`, handed in by the composition root: this package may not
import ``syncsvc.identity``): one key ring for the whole service, served by every pool's JWKS. Cognito has keys per
pool; here ``iss`` tells pools apart, and every verifier (ours included) checks it.

Each sign-in is an **origin** (Cognito's ``origin_jti``): a record in Redis (``syncsvc.store.usersessions``) holding
the pool, client and user, the user's generation at sign-in and the HMAC digest of its refresh token. The refresh
token is ``<origin_jti>.<256 random bits>``, opaque to clients and stored only as that digest (keyed by a secret
derived from the deployment's sealed token secret). A token is accepted only while its origin stands and the user's
generation is the one of the sign-in: RevokeToken deletes the origin (its refresh token and every access token
issued from it die on every instance at once), GlobalSignOut and password changes raise the generation (every
token issued before dies). REFRESH_TOKEN_AUTH answers new ID and access tokens under the same origin, no new refresh
token, as Cognito.

Verifying an access token (GetUser, ChangePassword, GlobalSignOut): RS256 only, one of our live keys, ``iss`` an
existing pool's, ``token_use`` "access", ``exp`` with ``LEEWAY_SECONDS``, the client existing, the origin standing
for this pool, client and user, the user enabled and of the origin's generation.

(About 420 lines: issuing, verifying, refreshing and revoking share the origin record and its checks.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson

from syncsvc.clock import Clock
from syncsvc.errors import (
    NotAuthorizedError,
    UserNotFoundError,
    UserPoolNotAuthorizedError,
    UserPoolNotFoundError,
)
from syncsvc.store.usersessions import RedisUserSessions
from syncsvc.userpools.directory import UserDirectory
from syncsvc.userpools.hooks import NO_OVERRIDE, ClaimsOverride, UserPoolHooks
from syncsvc.userpools.model import AppClient, User, UserPool

#: Clock skew tolerated on ``exp``.
LEEWAY_SECONDS = 5
ACCESS_SCOPE = "aws.cognito.signin.user.admin"
#: The prefix of a user pool's provider name in identity pools (``cognito-idp.<region>.amazonaws.com/<poolId>``).
PROVIDER_PREFIX = "cognito-idp."
#: Attributes that are booleans in ID tokens (stored as "true"/"false" strings, as Cognito keeps them).
_BOOLEAN_CLAIMS = frozenset({"email_verified", "phone_number_verified"})
_REFRESH_KEY_LABEL = b"syncsvc user-pool refresh tokens"


class JwtSigner(Protocol):
    """What signs and checks the JWTs (``syncsvc.identity.issuer.TokenIssuer``)."""

    async def sign(self, claims: Mapping[str, Any], lifetime_seconds: int) -> str: ...

    async def verify_signature(self, token: str) -> dict[str, Any]: ...

    async def jwks(self) -> dict[str, list[dict[str, str]]]: ...


@dataclass(frozen=True, slots=True)
class Origin:
    """One sign-in, as stored: whose it is, the user's generation then, its refresh token's digest and expiry."""

    pool_id: str
    client_id: str
    username: str
    sub: str  # a user deleted and re-created under the same name is another user: its sign-ins are not theirs
    generation: int
    refresh_digest: str
    refresh_expires_ms: int
    auth_time: int

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> Origin:
        return cls(**orjson.loads(raw))


@dataclass(frozen=True, slots=True)
class Tokens:
    """An AuthenticationResult: the refresh token only on a sign-in (not on a refresh)."""

    id_token: str
    access_token: str
    expires_in: int
    refresh_token: str | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "AccessToken": self.access_token,
            "ExpiresIn": self.expires_in,
            "TokenType": "Bearer",
            "IdToken": self.id_token,
        }
        if self.refresh_token is not None:
            out["RefreshToken"] = self.refresh_token
        return out


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A verified access token: its pool, client and user, the sign-in it descends from, its claims."""

    pool: UserPool
    client: AppClient
    user: User
    origin_jti: str
    claims: dict[str, Any]


def _invalid_access() -> UserPoolNotAuthorizedError:
    return UserPoolNotAuthorizedError("Invalid Access Token")


def _invalid_refresh() -> UserPoolNotAuthorizedError:
    return UserPoolNotAuthorizedError("Invalid Refresh Token")


def _revoked(what: str) -> UserPoolNotAuthorizedError:
    return UserPoolNotAuthorizedError(f"{what} has been revoked")


class UserPoolTokens:
    """Issues and verifies user pools' tokens; serves their JWKS and OpenID discovery.

    ``public_url`` is the service's public URL (``Settings.issuer_url``); ``secret`` the deployment's token secret
    (refresh-token digests are keyed by a key derived from it). ``hooks`` calls the pools' triggers (PreTokenGeneration
    here; :attr:`hooks` is also how sign-in reaches PreAuthentication); None: no triggers.
    """

    def __init__(
        self,
        signer: JwtSigner,
        sessions: RedisUserSessions,
        directory: UserDirectory,
        *,
        public_url: str,
        secret: bytes,
        clock: Clock,
        hooks: UserPoolHooks | None = None,
    ) -> None:
        self.hooks = hooks or UserPoolHooks(None, directory)
        self._signer = signer
        self._sessions = sessions
        self._directory = directory
        self._public_url = public_url.rstrip("/")
        self._refresh_key = hmac.new(secret, _REFRESH_KEY_LABEL, hashlib.sha256).digest()
        self._clock = clock

    def issuer(self, pool_id: str) -> str:
        """The ``iss`` of a pool's tokens."""
        return f"{self._public_url}/{pool_id}"

    # --- issuing --------------------------------------------------------------------------------------------------

    async def sign_in(
        self,
        pool: UserPool,
        client: AppClient,
        user: User,
        groups: Sequence[str],
        *,
        source: str = "TokenGeneration_Authentication",
        client_metadata: Mapping[str, str] | None = None,
    ) -> Tokens:
        """A new sign-in: its origin stored, then ID, access and refresh tokens (``source`` and ``client_metadata``
        go to the pool's PreTokenGeneration trigger, which runs before anything is stored)."""
        override = await self.hooks.pre_token_generation(
            pool, client, user, groups, source=source, client_metadata=client_metadata
        )
        origin_jti = str(uuid.uuid4())
        secret = secrets.token_urlsafe(32)
        now_ms = self._clock.now_ms()
        refresh_seconds = client.refresh_token_seconds
        origin = Origin(
            pool_id=pool.Id,
            client_id=client.ClientId,
            username=user.username,
            sub=user.sub,
            generation=user.generation,
            refresh_digest=self._digest(secret),
            refresh_expires_ms=now_ms + refresh_seconds * 1000,
            auth_time=now_ms // 1000,
        )
        keep_seconds = max(refresh_seconds, client.access_token_seconds, client.id_token_seconds) + LEEWAY_SECONDS
        await self._sessions.put_origin(origin_jti, origin.encode(), ttl_ms=keep_seconds * 1000)
        tokens = await self._tokens(pool, client, user, groups, origin_jti, origin.auth_time, override)
        return Tokens(tokens.id_token, tokens.access_token, tokens.expires_in, f"{origin_jti}.{secret}")

    async def refresh(
        self,
        pool: UserPool,
        client: AppClient,
        refresh_token: str,
        groups_of: GroupsOf,
        *,
        accept: Callable[[User], None] = lambda user: None,
    ) -> Tokens:
        """REFRESH_TOKEN_AUTH: new ID and access tokens of the refresh token's sign-in (no new refresh token).
        NotAuthorizedException "Invalid Refresh Token" for anything unknown, revoked, expired, of another client,
        or issued before the user's last global sign-out; "User is disabled." for a disabled user. ``accept`` may
        refuse the user (the client's secret hash is computed over the user's name)."""
        origin_jti, origin = await self._origin_of_refresh(pool, client, refresh_token)
        if origin.refresh_expires_ms <= self._clock.now_ms():
            raise UserPoolNotAuthorizedError("Refresh Token has expired")
        user = await self._current_user(pool.Id, origin, "Refresh Token")
        accept(user)
        groups = await groups_of(pool.Id, user.username)
        override = await self.hooks.pre_token_generation(
            pool, client, user, groups, source="TokenGeneration_RefreshTokens"
        )
        return await self._tokens(pool, client, user, groups, origin_jti, origin.auth_time, override)

    async def revoke(self, pool: UserPool, client: AppClient, refresh_token: str) -> None:
        """RevokeToken: the refresh token's sign-in is deleted, so the refresh token and every access and ID token
        issued from it are refused from now on. A token already revoked or expired is no error (as Cognito)."""
        try:
            origin_jti, _ = await self._origin_of_refresh(pool, client, refresh_token)
        except UserPoolNotAuthorizedError:
            return
        await self._sessions.revoke_origin(origin_jti)

    async def _tokens(
        self,
        pool: UserPool,
        client: AppClient,
        user: User,
        groups: Sequence[str],
        origin_jti: str,
        auth_time: int,
        override: ClaimsOverride = NO_OVERRIDE,
    ) -> Tokens:
        """Signed ID and access tokens; a PreTokenGeneration ``override`` changes the ID token's claims and the
        groups of both (never the claims the token's checks read: ``hooks.RESERVED_CLAIMS``)."""
        if override.groups is not None:
            groups = override.groups
        event_id = str(uuid.uuid4())
        common: dict[str, Any] = {
            "sub": user.sub,
            "iss": self.issuer(pool.Id),
            "auth_time": auth_time,
            "origin_jti": origin_jti,
            "event_id": event_id,
        }
        if groups:
            common["cognito:groups"] = list(groups)
        access = {
            **common,
            "token_use": "access",
            "scope": ACCESS_SCOPE,
            "client_id": client.ClientId,
            "username": user.username,
            "jti": str(uuid.uuid4()),
        }
        identity = {
            **override.apply({**_attribute_claims(user), **common}),
            "aud": client.ClientId,
            "token_use": "id",
            "cognito:username": user.username,
            "jti": str(uuid.uuid4()),
        }
        access_token = await self._signer.sign(access, client.access_token_seconds)
        id_token = await self._signer.sign(identity, client.id_token_seconds)
        return Tokens(id_token=id_token, access_token=access_token, expires_in=client.access_token_seconds)

    # --- verifying --------------------------------------------------------------------------------------------------

    async def access(self, token: str) -> SignedIn:
        """The sign-in behind an access token; NotAuthorizedException ("Invalid Access Token", "Access Token has
        expired", "Access Token has been revoked", "User is disabled.") otherwise."""
        claims = await self._verified(token, "access")
        pool = await self._pool_of(claims)
        client_id, username, origin_jti = claims.get("client_id"), claims.get("username"), claims.get("origin_jti")
        if not isinstance(client_id, str) or not isinstance(username, str) or not isinstance(origin_jti, str):
            raise _invalid_access()
        try:
            client = await self._directory.client(pool.Id, client_id)
        except UserPoolNotFoundError:
            raise _invalid_access() from None
        origin = await self._origin(origin_jti)
        if origin is None or (origin.pool_id, origin.client_id, origin.username) != (pool.Id, client_id, username):
            raise _revoked("Access Token")
        user = await self._current_user(pool.Id, origin, "Access Token")
        if user.sub != claims.get("sub"):
            raise _invalid_access()
        return SignedIn(pool=pool, client=client, user=user, origin_jti=origin_jti, claims=claims)

    async def verify(self, provider: str, token: str, client_ids: Sequence[str], *, server_side_check: bool) -> str:
        """The ``sub`` of a user pool's ID token given to an identity pool under ``provider``
        (``cognito-idp.<region>.amazonaws.com/<userPoolId>``), whose ``aud`` must be one of ``client_ids``. With
        ``server_side_check`` the sign-in must still stand and the user be enabled and not signed out since.
        NotAuthorizedException "Invalid login token for <provider>: <reason>" otherwise."""
        try:
            return await self._federated_subject(provider, token, client_ids, server_side_check)
        except UserPoolNotAuthorizedError as exc:
            raise NotAuthorizedError(f"Invalid login token for {provider}: {exc.message}") from None

    async def _federated_subject(
        self, provider: str, token: str, client_ids: Sequence[str], server_side_check: bool
    ) -> str:
        pool_id = _pool_of_provider(provider)
        if pool_id is None:
            raise UserPoolNotAuthorizedError("not a user pool provider name")
        claims = await self._verified(token, "id")
        if claims.get("iss") != self.issuer(pool_id):
            raise UserPoolNotAuthorizedError("the token's issuer (iss) is not the user pool's")
        audience, sub = claims.get("aud"), claims.get("sub")
        if not isinstance(audience, str) or audience not in client_ids:
            raise UserPoolNotAuthorizedError("the token's audience (aud) is not a client the identity pool lists")
        if not isinstance(sub, str) or not sub:
            raise UserPoolNotAuthorizedError("the token has no subject (sub)")
        if server_side_check:
            origin_jti = claims.get("origin_jti")
            origin = await self._origin(origin_jti) if isinstance(origin_jti, str) else None
            if origin is None or (origin.pool_id, origin.client_id) != (pool_id, audience):
                raise _revoked("Id Token")
            if (await self._current_user(pool_id, origin, "Id Token")).sub != sub:
                raise UserPoolNotAuthorizedError("Invalid Id Token")
        return sub

    async def _verified(self, token: str, use: str) -> dict[str, Any]:
        """Signature (RS256, our live keys), ``token_use`` and ``exp`` (with leeway) of one of our tokens."""
        what = "Access Token" if use == "access" else "Id Token"
        try:
            claims = await self._signer.verify_signature(token)
        except NotAuthorizedError:
            raise UserPoolNotAuthorizedError(f"Invalid {what}") from None
        if claims.get("token_use") != use:
            raise UserPoolNotAuthorizedError(f"Invalid {what}")
        if claims["exp"] <= self._clock.now_ms() / 1000 - LEEWAY_SECONDS:
            raise UserPoolNotAuthorizedError(f"{what} has expired")
        return claims

    async def _pool_of(self, claims: Mapping[str, Any]) -> UserPool:
        """The pool whose ``iss`` the access token carries (it must be one of ours, for an existing pool)."""
        iss = claims.get("iss")
        prefix = f"{self._public_url}/"
        if not isinstance(iss, str) or not iss.startswith(prefix) or "/" in iss.removeprefix(prefix):
            raise _invalid_access()
        try:
            return await self._directory.pool(iss.removeprefix(prefix))
        except UserPoolNotFoundError:
            raise _invalid_access() from None

    async def _current_user(self, pool_id: str, origin: Origin, what: str) -> User:
        """The origin's user — the same user (``sub``), not one re-created under its name — when still enabled and of
        the origin's generation (not signed out since)."""
        try:
            user = await self._directory.user(pool_id, origin.username)
        except UserNotFoundError:
            raise _revoked(what) from None
        if not user.enabled:
            raise UserPoolNotAuthorizedError("User is disabled.")
        if user.sub != origin.sub or user.generation != origin.generation:
            raise _revoked(what)
        return user

    async def _origin(self, origin_jti: str) -> Origin | None:
        raw = await self._sessions.origin(origin_jti)
        return Origin.decode(raw) if raw is not None else None

    async def _origin_of_refresh(self, pool: UserPool, client: AppClient, refresh_token: str) -> tuple[str, Origin]:
        origin_jti, dot, secret = refresh_token.partition(".")
        if not dot or not secret or len(origin_jti) > 64:
            raise _invalid_refresh()
        origin = await self._origin(origin_jti)
        if origin is None or not hmac.compare_digest(origin.refresh_digest, self._digest(secret)):
            raise _invalid_refresh()
        if (origin.pool_id, origin.client_id) != (pool.Id, client.ClientId):
            raise _invalid_refresh()
        return origin_jti, origin

    def _digest(self, secret: str) -> str:
        return hmac.new(self._refresh_key, secret.encode(), hashlib.sha256).hexdigest()

    # --- discovery --------------------------------------------------------------------------------------------------

    async def jwks(self, pool_id: str) -> dict[str, list[dict[str, str]]]:
        """The keys that verify the pool's tokens (ResourceNotFoundException for an unknown pool)."""
        await self._directory.pool(pool_id)
        return await self._signer.jwks()

    async def openid_configuration(self, pool_id: str) -> dict[str, Any]:
        """The pool's OpenID discovery document, as Cognito serves it (without the hosted UI's endpoints)."""
        await self._directory.pool(pool_id)
        issuer = self.issuer(pool_id)
        return {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "response_types_supported": ["id_token", "token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "phone", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": ["sub", "aud", "iss", "exp", "iat", "auth_time", "token_use", "cognito:username"],
        }


class GroupsOf(Protocol):
    """The names of a user's groups (``UserDirectory``'s)."""

    async def __call__(self, pool_id: str, username: str) -> list[str]: ...


def _attribute_claims(user: User) -> dict[str, Any]:
    """The user's attributes as ID token claims: ``*_verified`` as booleans, the rest as stored."""
    return {name: (value == "true") if name in _BOOLEAN_CLAIMS else value for name, value in user.attributes.items()}


def _pool_of_provider(provider: str) -> str | None:
    """The user pool id of a provider name ``cognito-idp.<region>.amazonaws.com/<poolId>`` (its region the pool's)."""
    host, slash, pool_id = provider.partition("/")
    region = host.removeprefix(PROVIDER_PREFIX).removesuffix(".amazonaws.com")
    if not slash or not host.startswith(PROVIDER_PREFIX) or not pool_id.startswith(f"{region}_"):
        return None
    return pool_id
