"""TokenIssuer and RedisKeyRing: the identity tokens syncsvc issues, their rotation, their JWKS, and their forgeries.

Real Redis; an injected clock moves time across epochs without sleeping. Tokens are checked with jwcrypto (an
independent JOSE library) from the JWKS document alone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable

import jwt
import orjson
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto import jwk as jose_jwk  # type: ignore[import-untyped]
from jwcrypto import jwt as jose_jwt
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from syncsvc import rediskeys
from syncsvc.clock import ManualClock
from syncsvc.errors import BackendUnavailableError, ExpiredTokenError, NotAuthorizedError
from syncsvc.identity.issuer import LEEWAY_SECONDS, RELOAD_SECONDS, IssuedToken, TokenIssuer
from syncsvc.kms.root import RootKey
from syncsvc.store.keyring import RedisKeyRing, StoredSigningKey
from tests.conftest import ROOT_KEY_FILE, free_port
from tests.issuers import ISSUER_URL, MAX_LIFETIME, ROTATION, epoch, issuer_clock, key_service, seconds

POOL = "us-east-1:11111111-2222-3333-4444-555555555555"
IDENTITY = "us-east-1:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
GUEST = ("unauthenticated",)


class CountingKeyRing(RedisKeyRing):
    """Counts the loads, to see when the issuer goes to Redis."""

    loads = 0

    async def load_all(self) -> list[StoredSigningKey]:
        self.loads += 1
        return await super().load_all()


@pytest.fixture
def clock() -> ManualClock:
    return issuer_clock()


@pytest.fixture
def make_issuer(redis_client: aioredis.Redis, clock: ManualClock) -> Callable[[], TokenIssuer]:
    """Issuers as separate instances would be: each with its own key ring, key service and cache, all on one Redis."""

    def make() -> TokenIssuer:
        kms = key_service(redis_client)
        return TokenIssuer(
            CountingKeyRing(redis_client, kms.discard),
            kms,
            issuer_url=ISSUER_URL,
            rotation_seconds=ROTATION,
            max_lifetime_seconds=MAX_LIFETIME,
            clock=clock,
        )

    return make


@pytest.fixture
def issuer(make_issuer: Callable[[], TokenIssuer]) -> TokenIssuer:
    return make_issuer()


async def issue(issuer: TokenIssuer, lifetime_seconds: int = 600) -> str:
    return await issuer.issue(identity_pool_id=POOL, identity_id=IDENTITY, amr=GUEST, lifetime_seconds=lifetime_seconds)


def kids(jwks: dict[str, list[dict[str, str]]]) -> list[str]:
    return [key["kid"] for key in jwks["keys"]]


def unverified(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unsigned(header: dict[str, object], claims: dict[str, object]) -> str:
    return f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}"


async def stored_private_der(redis_client: aioredis.Redis, kid: str) -> bytes:
    """The private key (DER PKCS#8) of our own signing key: its KMS key's material, unwrapped with the root key."""
    raw = await redis_client.hget(rediskeys.SIGNING_KEYS, kid)
    assert raw is not None
    key_id = StoredSigningKey.decode(raw).key_id
    wrapped = await redis_client.hget(rediskeys.kms_key(key_id), "v1")
    assert isinstance(wrapped, bytes)
    return await RootKey.from_file(ROOT_KEY_FILE).unwrap(wrapped, key_id, 1)


async def stored_private_key(redis_client: aioredis.Redis, kid: str) -> rsa.RSAPrivateKey:
    """Our own signing key, unwrapped from the key service's storage: forging with it tests the checks beyond the
    signature."""
    key = serialization.load_der_private_key(await stored_private_der(redis_client, kid), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


async def kms_key_ids(redis_client: aioredis.Redis) -> list[bytes]:
    return [key_id for key_id in await redis_client.zrange(rediskeys.KMS_KEYS, 0, -1) if isinstance(key_id, bytes)]


# --- issuing ----------------------------------------------------------------------------------------------------------


async def test_issued_token_has_the_documented_claims_and_header_kid(issuer: TokenIssuer, clock: ManualClock) -> None:
    token = await issuer.issue(
        identity_pool_id=POOL,
        identity_id=IDENTITY,
        amr=["authenticated", "accounts.example.test", f"accounts.example.test:{POOL}:user-1"],
        lifetime_seconds=900,
    )

    claims = unverified(token)
    jti = claims.pop("jti")
    assert isinstance(jti, str)
    assert len(jti) == 32
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": f"k{epoch(clock)}"}
    assert claims == {
        "iss": ISSUER_URL,
        "sub": IDENTITY,
        "aud": POOL,
        "iat": clock.now_ms() // 1000,
        "exp": clock.now_ms() // 1000 + 900,
        "amr": ["authenticated", "accounts.example.test", f"accounts.example.test:{POOL}:user-1"],
    }


async def test_every_token_gets_a_fresh_jti(issuer: TokenIssuer) -> None:
    first, second = await issue(issuer), await issue(issuer)

    assert unverified(first)["jti"] != unverified(second)["jti"]


@pytest.mark.parametrize("lifetime_seconds", [0, -1, MAX_LIFETIME + 1])
async def test_lifetime_outside_one_to_max_is_refused(issuer: TokenIssuer, lifetime_seconds: int) -> None:
    with pytest.raises(ValueError, match="lifetime_seconds must be within"):
        await issue(issuer, lifetime_seconds)


async def test_issued_token_verifies_with_jwcrypto_using_only_the_jwks(issuer: TokenIssuer) -> None:
    token = await issue(issuer, MAX_LIFETIME)  # the test clock may be up to an hour behind jwcrypto's real one
    document = orjson.dumps(await issuer.jwks()).decode()

    verified = jose_jwt.JWT(
        jwt=token,
        key=jose_jwk.JWKSet.from_json(document),
        algs=["RS256"],
        check_claims={"iss": ISSUER_URL, "aud": POOL, "sub": IDENTITY, "exp": None},
    )

    assert orjson.loads(verified.claims)["sub"] == IDENTITY


# --- verifying --------------------------------------------------------------------------------------------------------


async def test_verify_returns_the_issued_claims(issuer: TokenIssuer, clock: ManualClock) -> None:
    token = await issue(issuer, 600)

    verified = await issuer.verify(token)

    assert verified == IssuedToken(
        identity_pool_id=POOL,
        identity_id=IDENTITY,
        amr=GUEST,
        expires_at=clock.now_ms() // 1000 + 600,
        jti=str(unverified(token)["jti"]),
    )


async def test_token_within_the_leeway_after_exp_still_verifies(issuer: TokenIssuer, clock: ManualClock) -> None:
    token = await issue(issuer, 600)
    clock.advance((600 + LEEWAY_SECONDS - 1) * 1000)

    assert (await issuer.verify(token)).identity_id == IDENTITY


async def test_expired_token_raises_expired_token_error(issuer: TokenIssuer, clock: ManualClock) -> None:
    token = await issue(issuer, 600)
    clock.advance((600 + LEEWAY_SECONDS) * 1000)

    with pytest.raises(ExpiredTokenError) as raised:
        await issuer.verify(token)
    assert raised.value.message == "The security token included in the request is expired"


def tampered_payload(token: str, key: rsa.RSAPrivateKey, now: float) -> str:
    header, _, signature = token.split(".")
    claims = {**unverified(token), "sub": "us-east-1:someone-else"}
    return f"{header}.{b64url(orjson.dumps(claims))}.{signature}"


def tampered_signature(token: str, key: rsa.RSAPrivateKey, now: float) -> str:
    head, _, signature = token.rpartition(".")
    flipped = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    flipped[0] ^= 1
    return f"{head}.{b64url(bytes(flipped))}"


def signed_by_a_foreign_key(token: str, key: rsa.RSAPrivateKey, now: float) -> str:
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(unverified(token), foreign, algorithm="RS256", headers=jwt.get_unverified_header(token))


def alg_none(token: str, key: rsa.RSAPrivateKey, now: float) -> str:
    return unsigned({**jwt.get_unverified_header(token), "alg": "none"}, unverified(token)) + "."


def hs256_with_the_public_key(token: str, key: rsa.RSAPrivateKey, now: float) -> str:
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = unsigned({**jwt.get_unverified_header(token), "alg": "HS256"}, unverified(token))
    return f"{head}.{b64url(hmac.new(public_pem, head.encode(), hashlib.sha256).digest())}"


def wrong_issuer(token: str, key: rsa.RSAPrivateKey, now: float) -> str:
    claims = {**unverified(token), "iss": "https://cognito-identity.amazonaws.com"}
    return jwt.encode(claims, key, algorithm="RS256", headers=jwt.get_unverified_header(token))


def without_aud(token: str, key: rsa.RSAPrivateKey, now: float) -> str:
    claims = {name: value for name, value in unverified(token).items() if name != "aud"}
    return jwt.encode(claims, key, algorithm="RS256", headers=jwt.get_unverified_header(token))


def not_yet_valid(token: str, key: rsa.RSAPrivateKey, now: float) -> str:
    claims = {**unverified(token), "nbf": int(now) + LEEWAY_SECONDS + 60}
    return jwt.encode(claims, key, algorithm="RS256", headers=jwt.get_unverified_header(token))


def unknown_kid(token: str, key: rsa.RSAPrivateKey, now: float) -> str:
    return jwt.encode(unverified(token), key, algorithm="RS256", headers={"kid": "k1"})


def not_a_jwt(token: str, key: rsa.RSAPrivateKey, now: float) -> str:
    return "not-a-token"


FORGERIES: list[tuple[Callable[[str, rsa.RSAPrivateKey, float], str], str]] = [
    (tampered_payload, "bad signature"),
    (tampered_signature, "bad signature"),
    (signed_by_a_foreign_key, "bad signature"),
    (alg_none, "algorithm 'none' is not allowed"),
    (hs256_with_the_public_key, "algorithm 'HS256' is not allowed"),
    (wrong_issuer, "wrong issuer"),
    (without_aud, "missing claim 'aud'"),
    (not_yet_valid, "not yet valid"),
    (unknown_kid, "unknown signing key"),
    (not_a_jwt, "malformed"),
]


@pytest.mark.parametrize(("forge", "reason"), FORGERIES, ids=[forge.__name__ for forge, _ in FORGERIES])
async def test_forged_token_is_not_authorized(
    issuer: TokenIssuer,
    redis_client: aioredis.Redis,
    clock: ManualClock,
    forge: Callable[[str, rsa.RSAPrivateKey, float], str],
    reason: str,
) -> None:
    token = await issue(issuer)
    key = await stored_private_key(redis_client, f"k{epoch(clock)}")
    forged = forge(token, key, seconds(clock))

    with pytest.raises(NotAuthorizedError) as raised:
        await issuer.verify(forged)
    assert raised.value.message == f"Invalid identity token: {reason}"


# --- instances and rotation -------------------------------------------------------------------------------------------


async def test_two_instances_sign_with_the_same_kid_and_verify_each_others_tokens(
    make_issuer: Callable[[], TokenIssuer],
) -> None:
    first, second = make_issuer(), make_issuer()

    from_first, from_second = await issue(first), await issue(second)

    assert jwt.get_unverified_header(from_first)["kid"] == jwt.get_unverified_header(from_second)["kid"]
    assert (await second.verify(from_first)).identity_id == IDENTITY
    assert (await first.verify(from_second)).identity_id == IDENTITY


async def test_two_cold_instances_racing_create_one_key_per_epoch(
    make_issuer: Callable[[], TokenIssuer], redis_client: aioredis.Redis, clock: ManualClock
) -> None:
    first, second = make_issuer(), make_issuer()

    tokens = await asyncio.gather(issue(first), issue(second), issue(first), issue(second))

    assert {jwt.get_unverified_header(token)["kid"] for token in tokens} == {f"k{epoch(clock)}"}
    assert await redis_client.hkeys(rediskeys.SIGNING_KEYS) == [f"k{epoch(clock)}".encode()]


async def test_after_rotation_new_tokens_use_the_new_epochs_kid(issuer: TokenIssuer, clock: ManualClock) -> None:
    before = await issue(issuer)
    clock.advance(ROTATION * 1000)

    after = await issue(issuer)

    assert jwt.get_unverified_header(before)["kid"] == f"k{epoch(clock) - 1}"
    assert jwt.get_unverified_header(after)["kid"] == f"k{epoch(clock)}"


async def test_rotated_key_still_verifies_its_tokens_and_stays_in_the_jwks(
    make_issuer: Callable[[], TokenIssuer], clock: ManualClock
) -> None:
    issuer = make_issuer()
    old = await issue(issuer, MAX_LIFETIME)
    old_kid = f"k{epoch(clock)}"
    clock.advance(ROTATION * 1000)
    await issue(issuer)

    assert (await issuer.verify(old)).identity_id == IDENTITY
    assert (await make_issuer().verify(old)).identity_id == IDENTITY
    assert kids(await issuer.jwks()) == [old_kid, f"k{epoch(clock)}", f"k{epoch(clock) + 1}"]


async def test_jwks_publishes_the_current_and_the_next_epochs_keys(issuer: TokenIssuer, clock: ManualClock) -> None:
    jwks = await issuer.jwks()

    assert kids(jwks) == [f"k{epoch(clock)}", f"k{epoch(clock) + 1}"]
    assert [sorted(key) for key in jwks["keys"]] == [["alg", "e", "kid", "kty", "n", "use"]] * 2
    assert {(key["kty"], key["alg"], key["use"], key["e"]) for key in jwks["keys"]} == {("RSA", "RS256", "sig", "AQAB")}


async def test_rotated_key_leaves_the_jwks_after_rotation_plus_max_lifetime(
    issuer: TokenIssuer, clock: ManualClock
) -> None:
    first_epoch = epoch(clock)
    token = await issue(issuer, MAX_LIFETIME)
    epoch_end = (first_epoch + 1) * ROTATION
    clock.set((epoch_end + MAX_LIFETIME + LEEWAY_SECONDS - 1) * 1000)
    assert f"k{first_epoch}" in kids(await issuer.jwks())

    clock.advance(1000)

    assert f"k{first_epoch}" not in kids(await issuer.jwks())
    with pytest.raises(NotAuthorizedError, match="unknown signing key"):
        await issuer.verify(token)


async def test_retired_keys_are_pruned_from_redis(
    issuer: TokenIssuer, redis_client: aioredis.Redis, clock: ManualClock
) -> None:
    first_epoch = epoch(clock)
    await issuer.jwks()
    clock.advance((3 * ROTATION + MAX_LIFETIME + LEEWAY_SECONDS) * 1000)

    await issuer.jwks()

    stored = set(await redis_client.hkeys(rediskeys.SIGNING_KEYS))
    assert f"k{first_epoch}".encode() not in stored
    assert stored == {f"k{epoch(clock)}".encode(), f"k{epoch(clock) + 1}".encode()}


# --- caching and Redis ------------------------------------------------------------------------------------------------


async def test_warm_issuer_issues_and_verifies_without_redis(issuer: TokenIssuer) -> None:
    await issue(issuer)
    issuer.keyring.client = aioredis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))

    token = await issue(issuer)

    assert (await issuer.verify(token)).identity_id == IDENTITY
    await issuer.keyring.client.aclose()


async def test_unknown_kid_reloads_the_keys_at_most_once_per_interval(
    issuer: TokenIssuer, redis_client: aioredis.Redis, clock: ManualClock
) -> None:
    token = await issue(issuer)
    keyring = issuer.keyring
    assert isinstance(keyring, CountingKeyRing)
    forged = unknown_kid(token, await stored_private_key(redis_client, f"k{epoch(clock)}"), seconds(clock))
    loads = keyring.loads
    clock.advance(RELOAD_SECONDS * 1000)

    for _ in range(3):
        with pytest.raises(NotAuthorizedError):
            await issuer.verify(forged)
    assert keyring.loads == loads + 1
    clock.advance(RELOAD_SECONDS * 1000)
    with pytest.raises(NotAuthorizedError):
        await issuer.verify(forged)
    assert keyring.loads == loads + 2


async def test_a_reload_that_failed_does_not_hold_back_the_next(
    issuer: TokenIssuer, make_issuer: Callable[[], TokenIssuer]
) -> None:
    """A cold instance (just restarted) whose first reload met Redis down answers 503 for it, and verifies the next
    token as soon as Redis is back: it used to count the failed reload as done and refuse every token of the kid it
    had not loaded as NotAuthorized ("unknown signing key") for RELOAD_SECONDS, which the chaos run saw as a 403 on a
    push socket's handshake (the reference client takes that as final)."""
    token = await issue(issuer)
    cold = make_issuer()
    reachable = cold.keyring.client
    cold.keyring.client = aioredis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    with pytest.raises(BackendUnavailableError):
        await cold.verify(token)
    await cold.keyring.client.aclose()
    cold.keyring.client = reachable

    assert (await cold.verify(token)).identity_id == IDENTITY


async def test_concurrent_ensure_of_one_kid_keeps_exactly_one_key(redis_client: aioredis.Redis) -> None:
    discarded: list[str] = []

    async def discard(key_id: str) -> None:
        discarded.append(key_id)

    first, second = RedisKeyRing(redis_client, discard), RedisKeyRing(redis_client, discard)
    both_made = asyncio.Barrier(2)

    def maker(key_id: str) -> Callable[[], Awaitable[tuple[str, str]]]:
        async def make() -> tuple[str, str]:
            await both_made.wait()  # both have missed the key before either stores one
            return key_id, f"pem-{key_id}"

        return make

    got = await asyncio.gather(
        first.ensure("k7", maker("first"), created=1.0), second.ensure("k7", maker("second"), created=2.0)
    )

    assert got[0] == got[1]
    assert await redis_client.hgetall(rediskeys.SIGNING_KEYS) == {b"k7": got[0].encode()}
    assert discarded == [{"first": "second", "second": "first"}[got[0].key_id]]


async def test_losing_the_ensure_race_discards_the_losers_kms_key(
    make_issuer: Callable[[], TokenIssuer], redis_client: aioredis.Redis, clock: ManualClock
) -> None:
    first, second = make_issuer(), make_issuer()
    both_made = asyncio.Barrier(2)
    for issuer in (first, second):
        make_key = issuer._make_key

        async def slow_make_key(kid: str, make_key: Callable[[str], Awaitable[tuple[str, str]]] = make_key) -> object:
            made = await make_key(kid)
            await both_made.wait()  # both have made a KMS key before either stores its entry
            return made

        issuer._make_key = slow_make_key  # type: ignore[method-assign,assignment]

    tokens = await asyncio.gather(issue(first), issue(second))

    raw = await redis_client.hget(rediskeys.SIGNING_KEYS, f"k{epoch(clock)}")
    assert raw is not None
    assert await kms_key_ids(redis_client) == [StoredSigningKey.decode(raw).key_id.encode()]
    for token in tokens:
        assert (await first.verify(token)).identity_id == IDENTITY
        assert (await second.verify(token)).identity_id == IDENTITY


async def test_the_key_ring_holds_no_private_key_material(
    issuer: TokenIssuer, redis_client: aioredis.Redis, clock: ManualClock
) -> None:
    await issuer.jwks()
    private_der = await stored_private_der(redis_client, f"k{epoch(clock)}")

    stored = await redis_client.hgetall(rediskeys.SIGNING_KEYS)

    assert set(stored) == {f"k{epoch(clock)}".encode(), f"k{epoch(clock) + 1}".encode()}
    for raw in stored.values():
        assert b"PRIVATE KEY" not in raw
        assert private_der not in raw
        assert base64.b64encode(private_der) not in raw
        assert sorted(orjson.loads(raw)) == ["alg", "created", "key_id", "kid", "public_pem"]


async def test_issued_token_verifies_with_pyjwt_using_only_the_jwks(issuer: TokenIssuer, clock: ManualClock) -> None:
    token = await issue(issuer)
    jwks = await issuer.jwks()
    (published,) = [key for key in jwks["keys"] if key["kid"] == f"k{epoch(clock)}"]

    claims = jwt.decode(
        token,
        jwt.PyJWK(published).key,
        algorithms=["RS256"],
        audience=POOL,
        issuer=ISSUER_URL,
        options={"verify_exp": False, "verify_iat": False},
    )

    assert claims["sub"] == IDENTITY


async def test_pruning_a_retired_key_discards_its_kms_key(
    issuer: TokenIssuer, redis_client: aioredis.Redis, clock: ManualClock
) -> None:
    await issuer.jwks()
    retired = {
        StoredSigningKey.decode(raw).key_id.encode()
        for raw in (await redis_client.hgetall(rediskeys.SIGNING_KEYS)).values()
    }
    assert len(retired) == 2
    clock.advance((4 * ROTATION + MAX_LIFETIME + LEEWAY_SECONDS) * 1000)

    await issuer.jwks()

    live = {
        StoredSigningKey.decode(raw).key_id.encode()
        for raw in (await redis_client.hgetall(rediskeys.SIGNING_KEYS)).values()
    }
    assert set(await kms_key_ids(redis_client)) == live
    assert not live & retired
    for key_id in retired:
        assert not await redis_client.exists(rediskeys.kms_key(key_id.decode()))


async def test_an_old_format_entry_is_skipped_and_replaced_when_its_kid_is_needed(
    issuer: TokenIssuer, redis_client: aioredis.Redis, clock: ManualClock
) -> None:
    old = orjson.dumps(
        {"kid": f"k{epoch(clock)}", "alg": "RS256", "private_pem": "-----BEGIN PRIVATE KEY-----", "created": 1.0}
    )
    await redis_client.hset(rediskeys.SIGNING_KEYS, f"k{epoch(clock)}", old)

    token = await issue(issuer)

    assert (await issuer.verify(token)).identity_id == IDENTITY
    raw = await redis_client.hget(rediskeys.SIGNING_KEYS, f"k{epoch(clock)}")
    assert raw is not None
    assert b"PRIVATE KEY" not in raw


async def test_unreachable_redis_raises_backend_unavailable(clock: ManualClock) -> None:
    client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    kms = key_service(client)
    issuer = TokenIssuer(RedisKeyRing(client, kms.discard), kms, issuer_url=ISSUER_URL, clock=clock)

    with pytest.raises(BackendUnavailableError):
        await issue(issuer)
    await client.aclose()


def test_openid_configuration_points_at_the_jwks(issuer: TokenIssuer) -> None:
    assert issuer.openid_configuration() == {
        "issuer": ISSUER_URL,
        "jwks_uri": f"{ISSUER_URL}/.well-known/jwks.json",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["iss", "sub", "aud", "iat", "exp", "amr", "jti"],
    }


async def test_a_verified_token_is_not_decoded_again(issuer: TokenIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    token = await issue(issuer, 600)
    await issuer.verify(token)

    def no_second_decode(*args: object) -> None:
        raise AssertionError("the token was decoded again")

    monkeypatch.setattr(issuer, "_decode", no_second_decode)
    assert (await issuer.verify(token)).identity_id == IDENTITY


async def test_a_remembered_token_still_expires(issuer: TokenIssuer, clock: ManualClock) -> None:
    token = await issue(issuer, 600)
    await issuer.verify(token)
    clock.advance((600 + LEEWAY_SECONDS) * 1000)

    with pytest.raises(ExpiredTokenError):
        await issuer.verify(token)


async def test_a_remembered_token_is_refused_once_its_key_is_retired(issuer: TokenIssuer, clock: ManualClock) -> None:
    token = await issue(issuer, MAX_LIFETIME)
    await issuer.verify(token)
    clock.set(((epoch(clock) + 1) * ROTATION + MAX_LIFETIME + LEEWAY_SECONDS) * 1000)

    with pytest.raises(NotAuthorizedError, match="unknown signing key"):
        await issuer.verify(token)


async def test_a_tampered_copy_of_a_remembered_token_is_still_checked(issuer: TokenIssuer) -> None:
    token = await issue(issuer, 600)
    await issuer.verify(token)
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]

    with pytest.raises(NotAuthorizedError):
        await issuer.verify(f"{header}.{payload}.{flipped}")
