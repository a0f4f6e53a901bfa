"""Get/SetIdentityPoolConfiguration: a pool's Cognito Streams and push sync settings, through boto3."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Boto

ROLE = "arn:aws:iam::123456789012:role/cognito-streams"
APP = "arn:aws:sns:us-east-1:123456789012:app/GCM/my-app"


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


async def test_a_new_pool_has_no_configuration(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    got = await boto.call(boto.sync, "get_identity_pool_configuration", IdentityPoolId=pool_id)
    assert without_metadata(got) == {"IdentityPoolId": pool_id}


async def test_set_configuration_returns_and_keeps_what_was_set(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    given = {
        "CognitoStreams": {"StreamName": "sync-changes", "RoleArn": ROLE, "StreamingStatus": "ENABLED"},
        "PushSync": {"ApplicationArns": [APP], "RoleArn": ROLE},
    }
    set_ = await boto.call(boto.sync, "set_identity_pool_configuration", IdentityPoolId=pool_id, **given)
    got = await boto.call(boto.sync, "get_identity_pool_configuration", IdentityPoolId=pool_id)
    assert without_metadata(set_) == without_metadata(got) == {"IdentityPoolId": pool_id, **given}


async def test_members_left_out_are_unchanged(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    streams = {"StreamName": "sync-changes", "RoleArn": ROLE, "StreamingStatus": "ENABLED"}
    await boto.call(boto.sync, "set_identity_pool_configuration", IdentityPoolId=pool_id, CognitoStreams=streams)
    await boto.call(
        boto.sync,
        "set_identity_pool_configuration",
        IdentityPoolId=pool_id,
        CognitoStreams={"StreamingStatus": "DISABLED"},
    )
    got = await boto.call(boto.sync, "get_identity_pool_configuration", IdentityPoolId=pool_id)
    assert got["CognitoStreams"] == {**streams, "StreamingStatus": "DISABLED"}
    assert "PushSync" not in got


@pytest.mark.parametrize(
    ("streams", "fragment"),
    [
        ({"StreamName": "bad name!", "StreamingStatus": "ENABLED"}, "at 'cognitoStreams.streamName'"),
        ({"StreamName": "..", "StreamingStatus": "ENABLED"}, "at 'cognitoStreams.streamName'"),
        ({"StreamName": "x" * 129}, "at 'cognitoStreams.streamName'"),
        ({"StreamingStatus": "ENABLED"}, "StreamName is required"),
        ({"StreamName": "ok", "RoleArn": "arn:aws:iam::1:user/not-a-role"}, "at 'cognitoStreams.roleArn'"),
    ],
)
async def test_bad_streams_settings_are_invalid_and_change_nothing(
    boto: Boto, streams: dict[str, str], fragment: str
) -> None:
    pool_id = await boto.new_pool()
    with pytest.raises(ClientError) as caught:
        await boto.call(boto.sync, "set_identity_pool_configuration", IdentityPoolId=pool_id, CognitoStreams=streams)
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
    assert fragment in caught.value.response["Error"]["Message"]
    got = await boto.call(boto.sync, "get_identity_pool_configuration", IdentityPoolId=pool_id)
    assert without_metadata(got) == {"IdentityPoolId": pool_id}


async def test_bad_push_sync_application_arn_is_invalid(boto: Boto) -> None:
    pool_id = await boto.new_pool()
    with pytest.raises(ClientError) as caught:
        await boto.call(
            boto.sync,
            "set_identity_pool_configuration",
            IdentityPoolId=pool_id,
            PushSync={"ApplicationArns": ["arn:aws:sns:us-east-1:1:topic"]},
        )
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"


@pytest.mark.parametrize("operation", ["get_identity_pool_configuration", "set_identity_pool_configuration"])
async def test_configuration_of_an_unknown_pool_is_not_found(boto: Boto, operation: str) -> None:
    await boto.new_pool()
    with pytest.raises(ClientError) as caught:
        await boto.call(boto.sync, operation, IdentityPoolId="us-east-1:00000000-0000-0000-0000-000000000000")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
