"""User pools' self-service operations with unmodified boto3: a signed-in user changes, verifies and deletes its own
attributes and account with its access token (and nobody else's), and the administrator's AdminDeleteUserAttributes
and AdminResetUserPassword. Codes arrive at a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import call
from tests.userpools_helpers import Mailbox, mailbox, overrides
from tests.userpools_signin_helpers import (
    PASSWORD,
    Pool,
    UserPoolClients,
    new_pool,
    new_user,
    refused,
    sign_in,
    tampered,
)

__all__ = ["mailbox", "overrides"]  # fixtures used by name


def attributes_of(answer: dict[str, Any], key: str = "UserAttributes") -> dict[str, str]:
    return {a["Name"]: a["Value"] for a in answer[key]}


async def admin_attributes(clients: UserPoolClients, pool: Pool, username: str) -> dict[str, str]:
    return attributes_of(await call(clients.admin, "admin_get_user", UserPoolId=pool.pool_id, Username=username))


async def auto_verifying_pool(clients: UserPoolClients) -> Pool:
    """A pool with plain usernames whose e-mail changes are verified by a code (AutoVerifiedAttributes)."""
    created = await call(clients.admin, "create_user_pool", PoolName="self", AutoVerifiedAttributes=["email"])
    pool_id = created["UserPool"]["Id"]
    client = await call(
        clients.admin,
        "create_user_pool_client",
        UserPoolId=pool_id,
        ClientName="app",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )
    return Pool(pool_id, client["UserPoolClient"]["ClientId"])


async def test_a_changed_email_is_unverified_until_the_code_sent_to_it_comes_back(
    endpoint: str, mailbox: Mailbox
) -> None:
    clients = UserPoolClients(endpoint)
    pool = await auto_verifying_pool(clients)
    await new_user(clients, pool.pool_id, "alice")
    token = (await sign_in(clients, pool, "alice"))["AccessToken"]

    answer = await call(
        clients.public,
        "update_user_attributes",
        AccessToken=token,
        UserAttributes=[{"Name": "email", "Value": "alice.new@example.org"}, {"Name": "name", "Value": "Al"}],
    )
    assert answer == {
        "CodeDeliveryDetailsList": [
            {"Destination": "a***@e***", "DeliveryMedium": "EMAIL", "AttributeName": "email"},
        ]
    }
    mine = attributes_of(await call(clients.public, "get_user", AccessToken=token))
    assert (mine["email"], mine["email_verified"], mine["name"]) == ("alice.new@example.org", "false", "Al")

    mail = await mailbox.next_to("alice.new@example.org")
    await call(clients.public, "verify_user_attribute", AccessToken=token, AttributeName="email", Code=mail.code)
    assert (await admin_attributes(clients, pool, "alice"))["email_verified"] == "true"
    # A code works once.
    code, _ = await refused(
        clients.public, "verify_user_attribute", AccessToken=token, AttributeName="email", Code=mail.code
    )
    assert code == "ExpiredCodeException"


async def test_a_user_cannot_mark_its_own_email_verified(endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    await new_user(clients, pool.pool_id, "alice")
    token = (await sign_in(clients, pool, "alice"))["AccessToken"]
    await call(
        clients.public,
        "update_user_attributes",
        AccessToken=token,
        UserAttributes=[{"Name": "email", "Value": "mallory@example.org"}],
    )
    assert (await admin_attributes(clients, pool, "alice"))["email_verified"] == "false"
    code, message = await refused(
        clients.public,
        "update_user_attributes",
        AccessToken=token,
        UserAttributes=[{"Name": "email_verified", "Value": "true"}],
    )
    assert (code, "email_verified" in message) == ("InvalidParameterException", True)
    assert (await admin_attributes(clients, pool, "alice"))["email_verified"] == "false"


async def test_a_code_verifies_only_the_value_it_was_sent_to(endpoint: str, mailbox: Mailbox) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)  # no AutoVerifiedAttributes: changing the e-mail sends nothing
    await new_user(clients, pool.pool_id, "carol")
    token = (await sign_in(clients, pool, "carol"))["AccessToken"]
    before = len(mailbox.to("carol@example.com"))
    sent = await call(clients.public, "get_user_attribute_verification_code", AccessToken=token, AttributeName="email")
    assert sent["CodeDeliveryDetails"] == {
        "Destination": "c***@e***",
        "DeliveryMedium": "EMAIL",
        "AttributeName": "email",
    }
    mail = await mailbox.next_to("carol@example.com", after=before)
    answer = await call(
        clients.public,
        "update_user_attributes",
        AccessToken=token,
        UserAttributes=[{"Name": "email", "Value": "not-carol@example.org"}],
    )
    assert answer == {"CodeDeliveryDetailsList": []}

    code, _ = await refused(
        clients.public, "verify_user_attribute", AccessToken=token, AttributeName="email", Code=mail.code
    )
    assert code == "CodeMismatchException"
    assert (await admin_attributes(clients, pool, "carol"))["email_verified"] == "false"
    code, _ = await refused(
        clients.public, "get_user_attribute_verification_code", AccessToken=token, AttributeName="name"
    )
    assert code == "InvalidParameterException"


async def test_tokens_of_other_users_forged_or_signed_out_change_nothing(endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    await new_user(clients, pool.pool_id, "alice")
    await new_user(clients, pool.pool_id, "bob")
    alice = (await sign_in(clients, pool, "alice"))["AccessToken"]
    bob_before = await admin_attributes(clients, pool, "bob")

    await call(
        clients.public, "update_user_attributes", AccessToken=alice, UserAttributes=[{"Name": "name", "Value": "A"}]
    )
    assert await admin_attributes(clients, pool, "bob") == bob_before
    assert (await admin_attributes(clients, pool, "alice"))["name"] == "A"

    bob_sub = bob_before["sub"]
    forged = tampered(alice, sub=bob_sub, username="bob")
    for operation, params in (
        ("update_user_attributes", {"UserAttributes": [{"Name": "name", "Value": "pwned"}]}),
        ("delete_user_attributes", {"UserAttributeNames": ["name"]}),
        ("delete_user", {}),
    ):
        code, _ = await refused(clients.public, operation, AccessToken=forged, **params)
        assert code == "NotAuthorizedException", operation
    assert await admin_attributes(clients, pool, "bob") == bob_before

    await call(clients.public, "global_sign_out", AccessToken=alice)
    signed_out: tuple[tuple[str, dict[str, Any]], ...] = (
        ("update_user_attributes", {"UserAttributes": [{"Name": "name", "Value": "late"}]}),
        ("get_user_attribute_verification_code", {"AttributeName": "email"}),
        ("verify_user_attribute", {"AttributeName": "email", "Code": "123456"}),
        ("delete_user_attributes", {"UserAttributeNames": ["name"]}),
        ("delete_user", {}),
    )
    for operation, params in signed_out:
        code, message = await refused(clients.public, operation, AccessToken=alice, **params)
        assert (code, message) == ("NotAuthorizedException", "Access Token has been revoked"), operation
    assert (await admin_attributes(clients, pool, "alice"))["name"] == "A"


async def test_delete_user_removes_the_account_and_ends_its_sessions(endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    await new_user(clients, pool.pool_id, "dave")
    tokens = await sign_in(clients, pool, "dave")
    await call(clients.public, "delete_user", AccessToken=tokens["AccessToken"])

    code, _ = await refused(clients.admin, "admin_get_user", UserPoolId=pool.pool_id, Username="dave")
    assert code == "UserNotFoundException"
    code, _ = await refused(clients.public, "get_user", AccessToken=tokens["AccessToken"])
    assert code == "NotAuthorizedException"
    code, _ = await refused(
        clients.public,
        "initiate_auth",
        ClientId=pool.client_id,
        AuthFlow="REFRESH_TOKEN_AUTH",
        AuthParameters={"REFRESH_TOKEN": tokens["RefreshToken"]},
    )
    assert code == "NotAuthorizedException"
    code, _ = await refused(
        clients.public,
        "initiate_auth",
        ClientId=pool.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "dave", "PASSWORD": PASSWORD},
    )
    assert code == "NotAuthorizedException"
    # The e-mail address it held is free again.
    await new_user(clients, pool.pool_id, "dave")


async def test_delete_user_attributes_by_the_user_and_by_the_administrator(endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    await new_user(clients, pool.pool_id, "erin")
    await call(
        clients.admin,
        "admin_update_user_attributes",
        UserPoolId=pool.pool_id,
        Username="erin",
        UserAttributes=[{"Name": "custom:team", "Value": "blue"}, {"Name": "nickname", "Value": "E"}],
    )
    token = (await sign_in(clients, pool, "erin"))["AccessToken"]
    await call(clients.public, "delete_user_attributes", AccessToken=token, UserAttributeNames=["name", "email"])
    left = await admin_attributes(clients, pool, "erin")
    assert {"name", "email", "email_verified"}.isdisjoint(left)
    assert left["custom:team"] == "blue"
    # An attribute given with an empty value is deleted too (UpdateUserAttributes).
    await call(
        clients.public, "update_user_attributes", AccessToken=token, UserAttributes=[{"Name": "nickname", "Value": ""}]
    )
    assert "nickname" not in await admin_attributes(clients, pool, "erin")

    code, _ = await refused(clients.public, "delete_user_attributes", AccessToken=token, UserAttributeNames=["sub"])
    assert code == "InvalidParameterException"
    await call(
        clients.admin,
        "admin_delete_user_attributes",
        UserPoolId=pool.pool_id,
        Username="erin",
        UserAttributeNames=["custom:team"],
    )
    assert set(await admin_attributes(clients, pool, "erin")) == {"sub"}
    code, _ = await refused(
        clients.admin,
        "admin_delete_user_attributes",
        UserPoolId=pool.pool_id,
        Username="nobody",
        UserAttributeNames=["name"],
    )
    assert code == "UserNotFoundException"


async def test_admin_reset_user_password_requires_a_new_one_through_the_code(endpoint: str, mailbox: Mailbox) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    await new_user(clients, pool.pool_id, "frank")
    token = (await sign_in(clients, pool, "frank"))["AccessToken"]
    before = len(mailbox.to("frank@example.com"))
    assert await call(clients.admin, "admin_reset_user_password", UserPoolId=pool.pool_id, Username="frank") == {}

    user = await call(clients.admin, "admin_get_user", UserPoolId=pool.pool_id, Username="frank")
    assert user["UserStatus"] == "RESET_REQUIRED"
    code, _ = await refused(clients.public, "get_user", AccessToken=token)
    assert code == "NotAuthorizedException"
    code, _ = await refused(
        clients.public,
        "initiate_auth",
        ClientId=pool.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "frank", "PASSWORD": PASSWORD},
    )
    assert code == "PasswordResetRequiredException"

    mail = await mailbox.next_to("frank@example.com", after=before)
    await call(
        clients.public,
        "confirm_forgot_password",
        ClientId=pool.client_id,
        Username="frank",
        ConfirmationCode=mail.code,
        Password="Brand-New-Pass-7",
    )
    assert "AccessToken" in await sign_in(clients, pool, "frank", "Brand-New-Pass-7")

    # Without a verified e-mail address or phone number there is nowhere to send a code.
    await new_user(clients, pool.pool_id, "gina")
    await call(
        clients.admin,
        "admin_delete_user_attributes",
        UserPoolId=pool.pool_id,
        Username="gina",
        UserAttributeNames=["email"],
    )
    code, _ = await refused(clients.admin, "admin_reset_user_password", UserPoolId=pool.pool_id, Username="gina")
    assert code == "InvalidParameterException"
    assert (await call(clients.admin, "admin_get_user", UserPoolId=pool.pool_id, Username="gina"))[
        "UserStatus"
    ] == "CONFIRMED"


async def test_admin_operations_need_developer_credentials(endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    await new_user(clients, pool.pool_id, "hank")
    for operation, params in (
        ("admin_delete_user_attributes", {"UserAttributeNames": ["name"]}),
        ("admin_reset_user_password", {}),
    ):
        with pytest.raises(ClientError) as caught:
            await call(clients.public, operation, UserPoolId=pool.pool_id, Username="hank", **params)
        assert caught.value.response["Error"]["Code"] == "MissingAuthenticationTokenException", operation
    user = await call(clients.admin, "admin_get_user", UserPoolId=pool.pool_id, Username="hank")
    assert (attributes_of(user)["name"], user["UserStatus"]) == ("Hank", "CONFIRMED")


async def test_a_deleted_users_refresh_token_does_not_work_for_a_new_user_of_that_name(endpoint: str) -> None:
    clients = UserPoolClients(endpoint)
    pool = await new_pool(clients)
    await new_user(clients, pool.pool_id, "ivan")
    tokens = await sign_in(clients, pool, "ivan")
    await call(clients.public, "delete_user", AccessToken=tokens["AccessToken"])
    await new_user(clients, pool.pool_id, "ivan")
    code, _ = await refused(
        clients.public,
        "initiate_auth",
        ClientId=pool.client_id,
        AuthFlow="REFRESH_TOKEN_AUTH",
        AuthParameters={"REFRESH_TOKEN": tokens["RefreshToken"]},
    )
    assert code == "NotAuthorizedException"
