"""The identity broker end to end, driven by unmodified boto3: guest, federated and developer-authenticated
identities; temporary credentials and Bearer tokens on Cognito Sync; the tokens syncsvc issues, checked with an
independent JOSE library (jwcrypto) from the JWKS alone; administration of identities; rate limits.

Real Redis, and a real OIDC provider on loopback that mints the ID tokens (``tests.oidc_provider``): nothing is
mocked. The provider is configured twice, as ``login.test`` and ``login2.test``, so one identity can link two logins.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from jwcrypto import jwk as jose_jwk  # type: ignore[import-untyped]
from jwcrypto import jwt as jose_jwt

from syncsvc.config import Settings
from tests.conftest import REGION, Boto, Raw, call
from tests.devices import (
    APP_CLIENT,
    APP_CLIENT2,
    DEVELOPER_PROVIDER,
    LOGIN,
    LOGIN2,
    PUBLIC_URL,
    Credentials,
    Devices,
    developer_identity,
    guest,
    identity_settings,
    merge_developer_users,
    new_pool,
    records_path,
    refusal,
    unlink_developer_user,
)
from tests.oidc_provider import TestIdentityProvider

COGNITO = "cognito-identity.amazonaws.com"
ID_PATTERN = r"us-east-1:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}"
PATCH = {"Op": "replace", "Key": "theme", "Value": "dark", "SyncCount": 0}
SYNC_DATES = ("LastModifiedDate", "DeviceLastModifiedDate")
#: ListRecords of a dataset that does not exist, without its SyncSessionToken.
NO_RECORDS = {
    "Records": [],
    "Count": 0,
    "DatasetSyncCount": 0,
    "DatasetExists": False,
    "DatasetDeletedAfterRequestedSyncCount": False,
    "MergedDatasetNames": [],
}


# --- the server, with an OIDC provider ------------------------------------------------------------------------------


@pytest.fixture
def settings(redis_url: str, idp: TestIdentityProvider, overrides: dict[str, Any]) -> Settings:
    return identity_settings(redis_url, idp, **overrides)


# --- reading answers ------------------------------------------------------------------------------------------------


def without(response: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: value for name, value in response.items() if name not in names}


def near_now(moment: datetime, *, plus: float = 0, within: float = 5) -> bool:
    return abs(moment.timestamp() - (time.time() + plus)) <= within


async def identities_in(boto: Boto, pool: str) -> list[dict[str, Any]]:
    """ListIdentities of ``pool`` (10 at most), as the developer sees them."""
    listed = await call(boto.identity, "list_identities", IdentityPoolId=pool, MaxResults=10)
    identities: list[dict[str, Any]] = listed["Identities"]
    return identities


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (for reading what a token says; verification is jwcrypto's job below)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


# --- factories ------------------------------------------------------------------------------------------------------


async def federated(devices: Devices, pool: str, logins: dict[str, str]) -> tuple[str, Credentials]:
    """The identity of these logins and credentials for it."""
    identity = (await call(devices.identity, "get_id", IdentityPoolId=pool, Logins=logins))["IdentityId"]
    response = await call(devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins=logins)
    return identity, response["Credentials"]


async def write(sync: Any, pool: str, identity: str, dataset: str = "settings") -> dict[str, Any]:
    """ListRecords then UpdateRecords of one record, as a device syncs; the UpdateRecords response."""
    names = {"IdentityPoolId": pool, "IdentityId": identity, "DatasetName": dataset}
    token = (await call(sync, "list_records", **names))["SyncSessionToken"]
    return await call(sync, "update_records", **names, SyncSessionToken=token, RecordPatches=[PATCH])


# --- guests ---------------------------------------------------------------------------------------------------------


async def test_guest_get_id_needs_no_credentials_and_registers_an_identity_without_logins(
    boto: Boto, devices: Devices
) -> None:
    pool = await new_pool(boto)

    got = await call(devices.identity, "get_id", IdentityPoolId=pool)

    assert re.fullmatch(ID_PATTERN, got["IdentityId"])
    described = await call(boto.identity, "describe_identity", IdentityId=got["IdentityId"])
    assert without(described, "CreationDate", "LastModifiedDate") == {"IdentityId": got["IdentityId"], "Logins": []}
    assert near_now(described["CreationDate"])


async def test_guest_credentials_are_one_hour_temporary_aws_credentials(boto: Boto, devices: Devices) -> None:
    pool = await new_pool(boto)
    identity = (await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"]

    response = await call(devices.identity, "get_credentials_for_identity", IdentityId=identity)

    credentials = response["Credentials"]
    assert response == {"IdentityId": identity, "Credentials": credentials}
    assert sorted(credentials) == ["AccessKeyId", "Expiration", "SecretKey", "SessionToken"]
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", credentials["AccessKeyId"])
    assert len(credentials["SecretKey"]) >= 40
    assert credentials["SessionToken"]
    assert near_now(credentials["Expiration"], plus=3600)


async def test_guest_credentials_list_and_update_records_of_their_own_identity(boto: Boto, devices: Devices) -> None:
    pool = await new_pool(boto)
    identity, credentials = await guest(devices, pool)
    sync = devices.sync_with(credentials)

    listed = await call(sync, "list_records", IdentityPoolId=pool, IdentityId=identity, DatasetName="settings")
    updated = await call(
        sync,
        "update_records",
        IdentityPoolId=pool,
        IdentityId=identity,
        DatasetName="settings",
        SyncSessionToken=listed["SyncSessionToken"],
        RecordPatches=[PATCH],
    )

    assert without(listed, "SyncSessionToken") == NO_RECORDS
    assert [without(record, *SYNC_DATES) for record in updated["Records"]] == [
        {"Key": "theme", "Value": "dark", "SyncCount": 1, "LastModifiedBy": identity}
    ]


@pytest.mark.parametrize("target", ["another-existing-identity", "an-identity-that-does-not-exist"])
async def test_guest_credentials_are_refused_on_another_identity(boto: Boto, devices: Devices, target: str) -> None:
    pool = await new_pool(boto)
    _, credentials = await guest(devices, pool)
    other = (await guest(devices, pool))[0] if target == "another-existing-identity" else f"{REGION}:{uuid.uuid4()}"
    sync = devices.sync_with(credentials)

    listing = await refusal(sync, "list_records", IdentityPoolId=pool, IdentityId=other, DatasetName="settings")
    updating = await refusal(
        sync,
        "update_records",
        IdentityPoolId=pool,
        IdentityId=other,
        DatasetName="settings",
        SyncSessionToken="any",
        RecordPatches=[PATCH],
    )

    assert listing == updating == ("NotAuthorizedException", 403)
    names = {"IdentityPoolId": pool, "IdentityId": other, "DatasetName": "settings"}
    assert (await call(boto.sync, "list_records", **names))["DatasetExists"] is False


async def test_guest_credentials_are_refused_on_their_own_identity_id_in_another_pool(
    boto: Boto, devices: Devices
) -> None:
    pool, other_pool = await new_pool(boto), await new_pool(boto)
    identity, credentials = await guest(devices, pool)

    refused = await refusal(
        devices.sync_with(credentials),
        "list_records",
        IdentityPoolId=other_pool,
        IdentityId=identity,
        DatasetName="settings",
    )

    assert refused == ("NotAuthorizedException", 403)


#: (service, operation, parameters); "pool" and "self" stand for the caller's pool and identity ids.
DEVELOPER_ONLY: list[Any] = [
    pytest.param("sync", "describe_identity_pool_usage", {"IdentityPoolId": "pool"}, id="DescribeIdentityPoolUsage"),
    pytest.param("sync", "list_identity_pool_usage", {"MaxResults": 10}, id="ListIdentityPoolUsage"),
    pytest.param(
        "identity",
        "create_identity_pool",
        {"IdentityPoolName": "mine", "AllowUnauthenticatedIdentities": True},
        id="CreateIdentityPool",
    ),
    pytest.param("identity", "describe_identity_pool", {"IdentityPoolId": "pool"}, id="DescribeIdentityPool"),
    pytest.param(
        "identity",
        "update_identity_pool",
        {"IdentityPoolId": "pool", "IdentityPoolName": "taken", "AllowUnauthenticatedIdentities": True},
        id="UpdateIdentityPool",
    ),
    pytest.param("identity", "delete_identity_pool", {"IdentityPoolId": "pool"}, id="DeleteIdentityPool"),
    pytest.param("identity", "list_identity_pools", {"MaxResults": 10}, id="ListIdentityPools"),
    pytest.param("identity", "list_identities", {"IdentityPoolId": "pool", "MaxResults": 10}, id="ListIdentities"),
    pytest.param("identity", "describe_identity", {"IdentityId": "self"}, id="DescribeIdentity"),
    pytest.param("identity", "delete_identities", {"IdentityIdsToDelete": ["self"]}, id="DeleteIdentities"),
    pytest.param(
        "identity",
        "get_open_id_token_for_developer_identity",
        {"IdentityPoolId": "pool", "Logins": {DEVELOPER_PROVIDER: "user-1"}},
        id="GetOpenIdTokenForDeveloperIdentity",
    ),
    pytest.param(
        "identity",
        "lookup_developer_identity",
        {"IdentityPoolId": "pool", "DeveloperUserIdentifier": "user-1"},
        id="LookupDeveloperIdentity",
    ),
    pytest.param(
        "identity",
        "merge_developer_identities",
        {
            "IdentityPoolId": "pool",
            "SourceUserIdentifier": "a",
            "DestinationUserIdentifier": "b",
            "DeveloperProviderName": DEVELOPER_PROVIDER,
        },
        id="MergeDeveloperIdentities",
    ),
    pytest.param(
        "identity",
        "unlink_developer_identity",
        {
            "IdentityPoolId": "pool",
            "IdentityId": "self",
            "DeveloperProviderName": DEVELOPER_PROVIDER,
            "DeveloperUserIdentifier": "user-1",
        },
        id="UnlinkDeveloperIdentity",
    ),
]


def _placed(value: Any, pool: str, identity: str) -> Any:
    if isinstance(value, list):
        return [_placed(item, pool, identity) for item in value]
    return {"pool": pool, "self": identity}.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize(("service", "operation", "params"), DEVELOPER_ONLY)
async def test_identity_credentials_are_refused_for_developer_only_operations(
    boto: Boto, devices: Devices, service: str, operation: str, params: dict[str, Any]
) -> None:
    pool = await new_pool(boto)
    identity, credentials = await guest(devices, pool)
    client = devices.sync_with(credentials) if service == "sync" else devices.identity_with(credentials)

    refused = await refusal(
        client, operation, **{name: _placed(value, pool, identity) for name, value in params.items()}
    )

    # Cognito Sync (rest-json) answers 403; Cognito Identity (json 1.1) errors have no modeled status: 400
    assert refused == ("NotAuthorizedException", 403 if service == "sync" else 400)
    pools = await call(boto.identity, "list_identity_pools", MaxResults=10)
    assert pools["IdentityPools"] == [{"IdentityPoolId": pool, "IdentityPoolName": "identities"}]
    assert [(found["IdentityId"], found["Logins"]) for found in await identities_in(boto, pool)] == [(identity, [])]


async def test_get_id_without_logins_is_refused_when_the_pool_disallows_guests(boto: Boto, devices: Devices) -> None:
    pool = await new_pool(boto, guests=False)

    refused = await refusal(devices.identity, "get_id", IdentityPoolId=pool)

    assert refused == ("NotAuthorizedException", 400)
    assert await identities_in(boto, pool) == []


# --- federated logins -----------------------------------------------------------------------------------------------


async def test_the_same_subject_always_gets_the_same_identity(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto, guests=False)

    ids = [
        (
            await call(
                devices.identity, "get_id", IdentityPoolId=pool, Logins={LOGIN: idp.mint("alice", aud=APP_CLIENT)}
            )
        )["IdentityId"]
        for _ in range(3)
    ]

    assert len(set(ids)) == 1
    described = await call(boto.identity, "describe_identity", IdentityId=ids[0])
    assert without(described, "CreationDate", "LastModifiedDate") == {"IdentityId": ids[0], "Logins": [LOGIN]}


async def test_different_subjects_get_different_identities(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto, guests=False)

    alice = await call(
        devices.identity, "get_id", IdentityPoolId=pool, Logins={LOGIN: idp.mint("alice", aud=APP_CLIENT)}
    )
    bob = await call(devices.identity, "get_id", IdentityPoolId=pool, Logins={LOGIN: idp.mint("bob", aud=APP_CLIENT)})

    assert alice["IdentityId"] != bob["IdentityId"]


async def test_federated_credentials_sync_their_own_identity(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto, guests=False)
    identity, credentials = await federated(devices, pool, {LOGIN: idp.mint("alice", aud=APP_CLIENT)})

    updated = await write(devices.sync_with(credentials), pool, identity)

    assert [without(record, *SYNC_DATES) for record in updated["Records"]] == [
        {"Key": "theme", "Value": "dark", "SyncCount": 1, "LastModifiedBy": identity}
    ]


async def test_credentials_for_an_authenticated_identity_without_its_login_are_refused(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto, guests=True)
    identity, _ = await federated(devices, pool, {LOGIN: idp.mint("alice", aud=APP_CLIENT)})

    refused = await refusal(devices.identity, "get_credentials_for_identity", IdentityId=identity)

    assert refused == ("NotAuthorizedException", 400)


@pytest.mark.parametrize("subject", ["bob-who-has-an-identity", "mallory-who-has-none"])
async def test_credentials_with_another_subjects_token_are_refused(
    boto: Boto, devices: Devices, idp: TestIdentityProvider, subject: str
) -> None:
    pool = await new_pool(boto, guests=False)
    alice, _ = await federated(devices, pool, {LOGIN: idp.mint("alice", aud=APP_CLIENT)})
    bob, _ = await federated(devices, pool, {LOGIN: idp.mint("bob-who-has-an-identity", aud=APP_CLIENT)})

    refused = await refusal(
        devices.identity,
        "get_credentials_for_identity",
        IdentityId=alice,
        Logins={LOGIN: idp.mint(subject, aud=APP_CLIENT)},
    )

    assert refused == ("NotAuthorizedException", 400)
    assert sorted((found["IdentityId"], found["Logins"]) for found in await identities_in(boto, pool)) == sorted(
        [(alice, [LOGIN]), (bob, [LOGIN])]
    )


async def test_a_provider_the_pool_does_not_support_is_refused(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto, guests=True, providers={LOGIN2: APP_CLIENT2})

    refused = await refusal(
        devices.identity, "get_id", IdentityPoolId=pool, Logins={LOGIN: idp.mint("alice", aud=APP_CLIENT)}
    )

    assert refused == ("NotAuthorizedException", 400)
    assert await identities_in(boto, pool) == []


async def test_two_logins_in_one_get_id_link_to_one_identity(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto, guests=False)
    first, second = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}, {LOGIN2: idp.mint("alice-2", aud=APP_CLIENT2)}

    both = await call(devices.identity, "get_id", IdentityPoolId=pool, Logins=first | second)
    by_first = await call(devices.identity, "get_id", IdentityPoolId=pool, Logins=first)
    by_second = await call(devices.identity, "get_id", IdentityPoolId=pool, Logins=second)

    assert both == by_first == by_second
    described = await call(boto.identity, "describe_identity", IdentityId=both["IdentityId"])
    assert described["Logins"] == [LOGIN, LOGIN2]


async def test_a_login_already_linked_to_another_identity_is_a_conflict(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto, guests=False)
    first, second = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}, {LOGIN2: idp.mint("alice-2", aud=APP_CLIENT2)}
    alice = (await call(devices.identity, "get_id", IdentityPoolId=pool, Logins=first))["IdentityId"]
    other = (await call(devices.identity, "get_id", IdentityPoolId=pool, Logins=second))["IdentityId"]

    refused = await refusal(devices.identity, "get_id", IdentityPoolId=pool, Logins=first | second)

    assert refused == ("ResourceConflictException", 400)
    assert (await call(boto.identity, "describe_identity", IdentityId=alice))["Logins"] == [LOGIN]
    assert (await call(boto.identity, "describe_identity", IdentityId=other))["Logins"] == [LOGIN2]


async def test_a_login_given_to_get_credentials_of_a_guest_links_it(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto, guests=True)
    identity, _ = await guest(devices, pool)
    logins = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}

    await call(devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins=logins)

    assert (await call(devices.identity, "get_id", IdentityPoolId=pool, Logins=logins))["IdentityId"] == identity
    assert await refusal(devices.identity, "get_credentials_for_identity", IdentityId=identity) == (
        "NotAuthorizedException",
        400,
    )


# --- OpenID tokens and Bearer ---------------------------------------------------------------------------------------


async def jwks_document(raw: Raw) -> str:
    status, body, _ = await raw.send("GET", "/.well-known/jwks.json", sign=False)
    assert status == 200
    return orjson.dumps(body).decode()


def verify_with_jwcrypto(token: str, jwks: str, *, pool: str, identity: str) -> dict[str, Any]:
    """The claims of a token verified by jwcrypto from the JWKS alone."""
    verified = jose_jwt.JWT(
        jwt=token,
        key=jose_jwk.JWKSet.from_json(jwks),
        algs=["RS256"],
        check_claims={"iss": PUBLIC_URL, "aud": pool, "sub": identity, "exp": None, "iat": None},
    )
    claims: dict[str, Any] = json.loads(verified.claims)
    return claims


async def test_open_id_token_verifies_with_jwcrypto_from_the_jwks_alone(
    boto: Boto, devices: Devices, idp: TestIdentityProvider, raw: Raw, settings: Settings
) -> None:
    pool = await new_pool(boto, guests=False)
    logins = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}
    identity, _ = await federated(devices, pool, logins)

    response = await call(devices.identity, "get_open_id_token", IdentityId=identity, Logins=logins)

    assert response == {"IdentityId": identity, "Token": response["Token"]}
    claims = verify_with_jwcrypto(response["Token"], await jwks_document(raw), pool=pool, identity=identity)
    assert without(claims, "iat", "exp", "jti") == {
        "iss": settings.issuer_url,
        "aud": pool,
        "sub": identity,
        "amr": ["authenticated", LOGIN, f"{LOGIN}:{pool}:alice"],
    }
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 5


async def test_guest_open_id_token_says_unauthenticated(boto: Boto, devices: Devices, raw: Raw) -> None:
    pool = await new_pool(boto)
    identity = (await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"]

    token = (await call(devices.identity, "get_open_id_token", IdentityId=identity))["Token"]

    claims = verify_with_jwcrypto(token, await jwks_document(raw), pool=pool, identity=identity)
    assert claims["amr"] == ["unauthenticated"]


async def test_openid_configuration_names_the_issuer_and_its_jwks(raw: Raw, settings: Settings) -> None:
    status, document, _ = await raw.send("GET", "/.well-known/openid-configuration", sign=False)

    assert status == 200
    assert document["issuer"] == settings.issuer_url == PUBLIC_URL
    assert document["jwks_uri"] == f"{PUBLIC_URL}/.well-known/jwks.json"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


async def test_bearer_token_reads_its_own_dataset(boto: Boto, devices: Devices, raw: Raw) -> None:
    pool = await new_pool(boto)
    identity = (await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"]
    token = (await call(devices.identity, "get_open_id_token", IdentityId=identity))["Token"]

    status, body, _ = await raw.send(
        "GET", records_path(pool, identity), sign=False, headers={"Authorization": f"Bearer {token}"}
    )

    assert status == 200
    assert without(body, "SyncSessionToken", "VersionVector") == NO_RECORDS


async def test_bearer_token_is_refused_on_another_identity(boto: Boto, devices: Devices, raw: Raw) -> None:
    pool = await new_pool(boto)
    identity = (await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"]
    other = (await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"]
    token = (await call(devices.identity, "get_open_id_token", IdentityId=identity))["Token"]

    status, body, headers = await raw.send(
        "GET", records_path(pool, other), sign=False, headers={"Authorization": f"Bearer {token}"}
    )

    assert status == 403
    assert body["__type"] == headers["x-amzn-ErrorType"] == "NotAuthorizedException"


async def test_a_guest_token_no_longer_opens_the_identity_once_a_login_is_linked(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto)
    identity = (await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"]
    guest_token = (await call(devices.identity, "get_open_id_token", IdentityId=identity))["Token"]
    logins = {LOGIN: idp.mint("alice", aud=APP_CLIENT)}
    await call(devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins=logins)

    refused = await refusal(
        devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins={COGNITO: guest_token}
    )

    assert refused == ("NotAuthorizedException", 400)


# --- developer-authenticated identities -----------------------------------------------------------------------------


async def test_developer_token_creates_the_identity_once(boto: Boto) -> None:
    pool = await new_pool(boto, guests=False)

    first, _ = await developer_identity(boto, pool, "user-1")
    again, _ = await developer_identity(boto, pool, "user-1")

    assert first == again
    assert re.fullmatch(ID_PATTERN, first)
    described = await call(boto.identity, "describe_identity", IdentityId=first)
    assert described["Logins"] == [DEVELOPER_PROVIDER]


async def test_developer_token_lives_its_token_duration(boto: Boto, raw: Raw) -> None:
    pool = await new_pool(boto, guests=False)

    identity, token = await developer_identity(boto, pool, "user-1", TokenDuration=3600)

    claims = verify_with_jwcrypto(token, await jwks_document(raw), pool=pool, identity=identity)
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["amr"] == ["authenticated", DEVELOPER_PROVIDER, f"{DEVELOPER_PROVIDER}:{pool}:user-1"]


async def test_developer_token_lasts_fifteen_minutes_by_default(boto: Boto) -> None:
    pool = await new_pool(boto, guests=False)

    _, token = await developer_identity(boto, pool, "user-1")

    claims = jwt_claims(token)
    assert claims["exp"] - claims["iat"] == 900


async def test_lookup_developer_identity_by_user_and_by_identity_id(boto: Boto) -> None:
    pool = await new_pool(boto, guests=False)
    identity, _ = await developer_identity(boto, pool, "user-1")

    by_user = await call(
        boto.identity, "lookup_developer_identity", IdentityPoolId=pool, DeveloperUserIdentifier="user-1"
    )
    by_id = await call(boto.identity, "lookup_developer_identity", IdentityPoolId=pool, IdentityId=identity)

    assert by_user == by_id == {"IdentityId": identity, "DeveloperUserIdentifierList": ["user-1"]}


async def test_enhanced_flow_gets_credentials_with_the_developer_token(boto: Boto, devices: Devices) -> None:
    pool = await new_pool(boto, guests=False)
    identity, token = await developer_identity(boto, pool, "user-1")

    response = await call(
        devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins={COGNITO: token}
    )

    assert response["IdentityId"] == identity
    updated = await write(devices.sync_with(response["Credentials"]), pool, identity)
    assert [record["Key"] for record in updated["Records"]] == ["theme"]


async def test_developer_token_of_one_identity_does_not_open_another(boto: Boto, devices: Devices) -> None:
    pool = await new_pool(boto, guests=False)
    _, token = await developer_identity(boto, pool, "user-1")
    other, _ = await developer_identity(boto, pool, "user-2")

    refused = await refusal(devices.identity, "get_credentials_for_identity", IdentityId=other, Logins={COGNITO: token})

    assert refused == ("NotAuthorizedException", 400)


async def merged_pair(boto: Boto, pool: str) -> tuple[str, str]:
    """Two developer users; the first has a dataset 'settings' with one record. Returns their identity ids."""
    source, _ = await developer_identity(boto, pool, "user-1")
    destination, _ = await developer_identity(boto, pool, "user-2")
    await write(boto.sync, pool, source)
    return source, destination


async def test_merge_brings_the_source_datasets_under_merged_names(boto: Boto) -> None:
    pool = await new_pool(boto, guests=False)
    source, destination = await merged_pair(boto, pool)

    merged = await merge_developer_users(boto, pool)

    assert merged == {"IdentityId": destination}
    names = {"IdentityPoolId": pool, "IdentityId": destination}
    base = await call(boto.sync, "list_records", **names, DatasetName="settings")
    assert base["MergedDatasetNames"] == [f"settings.{source}"]
    copy = await call(boto.sync, "list_records", **names, DatasetName=f"settings.{source}")
    assert [(record["Key"], record["Value"]) for record in copy["Records"]] == [("theme", "dark")]
    lookup = await call(boto.identity, "lookup_developer_identity", IdentityPoolId=pool, IdentityId=destination)
    assert sorted(lookup["DeveloperUserIdentifierList"]) == ["user-1", "user-2"]


async def test_merge_deletes_the_source_identity(boto: Boto) -> None:
    pool = await new_pool(boto, guests=False)
    source, destination = await merged_pair(boto, pool)

    await merge_developer_users(boto, pool)

    assert await refusal(boto.identity, "describe_identity", IdentityId=source) == ("ResourceNotFoundException", 400)
    user_1, _ = await developer_identity(boto, pool, "user-1")
    assert user_1 == destination


async def test_unlink_developer_identity_removes_the_link(boto: Boto) -> None:
    pool = await new_pool(boto, guests=False)
    identity, _ = await developer_identity(boto, pool, "user-1")

    await unlink_developer_user(boto, pool, identity)

    assert (await call(boto.identity, "describe_identity", IdentityId=identity))["Logins"] == []
    assert await refusal(
        boto.identity, "lookup_developer_identity", IdentityPoolId=pool, DeveloperUserIdentifier="user-1"
    ) == ("ResourceNotFoundException", 400)


async def test_unlink_developer_identity_revokes_credentials_issued_before(boto: Boto, devices: Devices) -> None:
    pool = await new_pool(boto, guests=False)
    identity, token = await developer_identity(boto, pool, "user-1")
    credentials = (
        await call(devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins={COGNITO: token})
    )["Credentials"]

    await unlink_developer_user(boto, pool, identity)

    refused = await refusal(
        devices.sync_with(credentials), "list_records", IdentityPoolId=pool, IdentityId=identity, DatasetName="settings"
    )
    assert refused == ("UnrecognizedClientException", 400)


async def test_an_identity_that_lost_its_last_login_cannot_be_taken_as_a_guest(boto: Boto, devices: Devices) -> None:
    pool = await new_pool(boto, guests=True)
    identity, _ = await developer_identity(boto, pool, "user-1")
    await write(boto.sync, pool, identity)
    await unlink_developer_user(boto, pool, identity)

    refused = await refusal(devices.identity, "get_credentials_for_identity", IdentityId=identity)

    assert refused == ("NotAuthorizedException", 400)


async def developer_user_also_on_login_test(
    boto: Boto, devices: Devices, idp: TestIdentityProvider, pool: str
) -> tuple[str, str]:
    """A developer user whose identity also links a login.test login, then loses its developer login; returns the
    identity id and the developer token issued before the unlink."""
    identity, token = await developer_identity(boto, pool, "user-1")
    logins = {COGNITO: token, LOGIN: idp.mint("alice", aud=APP_CLIENT)}
    await call(devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins=logins)
    await unlink_developer_user(boto, pool, identity)
    assert (await call(boto.identity, "describe_identity", IdentityId=identity))["Logins"] == [LOGIN]
    return identity, token


async def test_a_developer_token_gets_no_credentials_once_its_login_is_unlinked(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto, guests=False)
    identity, token = await developer_user_also_on_login_test(boto, devices, idp, pool)

    refused = await refusal(
        devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins={COGNITO: token}
    )

    assert refused == ("NotAuthorizedException", 400)


async def test_a_developer_token_is_no_bearer_once_its_login_is_unlinked(
    boto: Boto, devices: Devices, idp: TestIdentityProvider, raw: Raw
) -> None:
    pool = await new_pool(boto, guests=False)
    identity, token = await developer_user_also_on_login_test(boto, devices, idp, pool)

    status, body, _ = await raw.send(
        "GET", records_path(pool, identity), sign=False, headers={"Authorization": f"Bearer {token}"}
    )

    assert (status, body["__type"]) == (403, "NotAuthorizedException")


# --- administration: describe, list, delete, unlink -----------------------------------------------------------------


async def test_list_identities_pages_through_every_identity_once(boto: Boto, devices: Devices) -> None:
    pool = await new_pool(boto)
    created = {(await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"] for _ in range(5)}

    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        page = await call(
            boto.identity,
            "list_identities",
            IdentityPoolId=pool,
            MaxResults=2,
            **({"NextToken": token} if token else {}),
        )
        assert page["IdentityPoolId"] == pool
        assert len(page["Identities"]) <= 2
        seen += [identity["IdentityId"] for identity in page["Identities"]]
        token = page.get("NextToken")
        if token is None:
            break

    assert sorted(seen) == sorted(created)


async def deleted_guest(boto: Boto, devices: Devices) -> tuple[str, str, Credentials]:
    """A guest identity with one dataset, deleted by the developer after it got its credentials."""
    pool = await new_pool(boto)
    identity, credentials = await guest(devices, pool)
    await write(devices.sync_with(credentials), pool, identity)
    deleted = await call(boto.identity, "delete_identities", IdentityIdsToDelete=[identity])
    assert deleted == {"UnprocessedIdentityIds": []}
    return pool, identity, credentials


async def test_deleted_identity_credentials_are_refused_at_once(boto: Boto, devices: Devices) -> None:
    pool, identity, credentials = await deleted_guest(boto, devices)

    refused = await refusal(
        devices.sync_with(credentials), "list_records", IdentityPoolId=pool, IdentityId=identity, DatasetName="settings"
    )

    assert refused == ("UnrecognizedClientException", 400)


async def test_deleted_identity_data_is_gone(boto: Boto, devices: Devices) -> None:
    pool, identity, _ = await deleted_guest(boto, devices)

    listed = await call(boto.sync, "list_records", IdentityPoolId=pool, IdentityId=identity, DatasetName="settings")

    assert (listed["DatasetExists"], listed["Records"]) == (False, [])
    assert (await call(boto.sync, "list_datasets", IdentityPoolId=pool, IdentityId=identity))["Datasets"] == []


async def test_deleted_identity_gets_no_more_credentials(boto: Boto, devices: Devices) -> None:
    _, identity, _ = await deleted_guest(boto, devices)

    refused = await refusal(devices.identity, "get_credentials_for_identity", IdentityId=identity)

    assert refused == ("ResourceNotFoundException", 400)
    assert await refusal(boto.identity, "describe_identity", IdentityId=identity) == ("ResourceNotFoundException", 400)


async def linked_twice(devices: Devices, idp: TestIdentityProvider, pool: str) -> tuple[str, Credentials]:
    return await federated(
        devices, pool, {LOGIN: idp.mint("alice", aud=APP_CLIENT), LOGIN2: idp.mint("alice-2", aud=APP_CLIENT2)}
    )


async def test_unlink_identity_removes_the_provider(boto: Boto, devices: Devices, idp: TestIdentityProvider) -> None:
    pool = await new_pool(boto, guests=False)
    identity, _ = await linked_twice(devices, idp, pool)

    unlinked = await call(
        devices.identity,
        "unlink_identity",
        IdentityId=identity,
        Logins={LOGIN: idp.mint("alice", aud=APP_CLIENT)},
        LoginsToRemove=[LOGIN2],
    )

    assert unlinked == {}
    assert (await call(boto.identity, "describe_identity", IdentityId=identity))["Logins"] == [LOGIN]
    fresh = await call(
        devices.identity, "get_id", IdentityPoolId=pool, Logins={LOGIN2: idp.mint("alice-2", aud=APP_CLIENT2)}
    )
    assert fresh["IdentityId"] != identity


async def test_unlink_identity_revokes_credentials_issued_before(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto, guests=False)
    identity, credentials = await linked_twice(devices, idp, pool)

    await call(
        devices.identity,
        "unlink_identity",
        IdentityId=identity,
        Logins={LOGIN: idp.mint("alice", aud=APP_CLIENT)},
        LoginsToRemove=[LOGIN2],
    )

    refused = await refusal(
        devices.sync_with(credentials), "list_records", IdentityPoolId=pool, IdentityId=identity, DatasetName="settings"
    )
    assert refused == ("UnrecognizedClientException", 400)


async def test_unlink_identity_needs_a_login_of_the_identity(
    boto: Boto, devices: Devices, idp: TestIdentityProvider
) -> None:
    pool = await new_pool(boto, guests=False)
    identity, _ = await linked_twice(devices, idp, pool)

    refused = await refusal(
        devices.identity,
        "unlink_identity",
        IdentityId=identity,
        Logins={LOGIN: idp.mint("mallory", aud=APP_CLIENT)},
        LoginsToRemove=[LOGIN, LOGIN2],
    )

    assert refused == ("NotAuthorizedException", 400)
    assert (await call(boto.identity, "describe_identity", IdentityId=identity))["Logins"] == [LOGIN, LOGIN2]


# --- rate limits ----------------------------------------------------------------------------------------------------


def test_the_readme_gives_the_status_identity_rate_limits_answer_with() -> None:
    """The README once said 429; Cognito Identity's json 1.1 protocol (and so syncsvc, as the test below shows)
    answers TooManyRequestsException with 400."""
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    assert "→ `TooManyRequestsException`, answered 400 as Cognito Identity's json 1.1 protocol does" in readme
    assert "0 = none) → `TooManyRequestsException` (429)" not in readme


@pytest.mark.parametrize("overrides", [{"get_id_per_second": 3}])
async def test_the_fourth_get_id_within_a_second_is_too_many_requests(boto: Boto, raw: Raw) -> None:
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSCognitoIdentityService.GetId"}
    # A burst that straddles a second boundary is counted in two seconds: then try again (more than once on a loaded
    # machine, where the four calls take longer).
    for _ in range(5):
        pool = await new_pool(boto)
        started = int(time.time())
        statuses = []
        for _ in range(4):
            status, body, _ = await raw.send(
                "POST", "/", body=orjson.dumps({"IdentityPoolId": pool}), sign=False, headers=headers
            )
            statuses.append((status, body.get("__type")))
        if int(time.time()) == started:
            break
    assert statuses == [(200, None)] * 3 + [(400, "TooManyRequestsException")]
