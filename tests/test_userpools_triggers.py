"""User-pool triggers end to end: Python triggers registered in the server's registry, named by a pool's LambdaConfig
(Lambda ARNs or plain names), driven with unmodified boto3 ``cognito-idp`` over HTTP against a real server, Redis
and SMTP server: PreSignUp (refuse, auto-confirm, auto-verify), PostConfirmation (runs after the confirmation, whose
failure leaves it standing), PreTokenGeneration (claims added, overridden, suppressed; reserved claims untouched;
groups overridden) and PreAuthentication (through ``UserPoolTokens.hooks``, the entry sign-in calls)."""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from botocore.exceptions import ClientError
from redis.asyncio import Redis

from syncsvc.api.app import create_app
from syncsvc.api.messages import SERVICES
from syncsvc.config import Settings
from syncsvc.errors import UserLambdaValidationError
from syncsvc.triggers import LambdaContext, Rejected, TriggerRegistry
from tests.conftest import REGION, free_port
from tests.userpools_helpers import Idp, Mailbox, idp, mailbox, overrides

__all__ = ["idp", "mailbox", "overrides"]  # fixtures
PASSWORD = "Correct-Horse-9"
#: Every event a trigger under test was given, in call order (handlers run in the triggers' threads).
EVENTS: list[dict[str, Any]] = []
_LOCK = threading.Lock()
#: Set when a test ends: a handler still blocked past its timeout returns, so its thread ends.
RELEASE = threading.Event()


def _seen(event: dict[str, Any]) -> None:
    with _LOCK:
        EVENTS.append(copy.deepcopy(event))


def arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:123456789012:function:{name}"


# --- the triggers under test ------------------------------------------------------------------------------------------


def record(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _seen(event)
    return event


def deny_domain(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _seen(event)
    if event["request"]["userAttributes"].get("email", "").endswith("@blocked.test"):
        raise Rejected("blocked.test may not sign up")
    return event


def raise_value_error(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _seen(event)
    raise ValueError("no sign-ups on Sundays")


def auto_confirm(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The Cognito documentation's example: confirm and verify everyone."""
    _seen(event)
    event["response"]["autoConfirmUser"] = True
    event["response"]["autoVerifyEmail"] = "email" in event["request"]["userAttributes"]
    return event


async def failing_post_confirmation(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _seen(event)
    raise RuntimeError("welcome e-mail service is down")


def customise_tokens(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _seen(event)
    event["response"]["claimsOverrideDetails"] = {
        "claimsToAddOrOverride": {
            "tenant": "acme",
            "name": "Overridden Name",
            "sub": "forged-sub",
            "iss": "https://evil.example",
            "aud": "other-client",
            "token_use": "access",
            "cognito:username": "admin",
        },
        "claimsToSuppress": ["email", "exp", "auth_time"],
        "groupOverrideDetails": {
            "groupsToOverride": ["readers", "writers"],
            "iamRolesToOverride": ["arn:aws:iam::123456789012:role/reader"],
            "preferredRole": "arn:aws:iam::123456789012:role/reader",
        },
    }
    return event


def blocking(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _seen(event)
    RELEASE.wait(10)
    return event


def answer_nothing(event: dict[str, Any], context: LambdaContext) -> None:
    _seen(event)


def registry() -> TriggerRegistry:
    triggers = TriggerRegistry()
    triggers.register("record", record)
    triggers.register("deny-domain", deny_domain)
    triggers.register("raise-value-error", raise_value_error)
    triggers.register("sunday-rule-plain-name", raise_value_error)  # named as is in LambdaConfig, not by an ARN
    triggers.register("auto-confirm", auto_confirm)
    triggers.register("failing-post-confirmation", failing_post_confirmation)
    triggers.register("customise-tokens", customise_tokens)
    triggers.register("blocking", blocking, timeout_seconds=0.5)
    triggers.register("answer-nothing", answer_nothing)
    return triggers


# --- fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def events() -> Iterator[list[dict[str, Any]]]:
    with _LOCK:
        EVENTS.clear()
    RELEASE.clear()
    yield EVENTS
    RELEASE.set()


@pytest.fixture
async def server(settings: Settings, redis_client: Redis) -> AsyncIterator[TestServer]:
    test_server = TestServer(create_app(settings, triggers=registry()), host="127.0.0.1", port=free_port())
    await test_server.start_server()
    yield test_server
    await test_server.close()


def of_source(events: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    with _LOCK:
        return [event for event in events if event["triggerSource"] == source]


def claims(token: str) -> dict[str, Any]:
    """A JWT's payload (its signature is checked by the sign-in tests; here only what the trigger changed)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


async def error_of(idp: Idp, client: Any, operation: str, **params: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        await idp(client, operation, **params)
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def email() -> str:
    return f"u{uuid.uuid4().hex[:10]}@example.test"


# --- PreSignUp --------------------------------------------------------------------------------------------------------


async def test_pre_sign_up_gets_cognitos_event_and_its_refusal_stores_nothing(
    idp: Idp, events: list[dict[str, Any]]
) -> None:
    pool_id = await idp.new_pool(LambdaConfig={"PreSignUp": arn("deny-domain")})
    client_id = (await idp.new_client(pool_id))["ClientId"]
    code, message = await error_of(
        idp,
        idp.public,
        "sign_up",
        ClientId=client_id,
        Username="eve@blocked.test",
        Password=PASSWORD,
        UserAttributes=[{"Name": "name", "Value": "Eve"}],
        ValidationData=[{"Name": "captcha", "Value": "ok"}],
        ClientMetadata={"campaign": "spring"},
    )
    assert (code, message) == (
        "UserLambdaValidationException",
        "PreSignUp failed with error blocked.test may not sign up.",
    )
    (event,) = of_source(events, "PreSignUp_SignUp")
    assert event["version"] == "1"
    assert (event["region"], event["userPoolId"], event["userName"]) == (REGION, pool_id, "eve@blocked.test")
    assert event["callerContext"]["clientId"] == client_id
    assert event["callerContext"]["awsSdkVersion"]
    assert event["request"] == {
        "userAttributes": {"name": "Eve", "email": "eve@blocked.test"},
        "validationData": {"captcha": "ok"},
        "clientMetadata": {"campaign": "spring"},
    }
    assert event["response"] == {"autoConfirmUser": False, "autoVerifyEmail": False, "autoVerifyPhone": False}
    listed = await idp(idp.admin, "list_users", UserPoolId=pool_id)
    assert listed["Users"] == []

    allowed = email()
    answer = await idp(idp.public, "sign_up", ClientId=client_id, Username=allowed, Password=PASSWORD)
    assert answer["UserConfirmed"] is False
    assert "CodeDeliveryDetails" in answer


async def test_any_exception_of_the_trigger_is_a_user_lambda_validation_error_with_its_message(
    idp: Idp, events: list[dict[str, Any]]
) -> None:
    pool_id = await idp.new_pool(LambdaConfig={"PreSignUp": "sunday-rule-plain-name"})
    client_id = (await idp.new_client(pool_id))["ClientId"]
    code, message = await error_of(idp, idp.public, "sign_up", ClientId=client_id, Username=email(), Password=PASSWORD)
    assert (code, message) == ("UserLambdaValidationException", "PreSignUp failed with error no sign-ups on Sundays.")
    code, _ = await error_of(
        idp,
        idp.admin,
        "admin_create_user",
        UserPoolId=pool_id,
        Username=email(),
        MessageAction="SUPPRESS",
        ClientMetadata={"by": "ops"},
    )
    assert code == "UserLambdaValidationException"
    (admin_event,) = of_source(events, "PreSignUp_AdminCreateUser")
    assert admin_event["callerContext"]["clientId"] == "CLIENT_ID_NOT_APPLICABLE"
    assert admin_event["request"]["clientMetadata"] == {"by": "ops"}
    assert (await idp(idp.admin, "list_users", UserPoolId=pool_id))["Users"] == []


async def test_auto_confirmed_sign_up_sends_no_code_runs_post_confirmation_and_signs_in(
    idp: Idp, mailbox: Mailbox, events: list[dict[str, Any]]
) -> None:
    pool_id = await idp.new_pool(LambdaConfig={"PreSignUp": arn("auto-confirm"), "PostConfirmation": arn("record")})
    client_id = (await idp.new_client(pool_id))["ClientId"]
    address = email()
    answer = await idp(idp.public, "sign_up", ClientId=client_id, Username=address, Password=PASSWORD)
    assert answer["UserConfirmed"] is True
    assert "CodeDeliveryDetails" not in answer
    user = await idp(idp.admin, "admin_get_user", UserPoolId=pool_id, Username=address)
    assert user["UserStatus"] == "CONFIRMED"
    assert {"Name": "email_verified", "Value": "true"} in user["UserAttributes"]
    (post,) = of_source(events, "PostConfirmation_ConfirmSignUp")
    assert post["request"]["userAttributes"]["email"] == address
    assert post["request"]["userAttributes"]["cognito:user_status"] == "CONFIRMED"
    assert post["request"]["userAttributes"]["sub"] == answer["UserSub"]
    signed_in = await idp(
        idp.public,
        "initiate_auth",
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": address, "PASSWORD": PASSWORD},
    )
    assert claims(signed_in["AuthenticationResult"]["IdToken"])["email_verified"] is True
    assert mailbox.to(address) == []


# --- PostConfirmation -------------------------------------------------------------------------------------------------


async def test_a_failing_post_confirmation_is_reported_but_the_confirmation_stands(
    idp: Idp, mailbox: Mailbox, events: list[dict[str, Any]]
) -> None:
    pool_id = await idp.new_pool(LambdaConfig={"PostConfirmation": arn("failing-post-confirmation")})
    client_id = (await idp.new_client(pool_id))["ClientId"]
    address = email()
    await idp(idp.public, "sign_up", ClientId=client_id, Username=address, Password=PASSWORD)
    mail = await mailbox.next_to(address)
    code, message = await error_of(
        idp,
        idp.public,
        "confirm_sign_up",
        ClientId=client_id,
        Username=address,
        ConfirmationCode=mail.code,
        ClientMetadata={"source": "web"},
    )
    assert (code, message) == (
        "UserLambdaValidationException",
        "PostConfirmation failed with error welcome e-mail service is down.",
    )
    user = await idp(idp.admin, "admin_get_user", UserPoolId=pool_id, Username=address)
    assert user["UserStatus"] == "CONFIRMED"
    (event,) = of_source(events, "PostConfirmation_ConfirmSignUp")
    assert event["request"]["clientMetadata"] == {"source": "web"}
    assert event["callerContext"]["clientId"] == client_id

    await idp(idp.public, "forgot_password", ClientId=client_id, Username=address)
    reset = await mailbox.next_to(address, after=1)
    code, _ = await error_of(
        idp,
        idp.public,
        "confirm_forgot_password",
        ClientId=client_id,
        Username=address,
        ConfirmationCode=reset.code,
        Password="Another-Horse-7",
    )
    assert code == "UserLambdaValidationException"
    assert len(of_source(events, "PostConfirmation_ConfirmForgotPassword")) == 1

    other = email()
    await idp(idp.public, "sign_up", ClientId=client_id, Username=other, Password=PASSWORD)
    code, _ = await error_of(idp, idp.admin, "admin_confirm_sign_up", UserPoolId=pool_id, Username=other)
    assert code == "UserLambdaValidationException"
    assert (await idp(idp.admin, "admin_get_user", UserPoolId=pool_id, Username=other))["UserStatus"] == "CONFIRMED"
    admin_event = of_source(events, "PostConfirmation_ConfirmSignUp")[-1]
    assert admin_event["callerContext"]["clientId"] == "CLIENT_ID_NOT_APPLICABLE"
    signed_in = await idp(
        idp.public,
        "initiate_auth",
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": address, "PASSWORD": "Another-Horse-7"},
    )
    assert "AuthenticationResult" in signed_in


# --- PreTokenGeneration -----------------------------------------------------------------------------------------------


async def test_pre_token_generation_changes_id_token_claims_and_groups_but_never_reserved_claims(
    idp: Idp, mailbox: Mailbox, events: list[dict[str, Any]]
) -> None:
    pool_id = await idp.new_pool(LambdaConfig={"PreTokenGeneration": arn("customise-tokens")})
    client_id = (await idp.new_client(pool_id))["ClientId"]
    address = email()
    sub = await idp.confirmed_user(mailbox, client_id, address, PASSWORD, name="Ada")
    await idp(idp.admin, "create_group", UserPoolId=pool_id, GroupName="staff")
    await idp(idp.admin, "admin_add_user_to_group", UserPoolId=pool_id, Username=address, GroupName="staff")
    before = time.time()
    signed_in = await idp(
        idp.public,
        "initiate_auth",
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": address, "PASSWORD": PASSWORD},
    )
    result = signed_in["AuthenticationResult"]
    id_claims, access_claims = claims(result["IdToken"]), claims(result["AccessToken"])
    assert id_claims["tenant"] == "acme"
    assert id_claims["name"] == "Overridden Name"
    assert "email" not in id_claims
    assert id_claims["sub"] == sub
    assert id_claims["aud"] == client_id
    assert id_claims["token_use"] == "id"
    assert id_claims["iss"].endswith(f"/{pool_id}")
    assert id_claims["cognito:username"] == sub
    assert id_claims["exp"] > before
    assert id_claims["auth_time"] >= int(before) - 1
    assert id_claims["cognito:groups"] == ["readers", "writers"]
    assert access_claims["cognito:groups"] == ["readers", "writers"]
    assert id_claims["cognito:roles"] == ["arn:aws:iam::123456789012:role/reader"]
    assert id_claims["cognito:preferred_role"] == "arn:aws:iam::123456789012:role/reader"
    assert "tenant" not in access_claims
    assert access_claims["token_use"] == "access"
    (event,) = of_source(events, "TokenGeneration_Authentication")
    assert event["request"]["groupConfiguration"]["groupsToOverride"] == ["staff"]
    assert event["request"]["userAttributes"]["email"] == address
    assert event["callerContext"]["clientId"] == client_id

    # The tokens still open what they should: GetUser with the access token.
    user = await idp(idp.public, "get_user", AccessToken=result["AccessToken"])
    assert user["Username"] == sub

    refreshed = await idp(
        idp.public,
        "initiate_auth",
        ClientId=client_id,
        AuthFlow="REFRESH_TOKEN_AUTH",
        AuthParameters={"REFRESH_TOKEN": result["RefreshToken"]},
    )
    assert claims(refreshed["AuthenticationResult"]["IdToken"])["tenant"] == "acme"
    assert len(of_source(events, "TokenGeneration_RefreshTokens")) == 1


# --- failures of the call itself --------------------------------------------------------------------------------------


async def test_a_trigger_past_its_timeout_fails_the_sign_up_without_storing_it(
    idp: Idp, events: list[dict[str, Any]]
) -> None:
    pool_id = await idp.new_pool(LambdaConfig={"PreSignUp": arn("blocking")})
    client_id = (await idp.new_client(pool_id))["ClientId"]
    started = time.monotonic()
    code, _ = await error_of(idp, idp.public, "sign_up", ClientId=client_id, Username=email(), Password=PASSWORD)
    assert code == "UnexpectedLambdaException"
    assert time.monotonic() - started < 5
    assert (await idp(idp.admin, "list_users", UserPoolId=pool_id))["Users"] == []


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [("not-registered-anywhere", "UnexpectedLambdaException"), ("answer-nothing", "InvalidLambdaResponseException")],
)
async def test_an_unregistered_trigger_or_an_answer_without_response_fails_the_sign_up(
    idp: Idp, trigger: str, expected: str
) -> None:
    pool_id = await idp.new_pool(LambdaConfig={"PreSignUp": arn(trigger)})
    client_id = (await idp.new_client(pool_id))["ClientId"]
    code, _ = await error_of(idp, idp.public, "sign_up", ClientId=client_id, Username=email(), Password=PASSWORD)
    assert code == expected
    assert (await idp(idp.admin, "list_users", UserPoolId=pool_id))["Users"] == []


# --- PreAuthentication (the hook sign-in calls) -----------------------------------------------------------------------


async def test_pre_authentication_refuses_with_the_triggers_message_and_hides_unknown_users_as_the_client_does(
    idp: Idp, mailbox: Mailbox, server: TestServer, events: list[dict[str, Any]]
) -> None:
    pool_id = await idp.new_pool(LambdaConfig={"PreAuthentication": arn("raise-value-error")})
    hiding = await idp.new_client(pool_id)
    legacy = await idp.new_client(pool_id, ClientName="legacy", PreventUserExistenceErrors="LEGACY")
    address = email()
    await idp.confirmed_user(mailbox, hiding["ClientId"], address, PASSWORD)
    services = server.app[SERVICES]
    pool = await services.userpools.pool(pool_id)
    hooks = services.userpool_tokens.hooks
    client = await services.userpools.client(pool_id, hiding["ClientId"])

    with pytest.raises(UserLambdaValidationError) as refused:
        await hooks.pre_authentication(pool, client, address, client_metadata={"device": "kiosk"})
    assert refused.value.message == "PreAuthentication failed with error no sign-ups on Sundays."
    (event,) = of_source(events, "PreAuthentication_Authentication")
    assert event["request"]["userNotFound"] is False
    assert event["request"]["userAttributes"]["email"] == address
    assert event["request"]["validationData"] == {"device": "kiosk"}
    assert event["userName"] != address  # the stored username (the sub), as Cognito sends it

    with pytest.raises(UserLambdaValidationError):
        await hooks.pre_authentication(pool, client, "nobody@example.test")
    unknown = of_source(events, "PreAuthentication_Authentication")[-1]
    assert unknown["request"]["userNotFound"] is True
    assert unknown["request"]["userAttributes"] == {}

    legacy_client = await services.userpools.client(pool_id, legacy["ClientId"])
    await hooks.pre_authentication(pool, legacy_client, "nobody@example.test")  # not called: the sign-in says so
    assert len(of_source(events, "PreAuthentication_Authentication")) == 2


async def test_a_sign_in_the_pre_authentication_trigger_refuses_gets_no_tokens(idp: Idp, mailbox: Mailbox) -> None:
    pool_id = await idp.new_pool(LambdaConfig={"PreAuthentication": arn("raise-value-error")})
    client_id = (await idp.new_client(pool_id))["ClientId"]
    address = email()
    await idp.confirmed_user(mailbox, client_id, address, PASSWORD)

    code, message = await error_of(
        idp,
        idp.public,
        "initiate_auth",
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": address, "PASSWORD": PASSWORD},
    )

    assert (code, message) == (
        "UserLambdaValidationException",
        "PreAuthentication failed with error no sign-ups on Sundays.",
    )
