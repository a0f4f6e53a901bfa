"""The operation tables (``syncsvc.api.operations``): each surface's table alone says every operation's input,
output, route and access rule, so an API description can be generated from it, and who may call what is read there."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from syncsvc.access import Access
from syncsvc.api import identity, kms, sync, userpools
from syncsvc.api.operations import Operation, Surface, anonymous_targets

SURFACES = {
    "cognito-identity": identity.SURFACE,
    "kms": kms.SURFACE,
    "cognito-sync": sync.SURFACE,
    "cognito-idp": userpools.SURFACE,
}
OPERATIONS = [
    pytest.param(operation, id=f"{name}.{operation.name}")
    for name, served in SURFACES.items()
    for operation in served.operations.values()
]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_operation_describes_its_input_and_output_as_json_schema(operation: Operation[Any]) -> None:
    request = operation.input.model_json_schema()
    response = TypeAdapter(operation.output).json_schema()
    assert (request["type"], response["type"]) == ("object", "object")


def test_the_cognito_sync_table_routes_every_operation_once() -> None:
    routes = [(op.route.method, op.route.path) for op in sync.SURFACE.operations.values() if op.route is not None]
    assert len(routes) == len(set(routes)) == len(sync.SURFACE.operations) == 17


def test_only_the_operations_aws_serves_without_a_signature_are_anonymous() -> None:
    assert anonymous_targets(SURFACES.values()) == {
        "AWSCognitoIdentityService.GetId",
        "AWSCognitoIdentityService.GetCredentialsForIdentity",
        "AWSCognitoIdentityService.GetOpenIdToken",
        "AWSCognitoIdentityService.UnlinkIdentity",
        # user pools: what a signed-out device calls, and what carries its own proof (an access or refresh token)
        *(
            f"AWSCognitoIdentityProviderService.{name}"
            for name in (
                "SignUp",
                "ConfirmSignUp",
                "ResendConfirmationCode",
                "ForgotPassword",
                "ConfirmForgotPassword",
                "InitiateAuth",
                "RespondToAuthChallenge",
                "GetUser",
                "ChangePassword",
                "GlobalSignOut",
                "RevokeToken",
                "AssociateSoftwareToken",
                "VerifySoftwareToken",
                "SetUserMFAPreference",
                "UpdateUserAttributes",
                "GetUserAttributeVerificationCode",
                "VerifyUserAttribute",
                "DeleteUserAttributes",
                "DeleteUser",
            )
        ),
    }


def rule_of(served: Surface, access: Access) -> set[str]:
    return {name for name, operation in served.operations.items() if operation.access is access}


def test_identities_may_call_only_the_kms_operations_a_grant_can_allow() -> None:
    assert rule_of(kms.SURFACE, Access.GRANTED) == {
        "DescribeKey",
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "Sign",
        "Verify",
        "GetPublicKey",
        "RetireGrant",
        "GenerateRandom",
        "GenerateMac",
        "VerifyMac",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
    }
    assert rule_of(kms.SURFACE, Access.CALLER) | rule_of(kms.SURFACE, Access.ANONYMOUS) == set()


def test_pool_wide_cognito_sync_operations_take_developer_credentials() -> None:
    assert rule_of(sync.SURFACE, Access.DEVELOPER) == {
        "DescribeIdentityPoolUsage",
        "ListIdentityPoolUsage",
        "BulkPublish",
        "GetBulkPublishDetails",
        "GetCognitoEvents",
        "SetCognitoEvents",
        "GetIdentityPoolConfiguration",
        "SetIdentityPoolConfiguration",
    }
    assert rule_of(sync.SURFACE, Access.ANONYMOUS) | rule_of(sync.SURFACE, Access.GRANTED) == set()


def test_every_other_user_pool_operation_needs_developer_credentials() -> None:
    served = userpools.SURFACE
    assert rule_of(served, Access.DEVELOPER) == set(served.operations) - rule_of(served, Access.ANONYMOUS)
    assert {"CreateUserPool", "AdminCreateUser", "AdminInitiateAuth", "ListUsers"} <= rule_of(served, Access.DEVELOPER)
