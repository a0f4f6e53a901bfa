"""A real, small OpenID Connect provider for tests: generated keys, a JWKS served on loopback, ID tokens minted with
PyJWT. Importable by any test module::

    async with TestIdentityProvider() as idp:
        verifier = OidcVerifier([idp.provider(audiences=("app",))])
        login = await verifier.verify("login.test", idp.mint("alice", aud="app"), audiences=())

It publishes an RSA-2048 key (``alg`` RS256) and an EC P-256 key (``alg`` ES256), counts the JWKS fetches it
answers, and can rotate its RSA key. It also forges what an attacker would send: unsigned tokens (``alg="none"``) and
HS* tokens keyed with any bytes, the RSA public key's PEM included (:meth:`mint` with ``key=`` bytes).

The fixture ``idp`` (registered for the whole suite in tests/conftest.py's ``pytest_plugins``) gives a test one,
running.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import HMACAlgorithm

from syncsvc.config import OidcProvider
from tests.conftest import free_port

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    private: PrivateKey

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        public: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}


class _AnyKeyHMAC(HMACAlgorithm):
    """HMAC that signs with any bytes: PyJWT rightly refuses a PEM public key as an HMAC secret, an attacker doesn't."""

    def prepare_key(self, key: str | bytes) -> bytes:
        return key.encode() if isinstance(key, str) else key


def _forging_jws() -> jwt.PyJWS:
    jws = jwt.PyJWS()
    for name, digest in (
        ("HS256", HMACAlgorithm.SHA256),
        ("HS384", HMACAlgorithm.SHA384),
        ("HS512", HMACAlgorithm.SHA512),
    ):
        jws.unregister_algorithm(name)
        jws.register_algorithm(name, _AnyKeyHMAC(digest))
    return jws


class TestIdentityProvider:
    """An OIDC provider on 127.0.0.1 (a free port) for the life of an ``async with`` block."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, *, issuer: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = issuer or self.url
        self.jwks_url = f"{self.url}/.well-known/jwks.json"
        self.rsa = SigningKey("rsa-1", "RS256", new_rsa_key())
        self.ec = SigningKey("ec-1", "ES256", new_ec_key())
        #: Every key the JWKS publishes.
        self.published: list[SigningKey] = [self.rsa, self.ec]
        #: JWKS requests answered since start.
        self.jwks_fetches = 0
        self._rotations = 1
        self._server: TestServer | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._jwks)
        app.router.add_get("/.well-known/openid-configuration", self._configuration)
        self._server = TestServer(app, host="127.0.0.1", port=self.port)
        await self._server.start_server()

    async def stop(self) -> None:
        """Stops serving (idempotent): the provider is then down, connections to it are refused."""
        if self._server is not None:
            await self._server.close()
            self._server = None

    def provider(
        self,
        name: str = "login.test",
        *,
        audiences: Sequence[str] = (),
        algorithms: Sequence[str] = ("RS256",),
        **settings: Any,
    ) -> OidcProvider:
        """This provider's configuration (its JWKS URL unless ``jwks_file=`` is given)."""
        source = {} if "jwks_file" in settings else {"jwks_url": self.jwks_url}
        return OidcProvider(
            name=name,
            issuer=self.issuer,
            audiences=tuple(audiences),
            algorithms=tuple(algorithms),
            **source,
            **settings,
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self.published]}

    def rotate(self, *, keep_old: bool = True) -> SigningKey:
        """A new RSA key (new kid) becomes the one RS* tokens are signed with; the old one stays published unless
        ``keep_old`` is false."""
        self._rotations += 1
        new = SigningKey(f"rsa-{self._rotations}", "RS256", new_rsa_key())
        if not keep_old:
            self.published.remove(self.rsa)
        self.published.append(new)
        self.rsa = new
        return new

    def mint(
        self,
        sub: str,
        *,
        aud: str | Sequence[str],
        alg: str = "RS256",
        kid: str | None = None,
        iss: str | None = None,
        exp_in: int = 300,
        nbf_in: int | None = None,
        extra: dict[str, Any] | None = None,
        key: PrivateKey | bytes | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """An ID token. RS*/PS* use the current RSA key and ES256 the EC key unless ``key`` is given (another private
        key, or bytes as an HS* secret); ``alg="none"`` leaves it unsigned. ``kid`` defaults to the signing key's.
        A claim of ``extra`` or a member of ``headers`` whose value is None is left out."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": iss or self.issuer,
            "sub": sub,
            "aud": aud if isinstance(aud, str) else list(aud),
            "iat": now,
            "exp": now + exp_in,
        }
        if nbf_in is not None:
            claims["nbf"] = now + nbf_in
        claims.update(extra or {})
        default_kid = self.ec.kid if alg.startswith("ES") else self.rsa.kid  # forgeries claim a real key
        header: dict[str, Any] = {"kid": kid or default_kid, **(headers or {})}
        claims = {name: value for name, value in claims.items() if value is not None}
        header = {name: value for name, value in header.items() if value is not None}
        if alg == "none":
            return jwt.encode(claims, "", algorithm="none", headers=header)
        if alg.startswith("HS"):
            if not isinstance(key, bytes):
                raise TypeError("an HS* token needs bytes as its key")
            payload = json.dumps(claims, separators=(",", ":")).encode()
            return _forging_jws().encode(payload, key, algorithm=alg, headers=header)
        signer = key if key is not None else self.ec.private if alg.startswith("ES") else self.rsa.private
        if isinstance(signer, bytes):
            raise TypeError(f"an {alg} token needs a private key")
        return jwt.encode(claims, signer, algorithm=alg, headers=header)

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response(self.jwks())

    async def _configuration(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_url,
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": sorted({key.alg for key in self.published}),
            }
        )


@pytest.fixture
async def idp() -> AsyncIterator[TestIdentityProvider]:
    """A running test OIDC provider."""
    async with TestIdentityProvider() as provider:
        yield provider
