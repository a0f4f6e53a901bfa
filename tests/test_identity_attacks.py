"""Attacks on the identity broker through the running server, each refused with the exact AWS error and without a
trace: forged ID tokens given to GetId, SigV4 requests made with (pieces of) temporary credentials, and forged or
stale Bearer tokens on Cognito Sync.

Forgeries are made as an attacker would make them, with real keys: the test OIDC provider's tokens re-signed,
tampered or unsigned; session tokens sealed with the deployment's own secret (read from Redis, as anyone holding it
could); identity tokens signed with the service's own key ring under a clock set in the past. Nothing is mocked.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt
import orjson
import pytest
import redis.asyncio as aioredis
import yarl
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.utils import base64url_encode

from syncsvc import rediskeys
from syncsvc.clock import SYSTEM, Clock, ManualClock
from syncsvc.config import Settings
from syncsvc.identity.issuer import TokenIssuer
from syncsvc.kms.root import RootKey
from syncsvc.kms.token_secret import open_token_secret
from syncsvc.store.keyring import RedisKeyRing
from syncsvc.tokens import TokenSigner
from tests.conftest import DEVELOPER_KEY, REGION, ROOT_KEY_FILE, Boto, Raw, call
from tests.devices import APP_CLIENT, LOGIN, Credentials, Devices, guest, identity_settings, new_pool
from tests.forged_tokens import Forge, forgeries
from tests.issuers import key_service
from tests.oidc_provider import TestIdentityProvider, new_rsa_key

PREFIX = f"Invalid login token for {LOGIN}: "


@pytest.fixture
def settings(redis_url: str, idp: TestIdentityProvider) -> Settings:
    return identity_settings(redis_url, idp)


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


Answer = tuple[int, dict[str, Any], dict[str, str]]
#: (HTTP status, AWS error code, how the message starts)
Refusal = tuple[int, str, str]


def error_of(answer: Answer) -> tuple[int, str]:
    """(status, code) of an error response; the code as every client reads it (rest-json: header, json: body)."""
    status, body, headers = answer
    assert headers.get("x-amzn-ErrorType") == body.get("__type")
    return status, body["__type"]


def assert_refused(answer: Answer, refusal: Refusal) -> None:
    status, code, message = refusal
    assert error_of(answer) == (status, code)
    assert answer[1]["message"].startswith(message), answer[1]["message"]


# --- forged ID tokens given to GetId --------------------------------------------------------------------------------

#: The forgeries of the verifier's own tests (test_oidc.py) that a login given to GetId is refused for, too.
AT_GET_ID = frozenset(
    {
        "unsigned-alg-none",
        "hs256-keyed-with-the-rsa-public-key",
        "wrong-iss",
        "wrong-aud",
        "expired",
        "not-yet-valid-nbf",
        "signed-by-another-key-with-the-same-kid",
        "unknown-kid",
        "tampered-payload",
        "garbage",
    }
)
FORGED_LOGINS = [forgery for forgery in forgeries(APP_CLIENT) if forgery.id in AT_GET_ID]


@pytest.mark.parametrize(("forge", "reason"), FORGED_LOGINS)
async def test_forged_login_gets_no_identity(
    boto: Boto,
    raw: Raw,
    idp: TestIdentityProvider,
    attacker_key: rsa.RSAPrivateKey,
    forge: Forge,
    reason: str,
) -> None:
    pool = await new_pool(boto, guests=True)  # a failed login must not fall back to a guest identity either

    answer = await raw.send(
        "POST",
        "/",
        body=orjson.dumps({"IdentityPoolId": pool, "Logins": {LOGIN: forge(idp, attacker_key)}}),
        sign=False,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSCognitoIdentityService.GetId"},
    )

    assert error_of(answer) == (400, "NotAuthorizedException")  # json 1.1: no modeled status, so 400
    assert answer[1]["message"] == PREFIX + reason
    listed = await call(boto.identity, "list_identities", IdentityPoolId=pool, MaxResults=60)
    assert listed["Identities"] == []


# --- SigV4 with temporary credentials -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wire:
    """An HTTP request exactly as it goes on the wire."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class SigV4At(SigV4Auth):
    """botocore's SigV4 signer, signing at a given time instead of now (what a replayed request carries)."""

    def __init__(self, credentials: BotoCredentials, when: datetime) -> None:
        super().__init__(credentials, "cognito-sync", REGION)
        self._when = when

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self._when.strftime(SIGV4_TIMESTAMP)
        request.headers["X-Amz-Date"] = request.context["timestamp"]
        if self.credentials.token:
            request.headers["X-Amz-Security-Token"] = self.credentials.token
        signature = self.signature(self.string_to_sign(request, self.canonical_request(request)), request)
        signed_headers = self.signed_headers(self.headers_to_sign(request))
        request.headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.scope(request)}, SignedHeaders={signed_headers}, Signature={signature}"
        )


@dataclass(frozen=True, slots=True)
class Scene:
    """Identity A about to write its own dataset, identity B of the same pool, and the deployment secret."""

    endpoint: str
    pool: str
    a: str
    a_credentials: Credentials
    b: str
    b_credentials: Credentials
    sync_session_token: str
    secret: bytes

    def path(self, identity: str | None = None, query: str = "") -> str:
        pool, who = quote(self.pool, safe=""), quote(identity or self.a, safe="")
        return f"/identitypools/{pool}/identities/{who}/datasets/settings" + (f"?{query}" if query else "")

    def body(self, value: str = "mine") -> bytes:
        patch = {"Op": "replace", "Key": "theme", "Value": value, "SyncCount": 0}
        return orjson.dumps({"SyncSessionToken": self.sync_session_token, "RecordPatches": [patch]})

    def keys_of(
        self, owner: str = "a", *, secret_of: str | None = None, session_token: str | None = None
    ) -> BotoCredentials:
        """botocore credentials from pieces: ``owner``'s access key id, ``secret_of``'s secret key and
        ``session_token`` (both default to the owner's own)."""
        own = self.a_credentials if owner == "a" else self.b_credentials
        secret = (self.a_credentials if (secret_of or owner) == "a" else self.b_credentials)["SecretKey"]
        return BotoCredentials(own["AccessKeyId"], secret, session_token or own["SessionToken"])

    def update(
        self,
        credentials: BotoCredentials | None = None,
        *,
        path: str | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        at: datetime | None = None,
    ) -> Wire:
        """UpdateRecords of A's dataset, signed by botocore with ``credentials`` (default A's own), now or ``at``."""
        path = path or self.path()
        body = self.body() if body is None else body
        request = AWSRequest(
            method="POST",
            url=self.endpoint + path,
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        credentials = credentials or self.keys_of()
        signer = SigV4Auth(credentials, "cognito-sync", REGION) if at is None else SigV4At(credentials, at)
        signer.add_auth(request)
        signed = {
            name: value.decode() if isinstance(value, bytes) else value for name, value in request.headers.items()
        }
        return Wire("POST", path, signed, body)

    def bearer(self, token: str) -> Wire:
        """UpdateRecords of A's dataset with ``Authorization: Bearer <token>`` instead of a signature."""
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        return Wire("POST", self.path(), headers, self.body())

    def resealed_session_token(self, **changes: Any) -> str:
        """A's session token with some claims changed, sealed with the deployment's secret as the service seals."""
        claims = _json_of(self.a_credentials["SessionToken"].split(".")[0])
        return TokenSigner(self.secret).seal("TemporaryCredentials", claims | changes)

    def session_token_with_claims(self, **changes: Any) -> str:
        """A's session token with some claims changed and its seal kept (all an attacker without the secret can do)."""
        encoded, seal = self.a_credentials["SessionToken"].split(".")
        return f"{base64url_encode(orjson.dumps(_json_of(encoded) | changes)).decode()}.{seal}"

    def session_token_with_bad_seal(self) -> str:
        """A's session token with the first character of its seal changed."""
        claims, seal = self.a_credentials["SessionToken"].split(".")
        return f"{claims}.{'B' if seal[0] == 'A' else 'A'}{seal[1:]}"


def _json_of(encoded: str) -> dict[str, Any]:
    """The JSON object in a base64url segment (of a JWT or a sealed token)."""
    decoded: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    return decoded


def _tampered_header(scene: Scene) -> Wire:
    wire = scene.update(headers={"X-Amz-Client-Context": base64.b64encode(b'{"client":{"app_title":"a"}}').decode()})
    evil = base64.b64encode(b'{"client":{"app_title":"evil"}}').decode()
    return replace(wire, headers=wire.headers | {"X-Amz-Client-Context": evil})


def _tampered_query(scene: Scene) -> Wire:
    wire = scene.update(path=scene.path(query="probe=1"))
    return replace(wire, path=scene.path(query="probe=2"))


#: (HTTP status, AWS error code, how the message starts), as AWS answers (reference §0.1, §5)
BAD_SIGNATURE: Refusal = (400, "InvalidSignatureException", "The request signature we calculated does not match")
TOO_OLD: Refusal = (400, "InvalidSignatureException", "Signature expired: ")
TOO_NEW: Refusal = (400, "InvalidSignatureException", "Signature not yet current: ")
BAD_TOKEN: Refusal = (400, "UnrecognizedClientException", "The security token included in the request is invalid.")
EXPIRED_TOKEN: Refusal = (403, "ExpiredTokenException", "The security token included in the request is expired")

#: (attack, refusal)
SIGV4_ATTACKS: list[Any] = [
    pytest.param(
        lambda scene: replace(scene.update(), path=scene.path(scene.b)),
        BAD_SIGNATURE,
        id="path-changed-to-another-identity",
    ),
    pytest.param(_tampered_query, BAD_SIGNATURE, id="query-changed"),
    pytest.param(
        lambda scene: replace(scene.update(), body=scene.body("evil")),
        BAD_SIGNATURE,
        id="body-changed",
    ),
    pytest.param(_tampered_header, BAD_SIGNATURE, id="signed-header-changed"),
    pytest.param(
        lambda scene: scene.update(at=datetime.now(UTC) - timedelta(minutes=6)),
        TOO_OLD,
        id="replayed-6-minutes-later",
    ),
    pytest.param(
        lambda scene: scene.update(at=datetime.now(UTC) + timedelta(minutes=6)),
        TOO_NEW,
        id="dated-6-minutes-ahead",
    ),
    pytest.param(
        lambda scene: scene.update(scene.keys_of("a", session_token=scene.b_credentials["SessionToken"])),
        BAD_TOKEN,
        id="session-token-of-another-identity-with-own-key-id",
    ),
    pytest.param(
        lambda scene: scene.update(scene.keys_of("a", session_token=scene.session_token_with_claims(i=scene.b))),
        BAD_TOKEN,
        id="session-token-tampered-to-name-another-identity",
    ),
    pytest.param(
        lambda scene: scene.update(scene.keys_of("a", session_token=scene.session_token_with_bad_seal())),
        BAD_TOKEN,
        id="session-token-seal-tampered",
    ),
    pytest.param(
        lambda scene: scene.update(scene.keys_of("b", secret_of="a")),
        BAD_SIGNATURE,
        id="secret-key-of-a-with-access-key-of-b",
    ),
    pytest.param(
        lambda scene: scene.update(
            BotoCredentials(scene.a_credentials["AccessKeyId"], scene.a_credentials["SecretKey"])
        ),
        BAD_TOKEN,
        id="temporary-key-without-its-session-token",
    ),
    pytest.param(
        lambda scene: scene.update(
            BotoCredentials(DEVELOPER_KEY, scene.a_credentials["SecretKey"], scene.a_credentials["SessionToken"])
        ),
        BAD_TOKEN,
        id="developer-key-id-with-an-identity-session-token",
    ),
    pytest.param(
        lambda scene: scene.update(
            scene.keys_of("a", session_token=scene.resealed_session_token(x=int(time.time()) - 1))
        ),
        EXPIRED_TOKEN,
        id="expired-credentials",
    ),
]


@pytest.fixture
async def scene(boto: Boto, devices: Devices, endpoint: str, redis_client: aioredis.Redis) -> Scene:
    pool = await new_pool(boto)
    a, a_credentials = await guest(devices, pool)
    b, b_credentials = await guest(devices, pool)
    listed = await call(
        devices.sync_with(a_credentials), "list_records", IdentityPoolId=pool, IdentityId=a, DatasetName="settings"
    )
    sealed = await redis_client.get(rediskeys.TOKEN_SECRET)
    assert isinstance(sealed, bytes)
    secret = await open_token_secret(RootKey.from_file(ROOT_KEY_FILE), sealed)
    return Scene(endpoint, pool, a, a_credentials, b, b_credentials, listed["SyncSessionToken"], secret)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def send(http: aiohttp.ClientSession, endpoint: str, wire: Wire) -> tuple[int, dict[str, Any], dict[str, str]]:
    url = yarl.URL(endpoint + wire.path, encoded=True)
    async with http.request(wire.method, url, data=wire.body, headers=wire.headers) as response:
        return response.status, orjson.loads(await response.read()), dict(response.headers)


async def nothing_written(boto: Boto, scene: Scene) -> bool:
    for identity in (scene.a, scene.b):
        names = {"IdentityPoolId": scene.pool, "IdentityId": identity, "DatasetName": "settings"}
        if (await call(boto.sync, "list_records", **names))["DatasetExists"]:
            return False
    return True


async def test_the_untampered_request_is_accepted(boto: Boto, scene: Scene, http: aiohttp.ClientSession) -> None:
    status, body, _ = await send(http, scene.endpoint, scene.update())

    assert status == 200
    assert [(record["Key"], record["Value"]) for record in body["Records"]] == [("theme", "mine")]


async def test_a_request_signed_at_now_by_the_replaying_signer_is_accepted(
    scene: Scene, http: aiohttp.ClientSession
) -> None:
    """The control for the replay attacks: the signer they use, at the current time, signs a valid request."""
    status, _, _ = await send(http, scene.endpoint, scene.update(at=datetime.now(UTC)))

    assert status == 200


async def test_a_session_token_resealed_with_the_deployment_secret_is_accepted(
    scene: Scene, http: aiohttp.ClientSession
) -> None:
    """The control for the expired-credentials attack: the same reseal, with a future expiry, passes."""
    token = scene.resealed_session_token(x=int(time.time()) + 60)

    status, _, _ = await send(http, scene.endpoint, scene.update(scene.keys_of("a", session_token=token)))

    assert status == 200


@pytest.mark.parametrize(("attack", "refusal"), SIGV4_ATTACKS)
async def test_sigv4_attack_is_refused_and_writes_nothing(
    boto: Boto, scene: Scene, http: aiohttp.ClientSession, attack: Callable[[Scene], Wire], refusal: Refusal
) -> None:
    answer = await send(http, scene.endpoint, attack(scene))

    assert_refused(answer, refusal)
    assert await nothing_written(boto, scene)


# --- Bearer tokens --------------------------------------------------------------------------------------------------


def issuer_at(redis_client: aioredis.Redis, settings: Settings, clock: Clock = SYSTEM) -> TokenIssuer:
    """A token issuer on the service's own key ring (in Redis), with a clock of its own: it signs exactly as the
    service does, at the time it is told."""
    kms = key_service(redis_client)
    return TokenIssuer(
        RedisKeyRing(redis_client, kms.discard),
        kms,
        issuer_url=settings.issuer_url,
        rotation_seconds=settings.token_rotation_seconds,
        clock=clock,
    )


@dataclass(frozen=True, slots=True)
class Forger:
    """What it takes to make Bearer tokens for identity A: the service's key ring, the test OIDC provider, a key of
    the attacker's own, and another pool."""

    scene: Scene
    issuer: TokenIssuer
    past_issuer: TokenIssuer
    idp: TestIdentityProvider
    attacker: rsa.RSAPrivateKey
    other_pool: str

    async def token(self, *, issuer: TokenIssuer | None = None, pool: str | None = None, lifetime: int = 600) -> str:
        """A genuine guest token of A (or of A's id in ``pool``)."""
        return await (issuer or self.issuer).issue(
            identity_pool_id=pool or self.scene.pool,
            identity_id=self.scene.a,
            amr=["unauthenticated"],
            lifetime_seconds=lifetime,
        )

    async def resigned(self, *, alg: str, key: Any, **claims: Any) -> str:
        """A genuine token's header and claims (with ``claims`` changed), signed with ``alg`` and ``key``."""
        genuine = await self.token()
        payload = jwt.decode(genuine, options={"verify_signature": False}) | claims
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": jwt.get_unverified_header(genuine)["kid"]})

    async def tampered(self) -> str:
        """A genuine token whose subject is changed to B, the signature kept."""
        header, payload, signature = (await self.token()).split(".")
        return (
            f"{header}.{base64url_encode(orjson.dumps(_json_of(payload) | {'sub': self.scene.b})).decode()}.{signature}"
        )


def _not_authorized(reason: str) -> Refusal:
    return (403, "NotAuthorizedException", f"Invalid identity token: {reason}")


#: (forgery, refusal)
BEARER_ATTACKS: list[Any] = [
    pytest.param(lambda forger: forger.token(issuer=forger.past_issuer, lifetime=1), EXPIRED_TOKEN, id="expired"),
    pytest.param(
        lambda forger: forger.token(pool=forger.other_pool),
        _not_authorized("the identity no longer exists"),
        id="issued-for-another-pool",
    ),
    pytest.param(
        lambda forger: forger.resigned(alg="none", key=""),
        _not_authorized("algorithm 'none' is not allowed"),
        id="unsigned-alg-none",
    ),
    pytest.param(
        lambda forger: forger.resigned(alg="HS256", key=secrets.token_bytes(32)),
        _not_authorized("algorithm 'HS256' is not allowed"),
        id="hs256-with-the-services-kid",
    ),
    pytest.param(
        lambda forger: forger.resigned(alg="RS256", key=forger.attacker),
        _not_authorized("bad signature"),
        id="signed-by-another-key-with-the-services-kid",
    ),
    pytest.param(
        lambda forger: forger.resigned(alg="RS256", key=forger.attacker, exp=int(time.time()) + 86400 * 365),
        _not_authorized("bad signature"),
        id="lifetime-extended-and-resigned",
    ),
    pytest.param(lambda forger: forger.tampered(), _not_authorized("bad signature"), id="tampered-payload"),
    pytest.param(
        lambda forger: _ready(forger.idp.mint(forger.scene.a, aud=forger.scene.pool)),
        _not_authorized("unknown signing key"),
        id="id-token-of-a-federated-provider",
    ),
    pytest.param(lambda forger: _ready("not-a-token"), _not_authorized("malformed"), id="garbage"),
]


async def _ready(token: str) -> str:
    return token


@pytest.fixture
async def forger(
    boto: Boto,
    scene: Scene,
    settings: Settings,
    redis_client: aioredis.Redis,
    idp: TestIdentityProvider,
    attacker_key: rsa.RSAPrivateKey,
) -> Forger:
    # A clock stopped a minute ago: with a one-second lifetime its tokens are expired, and they are signed with the
    # current epoch's key (or, in the first minute of an epoch, the previous one's, which the service still holds).
    past = issuer_at(redis_client, settings, ManualClock(SYSTEM.now_ms() - 60_000))
    return Forger(scene, issuer_at(redis_client, settings), past, idp, attacker_key, await new_pool(boto))


async def test_a_genuine_bearer_token_is_accepted(forger: Forger, http: aiohttp.ClientSession) -> None:
    """The control for the Bearer attacks: a token made the same way, unaltered, writes A's dataset."""
    wire = forger.scene.bearer(await forger.token())

    status, body, _ = await send(http, forger.scene.endpoint, wire)

    assert status == 200
    assert [(record["Key"], record["Value"]) for record in body["Records"]] == [("theme", "mine")]


@pytest.mark.parametrize(("forge", "refusal"), BEARER_ATTACKS)
async def test_bearer_attack_is_refused_and_writes_nothing(
    boto: Boto,
    forger: Forger,
    http: aiohttp.ClientSession,
    forge: Callable[[Forger], Awaitable[str]],
    refusal: Refusal,
) -> None:
    wire = forger.scene.bearer(await forge(forger))

    answer = await send(http, forger.scene.endpoint, wire)

    assert_refused(answer, refusal)
    assert await nothing_written(boto, forger.scene)


async def test_bearer_token_of_a_deleted_identity_is_refused(
    boto: Boto, forger: Forger, http: aiohttp.ClientSession
) -> None:
    token = await forger.token()
    await call(boto.identity, "delete_identities", IdentityIdsToDelete=[forger.scene.a])

    answer = await send(http, forger.scene.endpoint, forger.scene.bearer(token))

    assert_refused(answer, _not_authorized("the identity no longer exists"))
