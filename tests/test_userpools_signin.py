"""User-pool sign-in end to end, driven by unmodified boto3 ``cognito-idp`` (and pycognito for SRP): the flows, the
tokens (checked with jwcrypto from the pool's JWKS alone), refresh, revocation and global sign-out, account
protection, the token attack table, and federation into an identity pool down to a Cognito Sync write.

Real Redis; the server's public URL is its own loopback address, so the tokens' ``iss`` is where their JWKS is.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from jwcrypto import jwk as jose_jwk  # type: ignore[import-untyped]
from jwcrypto import jwt as jose_jwt
from pycognito import Cognito  # type: ignore[import-untyped]
from pycognito.aws_srp import AWSSRP  # type: ignore[import-untyped]

from syncsvc.api.app import create_app
from syncsvc.api.messages import SERVICES
from syncsvc.clock import ManualClock
from syncsvc.config import Settings
from syncsvc.identity.issuer import TokenIssuer
from tests.conftest import REGION, Boto, Raw, call, free_port, make_settings
from tests.devices import Devices
from tests.userpools_signin_helpers import (
    PASSWORD,
    Pool,
    UserPoolClients,
    claims_of,
    hs256_with_public_key,
    new_client,
    new_pool,
    new_user,
    refused,
    sign_in,
    tampered,
    unsigned,
)

INCORRECT = ("NotAuthorizedException", "Incorrect username or password.")


# --- the server, its public URL its own address ---------------------------------------------------------------------


@pytest.fixture
def settings(redis_url: str, port: int) -> Settings:
    return make_settings(redis_url, public_url=f"http://127.0.0.1:{port}", get_id_per_second=0)


@pytest.fixture
def app_clock() -> ManualClock:
    """Time held still: the first lockout lasts 1 s, and a slow machine must not see it lapse between two tries."""
    return ManualClock(int(time.time() * 1000))


@pytest.fixture
def clients(endpoint: str) -> UserPoolClients:
    return UserPoolClients(endpoint)


@pytest.fixture
async def pool(clients: UserPoolClients) -> Pool:
    made = await new_pool(clients)
    await new_user(clients, made.pool_id, "alice")
    return made


async def jwks_of(raw: Raw, pool_id: str) -> jose_jwk.JWKSet:
    status, body, _ = await raw.send("GET", f"/{pool_id}/.well-known/jwks.json", sign=False)
    assert status == 200
    return jose_jwk.JWKSet.from_json(json.dumps(body))


def verified(token: str, keys: jose_jwk.JWKSet, **expected: Any) -> dict[str, Any]:
    """The claims of a token jwcrypto verifies from the JWKS alone (RS256, ``expected`` claims, ``exp``)."""
    checked = jose_jwt.JWT(jwt=token, key=keys, algs=["RS256"], check_claims={"exp": None, **expected})
    claims: dict[str, Any] = json.loads(checked.claims)
    return claims


# --- USER_PASSWORD_AUTH and the tokens ------------------------------------------------------------------------------


async def test_password_sign_in_answers_tokens_shaped_as_cognitos_that_verify_from_the_pools_jwks(
    clients: UserPoolClients, pool: Pool, raw: Raw, endpoint: str
) -> None:
    result = await sign_in(clients, pool, "alice")

    assert sorted(result) == ["AccessToken", "ExpiresIn", "IdToken", "RefreshToken", "TokenType"]
    assert (result["ExpiresIn"], result["TokenType"]) == (3600, "Bearer")
    keys = await jwks_of(raw, pool.pool_id)
    issuer = f"{endpoint}/{pool.pool_id}"
    id_claims = verified(result["IdToken"], keys, iss=issuer, aud=pool.client_id, token_use="id")
    access = verified(result["AccessToken"], keys, iss=issuer, client_id=pool.client_id, token_use="access")
    sub = id_claims["sub"]
    assert {name: id_claims[name] for name in ("cognito:username", "email", "email_verified", "name")} == {
        "cognito:username": "alice",
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice",
    }
    assert {name: access[name] for name in ("sub", "username", "scope")} == {
        "sub": sub,
        "username": "alice",
        "scope": "aws.cognito.signin.user.admin",
    }
    for claims in (id_claims, access):
        assert claims["exp"] - claims["iat"] == 3600
        assert abs(claims["auth_time"] - time.time()) < 10
    assert id_claims["origin_jti"] == access["origin_jti"]
    assert id_claims["jti"] != access["jti"]
    assert id_claims["event_id"] == access["event_id"]


async def test_get_user_answers_the_access_tokens_user(clients: UserPoolClients, pool: Pool) -> None:
    tokens = await sign_in(clients, pool, "alice")

    user = await call(clients.public, "get_user", AccessToken=tokens["AccessToken"])

    attributes = {entry["Name"]: entry["Value"] for entry in user["UserAttributes"]}
    assert user["Username"] == "alice"
    assert attributes == {
        "sub": claims_of(tokens["IdToken"])["sub"],
        "email": "alice@example.com",
        "email_verified": "true",
        "name": "Alice",
    }


async def test_groups_appear_as_the_cognito_groups_claim(clients: UserPoolClients, pool: Pool) -> None:
    await call(clients.admin, "create_group", UserPoolId=pool.pool_id, GroupName="editors")
    await call(clients.admin, "admin_add_user_to_group", UserPoolId=pool.pool_id, Username="alice", GroupName="editors")

    tokens = await sign_in(clients, pool, "alice")

    assert claims_of(tokens["IdToken"])["cognito:groups"] == ["editors"]
    assert claims_of(tokens["AccessToken"])["cognito:groups"] == ["editors"]


async def test_openid_configuration_names_the_pools_issuer_and_jwks(raw: Raw, pool: Pool, endpoint: str) -> None:
    status, body, _ = await raw.send("GET", f"/{pool.pool_id}/.well-known/openid-configuration", sign=False)

    assert status == 200
    assert (body["issuer"], body["jwks_uri"]) == (
        f"{endpoint}/{pool.pool_id}",
        f"{endpoint}/{pool.pool_id}/.well-known/jwks.json",
    )


async def test_admin_initiate_auth_signs_in_with_developer_credentials(clients: UserPoolClients, pool: Pool) -> None:
    answer = await call(
        clients.admin,
        "admin_initiate_auth",
        UserPoolId=pool.pool_id,
        ClientId=pool.client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": PASSWORD},
    )

    assert claims_of(answer["AuthenticationResult"]["IdToken"])["cognito:username"] == "alice"
    assert await refused(
        clients.public,
        "initiate_auth",
        ClientId=pool.client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": PASSWORD},
    ) == ("InvalidParameterException", "Initiate Auth method not supported.")


# --- refresh, revocation, sign-out ----------------------------------------------------------------------------------


async def refresh(clients: UserPoolClients, pool: Pool, refresh_token: str) -> dict[str, Any]:
    return await call(
        clients.public,
        "initiate_auth",
        ClientId=pool.client_id,
        AuthFlow="REFRESH_TOKEN_AUTH",
        AuthParameters={"REFRESH_TOKEN": refresh_token},
    )


async def test_refresh_answers_new_id_and_access_tokens_and_no_refresh_token(
    clients: UserPoolClients, pool: Pool
) -> None:
    first = await sign_in(clients, pool, "alice")

    answer = await refresh(clients, pool, first["RefreshToken"])

    result = answer["AuthenticationResult"]
    assert "RefreshToken" not in result
    assert result["AccessToken"] != first["AccessToken"]
    assert claims_of(result["AccessToken"])["origin_jti"] == claims_of(first["AccessToken"])["origin_jti"]
    assert (await call(clients.public, "get_user", AccessToken=result["AccessToken"]))["Username"] == "alice"


async def test_global_sign_out_refuses_every_earlier_access_and_refresh_token(
    clients: UserPoolClients, pool: Pool
) -> None:
    phone, laptop = await sign_in(clients, pool, "alice"), await sign_in(clients, pool, "alice")

    await call(clients.public, "global_sign_out", AccessToken=phone["AccessToken"])

    for tokens in (phone, laptop):
        assert await refused(clients.public, "get_user", AccessToken=tokens["AccessToken"]) == (
            "NotAuthorizedException",
            "Access Token has been revoked",
        )
        assert (await refused(clients.public, "initiate_auth", **_refreshing(pool, tokens)))[0] == (
            "NotAuthorizedException"
        )
    fresh = await sign_in(clients, pool, "alice")
    assert (await call(clients.public, "get_user", AccessToken=fresh["AccessToken"]))["Username"] == "alice"


async def test_admin_global_sign_out_refuses_earlier_tokens(clients: UserPoolClients, pool: Pool) -> None:
    tokens = await sign_in(clients, pool, "alice")

    await call(clients.admin, "admin_user_global_sign_out", UserPoolId=pool.pool_id, Username="alice")

    assert (await refused(clients.public, "get_user", AccessToken=tokens["AccessToken"]))[0] == "NotAuthorizedException"


async def test_a_sign_out_on_one_instance_is_refused_at_once_on_another(
    clients: UserPoolClients, pool: Pool, settings: Settings
) -> None:
    """Two instances on one Redis, as behind a load balancer (the same public URL, so the same ``iss``): what one
    revokes the other refuses on its next request, with no cache to expire in between."""
    other = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await other.start_server()
    try:
        elsewhere = UserPoolClients(f"http://127.0.0.1:{other.port}")
        tokens = await sign_in(clients, pool, "alice")
        assert (await call(elsewhere.public, "get_user", AccessToken=tokens["AccessToken"]))["Username"] == "alice"

        await call(clients.public, "global_sign_out", AccessToken=tokens["AccessToken"])

        assert await refused(elsewhere.public, "get_user", AccessToken=tokens["AccessToken"]) == (
            "NotAuthorizedException",
            "Access Token has been revoked",
        )
        assert (await refused(elsewhere.public, "initiate_auth", **_refreshing(pool, tokens)))[0] == (
            "NotAuthorizedException"
        )
        second = await sign_in(elsewhere, pool, "alice")
        await call(elsewhere.public, "revoke_token", ClientId=pool.client_id, Token=second["RefreshToken"])
        assert await refused(clients.public, "get_user", AccessToken=second["AccessToken"]) == (
            "NotAuthorizedException",
            "Access Token has been revoked",
        )
        assert await refused(clients.public, "initiate_auth", **_refreshing(pool, second)) == (
            "NotAuthorizedException",
            "Invalid Refresh Token",
        )
    finally:
        await other.close()


def _refreshing(pool: Pool, tokens: dict[str, Any]) -> dict[str, Any]:
    return {
        "ClientId": pool.client_id,
        "AuthFlow": "REFRESH_TOKEN_AUTH",
        "AuthParameters": {"REFRESH_TOKEN": tokens["RefreshToken"]},
    }


async def test_revoke_token_refuses_the_refresh_token_and_its_access_tokens_only(
    clients: UserPoolClients, pool: Pool
) -> None:
    revoked, kept = await sign_in(clients, pool, "alice"), await sign_in(clients, pool, "alice")

    await call(clients.public, "revoke_token", ClientId=pool.client_id, Token=revoked["RefreshToken"])

    assert await refused(clients.public, "initiate_auth", **_refreshing(pool, revoked)) == (
        "NotAuthorizedException",
        "Invalid Refresh Token",
    )
    assert await refused(clients.public, "get_user", AccessToken=revoked["AccessToken"]) == (
        "NotAuthorizedException",
        "Access Token has been revoked",
    )
    assert (await call(clients.public, "get_user", AccessToken=kept["AccessToken"]))["Username"] == "alice"
    assert "AuthenticationResult" in await call(clients.public, "initiate_auth", **_refreshing(pool, kept))


async def test_change_password_takes_the_previous_password_and_signs_out_earlier_tokens(
    clients: UserPoolClients, pool: Pool
) -> None:
    tokens = await sign_in(clients, pool, "alice")
    assert (
        await refused(
            clients.public,
            "change_password",
            AccessToken=tokens["AccessToken"],
            PreviousPassword="Wrong-Horse-9",
            ProposedPassword="Battery-Staple-7",
        )
        == INCORRECT
    )

    await call(
        clients.public,
        "change_password",
        AccessToken=tokens["AccessToken"],
        PreviousPassword=PASSWORD,
        ProposedPassword="Battery-Staple-7",
    )

    assert (await refused(clients.public, "get_user", AccessToken=tokens["AccessToken"]))[0] == "NotAuthorizedException"
    assert await refused(clients.public, "initiate_auth", **_password(pool, "alice", PASSWORD)) == INCORRECT
    assert "AuthenticationResult" in await call(
        clients.public, "initiate_auth", **_password(pool, "alice", "Battery-Staple-7")
    )


def _password(pool: Pool, username: str, password: str, *, client_id: str | None = None) -> dict[str, Any]:
    return {
        "ClientId": client_id or pool.client_id,
        "AuthFlow": "USER_PASSWORD_AUTH",
        "AuthParameters": {"USERNAME": username, "PASSWORD": password},
    }


# --- challenges and account states ----------------------------------------------------------------------------------


async def test_an_admin_created_user_sets_a_new_password_then_is_confirmed_and_signed_in(
    clients: UserPoolClients, pool: Pool
) -> None:
    await call(
        clients.admin,
        "admin_create_user",
        UserPoolId=pool.pool_id,
        Username="bob",
        TemporaryPassword="Temporary-Pass-1",
        MessageAction="SUPPRESS",
    )
    challenge = await call(clients.public, "initiate_auth", **_password(pool, "bob", "Temporary-Pass-1"))
    assert challenge["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    respond = {
        "ClientId": pool.client_id,
        "ChallengeName": "NEW_PASSWORD_REQUIRED",
        "Session": challenge["Session"],
        "ChallengeResponses": {"USERNAME": "bob", "NEW_PASSWORD": "Bobs-Own-Pass-2"},
    }

    answer = await call(clients.public, "respond_to_auth_challenge", **respond)

    assert claims_of(answer["AuthenticationResult"]["IdToken"])["cognito:username"] == "bob"
    user = await call(clients.admin, "admin_get_user", UserPoolId=pool.pool_id, Username="bob")
    assert user["UserStatus"] == "CONFIRMED"
    assert (await refused(clients.public, "respond_to_auth_challenge", **respond))[0] == "NotAuthorizedException"


async def test_a_disabled_user_is_told_so_after_the_password_checks_out(clients: UserPoolClients, pool: Pool) -> None:
    await call(clients.admin, "admin_disable_user", UserPoolId=pool.pool_id, Username="alice")

    assert await refused(clients.public, "initiate_auth", **_password(pool, "alice", PASSWORD)) == (
        "NotAuthorizedException",
        "User is disabled.",
    )
    assert await refused(clients.public, "initiate_auth", **_password(pool, "alice", "Wrong-Horse-9")) == INCORRECT


async def test_an_unconfirmed_user_is_told_to_confirm(clients: UserPoolClients, pool: Pool) -> None:
    await call(
        clients.public,
        "sign_up",
        ClientId=pool.client_id,
        Username="carol",
        Password=PASSWORD,
        UserAttributes=[{"Name": "email", "Value": "carol@example.com"}],
    )

    assert await refused(clients.public, "initiate_auth", **_password(pool, "carol", PASSWORD)) == (
        "UserNotConfirmedException",
        "User is not confirmed.",
    )


async def test_a_wrong_password_and_an_unknown_user_answer_alike(clients: UserPoolClients, pool: Pool) -> None:
    wrong = await refused(clients.public, "initiate_auth", **_password(pool, "alice", "Wrong-Horse-9"))
    unknown = await refused(clients.public, "initiate_auth", **_password(pool, "nobody", PASSWORD))

    assert wrong == unknown == INCORRECT


async def test_repeated_failures_lock_the_user_out_even_with_the_right_password(
    clients: UserPoolClients, pool: Pool
) -> None:
    for _ in range(5):
        assert await refused(clients.public, "initiate_auth", **_password(pool, "alice", "Wrong-Horse-9")) == INCORRECT

    assert await refused(clients.public, "initiate_auth", **_password(pool, "alice", PASSWORD)) == (
        "NotAuthorizedException",
        "Password attempts exceeded",
    )


async def test_flows_the_client_does_not_allow_are_refused(clients: UserPoolClients, pool: Pool) -> None:
    srp_only = await new_client(clients, pool.pool_id, flows=["ALLOW_USER_SRP_AUTH"])

    assert await refused(clients.public, "initiate_auth", **_password(pool, "alice", PASSWORD, client_id=srp_only)) == (
        "InvalidParameterException",
        "USER_PASSWORD_AUTH flow not enabled for this client",
    )
    tokens = await sign_in(clients, pool, "alice")
    assert (
        await refused(
            clients.public,
            "initiate_auth",
            ClientId=srp_only,
            AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": tokens["RefreshToken"]},
        )
    )[0] == "InvalidParameterException"


# --- the token attack table -----------------------------------------------------------------------------------------


async def _expired(server: TestServer, token: str) -> str:
    """The token's claims re-signed by the server's own current key, issued 70 s before the server's (held) now for
    60 s."""
    services = server.app[SERVICES]
    issuer = services.issuer
    clock = ManualClock(services.clock.now_ms() - 70_000)
    past = TokenIssuer(issuer.keyring, issuer.kms, issuer_url=issuer.issuer_url, clock=clock)
    return await past.sign({k: v for k, v in claims_of(token).items() if k not in ("iat", "exp")}, 60)


async def _public_pem(raw: Raw, pool_id: str) -> bytes:
    key = (await jwks_of(raw, pool_id))["keys"]
    pem: bytes = next(iter(key)).export_to_pem()
    return pem


ATTACKS: list[Any] = [
    pytest.param(lambda t, ctx: unsigned(t), "Invalid Access Token", id="alg-none"),
    pytest.param(lambda t, ctx: hs256_with_public_key(t, ctx["pem"]), "Invalid Access Token", id="hs256-public-key"),
    pytest.param(lambda t, ctx: tampered(t, username="mallory"), "Invalid Access Token", id="tampered-payload"),
    pytest.param(
        lambda t, ctx: tampered(t, iss=f"{ctx['endpoint']}/{ctx['other_pool']}"), "Invalid Access Token", id="other-iss"
    ),
    pytest.param(lambda t, ctx: ctx["expired"], "Access Token has expired", id="expired"),
    pytest.param(lambda t, ctx: ctx["id_token"], "Invalid Access Token", id="id-token-as-access-token"),
    pytest.param(lambda t, ctx: ctx["other_pool_token"], "Invalid Access Token", id="deleted-pool"),
    pytest.param(lambda t, ctx: "not.a.token", "Invalid Access Token", id="garbage"),
    pytest.param(lambda t, ctx: ctx["deleted_client_token"], "Invalid Access Token", id="deleted-client"),
    pytest.param(lambda t, ctx: ctx["revoked"], "Access Token has been revoked", id="revoked"),
    pytest.param(lambda t, ctx: ctx["signed_out"], "Access Token has been revoked", id="signed-out-user"),
]


@pytest.mark.parametrize(("forge", "message"), ATTACKS)
async def test_a_forged_or_stale_access_token_is_refused(
    clients: UserPoolClients,
    pool: Pool,
    raw: Raw,
    server: TestServer,
    endpoint: str,
    forge: Callable[[str, dict[str, Any]], str],
    message: str,
) -> None:
    tokens = await sign_in(clients, pool, "alice")
    other = await new_pool(clients, name="other")
    await new_user(clients, other.pool_id, "alice")
    other_token = (await sign_in(clients, other, "alice"))["AccessToken"]
    await call(clients.admin, "delete_user_pool", UserPoolId=other.pool_id)
    gone = Pool(pool.pool_id, await new_client(clients, pool.pool_id))
    deleted_client_token = (await sign_in(clients, gone, "alice"))["AccessToken"]
    await call(clients.admin, "delete_user_pool_client", UserPoolId=pool.pool_id, ClientId=gone.client_id)
    revoked = await sign_in(clients, pool, "alice")
    await call(clients.public, "revoke_token", ClientId=pool.client_id, Token=revoked["RefreshToken"])
    await new_user(clients, pool.pool_id, "bob")
    signed_out = (await sign_in(clients, pool, "bob"))["AccessToken"]
    await call(clients.admin, "admin_user_global_sign_out", UserPoolId=pool.pool_id, Username="bob")
    context = {
        "pem": await _public_pem(raw, pool.pool_id),
        "endpoint": endpoint,
        "other_pool": other.pool_id,
        "expired": await _expired(server, tokens["AccessToken"]),
        "id_token": tokens["IdToken"],
        "other_pool_token": other_token,
        "deleted_client_token": deleted_client_token,
        "revoked": revoked["AccessToken"],
        "signed_out": signed_out,
    }

    forged = forge(tokens["AccessToken"], context)

    assert await refused(clients.public, "get_user", AccessToken=forged) == ("NotAuthorizedException", message)


# --- federation into identity pools ---------------------------------------------------------------------------------


async def _identity_pool(clients: UserPoolClients, pool: Pool, boto_identity: Any, *, check: bool) -> str:
    created = await call(
        boto_identity,
        "create_identity_pool",
        IdentityPoolName="federated",
        AllowUnauthenticatedIdentities=False,
        CognitoIdentityProviders=[
            {"ProviderName": pool.provider, "ClientId": pool.client_id, "ServerSideTokenCheck": check}
        ],
    )
    pool_id: str = created["IdentityPoolId"]
    return pool_id


async def test_a_user_pool_sign_in_gets_aws_credentials_that_write_to_cognito_sync(
    clients: UserPoolClients, pool: Pool, devices: Devices, endpoint: str
) -> None:
    identity_pool = await _identity_pool(clients, pool, Boto(endpoint).identity, check=True)
    tokens = await sign_in(clients, pool, "alice")
    logins = {pool.provider: tokens["IdToken"]}

    identity = (await call(devices.identity, "get_id", IdentityPoolId=identity_pool, Logins=logins))["IdentityId"]
    again = (await call(devices.identity, "get_id", IdentityPoolId=identity_pool, Logins=logins))["IdentityId"]
    credentials = (await call(devices.identity, "get_credentials_for_identity", IdentityId=identity, Logins=logins))[
        "Credentials"
    ]
    sync = devices.sync_with(credentials)
    names = {"IdentityPoolId": identity_pool, "IdentityId": identity, "DatasetName": "settings"}
    session = (await call(sync, "list_records", **names))["SyncSessionToken"]
    patch = {"Op": "replace", "Key": "theme", "Value": "dark", "SyncCount": 0}
    written = await call(sync, "update_records", **names, SyncSessionToken=session, RecordPatches=[patch])

    assert again == identity
    assert [(r["Key"], r["Value"], r["SyncCount"]) for r in written["Records"]] == [("theme", "dark", 1)]
    described = await call(Boto(endpoint).identity, "describe_identity", IdentityId=identity)
    assert described["Logins"] == [pool.provider]


async def test_federation_refuses_other_clients_other_pools_and_signed_out_users(
    clients: UserPoolClients, pool: Pool, devices: Devices, endpoint: str
) -> None:
    identity_pool = await _identity_pool(clients, pool, Boto(endpoint).identity, check=True)
    other_client = await new_client(clients, pool.pool_id)
    other_client_token = (await sign_in(clients, Pool(pool.pool_id, other_client), "alice"))["IdToken"]
    other = await new_pool(clients, name="other")
    await new_user(clients, other.pool_id, "alice")
    other_pool_token = (await sign_in(clients, other, "alice"))["IdToken"]
    signed_out = await sign_in(clients, pool, "alice")
    await call(clients.public, "global_sign_out", AccessToken=signed_out["AccessToken"])

    for token in (other_client_token, other_pool_token, signed_out["IdToken"], signed_out["AccessToken"]):
        code, _ = await refused(devices.identity, "get_id", IdentityPoolId=identity_pool, Logins={pool.provider: token})
        assert code == "NotAuthorizedException"


# --- USER_SRP_AUTH with pycognito -----------------------------------------------------------------------------------


async def test_pycognito_signs_in_with_srp_and_verifies_the_tokens_from_the_jwks(
    clients: UserPoolClients, pool: Pool, endpoint: str
) -> None:
    def pycognito_user() -> Cognito:
        endpoint_kwargs = {"endpoint_url": endpoint, "aws_access_key_id": "-", "aws_secret_access_key": "-"}
        return Cognito(
            pool.pool_id, pool.client_id, username="alice", user_pool_region=REGION, boto3_client_kwargs=endpoint_kwargs
        )

    user = pycognito_user()
    await asyncio.to_thread(user.authenticate, password=PASSWORD)

    assert user.id_claims["cognito:username"] == "alice"
    assert (await call(clients.public, "get_user", AccessToken=user.access_token))["Username"] == "alice"
    with pytest.raises(Exception, match="Incorrect username or password"):
        await asyncio.to_thread(pycognito_user().authenticate, password="Wrong-Horse-9")


async def test_srp_for_an_unknown_user_answers_a_steady_challenge_and_the_same_refusal(
    clients: UserPoolClients, pool: Pool, endpoint: str
) -> None:
    srp_a = AWSSRP("nobody", "-", pool.pool_id, pool.client_id, client=clients.public).get_auth_params()["SRP_A"]
    ask = {
        "ClientId": pool.client_id,
        "AuthFlow": "USER_SRP_AUTH",
        "AuthParameters": {"USERNAME": "nobody", "SRP_A": srp_a},
    }

    first, second = (
        await call(clients.public, "initiate_auth", **ask),
        await call(clients.public, "initiate_auth", **ask),
    )

    assert first["ChallengeName"] == "PASSWORD_VERIFIER"
    assert first["ChallengeParameters"]["SALT"] == second["ChallengeParameters"]["SALT"]
    nobody = Cognito(
        pool.pool_id,
        pool.client_id,
        username="nobody",
        user_pool_region=REGION,
        boto3_client_kwargs={"endpoint_url": endpoint, "aws_access_key_id": "-", "aws_secret_access_key": "-"},
    )
    with pytest.raises(Exception, match="Incorrect username or password"):
        await asyncio.to_thread(nobody.authenticate, password=PASSWORD)


# --- a client with a secret -----------------------------------------------------------------------------------------


async def test_a_client_with_a_secret_needs_the_secret_hash_to_sign_in_refresh_and_revoke(
    clients: UserPoolClients, pool: Pool
) -> None:
    created = await call(
        clients.admin,
        "create_user_pool_client",
        UserPoolId=pool.pool_id,
        ClientName="server-app",
        GenerateSecret=True,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )
    made = created["UserPoolClient"]
    client_id, secret = made["ClientId"], made["ClientSecret"]
    digest = base64.b64encode(hmac.new(secret.encode(), f"alice{client_id}".encode(), hashlib.sha256).digest()).decode()
    bare = _password(pool, "alice", PASSWORD, client_id=client_id)

    assert await refused(clients.public, "initiate_auth", **bare) == (
        "NotAuthorizedException",
        f"Unable to verify secret hash for client {client_id}",
    )
    bare["AuthParameters"]["SECRET_HASH"] = digest
    tokens = (await call(clients.public, "initiate_auth", **bare))["AuthenticationResult"]
    renewing = {
        "ClientId": client_id,
        "AuthFlow": "REFRESH_TOKEN_AUTH",
        "AuthParameters": {"REFRESH_TOKEN": tokens["RefreshToken"], "SECRET_HASH": digest},
    }
    assert "AuthenticationResult" in await call(clients.public, "initiate_auth", **renewing)
    assert (await refused(clients.public, "revoke_token", ClientId=client_id, Token=tokens["RefreshToken"]))[0] == (
        "NotAuthorizedException"
    )
    await call(clients.public, "revoke_token", ClientId=client_id, Token=tokens["RefreshToken"], ClientSecret=secret)
    assert (await refused(clients.public, "initiate_auth", **renewing))[1] == "Invalid Refresh Token"
