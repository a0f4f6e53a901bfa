"""TOTP MFA for user pools, driven by unmodified boto3 ``cognito-idp`` with pyotp as the user's authenticator app:
setting a software token up with an access token or inside the MFA_SETUP challenge, the SOFTWARE_TOKEN_MFA challenge
on sign-in, wrong and replayed codes, the pool's MFA configuration, and the secret sealed at rest. The rules that
need time to move (clock drift, a Session's 3 minutes and 5 wrong codes) run on the sign-in use-cases under a
ManualClock, over the same Redis.

Codes for the real-time tests come from the *next* 30 s step (``totp.at(now + 30)``): whatever the step when the
server checks it, it is within the ±1 step drift and later than any code used before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pyotp
import pytest
from aiohttp.test_utils import TestServer
from pycognito import Cognito  # type: ignore[import-untyped]
from pycognito.exceptions import SoftwareTokenMFAChallengeException  # type: ignore[import-untyped]

from syncsvc.clock import ManualClock
from syncsvc.config import Settings
from syncsvc.errors import CodeMismatchError, UserPoolNotAuthorizedError
from syncsvc.runtime import Services, open_services
from syncsvc.store.connection import RedisClient
from tests.conftest import REGION, call, make_settings
from tests.userpools_signin_helpers import (
    PASSWORD,
    Pool,
    UserPoolClients,
    claims_of,
    new_pool,
    new_user,
    refused,
    sign_in,
)


@pytest.fixture
def settings(redis_url: str, port: int) -> Settings:
    """The server's public URL is its own address: tokens' ``iss`` is where pycognito finds their JWKS."""
    return make_settings(redis_url, public_url=f"http://127.0.0.1:{port}", get_id_per_second=0)


@pytest.fixture
def clients(endpoint: str) -> UserPoolClients:
    return UserPoolClients(endpoint)


async def mfa_pool(clients: UserPoolClients, configuration: str) -> Pool:
    pool = await new_pool(clients, name="mfa")
    answer = await call(
        clients.admin,
        "set_user_pool_mfa_config",
        UserPoolId=pool.pool_id,
        SoftwareTokenMfaConfiguration={"Enabled": True},
        MfaConfiguration=configuration,
    )
    assert answer == {"SoftwareTokenMfaConfiguration": {"Enabled": True}, "MfaConfiguration": configuration}
    return pool


def next_code(totp: pyotp.TOTP) -> str:
    """The authenticator's code for the next 30 s step."""
    return totp.at(time.time() + 30)


def not_a_code(totp: pyotp.TOTP) -> str:
    """Six digits that are no code of the steps around now."""
    near = {totp.at(time.time() + 30 * offset) for offset in range(-3, 4)}
    return next(candidate for candidate in ("000000", "111111", "222222", "333333") if candidate not in near)


async def start(clients: UserPoolClients, pool: Pool, username: str) -> dict[str, Any]:
    return await call(
        clients.public,
        "initiate_auth",
        ClientId=pool.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
    )


async def answer_code(clients: UserPoolClients, pool: Pool, username: str, session: str, code: str) -> dict[str, Any]:
    return await call(
        clients.public,
        "respond_to_auth_challenge",
        ClientId=pool.client_id,
        ChallengeName="SOFTWARE_TOKEN_MFA",
        Session=session,
        ChallengeResponses={"USERNAME": username, "SOFTWARE_TOKEN_MFA_CODE": code},
    )


async def set_up_totp(clients: UserPoolClients, pool: Pool, username: str) -> pyotp.TOTP:
    """Signs in (no MFA yet), associates a software token with the access token, verifies a code, turns it on."""
    access = (await sign_in(clients, pool, username))["AccessToken"]
    secret = (await call(clients.public, "associate_software_token", AccessToken=access))["SecretCode"]
    totp = pyotp.TOTP(secret)
    verified = await call(
        clients.public, "verify_software_token", AccessToken=access, UserCode=totp.now(), FriendlyDeviceName="phone"
    )
    assert verified == {"Status": "SUCCESS"}
    await call(
        clients.public,
        "set_user_mfa_preference",
        AccessToken=access,
        SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
    )
    return totp


# --- boto3, real time -------------------------------------------------------------------------------------------------


async def test_totp_set_up_with_an_access_token_then_sign_in_answers_the_challenge_with_a_code(
    clients: UserPoolClients,
) -> None:
    pool = await mfa_pool(clients, "OPTIONAL")
    await new_user(clients, pool.pool_id, "ada")
    access = (await sign_in(clients, pool, "ada"))["AccessToken"]  # OPTIONAL and nothing set up: tokens
    associated = await call(clients.public, "associate_software_token", AccessToken=access)
    assert set(associated) == {"SecretCode"}
    totp = pyotp.TOTP(associated["SecretCode"])
    assert len(associated["SecretCode"]) >= 16
    assert await call(clients.public, "verify_software_token", AccessToken=access, UserCode=totp.now()) == {
        "Status": "SUCCESS"
    }
    before = await call(clients.public, "get_user", AccessToken=access)
    assert "UserMFASettingList" not in before  # verified, not turned on yet
    await call(
        clients.public,
        "set_user_mfa_preference",
        AccessToken=access,
        SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
    )
    user = await call(clients.public, "get_user", AccessToken=access)
    assert (user["UserMFASettingList"], user["PreferredMfaSetting"]) == (["SOFTWARE_TOKEN_MFA"], "SOFTWARE_TOKEN_MFA")
    admin_view = await call(clients.admin, "admin_get_user", UserPoolId=pool.pool_id, Username="ada")
    assert (admin_view["UserMFASettingList"], admin_view["PreferredMfaSetting"]) == (
        ["SOFTWARE_TOKEN_MFA"],
        "SOFTWARE_TOKEN_MFA",
    )

    challenge = await start(clients, pool, "ada")
    assert challenge["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
    assert "AuthenticationResult" not in challenge
    assert len(challenge["Session"]) >= 20
    signed_in = await answer_code(clients, pool, "ada", challenge["Session"], next_code(totp))
    tokens = signed_in["AuthenticationResult"]
    assert claims_of(tokens["AccessToken"])["username"] == "ada"
    assert claims_of(tokens["IdToken"])["cognito:username"] == "ada"
    assert "RefreshToken" in tokens


async def test_admin_initiate_auth_and_srp_less_admin_flow_also_answer_the_mfa_challenge(
    clients: UserPoolClients,
) -> None:
    pool = await mfa_pool(clients, "OPTIONAL")
    await new_user(clients, pool.pool_id, "bob")
    totp = await set_up_totp(clients, pool, "bob")
    challenge = await call(
        clients.admin,
        "admin_initiate_auth",
        UserPoolId=pool.pool_id,
        ClientId=pool.client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "bob", "PASSWORD": PASSWORD},
    )
    assert challenge["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
    signed_in = await call(
        clients.admin,
        "admin_respond_to_auth_challenge",
        UserPoolId=pool.pool_id,
        ClientId=pool.client_id,
        ChallengeName="SOFTWARE_TOKEN_MFA",
        Session=challenge["Session"],
        ChallengeResponses={"USERNAME": "bob", "SOFTWARE_TOKEN_MFA_CODE": next_code(totp)},
    )
    assert claims_of(signed_in["AuthenticationResult"]["AccessToken"])["username"] == "bob"


async def test_pycognito_srp_sign_in_meets_the_mfa_challenge_and_answers_it(
    clients: UserPoolClients, endpoint: str
) -> None:
    pool = await mfa_pool(clients, "OPTIONAL")
    await new_user(clients, pool.pool_id, "kim")
    totp = await set_up_totp(clients, pool, "kim")
    user = Cognito(
        pool.pool_id,
        pool.client_id,
        username="kim",
        user_pool_region=REGION,
        boto3_client_kwargs={"endpoint_url": endpoint, "aws_access_key_id": "-", "aws_secret_access_key": "-"},
    )
    with pytest.raises(SoftwareTokenMFAChallengeException):
        await asyncio.to_thread(user.authenticate, password=PASSWORD)  # USER_SRP_AUTH, then the MFA challenge
    await asyncio.to_thread(user.respond_to_software_token_mfa_challenge, next_code(totp))
    assert user.id_claims["cognito:username"] == "kim"


async def test_a_wrong_code_is_refused_and_the_session_still_takes_the_right_one(clients: UserPoolClients) -> None:
    pool = await mfa_pool(clients, "OPTIONAL")
    await new_user(clients, pool.pool_id, "cy")
    totp = await set_up_totp(clients, pool, "cy")
    session = (await start(clients, pool, "cy"))["Session"]
    params = {"USERNAME": "cy", "SOFTWARE_TOKEN_MFA_CODE": not_a_code(totp)}
    assert await refused(
        clients.public,
        "respond_to_auth_challenge",
        ClientId=pool.client_id,
        ChallengeName="SOFTWARE_TOKEN_MFA",
        Session=session,
        ChallengeResponses=params,
    ) == ("CodeMismatchException", "Invalid code received for user")
    signed_in = await answer_code(clients, pool, "cy", session, next_code(totp))
    assert "AccessToken" in signed_in["AuthenticationResult"]


async def test_a_code_is_accepted_once(clients: UserPoolClients) -> None:
    pool = await mfa_pool(clients, "OPTIONAL")
    await new_user(clients, pool.pool_id, "dee")
    totp = await set_up_totp(clients, pool, "dee")
    code = next_code(totp)
    modified = await call(clients.admin, "admin_get_user", UserPoolId=pool.pool_id, Username="dee")
    first = (await start(clients, pool, "dee"))["Session"]
    assert "AuthenticationResult" in await answer_code(clients, pool, "dee", first, code)
    after = await call(clients.admin, "admin_get_user", UserPoolId=pool.pool_id, Username="dee")
    assert after["UserLastModifiedDate"] == modified["UserLastModifiedDate"]  # a spent code is no change of the user
    second = (await start(clients, pool, "dee"))["Session"]
    replayed = await refused(
        clients.public,
        "respond_to_auth_challenge",
        ClientId=pool.client_id,
        ChallengeName="SOFTWARE_TOKEN_MFA",
        Session=second,
        ChallengeResponses={"USERNAME": "dee", "SOFTWARE_TOKEN_MFA_CODE": code},
    )
    assert replayed == ("CodeMismatchException", "Invalid code received for user")


async def test_mfa_on_makes_a_user_without_totp_set_it_up_inside_the_sign_in(clients: UserPoolClients) -> None:
    pool = await mfa_pool(clients, "ON")
    await new_user(clients, pool.pool_id, "eve")
    challenge = await start(clients, pool, "eve")
    assert challenge["ChallengeName"] == "MFA_SETUP"
    assert challenge["ChallengeParameters"]["MFAS_CAN_SETUP"] == '["SOFTWARE_TOKEN_MFA"]'
    associated = await call(clients.public, "associate_software_token", Session=challenge["Session"])
    totp = pyotp.TOTP(associated["SecretCode"])
    verified = await call(clients.public, "verify_software_token", Session=associated["Session"], UserCode=totp.now())
    assert verified["Status"] == "SUCCESS"
    signed_in = await call(
        clients.public,
        "respond_to_auth_challenge",
        ClientId=pool.client_id,
        ChallengeName="MFA_SETUP",
        Session=verified["Session"],
        ChallengeResponses={"USERNAME": "eve"},
    )
    access = signed_in["AuthenticationResult"]["AccessToken"]
    assert (await call(clients.public, "get_user", AccessToken=access))["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    again = await start(clients, pool, "eve")  # from now on: the code
    assert again["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
    assert "AuthenticationResult" in await answer_code(clients, pool, "eve", again["Session"], next_code(totp))


async def test_mfa_setup_session_refuses_a_wrong_first_code_and_answering_before_set_up(
    clients: UserPoolClients,
) -> None:
    pool = await mfa_pool(clients, "ON")
    await new_user(clients, pool.pool_id, "fay")
    session = (await start(clients, pool, "fay"))["Session"]
    early = await refused(
        clients.public,
        "respond_to_auth_challenge",
        ClientId=pool.client_id,
        ChallengeName="MFA_SETUP",
        Session=session,
        ChallengeResponses={"USERNAME": "fay"},
    )
    assert early[0] == "InvalidParameterException"
    associated = await call(clients.public, "associate_software_token", Session=session)
    totp = pyotp.TOTP(associated["SecretCode"])
    wrong = await refused(
        clients.public, "verify_software_token", Session=associated["Session"], UserCode=not_a_code(totp)
    )
    assert wrong[0] == "EnableSoftwareTokenMFAException"
    verified = await call(clients.public, "verify_software_token", Session=associated["Session"], UserCode=totp.now())
    assert verified["Status"] == "SUCCESS"


async def test_pool_mfa_config_and_admin_preference(clients: UserPoolClients) -> None:
    pool = await new_pool(clients, name="mfaconfig")
    got = await call(clients.admin, "get_user_pool_mfa_config", UserPoolId=pool.pool_id)
    assert got == {"SoftwareTokenMfaConfiguration": {"Enabled": False}, "MfaConfiguration": "OFF"}
    await call(
        clients.admin,
        "set_user_pool_mfa_config",
        UserPoolId=pool.pool_id,
        SoftwareTokenMfaConfiguration={"Enabled": True},
        MfaConfiguration="OPTIONAL",
    )
    described = await call(clients.admin, "describe_user_pool", UserPoolId=pool.pool_id)
    assert described["UserPool"]["MfaConfiguration"] == "OPTIONAL"
    assert described["UserPool"]["Name"] == "mfaconfig"
    await new_user(clients, pool.pool_id, "gus")
    not_set_up = await refused(
        clients.admin,
        "admin_set_user_mfa_preference",
        UserPoolId=pool.pool_id,
        Username="gus",
        SoftwareTokenMfaSettings={"Enabled": True},
    )
    assert not_set_up == ("InvalidParameterException", "User has not verified software token mfa")
    await set_up_totp(clients, pool, "gus")
    await call(
        clients.admin,
        "admin_set_user_mfa_preference",
        UserPoolId=pool.pool_id,
        Username="gus",
        SoftwareTokenMfaSettings={"Enabled": False},
    )
    user = await call(clients.admin, "admin_get_user", UserPoolId=pool.pool_id, Username="gus")
    assert "UserMFASettingList" not in user
    assert "AuthenticationResult" in await start(clients, pool, "gus")  # turned off: no challenge in OPTIONAL
    refused_off = await refused(
        clients.admin,
        "set_user_pool_mfa_config",
        UserPoolId=pool.pool_id,
        SoftwareTokenMfaConfiguration={"Enabled": False},
        MfaConfiguration="ON",
    )
    assert refused_off[0] == "InvalidParameterException"


async def everything_in_redis(client: RedisClient) -> bytes:
    """Every byte Redis holds, key by key (strings, hashes, sets, sorted sets)."""
    parts: list[Any] = []
    async for key in client.scan_iter(count=1000):
        kind = await client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "string":
            parts.append(await client.get(key))
        elif kind == "hash":
            parts += [item for pair in (await client.hgetall(key)).items() for item in pair]
        elif kind == "set":
            parts += list(await client.smembers(key))
        elif kind == "zset":
            parts += list(await client.zrange(key, 0, -1))
    return b"\n".join(part if isinstance(part, bytes) else str(part).encode() for part in parts)


async def test_the_totp_secret_is_not_in_redis_in_plaintext(
    clients: UserPoolClients, redis_client: RedisClient
) -> None:
    pool = await mfa_pool(clients, "OPTIONAL")
    await new_user(clients, pool.pool_id, "hal")
    totp = await set_up_totp(clients, pool, "hal")
    dump = await everything_in_redis(redis_client)
    secret = totp.secret
    assert b"mfa" in dump  # the user record is in the dump at all
    assert secret.encode() not in dump
    assert secret.lower().encode() not in dump
    assert totp.byte_secret() not in dump
    assert totp.byte_secret().hex().encode() not in dump


# --- the use-cases under a ManualClock --------------------------------------------------------------------------------


@pytest.fixture
async def services(server: TestServer, settings: Settings) -> AsyncIterator[tuple[Services, ManualClock]]:
    """Services on the test server's Redis whose clock moves only when told: at a 30 s step's start + 1 s."""
    now_ms = int(time.time()) // 30 * 30 * 1000 + 1000
    clock = ManualClock(now_ms)
    async with open_services(settings, clock=clock) as opened:
        yield opened, clock


def code_at(totp: pyotp.TOTP, clock: ManualClock, *, steps: int = 0) -> str:
    return totp.at(clock.now_ms() / 1000 + 30 * steps)


async def challenged(services: Services, pool: Pool, username: str) -> str:
    result = await services.signin.initiate(
        pool.client_id, "USER_PASSWORD_AUTH", {"USERNAME": username, "PASSWORD": PASSWORD}
    )
    assert result.challenge == "SOFTWARE_TOKEN_MFA"
    assert result.session is not None
    return result.session


async def test_codes_one_step_off_pass_two_steps_off_do_not(
    clients: UserPoolClients, services: tuple[Services, ManualClock]
) -> None:
    opened, clock = services
    pool = await mfa_pool(clients, "OPTIONAL")
    await new_user(clients, pool.pool_id, "ida")
    totp = await set_up_totp(clients, pool, "ida")  # real time: its code's step is <= now
    # Two steps past the step of now (the set-up's, or a later one if real time crossed a step boundary since the
    # fixture read it), 1 s in: one step back is still later than the step the set-up used.
    clock.set((int(time.time()) // 30 + 2) * 30_000 + 1000)
    for steps in (2, -2):
        session = await challenged(opened, pool, "ida")
        with pytest.raises(CodeMismatchError):
            await opened.signin.respond(
                pool.client_id,
                "SOFTWARE_TOKEN_MFA",
                session,
                {"USERNAME": "ida", "SOFTWARE_TOKEN_MFA_CODE": code_at(totp, clock, steps=steps)},
            )
    for steps in (-1, 0, 1):  # each once, in order: each a later step than the one before
        session = await challenged(opened, pool, "ida")
        result = await opened.signin.respond(
            pool.client_id,
            "SOFTWARE_TOKEN_MFA",
            session,
            {"USERNAME": "ida", "SOFTWARE_TOKEN_MFA_CODE": code_at(totp, clock, steps=steps)},
        )
        assert result.tokens is not None


async def test_a_session_dies_after_five_wrong_codes_and_after_three_minutes(
    clients: UserPoolClients, services: tuple[Services, ManualClock]
) -> None:
    opened, clock = services
    pool = await mfa_pool(clients, "OPTIONAL")
    await new_user(clients, pool.pool_id, "jo")
    totp = await set_up_totp(clients, pool, "jo")
    clock.advance(60_000)
    wrong = {"USERNAME": "jo", "SOFTWARE_TOKEN_MFA_CODE": not_a_code(totp)}
    right = {"USERNAME": "jo", "SOFTWARE_TOKEN_MFA_CODE": code_at(totp, clock)}
    session = await challenged(opened, pool, "jo")
    for _ in range(5):
        with pytest.raises(CodeMismatchError):
            await opened.signin.respond(pool.client_id, "SOFTWARE_TOKEN_MFA", session, wrong)
    with pytest.raises(UserPoolNotAuthorizedError, match="session is expired"):
        await opened.signin.respond(pool.client_id, "SOFTWARE_TOKEN_MFA", session, right)

    await opened.userpools.clear_failed_sign_ins(pool.pool_id, "jo")  # the five wrong codes locked the user out
    session = await challenged(opened, pool, "jo")
    clock.advance(181_000)
    with pytest.raises(UserPoolNotAuthorizedError, match="session is expired"):
        await opened.signin.respond(
            pool.client_id, "SOFTWARE_TOKEN_MFA", session, {**right, "SOFTWARE_TOKEN_MFA_CODE": code_at(totp, clock)}
        )
