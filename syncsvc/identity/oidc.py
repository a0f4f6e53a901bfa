"""Federated logins: OpenID Connect ID tokens from external providers, verified against each provider's JWKS.

Each configured :class:`~syncsvc.identity.providers.OidcProvider` names the issuer, the client ids it accepts
besides the pool's, where its keys are published (URL or file) and the signing algorithms it may use.
:class:`OidcVerifier` turns a ``Logins`` entry into a :class:`FederatedLogin` or raises
:class:`~syncsvc.errors.NotAuthorizedError` saying why.

Rules worth knowing (the *why* of each is next to its code):

* The algorithm comes from the provider's allow-list, never from the token: the header's ``alg`` must be on the list
  before any key is chosen, and only asymmetric algorithms can be listed (no ``none``, no HS* key confusion).
* A key is bound to one algorithm: the JWK's ``alg`` or, when it declares none, PyJWT's default for its type (RSA →
  RS256, EC → by curve, OKP → EdDSA). A provider that signs with PS* must declare ``alg`` in its JWKS.
* Keys are cached per provider for ``refresh_seconds``. A token naming an unknown ``kid`` triggers one refresh, at most
  once per ``min_refresh_interval_seconds``, so a flood of made-up kids cannot hammer the provider. Concurrent
  verifications that need a refresh share one fetch. When a fetch fails, the keys fetched before stay usable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson

from syncsvc.config import OidcProvider
from syncsvc.errors import NotAuthorizedError

log = logging.getLogger(__name__)

#: A JWKS larger than this is refused (real ones are a few kB).
MAX_JWKS_BYTES = 1 << 20
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub", "aud"]


@dataclass(frozen=True, slots=True)
class FederatedLogin:
    """A verified login: who the provider says the user is, and every claim of the token."""

    provider: str
    subject: str
    claims: dict[str, Any]


class OidcVerifier:
    """Verifies ID tokens of the configured providers. One per process; :meth:`close` it on shutdown."""

    def __init__(
        self,
        providers: Sequence[OidcProvider],
        *,
        refresh_seconds: float = 3600,
        min_refresh_interval_seconds: float = 30,
        http_timeout_seconds: float = 5,
    ) -> None:
        self._http_timeout_seconds = http_timeout_seconds
        self._session: aiohttp.ClientSession | None = None
        self._keys: dict[str, _ProviderKeys] = {}
        for provider in providers:
            if provider.name in self._keys:
                raise ValueError(f"login provider '{provider.name}' is configured twice")
            self._keys[provider.name] = _ProviderKeys(
                provider,
                self._fetcher(provider),
                refresh_seconds=refresh_seconds,
                min_refresh_interval_seconds=min_refresh_interval_seconds,
            )

    def provider(self, name: str) -> OidcProvider | None:
        keys = self._keys.get(name)
        return None if keys is None else keys.provider

    async def verify(self, provider_name: str, token: str, *, audiences: Collection[str]) -> FederatedLogin:
        """Checks ``token`` as an ID token of ``provider_name`` whose ``aud`` is one of ``audiences`` (the pool's
        client ids for that provider) or of the provider's configured audiences."""
        keys = self._keys.get(provider_name)
        if keys is None:
            raise NotAuthorizedError(f"Unknown login provider '{provider_name[:128]}'")
        provider = keys.provider
        accepted = [*audiences, *provider.audiences]
        if not accepted:
            raise _invalid(provider, f"no client id configured for {provider.name}")
        alg, kid = _read_header(provider, token)
        key = await keys.signing_key(kid, alg)
        claims = _decode(provider, token, key, alg, accepted)
        return FederatedLogin(provider=provider.name, subject=claims["sub"], claims=claims)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _fetcher(self, provider: OidcProvider) -> Callable[[], Awaitable[bytes]]:
        if provider.jwks_url is not None:
            url = provider.jwks_url
            return lambda: self._download(url)
        path = Path(provider.jwks_file or "")
        return lambda: asyncio.to_thread(path.read_bytes)

    async def _download(self, url: str) -> bytes:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._http_timeout_seconds)
            self._session = aiohttp.ClientSession(timeout=timeout)
        async with self._session.get(url, headers={"Accept": "application/json"}) as response:
            if response.status != 200:
                raise _KeysUnavailableError(f"{url} answered HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(1 << 16):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise _KeysUnavailableError(f"{url} sent more than {MAX_JWKS_BYTES} bytes")
            return bytes(body)


class _KeysUnavailableError(Exception):
    """Why a provider's keys could not be fetched or used (logged, never shown to the caller)."""


@dataclass(frozen=True, slots=True)
class _KeySet:
    """A provider's JWKS as parsed: its signature keys by ``kid``."""

    by_kid: dict[str, jwt.PyJWK]
    #: The set's only key, for tokens that name no ``kid``; None when the set holds several.
    sole: jwt.PyJWK | None

    @classmethod
    def parse(cls, body: bytes) -> _KeySet:
        document = orjson.loads(body)
        if not isinstance(document, dict):
            raise _KeysUnavailableError("the key set is not a JSON object")
        # Skips the keys PyJWT cannot use; raises PyJWKSetError when none is left.
        usable = [key for key in jwt.PyJWKSet.from_dict(document) if key.public_key_use in (None, "sig")]
        by_kid: dict[str, jwt.PyJWK] = {}
        for key in usable:
            if key.key_id is not None:
                by_kid.setdefault(key.key_id, key)
        return cls(by_kid=by_kid, sole=usable[0] if len(usable) == 1 else None)

    def find(self, kid: str | None) -> jwt.PyJWK | None:
        return self.sole if kid is None else self.by_kid.get(kid)


class _ProviderKeys:
    """One provider's keys: cached, refreshed when stale or when a token names an unknown ``kid``."""

    def __init__(
        self,
        provider: OidcProvider,
        fetch: Callable[[], Awaitable[bytes]],
        *,
        refresh_seconds: float,
        min_refresh_interval_seconds: float,
    ) -> None:
        self.provider = provider
        self._fetch = fetch
        self._refresh_seconds = refresh_seconds
        self._min_refresh_interval_seconds = min_refresh_interval_seconds
        self._keys: _KeySet | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._failed = False
        #: Counts finished fetch attempts, so a task that waited on the lock knows another one just fetched.
        self._generation = 0
        self._lock = asyncio.Lock()

    async def signing_key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        key = self._keys.find(kid) if self._keys is not None and not self._stale() else None
        if key is None:
            generation = self._generation
            async with self._lock:
                if generation == self._generation and self._may_fetch():
                    await self._refresh()
            key = self._keys.find(kid) if self._keys is not None else None
        if key is None:
            if self._failed:
                raise _invalid(self.provider, "cannot fetch the provider's keys")
            if kid is None:
                raise _invalid(self.provider, "the token names no signing key (kid)")
            raise _invalid(self.provider, f"unknown signing key '{kid[:64]}'")
        if key.algorithm_name != alg:
            raise _invalid(
                self.provider, f"the token's algorithm {alg} does not match its signing key ({key.algorithm_name})"
            )
        return key

    def _stale(self) -> bool:
        return time.monotonic() - self._fetched_at >= self._refresh_seconds

    def _may_fetch(self) -> bool:
        """At most one fetch per ``min_refresh_interval_seconds``, whatever the tokens ask for."""
        if self._attempted_at is None:
            return True
        return time.monotonic() - self._attempted_at >= self._min_refresh_interval_seconds

    async def _refresh(self) -> None:
        self._attempted_at = time.monotonic()
        source = self.provider.jwks_url or self.provider.jwks_file
        try:
            keys = _KeySet.parse(await self._fetch())
        except (OSError, aiohttp.ClientError, ValueError, jwt.PyJWTError, _KeysUnavailableError) as error:
            kept = "keeping the keys fetched before" if self._keys is not None else "no keys yet"
            log.warning(
                "cannot fetch the keys of login provider %s from %s (%s): %r", self.provider.name, source, kept, error
            )
            self._failed = True
        else:
            log.info("fetched %d signing keys of login provider %s", len(keys.by_kid), self.provider.name)
            self._keys, self._fetched_at, self._failed = keys, time.monotonic(), False
        # Only once the attempt is over (not when it is cancelled): the tasks waiting on the lock then use its outcome.
        self._generation += 1


def _invalid(provider: OidcProvider, reason: str) -> NotAuthorizedError:
    return NotAuthorizedError(f"Invalid login token for {provider.name}: {reason}")


def _read_header(provider: OidcProvider, token: str) -> tuple[str, str | None]:
    """The token's ``alg`` (checked against the allow-list before any key is looked at) and ``kid``."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as error:
        raise _invalid(provider, f"the token is malformed ({str(error)[:200]})") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise _invalid(provider, "the token names no signing algorithm")
    if alg not in provider.algorithms:
        raise _invalid(provider, f"algorithm '{alg[:16]}' is not allowed (allowed: {', '.join(provider.algorithms)})")
    kid: str | None = header.get("kid")  # PyJWT has checked it is a string when present
    return alg, kid


#: PyJWT's exceptions, most specific first, and what the caller is told.
_REASONS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not yet valid"),
    (jwt.InvalidAudienceError, "the token's audience (aud) is not an accepted client id"),
    (jwt.InvalidIssuerError, "the token's issuer (iss) is not the provider's"),
    (jwt.InvalidSignatureError, "the token's signature is invalid"),
    (jwt.InvalidIssuedAtError, "the token's issue time (iat) is not a number"),
    (jwt.exceptions.InvalidSubjectError, "the token's subject (sub) is not a string"),
    (jwt.InvalidAlgorithmError, "the token's algorithm does not match its signing key"),
    (jwt.InvalidKeyError, "the provider's signing key is unusable (wrong type or too weak)"),
]


def _decode(provider: OidcProvider, token: str, key: jwt.PyJWK, alg: str, audiences: list[str]) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=audiences,
            issuer=provider.issuer,
            leeway=provider.leeway_seconds,
            options={"require": _REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
        )
    except jwt.MissingRequiredClaimError as error:
        raise _invalid(provider, f"the token has no '{error.claim}' claim") from None
    except jwt.PyJWTError as error:
        reason = next((reason for kind, reason in _REASONS if isinstance(error, kind)), None)
        raise _invalid(provider, reason or f"the token is malformed ({str(error)[:200]})") from None
    if not claims["sub"]:
        raise _invalid(provider, "the token has an empty subject (sub)")
    return claims
