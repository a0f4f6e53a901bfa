"""Findings of the security review of the KMS surface, each pinned by unmodified boto3 clients (developer and
identity credentials) against the real server on real Redis:

* an identity cannot tell a key or alias that exists from one that does not (one AccessDeniedException for both);
* the keys syncsvc makes for itself (token signing keys, pool master keys) do not exist on the public KMS API, and
  a token signed by the service's own key is still refused when it claims a longer lifetime than the service issues;
* names with a trailing newline are refused (validation patterns match in full, ``$`` matches before a final ``\\n``).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import orjson
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from syncsvc.api.messages import SERVICES
from syncsvc.config import Settings
from syncsvc.errors import NotAuthorizedError
from syncsvc.identity.issuer import KMS_SIGNING_ALGORITHM, LEEWAY_SECONDS, TokenIssuer
from syncsvc.kms.keyservice import KeyService
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.store.keyring import RedisKeyRing
from tests.conftest import Boto, Raw, call, envelope_of
from tests.datasets import write
from tests.devices import Devices, records_path
from tests.issuers import ISSUER_URL, MAX_LIFETIME, ROTATION, issuer_clock, key_service
from tests.kms_calls import ARN_PREFIX, DEVELOPER, an_identity, arn, grant, new_key, refusal

COGNITO = "cognito-identity.amazonaws.com"
YEAR = 365 * 86400
MISSING_KEY = "11111111-2222-3333-4444-555555555555"
Refusal = tuple[int, str, str]


def denied(principal: str, operation: str, resource: str) -> Refusal:
    return (
        400,
        "AccessDeniedException",
        f"User: {principal} is not authorized to perform: kms:{operation} on resource: {resource} because no key "
        f"policy or grant allows the kms:{operation} action",
    )


def not_found(key_id: str) -> Refusal:
    return 400, "NotFoundException", f"Key '{arn(key_id)}' does not exist"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# --- 10. no existence oracle for identities --------------------------------------------------------------------------

#: operation -> (its wire name, the request naming ``ref`` as its key)
KEY_OPERATIONS: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "describe_key": ("DescribeKey", lambda ref: {"KeyId": ref}),
    "encrypt": ("Encrypt", lambda ref: {"KeyId": ref, "Plaintext": b"x"}),
    "generate_data_key": ("GenerateDataKey", lambda ref: {"KeyId": ref, "KeySpec": "AES_256"}),
    "generate_data_key_without_plaintext": (
        "GenerateDataKeyWithoutPlaintext",
        lambda ref: {"KeyId": ref, "NumberOfBytes": 16},
    ),
    "sign": ("Sign", lambda ref: {"KeyId": ref, "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"}),
    "verify": (
        "Verify",
        lambda ref: {"KeyId": ref, "Message": b"m", "Signature": b"s", "SigningAlgorithm": "ECDSA_SHA_256"},
    ),
    "get_public_key": ("GetPublicKey", lambda ref: {"KeyId": ref}),
    "decrypt": (
        "Decrypt",
        lambda ref: {"KeyId": ref, "CiphertextBlob": b"c" * 256, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
    ),
}
#: how a key is named -> (the reference to a key that exists, to one that does not, the ARN each stands for)
REFERENCES: dict[str, Callable[[str], tuple[str, str]]] = {
    "key id": lambda key_id: (key_id, MISSING_KEY),
    "key ARN": lambda key_id: (arn(key_id), arn(MISSING_KEY)),
    "alias": lambda _: ("alias/exists", "alias/missing"),
    "alias ARN": lambda _: (f"{ARN_PREFIX}:alias/exists", f"{ARN_PREFIX}:alias/missing"),
}


def resource_of(ref: str) -> str:
    if ref.startswith("arn:"):
        return ref
    return f"{ARN_PREFIX}:{ref}" if ref.startswith("alias/") else arn(ref)


@pytest.mark.parametrize("reference", list(REFERENCES))
@pytest.mark.parametrize("operation", list(KEY_OPERATIONS))
async def test_an_identity_gets_the_same_answer_for_a_key_that_exists_and_one_that_does_not(
    kms: Any, boto: Boto, endpoint: str, operation: str, reference: str
) -> None:
    wire_name, request = KEY_OPERATIONS[operation]
    key_id = await new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    await call(kms, "create_alias", AliasName="alias/exists", TargetKeyId=key_id)
    principal, as_identity = await an_identity(boto, endpoint)
    existing, missing = REFERENCES[reference](key_id)

    answers = [await refusal(as_identity, operation, **request(ref)) for ref in (existing, missing)]

    assert answers == [denied(principal, wire_name, resource_of(ref)) for ref in (existing, missing)]


async def test_an_identity_cannot_probe_aliases_through_the_key_id_of_a_decrypt(
    kms: Any, boto: Boto, endpoint: str
) -> None:
    granted, other = await new_key(kms), await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/exists", TargetKeyId=other)
    principal, as_identity = await an_identity(boto, endpoint)
    await grant(kms, granted, principal, "Decrypt")
    blob = (await call(kms, "encrypt", KeyId=granted, Plaintext=b"secret"))["CiphertextBlob"]

    answers = [
        await refusal(as_identity, "decrypt", CiphertextBlob=blob, KeyId=alias)
        for alias in ("alias/exists", "alias/missing")
    ]

    assert answers == [
        denied(principal, "Decrypt", f"{ARN_PREFIX}:{alias}") for alias in ("alias/exists", "alias/missing")
    ]


async def test_an_identity_cannot_probe_aliases_through_the_source_key_id_of_a_re_encrypt(
    kms: Any, boto: Boto, endpoint: str
) -> None:
    granted, other = await new_key(kms), await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/exists", TargetKeyId=other)
    principal, as_identity = await an_identity(boto, endpoint)
    await grant(kms, granted, principal, "ReEncryptFrom", "ReEncryptTo")
    blob = (await call(kms, "encrypt", KeyId=granted, Plaintext=b"secret"))["CiphertextBlob"]

    answers = [
        await refusal(as_identity, "re_encrypt", CiphertextBlob=blob, SourceKeyId=alias, DestinationKeyId=granted)
        for alias in ("alias/exists", "alias/missing")
    ]

    assert answers == [
        denied(principal, "ReEncryptFrom", f"{ARN_PREFIX}:{alias}") for alias in ("alias/exists", "alias/missing")
    ]


def retire_refused(principal: str, grant_id: str) -> Refusal:
    return (
        400,
        "AccessDeniedException",
        f"User: {principal} is not authorized to perform: kms:RetireGrant on grant {grant_id}: only its retiring "
        "principal, its grantee (with RetireGrant) or the key's administrators may retire it",
    )


async def test_an_identity_retiring_a_grant_gets_one_answer_whether_key_and_grant_exist_or_not(
    kms: Any, boto: Boto, endpoint: str
) -> None:
    key_id = await new_key(kms)
    someone_elses = (await grant(kms, key_id, DEVELOPER, "Decrypt"))["GrantId"]
    never_made = "0" * 64
    principal, as_identity = await an_identity(boto, endpoint)

    answers = [
        await refusal(as_identity, "retire_grant", KeyId=key, GrantId=grant_id)
        for key, grant_id in ((key_id, someone_elses), (key_id, never_made), (MISSING_KEY, never_made))
    ]

    assert answers == [
        retire_refused(principal, someone_elses),
        retire_refused(principal, never_made),
        retire_refused(principal, never_made),
    ]


async def test_a_dry_run_retire_grant_by_a_stranger_is_refused(kms: Any, boto: Boto, endpoint: str) -> None:
    key_id = await new_key(kms)
    created = await grant(kms, key_id, DEVELOPER, "Decrypt")
    principal, as_stranger = await an_identity(boto, endpoint)

    refused = await refusal(as_stranger, "retire_grant", GrantToken=created["GrantToken"], DryRun=True)

    assert refused == retire_refused(principal, created["GrantId"])
    assert [g["GrantId"] for g in (await call(kms, "list_grants", KeyId=key_id))["Grants"]] == [created["GrantId"]]


# --- 11. the service's own keys are not on the public KMS API --------------------------------------------------------


async def signing_key_of(server: TestServer, devices: Devices, boto: Boto) -> str:
    """The KMS key id of the key that signs the service's OpenID tokens (made by a first GetOpenIdToken)."""
    identity = (await call(devices.identity, "get_id", IdentityPoolId=await boto.new_pool()))["IdentityId"]
    await call(devices.identity, "get_open_id_token", IdentityId=identity)
    (stored,) = await server.app[SERVICES].issuer.keyring.load_all()
    return stored.key_id


async def pool_key_of(boto: Boto, redis_client: Redis, settings: Settings) -> str:
    """The KMS key id of an identity pool's master key (made by the pool's first write)."""
    names = {"IdentityPoolId": await boto.new_pool(), "IdentityId": f"us-east-1:{uuid.uuid4()}", "DatasetName": "d"}
    await write(boto, names, {"k": "v"})
    return await envelope_of(redis_client, settings).pool_key(names["IdentityPoolId"])


@pytest.fixture(params=["token signing key", "pool master key"])
async def internal_key(
    request: pytest.FixtureRequest,
    server: TestServer,
    devices: Devices,
    boto: Boto,
    redis_client: Redis,
    settings: Settings,
) -> str:
    if request.param == "token signing key":
        return await signing_key_of(server, devices, boto)
    return await pool_key_of(boto, redis_client, settings)


#: Every KMS operation that names a key, with a request that would otherwise reach it.
INTERNAL_KEY_CALLS: dict[str, Callable[[str], dict[str, Any]]] = {
    "describe_key": lambda key_id: {"KeyId": key_id},
    "enable_key": lambda key_id: {"KeyId": key_id},
    "disable_key": lambda key_id: {"KeyId": key_id},
    "schedule_key_deletion": lambda key_id: {"KeyId": key_id, "PendingWindowInDays": 7},
    "cancel_key_deletion": lambda key_id: {"KeyId": key_id},
    "enable_key_rotation": lambda key_id: {"KeyId": key_id},
    "disable_key_rotation": lambda key_id: {"KeyId": key_id},
    "get_key_rotation_status": lambda key_id: {"KeyId": key_id},
    "rotate_key_on_demand": lambda key_id: {"KeyId": key_id},
    "create_alias": lambda key_id: {"AliasName": "alias/mine-now", "TargetKeyId": key_id},
    "list_aliases": lambda key_id: {"KeyId": key_id},
    "encrypt": lambda key_id: {"KeyId": key_id, "Plaintext": b"x"},
    "generate_data_key": lambda key_id: {"KeyId": key_id, "KeySpec": "AES_256"},
    "generate_data_key_without_plaintext": lambda key_id: {"KeyId": key_id, "NumberOfBytes": 32},
    "sign": lambda key_id: {
        "KeyId": key_id,
        "Message": hashlib.sha256(b"header.claims").digest(),
        "MessageType": "DIGEST",
        "SigningAlgorithm": KMS_SIGNING_ALGORITHM,
    },
    "verify": lambda key_id: {
        "KeyId": key_id,
        "Message": b"m",
        "Signature": b"s" * 256,
        "SigningAlgorithm": KMS_SIGNING_ALGORITHM,
    },
    "get_public_key": lambda key_id: {"KeyId": key_id},
    "create_grant": lambda key_id: {"KeyId": key_id, "GranteePrincipal": DEVELOPER, "Operations": ["Sign"]},
    "list_grants": lambda key_id: {"KeyId": key_id},
    "revoke_grant": lambda key_id: {"KeyId": key_id, "GrantId": "0" * 64},
    "retire_grant": lambda key_id: {"KeyId": key_id, "GrantId": "0" * 64},
    "get_key_policy": lambda key_id: {"KeyId": key_id},
    "put_key_policy": lambda key_id: {
        "KeyId": key_id,
        "Policy": orjson.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*"}]}
        ).decode(),
    },
}


@pytest.mark.parametrize("operation", list(INTERNAL_KEY_CALLS))
async def test_an_internal_key_answers_a_developer_as_a_key_that_does_not_exist(
    kms: Any, internal_key: str, operation: str
) -> None:
    request = INTERNAL_KEY_CALLS[operation]

    answers = [await refusal(kms, operation, **request(key_id)) for key_id in (internal_key, MISSING_KEY)]

    assert answers == [not_found(internal_key), not_found(MISSING_KEY)]


async def test_list_keys_and_list_aliases_leave_internal_keys_out(
    kms: Any, server: TestServer, devices: Devices, boto: Boto, redis_client: Redis, settings: Settings
) -> None:
    signing_key = await signing_key_of(server, devices, boto)
    internal = {signing_key, await pool_key_of(boto, redis_client, settings)}
    await server.app[SERVICES].kms.create_alias(
        "alias/signing", signing_key
    )  # as one made before internal keys were hidden
    own = await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/own", TargetKeyId=own)

    listed = await call(kms, "list_keys")
    paged = [await call(kms, "list_keys", Limit=1)]
    while paged[-1]["Truncated"]:
        paged.append(await call(kms, "list_keys", Limit=1, Marker=paged[-1]["NextMarker"]))

    assert len(internal) == 2
    assert listed == {"Keys": [{"KeyId": own, "KeyArn": arn(own)}], "Truncated": False}
    assert paged == [{"Keys": [{"KeyId": own, "KeyArn": arn(own)}], "Truncated": False}]
    assert await call(kms, "list_aliases") == {
        "Aliases": [{"AliasName": "alias/own", "AliasArn": f"{ARN_PREFIX}:alias/own", "TargetKeyId": own}],
        "Truncated": False,
    }


async def test_a_developer_cannot_disable_the_signing_key_and_tokens_keep_coming(
    kms: Any, server: TestServer, devices: Devices, boto: Boto
) -> None:
    signing_key = await signing_key_of(server, devices, boto)
    identity = (await call(devices.identity, "get_id", IdentityPoolId=await boto.new_pool()))["IdentityId"]

    refused = await refusal(kms, "disable_key", KeyId=signing_key)
    issued = await call(devices.identity, "get_open_id_token", IdentityId=identity)

    assert refused == not_found(signing_key)
    assert issued == {"IdentityId": identity, "Token": issued["Token"]}


async def test_a_developer_cannot_unwrap_a_data_key_with_its_pools_master_key(
    kms: Any, boto: Boto, redis_client: Redis, settings: Settings
) -> None:
    names = {"IdentityPoolId": await boto.new_pool(), "IdentityId": f"us-east-1:{uuid.uuid4()}", "DatasetName": "d"}
    await write(boto, names, {"diary": "dear diary"})
    pool_key = await envelope_of(redis_client, settings).pool_key(names["IdentityPoolId"])
    keyspace = IdentityKeyspace.of(names["IdentityPoolId"], names["IdentityId"], settings.shards)
    wrapped = await redis_client.hget(keyspace.data_keys, "v1")
    assert wrapped is not None

    refused = await refusal(
        kms,
        "decrypt",
        CiphertextBlob=wrapped,
        EncryptionContext={"pool": names["IdentityPoolId"], "identity": names["IdentityId"]},
    )

    assert refused == not_found(pool_key)


# --- 11. tokens the service accepts respect its maximum lifetime, whoever signed them ------------------------------


async def resigned(service: KeyService, keyring: RedisKeyRing, token: str, **claims: Any) -> str:
    """A genuine token of the service with ``claims`` changed, signed again by the service's own signing key."""
    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, options={"verify_signature": False}) | claims
    signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(payload))}"
    (stored,) = [key for key in await keyring.load_all() if key.kid == header["kid"]]
    digest = hashlib.sha256(signing_input.encode("ascii")).digest()
    signature, _ = await service.sign(stored.key_id, digest, KMS_SIGNING_ALGORITHM, digest=True)
    return f"{signing_input}.{b64url(signature)}"


TOO_LONG = (
    403,
    "NotAuthorizedException",
    f"Invalid identity token: its lifetime exceeds the maximum of {MAX_LIFETIME} seconds",
)


async def test_a_year_long_bearer_token_signed_with_the_services_key_is_refused(
    server: TestServer, devices: Devices, boto: Boto, raw: Raw
) -> None:
    pool = await boto.new_pool()
    identity = (await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"]
    genuine = (await call(devices.identity, "get_open_id_token", IdentityId=identity))["Token"]
    iat = jwt.decode(genuine, options={"verify_signature": False})["iat"]
    forged = await resigned(server.app[SERVICES].kms, server.app[SERVICES].issuer.keyring, genuine, exp=iat + YEAR)

    def bearer(token: str) -> Awaitable[tuple[int, dict[str, Any], dict[str, str]]]:
        return raw.send("GET", records_path(pool, identity), sign=False, headers={"Authorization": f"Bearer {token}"})

    accepted, _, _ = await bearer(genuine)
    status, body, _ = await bearer(forged)

    assert accepted == 200
    assert (status, body.get("__type"), body.get("message")) == TOO_LONG


async def test_a_year_long_login_token_signed_with_the_services_key_is_refused(
    server: TestServer, devices: Devices, boto: Boto
) -> None:
    identity = (await call(devices.identity, "get_id", IdentityPoolId=await boto.new_pool()))["IdentityId"]
    genuine = (await call(devices.identity, "get_open_id_token", IdentityId=identity))["Token"]
    iat = jwt.decode(genuine, options={"verify_signature": False})["iat"]
    forged = await resigned(server.app[SERVICES].kms, server.app[SERVICES].issuer.keyring, genuine, exp=iat + YEAR)

    refused = await refusal(
        devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins={COGNITO: forged}
    )

    assert refused == (400, *TOO_LONG[1:])


@pytest.mark.parametrize(
    ("iat_offset", "exp_offset"),
    [
        pytest.param(0, MAX_LIFETIME + 1, id="exp-iat-over-the-maximum"),
        pytest.param(-YEAR, 600, id="issued-a-year-ago-still-valid"),
        pytest.param(MAX_LIFETIME, MAX_LIFETIME + LEEWAY_SECONDS + 1, id="exp-now-over-the-maximum-iat-in-future"),
    ],
)
async def test_a_token_whose_lifetime_exceeds_the_maximum_is_refused(
    redis_client: Redis, iat_offset: int, exp_offset: int
) -> None:
    clock = issuer_clock()
    service = key_service(redis_client)
    keyring = RedisKeyRing(redis_client, service.discard)
    issuer = TokenIssuer(
        keyring,
        service,
        issuer_url=ISSUER_URL,
        rotation_seconds=ROTATION,
        max_lifetime_seconds=MAX_LIFETIME,
        clock=clock,
    )
    genuine = await issuer.issue(identity_pool_id="p", identity_id="i", amr=["unauthenticated"], lifetime_seconds=60)
    now = clock.now_ms() // 1000
    forged = await resigned(service, keyring, genuine, iat=now + iat_offset, exp=now + exp_offset)

    with pytest.raises(NotAuthorizedError) as refused:
        await issuer.verify(forged)

    assert refused.value.message == TOO_LONG[2]


# --- 9. a trailing newline is not part of a valid name ---------------------------------------------------------------


@pytest.mark.parametrize("form", ["key ARN", "alias ARN"])
async def test_a_key_id_arn_with_a_trailing_newline_is_an_invalid_arn(kms: Any, form: str) -> None:
    key_id = await new_key(kms)
    await call(kms, "create_alias", AliasName="alias/records", TargetKeyId=key_id)
    ref = (arn(key_id) if form == "key ARN" else f"{ARN_PREFIX}:alias/records") + "\n"

    refused = await refusal(kms, "describe_key", KeyId=ref)

    assert refused == (400, "InvalidArnException", f"Invalid arn {ref}")


async def test_an_alias_name_with_a_trailing_newline_is_refused(kms: Any) -> None:
    key_id = await new_key(kms)

    refused = await refusal(kms, "create_alias", AliasName="alias/records\n", TargetKeyId=key_id)

    assert refused == (
        400,
        "ValidationException",
        "1 validation error detected: Value 'alias/records\n' at 'aliasName' failed to satisfy constraint: Member "
        "must satisfy regular expression pattern: ^[a-zA-Z0-9/_-]+$ and have length at most 256",
    )
    assert (await call(kms, "list_aliases"))["Aliases"] == []


@pytest.mark.parametrize("operation", ["revoke_grant", "retire_grant", "list_grants"])
async def test_a_grant_id_with_a_trailing_newline_is_an_invalid_grant_id(kms: Any, operation: str) -> None:
    key_id = await new_key(kms)
    grant_id = (await grant(kms, key_id, DEVELOPER, "Decrypt"))["GrantId"] + "\n"

    refused = await refusal(kms, operation, KeyId=key_id, GrantId=grant_id)

    assert refused == (400, "InvalidGrantIdException", f"Invalid grant ID {grant_id}")


async def test_a_grantee_principal_with_a_trailing_newline_is_an_invalid_arn(kms: Any) -> None:
    key_id = await new_key(kms)

    refused = await refusal(
        kms, "create_grant", KeyId=key_id, GranteePrincipal=f"{DEVELOPER}\n", Operations=["Decrypt"]
    )

    assert refused == (
        400,
        "InvalidArnException",
        f"GranteePrincipal {DEVELOPER}\n is not a valid IAM or STS principal ARN",
    )
    assert (await call(kms, "list_grants", KeyId=key_id))["Grants"] == []
