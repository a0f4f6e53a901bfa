"""Federated logins: ID tokens of a real test OIDC provider (keys generated, JWKS served on loopback) verified by
:class:`OidcVerifier`, and the forgeries it must refuse."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pydantic
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.warnings import InsecureKeyLengthWarning

from syncsvc.config import OidcProvider
from syncsvc.errors import NotAuthorizedError
from syncsvc.identity.oidc import FederatedLogin, OidcVerifier
from tests.forged_tokens import Forge, forgeries
from tests.oidc_provider import SigningKey, TestIdentityProvider, new_rsa_key

CLIENT = "pool-client-id"
PREFIX = "Invalid login token for login.test: "


class Verifiers:
    """Makes verifiers and closes them when the test ends."""

    def __init__(self) -> None:
        self.made: list[OidcVerifier] = []

    def __call__(self, *providers: OidcProvider, **settings: float) -> OidcVerifier:
        verifier = OidcVerifier(providers, **settings)
        self.made.append(verifier)
        return verifier


@pytest.fixture
async def verifiers() -> AsyncIterator[Verifiers]:
    made = Verifiers()
    yield made
    for verifier in made.made:
        await verifier.close()


@pytest.fixture(scope="session")
def attacker_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


async def refused(verifier: OidcVerifier, token: str, *, provider: str = "login.test") -> str:
    """The message of the NotAuthorizedError the token is refused with."""
    with pytest.raises(NotAuthorizedError) as refusal:
        await verifier.verify(provider, token, audiences=[CLIENT])
    return refusal.value.message


def unverified_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# --- tokens that verify ---------------------------------------------------------------------------------------------


async def test_valid_rs256_token_verifies_to_its_subject_and_claims(
    idp: TestIdentityProvider, verifiers: Verifiers
) -> None:
    verifier = verifiers(idp.provider())
    token = idp.mint("alice", aud=CLIENT, extra={"email": "alice@example.com"})

    login = await verifier.verify("login.test", token, audiences=[CLIENT])

    assert login == FederatedLogin(provider="login.test", subject="alice", claims=unverified_claims(token))
    assert login.claims["email"] == "alice@example.com"


async def test_es256_token_verifies_with_an_es256_allow_list(idp: TestIdentityProvider, verifiers: Verifiers) -> None:
    verifier = verifiers(idp.provider(algorithms=("ES256",)))
    token = idp.mint("bob", aud=CLIENT, alg="ES256")

    login = await verifier.verify("login.test", token, audiences=[CLIENT])

    assert login == FederatedLogin(provider="login.test", subject="bob", claims=unverified_claims(token))


async def test_audiences_from_the_pool_and_from_the_provider_are_both_accepted(
    idp: TestIdentityProvider, verifiers: Verifiers
) -> None:
    verifier = verifiers(idp.provider(audiences=("configured-client",)))

    from_pool = await verifier.verify("login.test", idp.mint("a", aud=CLIENT), audiences=[CLIENT])
    from_config = await verifier.verify("login.test", idp.mint("b", aud="configured-client"), audiences=[CLIENT])
    among_several = await verifier.verify("login.test", idp.mint("c", aud=["other", CLIENT]), audiences=[CLIENT])

    assert (from_pool.subject, from_config.subject, among_several.subject) == ("a", "b", "c")


async def test_token_within_the_leeway_of_its_expiry_verifies(idp: TestIdentityProvider, verifiers: Verifiers) -> None:
    verifier = verifiers(idp.provider(leeway_seconds=60))

    login = await verifier.verify("login.test", idp.mint("late", aud=CLIENT, exp_in=-30), audiences=[CLIENT])

    assert login.subject == "late"


async def test_jwks_from_a_file_verifies_without_fetching(
    idp: TestIdentityProvider, verifiers: Verifiers, tmp_path: Path
) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(idp.jwks()))
    verifier = verifiers(idp.provider(jwks_file=str(jwks_file)))

    login = await verifier.verify("login.test", idp.mint("carol", aud=CLIENT), audiences=[CLIENT])

    assert (login.subject, idp.jwks_fetches) == ("carol", 0)


async def test_token_without_kid_verifies_when_the_key_set_holds_one_key(
    idp: TestIdentityProvider, verifiers: Verifiers, tmp_path: Path
) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [idp.rsa.jwk()]}))
    verifier = verifiers(idp.provider(jwks_file=str(jwks_file)))

    login = await verifier.verify("login.test", idp.mint("dan", aud=CLIENT, headers={"kid": None}), audiences=[CLIENT])

    assert login.subject == "dan"


# --- the attack table -----------------------------------------------------------------------------------------------

ATTACKS = forgeries(CLIENT)


@pytest.mark.parametrize(("forge", "reason"), ATTACKS)
async def test_forged_token_is_refused_with_its_reason(
    idp: TestIdentityProvider,
    verifiers: Verifiers,
    attacker_key: rsa.RSAPrivateKey,
    forge: Forge,
    reason: str,
) -> None:
    verifier = verifiers(idp.provider(), min_refresh_interval_seconds=0)
    token = forge(idp, attacker_key)

    message = await refused(verifier, token)

    assert message == PREFIX + reason
    assert not token or token not in message


async def test_alg_allowed_but_not_the_keys_is_refused(idp: TestIdentityProvider, verifiers: Verifiers) -> None:
    verifier = verifiers(idp.provider(algorithms=("RS256", "ES256")))
    token = idp.mint("mallory", aud=CLIENT, alg="ES256", kid=idp.rsa.kid)

    assert (
        await refused(verifier, token) == PREFIX + "the token's algorithm ES256 does not match its signing key (RS256)"
    )


async def test_token_without_kid_is_refused_when_the_key_set_holds_several_keys(
    idp: TestIdentityProvider, verifiers: Verifiers
) -> None:
    verifier = verifiers(idp.provider())
    token = idp.mint("alice", aud=CLIENT, headers={"kid": None})

    assert await refused(verifier, token) == PREFIX + "the token names no signing key (kid)"


async def test_unknown_provider_is_refused(idp: TestIdentityProvider, verifiers: Verifiers) -> None:
    verifier = verifiers(idp.provider())

    message = await refused(verifier, idp.mint("alice", aud=CLIENT), provider="accounts.example.com")

    assert message == "Unknown login provider 'accounts.example.com'"


async def test_no_accepted_audience_is_refused(idp: TestIdentityProvider, verifiers: Verifiers) -> None:
    verifier = verifiers(idp.provider())

    with pytest.raises(NotAuthorizedError) as refusal:
        await verifier.verify("login.test", idp.mint("alice", aud=CLIENT), audiences=[])

    assert refusal.value.message == PREFIX + "no client id configured for login.test"


# --- keys: cache, refresh, rotation, outage -------------------------------------------------------------------------


async def test_unknown_kid_triggers_exactly_one_jwks_refresh(idp: TestIdentityProvider, verifiers: Verifiers) -> None:
    verifier = verifiers(idp.provider(), min_refresh_interval_seconds=0)
    await verifier.verify("login.test", idp.mint("alice", aud=CLIENT), audiences=[CLIENT])

    await refused(verifier, idp.mint("alice", aud=CLIENT, kid="unknown"))

    assert idp.jwks_fetches == 2


async def test_known_kid_uses_the_cached_keys(idp: TestIdentityProvider, verifiers: Verifiers) -> None:
    verifier = verifiers(idp.provider(), min_refresh_interval_seconds=0)

    for subject in ("a", "b", "c"):
        await verifier.verify("login.test", idp.mint(subject, aud=CLIENT), audiences=[CLIENT])

    assert idp.jwks_fetches == 1


async def test_rotated_key_is_picked_up_by_the_unknown_kid_refresh(
    idp: TestIdentityProvider, verifiers: Verifiers
) -> None:
    verifier = verifiers(idp.provider(), min_refresh_interval_seconds=0)
    await verifier.verify("login.test", idp.mint("alice", aud=CLIENT), audiences=[CLIENT])
    idp.rotate(keep_old=False)

    login = await verifier.verify("login.test", idp.mint("alice", aud=CLIENT), audiences=[CLIENT])

    assert (login.subject, idp.jwks_fetches) == ("alice", 2)


async def test_concurrent_unknown_kid_verifications_share_one_fetch(
    idp: TestIdentityProvider, verifiers: Verifiers
) -> None:
    verifier = verifiers(idp.provider(), min_refresh_interval_seconds=0)
    await verifier.verify("login.test", idp.mint("alice", aud=CLIENT), audiences=[CLIENT])
    idp.rotate()
    tokens = [idp.mint(subject, aud=CLIENT) for subject in ("a", "b", "c")]

    logins = await asyncio.gather(*(verifier.verify("login.test", token, audiences=[CLIENT]) for token in tokens))

    assert ([login.subject for login in logins], idp.jwks_fetches) == (["a", "b", "c"], 2)


async def test_unknown_kids_within_the_min_refresh_interval_do_not_refetch(
    idp: TestIdentityProvider, verifiers: Verifiers, attacker_key: rsa.RSAPrivateKey
) -> None:
    verifier = verifiers(idp.provider(), min_refresh_interval_seconds=3600)
    await verifier.verify("login.test", idp.mint("alice", aud=CLIENT), audiences=[CLIENT])

    messages = [await refused(verifier, idp.mint("m", aud=CLIENT, key=attacker_key, kid=f"k{n}")) for n in range(5)]

    assert messages == [PREFIX + f"unknown signing key 'k{n}'" for n in range(5)]
    assert idp.jwks_fetches == 1


async def test_provider_down_refuses_unknown_kids_and_keeps_cached_keys_working(
    idp: TestIdentityProvider, verifiers: Verifiers, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = verifiers(idp.provider(), min_refresh_interval_seconds=0)
    await verifier.verify("login.test", idp.mint("alice", aud=CLIENT), audiences=[CLIENT])
    await idp.stop()

    with caplog.at_level(logging.WARNING, logger="syncsvc.identity.oidc"):
        message = await refused(verifier, idp.mint("alice", aud=CLIENT, kid="rotated"))
    login = await verifier.verify("login.test", idp.mint("bob", aud=CLIENT), audiences=[CLIENT])

    assert message == PREFIX + "cannot fetch the provider's keys"
    assert login.subject == "bob"
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert "cannot fetch the keys of login provider login.test" in caplog.records[0].getMessage()


async def test_stale_keys_stay_usable_when_the_refresh_fails(idp: TestIdentityProvider, verifiers: Verifiers) -> None:
    verifier = verifiers(idp.provider(), refresh_seconds=0, min_refresh_interval_seconds=0)
    await verifier.verify("login.test", idp.mint("alice", aud=CLIENT), audiences=[CLIENT])
    await idp.stop()

    login = await verifier.verify("login.test", idp.mint("bob", aud=CLIENT), audiences=[CLIENT])

    assert login.subject == "bob"


async def test_stale_keys_are_refetched(idp: TestIdentityProvider, verifiers: Verifiers) -> None:
    verifier = verifiers(idp.provider(), refresh_seconds=0, min_refresh_interval_seconds=0)

    for subject in ("a", "b"):
        await verifier.verify("login.test", idp.mint(subject, aud=CLIENT), audiences=[CLIENT])

    assert idp.jwks_fetches == 2


async def test_provider_down_from_the_start_refuses_with_cannot_fetch(
    idp: TestIdentityProvider, verifiers: Verifiers
) -> None:
    verifier = verifiers(idp.provider())
    token = idp.mint("alice", aud=CLIENT)
    await idp.stop()

    assert await refused(verifier, token) == PREFIX + "cannot fetch the provider's keys"


async def test_missing_jwks_file_refuses_with_cannot_fetch(
    idp: TestIdentityProvider, verifiers: Verifiers, tmp_path: Path
) -> None:
    verifier = verifiers(idp.provider(jwks_file=str(tmp_path / "missing.json")))

    assert await refused(verifier, idp.mint("alice", aud=CLIENT)) == PREFIX + "cannot fetch the provider's keys"


async def test_malformed_jwks_refuses_with_cannot_fetch(
    idp: TestIdentityProvider, verifiers: Verifiers, tmp_path: Path
) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text('{"keys": [{"kty": "RSA", "kid": "rsa-1"}]}')
    verifier = verifiers(idp.provider(jwks_file=str(jwks_file)))

    assert await refused(verifier, idp.mint("alice", aud=CLIENT)) == PREFIX + "cannot fetch the provider's keys"


async def test_weak_provider_key_is_refused(idp: TestIdentityProvider, verifiers: Verifiers, tmp_path: Path) -> None:
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (deliberately weak)
    weak = SigningKey("weak-1", "RS256", weak_key)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [weak.jwk()]}))
    verifier = verifiers(idp.provider(jwks_file=str(jwks_file)))
    with pytest.warns(InsecureKeyLengthWarning):
        token = idp.mint("alice", aud=CLIENT, key=weak.private, kid=weak.kid)

    message = await refused(verifier, token)

    assert message == PREFIX + "the provider's signing key is unusable (wrong type or too weak)"


# --- provider configuration -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "reason"),
    [
        ("none", "algorithm 'none' is not allowed"),
        ("HS256", "algorithm 'HS256' is not allowed: only asymmetric algorithms"),
        ("XS999", "unknown algorithm 'XS999'"),
    ],
)
def test_provider_config_rejects_algorithm(algorithm: str, reason: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=reason):
        OidcProvider(
            name="login.test", issuer="https://login.test", jwks_url="https://login.test/jwks", algorithms=(algorithm,)
        )


@pytest.mark.parametrize(
    "sources",
    [{}, {"jwks_url": "https://login.test/jwks", "jwks_file": "/etc/jwks.json"}],
    ids=["neither", "both"],
)
def test_provider_config_needs_exactly_one_key_source(sources: dict[str, str]) -> None:
    with pytest.raises(pydantic.ValidationError, match="exactly one of jwks_url and jwks_file"):
        OidcProvider(name="login.test", issuer="https://login.test", **sources)


def test_provider_lookup_by_name(idp: TestIdentityProvider) -> None:
    provider = idp.provider()
    verifier = OidcVerifier([provider])

    assert (verifier.provider("login.test"), verifier.provider("other")) == (provider, None)
