"""Devices and the identity broker, as the identity tests drive them with unmodified boto3: the test server's
identity settings (the test OIDC provider as ``login.test`` and ``login2.test``, a developer provider), ``Devices``
(what an app on a device holds: an unsigned cognito-identity client and clients signed with an identity's temporary
credentials), pools, guest identities and the developer's identity administration.

The fixture ``devices`` (registered for the whole suite in tests/conftest.py's ``pytest_plugins``) gives a test the
``Devices`` of its server.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import boto3
import botocore
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from syncsvc.config import Settings
from tests.conftest import REGION, Boto, call, make_settings
from tests.oidc_provider import TestIdentityProvider

LOGIN = "login.test"
LOGIN2 = "login2.test"
APP_CLIENT = "app-client"
APP_CLIENT2 = "app-client-2"
DEVELOPER_PROVIDER = "login.mycompany"
PUBLIC_URL = "https://sync.example.test"

Credentials = dict[str, Any]


def identity_settings(redis_url: str, idp: TestIdentityProvider, **overrides: Any) -> Settings:
    """The test server's settings: the provider as ``login.test`` (client ``app-client`` configured) and as
    ``login2.test`` (audiences only from the pool), no rate limits unless overridden."""
    values: dict[str, Any] = {
        "oidc_providers": (idp.provider(name=LOGIN, audiences=(APP_CLIENT,)), idp.provider(name=LOGIN2)),
        "get_id_per_second": 0,
        "token_calls_per_second": 0,
        "public_url": PUBLIC_URL,
        **overrides,
    }
    return make_settings(redis_url, **values)


class Devices:
    """What an app on a device holds: an unsigned cognito-identity client (GetId and friends need no credentials),
    and clients signed with the temporary credentials of an identity."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.identity = boto3.session.Session(region_name=REGION).client(
            "cognito-identity",
            endpoint_url=endpoint,
            config=Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1}),
        )

    def _session(self, credentials: Credentials) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=REGION,
        )

    def sync_with(self, credentials: Credentials) -> Any:
        """A cognito-sync client signed with an identity's credentials."""
        config = Config(retries={"max_attempts": 1})
        return self._session(credentials).client("cognito-sync", endpoint_url=self.endpoint, config=config)

    def identity_with(self, credentials: Credentials) -> Any:
        """A cognito-identity client signed with an identity's credentials."""
        config = Config(retries={"max_attempts": 1})
        return self._session(credentials).client("cognito-identity", endpoint_url=self.endpoint, config=config)


@pytest.fixture
def devices(endpoint: str) -> Devices:
    return Devices(endpoint)


async def refusal(client: Any, operation: str, **params: Any) -> tuple[str, int]:
    """(error code, HTTP status) of a boto3 call that must fail."""
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(getattr(client, operation), **params)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


async def new_pool(boto: Boto, *, guests: bool = True, providers: dict[str, str] | None = None) -> str:
    created = await call(
        boto.identity,
        "create_identity_pool",
        IdentityPoolName="identities",
        AllowUnauthenticatedIdentities=guests,
        SupportedLoginProviders={LOGIN: APP_CLIENT, LOGIN2: APP_CLIENT2} if providers is None else providers,
        DeveloperProviderName=DEVELOPER_PROVIDER,
    )
    pool_id: str = created["IdentityPoolId"]
    return pool_id


async def guest(devices: Devices, pool: str) -> tuple[str, Credentials]:
    """A new guest identity and its credentials."""
    identity = (await call(devices.identity, "get_id", IdentityPoolId=pool))["IdentityId"]
    credentials = (await call(devices.identity, "get_credentials_for_identity", IdentityId=identity))["Credentials"]
    return identity, credentials


async def developer_identity(boto: Boto, pool: str, user: str, **params: Any) -> tuple[str, str]:
    """(identity id, token) of a developer-authenticated user, as the developer's backend gets them."""
    response = await call(
        boto.identity,
        "get_open_id_token_for_developer_identity",
        IdentityPoolId=pool,
        Logins={DEVELOPER_PROVIDER: user},
        **params,
    )
    return response["IdentityId"], response["Token"]


async def merge_developer_users(boto: Boto, pool: str) -> dict[str, Any]:
    """MergeDeveloperIdentities of developer user ``user-1`` into ``user-2``; the response."""
    return await call(
        boto.identity,
        "merge_developer_identities",
        SourceUserIdentifier="user-1",
        DestinationUserIdentifier="user-2",
        DeveloperProviderName=DEVELOPER_PROVIDER,
        IdentityPoolId=pool,
    )


async def unlink_developer_user(boto: Boto, pool: str, identity: str) -> dict[str, Any]:
    """UnlinkDeveloperIdentity of developer user ``user-1`` from ``identity``; the response."""
    return await call(
        boto.identity,
        "unlink_developer_identity",
        IdentityId=identity,
        IdentityPoolId=pool,
        DeveloperProviderName=DEVELOPER_PROVIDER,
        DeveloperUserIdentifier="user-1",
    )


def records_path(pool: str, identity: str, dataset: str = "settings") -> str:
    return f"/identitypools/{quote(pool, safe='')}/identities/{quote(identity, safe='')}/datasets/{dataset}/records"
