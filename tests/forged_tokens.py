"""ID tokens forged against the test OIDC provider (tests/oidc_provider.py) as an attacker would make them, with real
keys: unsigned, keyed with the provider's public key, re-signed, tampered, expired, missing claims. Each comes with
the reason a verifier must refuse it for: the table that the verifier's own tests (test_oidc.py) and the GetId attacks
through the running server (test_identity_attacks.py) both run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.utils import base64url_encode

from tests.oidc_provider import TestIdentityProvider, public_pem

#: Makes a forged token from the provider and a key of the attacker's own.
Forge = Callable[[TestIdentityProvider, rsa.RSAPrivateKey], str]


def forgeries(audience: str) -> list[Any]:
    """Every forgery of a token for ``audience``, as ``pytest.param(forge, reason, id=…)``: ``reason`` is how the
    refusal's message ends (after "Invalid login token for <provider>: ")."""
    return [
        pytest.param(
            lambda idp, attacker: idp.mint("mallory", aud=audience, alg="none"),
            "algorithm 'none' is not allowed (allowed: RS256)",
            id="unsigned-alg-none",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("mallory", aud=audience, alg="HS256", key=public_pem(idp.rsa.private)),
            "algorithm 'HS256' is not allowed (allowed: RS256)",
            id="hs256-keyed-with-the-rsa-public-key",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("mallory", aud=audience, alg="RS384"),
            "algorithm 'RS384' is not allowed (allowed: RS256)",
            id="alg-outside-the-allow-list",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("mallory", aud=audience, iss="https://evil.example.com"),
            "the token's issuer (iss) is not the provider's",
            id="wrong-iss",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("mallory", aud="another-app"),
            "the token's audience (aud) is not an accepted client id",
            id="wrong-aud",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("alice", aud=audience, exp_in=-3600),
            "the token has expired",
            id="expired",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("alice", aud=audience, nbf_in=3600),
            "the token is not yet valid",
            id="not-yet-valid-nbf",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("alice", aud=audience, extra={"iat": int(1e10)}),
            "the token is not yet valid",
            id="issued-in-the-future",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("alice", aud=audience, extra={"iat": None}),
            "the token has no 'iat' claim",
            id="iat-missing",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("alice", aud=audience, extra={"exp": None}),
            "the token has no 'exp' claim",
            id="exp-missing",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("", aud=audience, extra={"sub": None}),
            "the token has no 'sub' claim",
            id="sub-missing",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("", aud=audience),
            "the token has an empty subject (sub)",
            id="sub-empty",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("mallory", aud=audience, key=attacker, kid=idp.rsa.kid),
            "the token's signature is invalid",
            id="signed-by-another-key-with-the-same-kid",
        ),
        pytest.param(
            lambda idp, attacker: _embedded_jwk(idp, attacker, audience),
            "the token's signature is invalid",
            id="attacker-key-embedded-in-the-header",
        ),
        pytest.param(
            lambda idp, attacker: idp.mint("mallory", aud=audience, key=attacker, kid="attacker-1"),
            "unknown signing key 'attacker-1'",
            id="unknown-kid",
        ),
        pytest.param(
            lambda idp, attacker: _tampered(idp, audience),
            "the token's signature is invalid",
            id="tampered-payload",
        ),
        pytest.param(
            lambda idp, attacker: "not-a-token",
            "the token is malformed (Not enough segments)",
            id="garbage",
        ),
        pytest.param(lambda idp, attacker: "", "the token is malformed (Not enough segments)", id="empty"),
    ]


def _tampered(idp: TestIdentityProvider, audience: str) -> str:
    """Alice's real token with the subject changed to mallory, the signature kept."""
    token = idp.mint("alice", aud=audience)
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False}) | {"sub": "mallory"}
    return f"{header}.{base64url_encode(json.dumps(claims).encode()).decode()}.{signature}"


def _embedded_jwk(idp: TestIdentityProvider, attacker: rsa.RSAPrivateKey, audience: str) -> str:
    """The attacker's own public key in the header, hoping the verifier trusts it (CVE-2018-0114 style)."""
    own = json.loads(jwt.get_algorithm_by_name("RS256").to_jwk(attacker.public_key()))
    return idp.mint("mallory", aud=audience, key=attacker, headers={"jwk": own})
