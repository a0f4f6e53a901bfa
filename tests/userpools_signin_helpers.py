"""What the user-pool sign-in tests drive the server with: unmodified boto3 ``cognito-idp`` clients (one signed with
the developer's credentials for the admin calls, one unsigned as an app on a device holds it), a pool with an app
client and confirmed users, sign-in calls, and tokens forged the ways an attacker would (unsigned, HS256 keyed with
the public key, tampered, re-dated by a signer of our own keys).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import boto3
import botocore
import jwt
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from jwt.utils import base64url_encode
from pycognito.aws_srp import AWSSRP  # type: ignore[import-untyped]

from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION, call

PASSWORD = "Correct-Horse-9"
EVERY_FLOW = [
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ALLOW_USER_SRP_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
]
#: Every call sent exactly once (``total_max_attempts``: botocore's ``max_attempts`` counts retries, and a retried
#: guess would be two guesses).
_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=30)


class UserPoolClients:
    """``admin``: cognito-idp signed with the developer's credentials; ``public``: unsigned, as on a device."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        session = boto3.session.Session(
            aws_access_key_id=DEVELOPER_KEY, aws_secret_access_key=DEVELOPER_SECRET, region_name=REGION
        )
        self.admin = session.client("cognito-idp", endpoint_url=endpoint, config=_CONFIG)
        unsigned = _CONFIG.merge(Config(signature_version=botocore.UNSIGNED))
        self.public = boto3.session.Session(region_name=REGION).client(
            "cognito-idp", endpoint_url=endpoint, config=unsigned
        )


@dataclass(frozen=True)
class Pool:
    pool_id: str
    client_id: str

    @property
    def provider(self) -> str:
        """The pool's provider name in identity pools' Logins."""
        return f"cognito-idp.{REGION}.amazonaws.com/{self.pool_id}"


async def new_pool(clients: UserPoolClients, *, flows: list[str] | None = None, name: str = "signin") -> Pool:
    pool_id = (await call(clients.admin, "create_user_pool", PoolName=name))["UserPool"]["Id"]
    client = await call(
        clients.admin,
        "create_user_pool_client",
        UserPoolId=pool_id,
        ClientName="app",
        ExplicitAuthFlows=EVERY_FLOW if flows is None else flows,
    )
    return Pool(pool_id, client["UserPoolClient"]["ClientId"])


async def new_client(clients: UserPoolClients, pool_id: str, *, flows: list[str] | None = None) -> str:
    client = await call(
        clients.admin,
        "create_user_pool_client",
        UserPoolId=pool_id,
        ClientName="other-app",
        ExplicitAuthFlows=EVERY_FLOW if flows is None else flows,
    )
    client_id: str = client["UserPoolClient"]["ClientId"]
    return client_id


async def new_user(clients: UserPoolClients, pool_id: str, username: str, *, password: str = PASSWORD) -> None:
    """A CONFIRMED user with a permanent password and a verified e-mail address."""
    await call(
        clients.admin,
        "admin_create_user",
        UserPoolId=pool_id,
        Username=username,
        MessageAction="SUPPRESS",
        UserAttributes=[
            {"Name": "email", "Value": f"{username}@example.com"},
            {"Name": "email_verified", "Value": "true"},
            {"Name": "name", "Value": username.title()},
        ],
    )
    await call(
        clients.admin,
        "admin_set_user_password",
        UserPoolId=pool_id,
        Username=username,
        Password=password,
        Permanent=True,
    )


async def sign_in(clients: UserPoolClients, pool: Pool, username: str, password: str = PASSWORD) -> dict[str, Any]:
    """USER_PASSWORD_AUTH; the AuthenticationResult."""
    answer = await call(
        clients.public,
        "initiate_auth",
        ClientId=pool.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    result: dict[str, Any] = answer["AuthenticationResult"]
    return result


async def refused(client: Any, operation: str, **params: Any) -> tuple[str, str]:
    """(error code, message) of a boto3 call that must fail with a 400."""
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(getattr(client, operation), **params)
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return response["Error"]["Code"], response["Error"]["Message"]


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (reading only)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _segment(value: dict[str, Any]) -> str:
    return base64url_encode(json.dumps(value).encode()).decode()


def unsigned(token: str) -> str:
    """The token's claims under ``alg: none``, without a signature."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{token.split('.')[1]}."


def hs256_with_public_key(token: str, public_pem: bytes) -> str:
    """The token's claims signed HS256 with the RSA public key as the HMAC secret (the key-confusion attack)."""
    header = jwt.get_unverified_header(token)
    body = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': header['kid']})}.{token.split('.')[1]}"
    signature = hmac.new(public_pem, body.encode(), hashlib.sha256).digest()
    return f"{body}.{base64url_encode(signature).decode()}"


def tampered(token: str, **changes: Any) -> str:
    """The token with claims changed and its signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{_segment(claims_of(token) | changes)}.{signature}"


# --- sign-in answers, for tables of attacks -------------------------------------------------------------------

SIGNED_IN = ("tokens", "")


async def sign_in_answer(
    clients: UserPoolClients, pool: Pool, flow: str, username: str, password: str
) -> tuple[str, str]:
    """One sign-in through ``flow`` ("password": USER_PASSWORD_AUTH, "srp": USER_SRP_AUTH with pycognito's AWSSRP,
    "admin": AdminInitiateAuth ADMIN_USER_PASSWORD_AUTH): SIGNED_IN when it answered tokens, else the refusal's
    (error code, message), which must be a 400."""

    def attempt() -> dict[str, Any]:
        if flow == "srp":
            srp_user = AWSSRP(username, password, pool.pool_id, pool.client_id, client=clients.public)
            tokens: dict[str, Any] = srp_user.authenticate_user()
            return tokens
        client, operation = (
            (clients.admin, "admin_initiate_auth") if flow == "admin" else (clients.public, "initiate_auth")
        )
        extra = {"UserPoolId": pool.pool_id} if flow == "admin" else {}
        auth_flow = "ADMIN_USER_PASSWORD_AUTH" if flow == "admin" else "USER_PASSWORD_AUTH"
        answer: dict[str, Any] = getattr(client, operation)(
            ClientId=pool.client_id,
            AuthFlow=auth_flow,
            AuthParameters={"USERNAME": username, "PASSWORD": password},
            **extra,
        )
        return answer

    try:
        answer = await asyncio.to_thread(attempt)
    except ClientError as caught:
        refusal = caught.response
    else:
        assert set(answer["AuthenticationResult"]) >= {"AccessToken", "IdToken", "RefreshToken"}
        return SIGNED_IN
    assert refusal["ResponseMetadata"]["HTTPStatusCode"] == 400
    return refusal["Error"]["Code"], refusal["Error"]["Message"]
