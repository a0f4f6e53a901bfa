"""The KMS surface as the KMS tests call it with unmodified boto3: ``kms_client`` (developer credentials, or an
identity's), keys and grants made through it, ARNs, and refusals read as (HTTP status, error code, message).

The fixtures ``kms`` (a developer's client of the test server) and ``service`` (the server's own key service), for
the modules that ask, are registered for the whole suite in tests/conftest.py's ``pytest_plugins``.
"""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import ANY

import boto3
import pytest
from aiohttp.test_utils import TestServer
from botocore.config import Config
from botocore.exceptions import ClientError

from syncsvc.api.messages import SERVICES
from syncsvc.kms.keyservice import KeyService
from syncsvc.kms.policy import identity_principal
from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION, Boto, call
from tests.devices import Devices, guest

ACCOUNT = "000000000000"
ARN_PREFIX = f"arn:aws:kms:{REGION}:{ACCOUNT}"
#: The principal of the suite's developer credentials.
DEVELOPER = f"arn:aws:iam::{ACCOUNT}:user/{DEVELOPER_KEY}"


def kms_client(endpoint: str, **credentials: str) -> Any:
    """An unmodified boto3 KMS client (developer credentials unless others are given), without retries."""
    session = boto3.session.Session(
        aws_access_key_id=credentials.get("AccessKeyId", DEVELOPER_KEY),
        aws_secret_access_key=credentials.get("SecretKey", DEVELOPER_SECRET),
        aws_session_token=credentials.get("SessionToken"),
        region_name=REGION,
    )
    config = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=5, read_timeout=20)
    return session.client("kms", endpoint_url=endpoint, config=config)


@pytest.fixture
def kms(endpoint: str) -> Any:
    return kms_client(endpoint)


@pytest.fixture
def service(server: TestServer) -> KeyService:
    """The server's own KeyService (for the sweep, and for setting up a time that has not come yet)."""
    return server.app[SERVICES].kms


async def refusal(client: Any, operation: str, **params: Any) -> tuple[int, str, str]:
    """(HTTP status, error code, message) of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(getattr(client, operation), **params)
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


async def code_of(client: Any, operation: str, **params: Any) -> tuple[int, str]:
    status, code, _ = await refusal(client, operation, **params)
    return status, code


async def new_key(kms: Any, **params: Any) -> str:
    key_id: str = (await call(kms, "create_key", **params))["KeyMetadata"]["KeyId"]
    return key_id


def arn(key_id: str) -> str:
    return f"{ARN_PREFIX}:key/{key_id}"


async def an_identity(boto: Boto, endpoint: str) -> tuple[str, Any]:
    """(principal, boto3 kms client) of a new guest identity, signed with its temporary credentials."""
    identity, credentials = await guest(Devices(endpoint), await boto.new_pool())
    return identity_principal(identity), kms_client(endpoint, **credentials)


async def grant(kms: Any, key_id: str, grantee: str, *operations: str, **params: Any) -> dict[str, Any]:
    return await call(
        kms, "create_grant", KeyId=key_id, GranteePrincipal=grantee, Operations=list(operations), **params
    )


def key_metadata(key_id: str, spec: str, usage: str, **extra: Any) -> dict[str, Any]:
    """DescribeKey's KeyMetadata of a new, enabled customer key ``key_id`` made by KMS: ``extra`` adds the spec's
    algorithm lists (EncryptionAlgorithms, SigningAlgorithms, MacAlgorithms)."""
    return {
        "AWSAccountId": ACCOUNT,
        "KeyId": key_id,
        "Arn": arn(key_id),
        "CreationDate": ANY,
        "Enabled": True,
        "Description": "",
        "KeyUsage": usage,
        "KeyState": "Enabled",
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": spec,
        "KeySpec": spec,
        "MultiRegion": False,
        **extra,
    }
