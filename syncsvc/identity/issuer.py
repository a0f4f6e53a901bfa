"""TokenIssuer: the OpenID Connect identity tokens syncsvc issues (GetOpenIdToken*), their JWKS, and their check.

Tokens are RS256 JWTs shaped like Cognito's: ``iss`` (the service's public URL), ``sub`` (identity id), ``aud``
(identity pool id), ``iat``, ``exp``, ``amr`` and a random ``jti``; the header names the signing key (``kid``).

Rotation needs no coordination between instances: time is cut into epochs of ``rotation_seconds``, and epoch ``E``
signs with the key whose kid is ``k<E>``. Whichever instance first needs that key creates it in the shared key ring
(HSETNX, so exactly one key per epoch); every instance therefore signs with the same key. A key signs for its epoch
and stays verifiable (and in the JWKS) until the last token it may have signed expires: ``max_lifetime_seconds``
plus the clock leeway after its epoch ends. The next epoch's key is published ahead of time, so a verifier that
caches the JWKS already knows it when rotation happens.

Each epoch's key is a KMS asymmetric key (RSA_2048, SIGN_VERIFY) made through ``syncsvc.kms``: its private key is
stored only wrapped by the root key and never leaves the key service. Issuing builds the JWT here and has the key
service sign it (RSASSA_PKCS1_V1_5_SHA_256 over the SHA-256 digest of the signing input: exactly RS256); the key
ring (``syncsvc.store.keyring``) holds only each key's KMS key id and public key. A key ring entry that loses the
creation race, or is pruned, has its KMS key discarded.

Public keys are cached in process: verifying asks Redis only when the epoch changes, or (at most once every
``RELOAD_SECONDS``) when a token names a kid we do not hold; issuing asks the key service for each signature.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from syncsvc import metrics
from syncsvc.clock import SYSTEM, Clock
from syncsvc.errors import ExpiredTokenError, NotAuthorizedError
from syncsvc.kms.keyservice import KeyService
from syncsvc.store.keyring import RedisKeyRing, StoredSigningKey

_ISSUED = metrics.CREDENTIALS_ISSUED.labels("openid_token")
ALGORITHM = "RS256"
#: The KMS key spec and signing algorithm that make RS256 signatures (the message being the SHA-256 digest).
KMS_KEY_SPEC = "RSA_2048"
KMS_SIGNING_ALGORITHM = "RSASSA_PKCS1_V1_5_SHA_256"
#: Clock skew tolerated on ``exp`` and ``nbf``, between instances and towards verifiers.
LEEWAY_SECONDS = 5
#: Shortest interval between two key reloads triggered by tokens naming a kid we do not hold.
RELOAD_SECONDS = 5
#: Verified tokens kept (about 1 KB each): one per recently active device.
VERIFIED_TOKENS = 10_000
REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "exp", "amr", "jti"]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """The verified claims of a token this service issued. ``expires_at`` is in epoch seconds."""

    identity_pool_id: str
    identity_id: str
    amr: tuple[str, ...]
    expires_at: int
    jti: str


@dataclass(frozen=True, slots=True)
class _SigningKey:
    """A signing key as cached: its KMS key id (which signs) and its public key (which verifies)."""

    kid: str
    epoch: int
    key_id: str
    public_key: rsa.RSAPublicKey
    jwk: dict[str, str]


def _parse(stored: StoredSigningKey, epoch: int) -> _SigningKey:
    public_key = serialization.load_pem_public_key(stored.public_pem.encode("ascii"))
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise TypeError(f"signing key {stored.kid} is not an RSA key")
    public = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    jwk = {"kid": stored.kid, "kty": "RSA", "alg": ALGORITHM, "use": "sig", "n": public["n"], "e": public["e"]}
    return _SigningKey(kid=stored.kid, epoch=epoch, key_id=stored.key_id, public_key=public_key, jwk=jwk)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _invalid(reason: str) -> NotAuthorizedError:
    return NotAuthorizedError(f"Invalid identity token: {reason}")


def _epoch_of_kid(kid: str) -> int | None:
    digits = kid.removeprefix("k")
    return int(digits) if kid.startswith("k") and digits.isdigit() else None


class TokenIssuer:
    """Issues and verifies the service's identity tokens; publishes the JWKS and the OpenID configuration.

    ``kms`` holds the signing keys (and signs); ``keyring`` says which KMS key is which epoch's. ``issuer_url`` is
    the service's public URL (a trailing ``/`` is dropped); it is the tokens' ``iss``. ``clock`` says what time it is
    (tests hand in a :class:`~syncsvc.clock.ManualClock` to move across epochs).
    """

    def __init__(
        self,
        keyring: RedisKeyRing,
        kms: KeyService,
        *,
        issuer_url: str,
        rotation_seconds: int = 86400,
        max_lifetime_seconds: int = 86400,
        clock: Clock = SYSTEM,
    ) -> None:
        if rotation_seconds < 1 or max_lifetime_seconds < 1:
            raise ValueError("rotation_seconds and max_lifetime_seconds must be positive")
        if not issuer_url.startswith(("https://", "http://")):
            raise ValueError(f"issuer_url must be an http(s) URL, not {issuer_url!r}")
        self.keyring = keyring
        self.kms = kms
        self.issuer_url = issuer_url.rstrip("/")
        self.rotation_seconds = rotation_seconds
        self.max_lifetime_seconds = max_lifetime_seconds
        self._clock = clock
        self._keys: dict[str, _SigningKey] = {}
        self._lock = asyncio.Lock()
        self._last_reload = -math.inf
        #: Tokens verified lately, least recently used first (see ``_remember``).
        self._verified: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()

    # --- the rotation schedule --------------------------------------------------------------------------------------

    def _now(self) -> float:
        """Now, in epoch seconds (the unit of JWT times)."""
        return self._clock.now_ms() / 1000

    def _epoch(self, now: float) -> int:
        return math.floor(now / self.rotation_seconds)

    @staticmethod
    def kid(epoch: int) -> str:
        return f"k{epoch}"

    def _retired_at(self, epoch: int) -> float:
        """When the key of ``epoch`` is no longer needed: the last token it signed has expired (with leeway)."""
        return (epoch + 1) * self.rotation_seconds + self.max_lifetime_seconds + LEEWAY_SECONDS

    def _prune_before(self, now: float) -> float:
        """Keys created before this are retired. A key is created at the earliest one epoch ahead (pre-published)."""
        return now - 2 * self.rotation_seconds - self.max_lifetime_seconds - LEEWAY_SECONDS

    # --- the key cache ----------------------------------------------------------------------------------------------

    async def _key_of_epoch(self, epoch: int) -> _SigningKey:
        """The key of ``epoch``, from the cache, or else created if need be and loaded with every other live key."""
        kid = self.kid(epoch)
        if (key := self._keys.get(kid)) is not None:
            return key
        async with self._lock:
            if kid not in self._keys:
                await self.keyring.ensure(kid, lambda: self._make_key(kid), created=self._now(), alg=ALGORITHM)
                await self._reload()
        if (key := self._keys.get(kid)) is None:
            raise RuntimeError(f"the signing key {kid} in Redis is not a live {ALGORITHM} key")
        return key

    async def _make_key(self, kid: str) -> tuple[str, str]:
        """A new KMS signing key for ``kid``: (its key id, its public key as PEM)."""
        made = await self.kms.lifecycle.create_key(
            description=f"syncsvc identity token signing key {kid}",
            owner=f"oidc:{kid}",
            spec=KMS_KEY_SPEC,
            usage="SIGN_VERIFY",
        )
        der, _ = await self.kms.public_key(made.key_id)
        public = serialization.load_der_public_key(der)
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return made.key_id, pem.decode("ascii")

    async def _reload(self) -> None:
        """Loads every live key into the cache (parsing only new ones, in a thread) and prunes retired ones.

        Only a load that succeeded counts for the RELOAD_SECONDS limit: one that failed (Redis unreachable: the
        caller answers 503) must not make the next verifications refuse valid tokens as signed by an unknown key."""
        now = self._now()
        stored = await self.keyring.load_all()
        self._last_reload = now
        live: list[tuple[StoredSigningKey, int]] = []
        for key in stored:
            epoch = _epoch_of_kid(key.kid)
            if epoch is not None and key.alg == ALGORITHM and now < self._retired_at(epoch):
                live.append((key, epoch))
        fresh = [(key, epoch) for key, epoch in live if key.kid not in self._keys]
        parsed = await asyncio.to_thread(lambda: [_parse(key, epoch) for key, epoch in fresh]) if fresh else []
        kept = {key.kid: self._keys[key.kid] for key, _ in live if key.kid in self._keys}
        self._keys = kept | {key.kid: key for key in parsed}
        if any(key.created < self._prune_before(now) for key in stored):
            await self.keyring.prune(self._prune_before(now))

    async def _verification_key(self, kid: str, now: float) -> _SigningKey | None:
        """Our live key ``kid``; an unknown kid reloads the keys, at most once every ``RELOAD_SECONDS``."""
        key = self._keys.get(kid)
        if key is None and now - self._last_reload >= RELOAD_SECONDS:
            async with self._lock:
                if kid not in self._keys and now - self._last_reload >= RELOAD_SECONDS:
                    await self._reload()
            key = self._keys.get(kid)
        if key is None or now >= self._retired_at(key.epoch):
            return None
        return key

    # --- tokens -----------------------------------------------------------------------------------------------------

    async def issue(self, *, identity_pool_id: str, identity_id: str, amr: Sequence[str], lifetime_seconds: int) -> str:
        """A signed identity token for the identity, valid ``lifetime_seconds`` (1..``max_lifetime_seconds``)."""
        if not 1 <= lifetime_seconds <= self.max_lifetime_seconds:
            raise ValueError(f"lifetime_seconds must be within 1..{self.max_lifetime_seconds}, not {lifetime_seconds}")
        _ISSUED.inc()
        now = self._now()
        key = await self._key_of_epoch(self._epoch(now))
        issued_at = int(now)
        claims = {
            "iss": self.issuer_url,
            "sub": identity_id,
            "aud": identity_pool_id,
            "iat": issued_at,
            "exp": issued_at + lifetime_seconds,
            "amr": list(amr),
            "jti": secrets.token_hex(16),
        }
        return await self._signed(claims, key)

    async def _signed(self, claims: Mapping[str, Any], key: _SigningKey) -> str:
        """``claims`` as a JWT signed by ``key`` (through the key service)."""
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
        signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}"
        digest = hashlib.sha256(signing_input.encode("ascii")).digest()
        signature, _ = await self.kms.sign(key.key_id, digest, KMS_SIGNING_ALGORITHM, digest=True)
        return f"{signing_input}.{_b64url(signature)}"

    # --- other issuers' tokens, on the same keys --------------------------------------------------------------------

    async def sign(self, claims: Mapping[str, Any], lifetime_seconds: int) -> str:
        """A JWT of ``claims`` plus ``iat`` (now) and ``exp`` (now + ``lifetime_seconds``, 1..``max_lifetime_seconds``)
        signed with the current key, for another issuer of this service (user pools: their ``iss`` is their own,
        their JWKS these same keys). The caller owns every other claim, ``iss`` included."""
        if not 1 <= lifetime_seconds <= self.max_lifetime_seconds:
            raise ValueError(f"lifetime_seconds must be within 1..{self.max_lifetime_seconds}, not {lifetime_seconds}")
        now = self._now()
        key = await self._key_of_epoch(self._epoch(now))
        issued_at = int(now)
        return await self._signed({**claims, "iat": issued_at, "exp": issued_at + lifetime_seconds}, key)

    async def verify_signature(self, token: str) -> dict[str, Any]:
        """The claims of a token made by :meth:`sign`: RS256 only, signed by one of our live keys, ``iat`` and
        ``exp`` integers no further apart than ``max_lifetime_seconds`` (see :meth:`_check_lifetime`). Nothing
        else is checked — ``iss``, audience, ``exp`` against now and the rest are the calling issuer's rules.
        NotAuthorizedError ("Invalid token: <reason>") otherwise."""
        now = self._now()
        try:
            kid = self._kid_of(token)
            key = await self._verification_key(kid, now)
            if key is None:
                raise _invalid("unknown signing key")
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key.public_key,
                    algorithms=[ALGORITHM],
                    options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
                )
            except jwt.InvalidSignatureError as exc:
                raise _invalid("bad signature") from exc
            except jwt.InvalidTokenError as exc:
                raise _invalid(f"malformed ({exc})") from exc
            if "iat" not in claims or "exp" not in claims:
                raise _invalid("iat and exp are required")
            self._check_lifetime(claims, now)
        except NotAuthorizedError as exc:
            raise NotAuthorizedError(exc.message.replace("Invalid identity token", "Invalid token", 1)) from None
        return claims

    async def verify(self, token: str) -> IssuedToken:
        """The claims of a token this service issued, or :class:`ExpiredTokenError` / :class:`NotAuthorizedError`.

        Checked: RS256 only, signed by one of our live keys, ``iss`` ours, every claim present and well typed,
        ``exp`` and ``nbf`` (if any) with ``LEEWAY_SECONDS``, and a lifetime within ``max_lifetime_seconds``
        (:meth:`_check_lifetime`). Which pool the ``aud`` must be is the caller's check.
        """
        now = self._now()
        verified = self._verified.get(token)
        if verified is None:
            kid = self._kid_of(token)
            key = await self._verification_key(kid, now)
            if key is None:
                raise _invalid("unknown signing key")
            claims = self._decode(token, key)
            self._remember(token, kid, claims)
        else:
            kid, claims = verified
            self._verified.move_to_end(token)
            if await self._verification_key(kid, now) is None:  # its key was retired since
                raise _invalid("unknown signing key")
        self._check_lifetime(claims, now)
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + LEEWAY_SECONDS):
            raise _invalid("not yet valid")
        if claims["exp"] <= now - LEEWAY_SECONDS:
            raise ExpiredTokenError("The security token included in the request is expired")
        return self._issued_token(claims)

    def _check_lifetime(self, claims: dict[str, Any], now: float) -> None:
        """``iat`` and ``exp`` integers, and no longer apart than the longest lifetime this service issues; nor
        ``exp`` further ahead than that (with leeway), whatever ``iat`` says. A valid signature does not make a
        token acceptable: the rule holds whoever got one of our keys to sign (a KMS Sign call, a bug), so a
        signature over a year-long token buys a day at most, as every token we issue."""
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise _invalid("exp is not an integer")
        if not isinstance(iat, int) or isinstance(iat, bool):
            raise _invalid("iat is not an integer")
        if exp - iat > self.max_lifetime_seconds or exp - now > self.max_lifetime_seconds + LEEWAY_SECONDS:
            raise _invalid(f"its lifetime exceeds the maximum of {self.max_lifetime_seconds} seconds")

    def _remember(self, token: str, kid: str, claims: dict[str, Any]) -> None:
        """Keeps a token whose signature, issuer and claims checked out, so the device's next requests skip the RSA
        verification and JSON decoding. Only the same bytes hit; times and the key's liveness are still checked on
        every use, and the identity behind it is looked up by the caller every time (deletion revokes at once)."""
        self._verified[token] = (kid, claims)
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)

    @staticmethod
    def _kid_of(token: str) -> str:
        # A JWT is base64url and dots: ASCII. Anything else is malformed, whatever bytes the Authorization header held
        # (PyJWT would raise UnicodeEncodeError, not InvalidTokenError, on the surrogates aiohttp makes of non-UTF-8).
        if not token.isascii():
            raise _invalid("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise _invalid("malformed") from exc
        if header.get("alg") != ALGORITHM:
            raise _invalid(f"algorithm {header.get('alg')!r} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _invalid("no kid in the header")
        return kid

    def _decode(self, token: str, key: _SigningKey) -> dict[str, Any]:
        """Checks signature, issuer and presence of claims; times are checked by the caller, on our clock."""
        try:
            return jwt.decode(
                token,
                key.public_key,
                algorithms=[ALGORITHM],
                issuer=self.issuer_url,
                options={
                    "require": REQUIRED_CLAIMS,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise _invalid("bad signature") from exc
        except jwt.InvalidIssuerError as exc:
            raise _invalid("wrong issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"missing claim {exc.claim!r}") from exc
        except jwt.InvalidTokenError as exc:
            raise _invalid(f"malformed ({exc})") from exc

    @staticmethod
    def _issued_token(claims: dict[str, Any]) -> IssuedToken:
        aud, sub, amr, jti = claims["aud"], claims["sub"], claims["amr"], claims["jti"]
        if not isinstance(aud, str) or not isinstance(sub, str) or not isinstance(jti, str):
            raise _invalid("aud, sub and jti must be strings")
        if not isinstance(amr, list) or not all(isinstance(method, str) for method in amr):
            raise _invalid("amr must be a list of strings")
        return IssuedToken(identity_pool_id=aud, identity_id=sub, amr=tuple(amr), expires_at=claims["exp"], jti=jti)

    # --- discovery --------------------------------------------------------------------------------------------------

    async def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys of every live key: the current one, the next epoch's (pre-published) and the retired
        ones whose tokens may still be valid, oldest first."""
        now = self._now()
        current = self._epoch(now)
        for epoch in (current, current + 1):
            await self._key_of_epoch(epoch)
        return {"keys": [key.jwk for key in self._live(now)]}

    def _live(self, now: float) -> Iterable[_SigningKey]:
        return sorted((key for key in self._keys.values() if now < self._retired_at(key.epoch)), key=lambda k: k.epoch)

    def openid_configuration(self) -> dict[str, Any]:
        """The document served at ``/.well-known/openid-configuration``."""
        return {
            "issuer": self.issuer_url,
            "jwks_uri": f"{self.issuer_url}/.well-known/jwks.json",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "claims_supported": REQUIRED_CLAIMS,
        }
