"""The password attack table: attacks on user-pool passwords run end to end through unmodified boto3 ``cognito-idp``
(and pycognito's AWSSRP for USER_SRP_AUTH) against the real server on real Redis, each asserting the exact refusal and
that the attack gained nothing (no tokens, the password unchanged, no user created, no mail sent).

Three groups: the password policy wherever a password is set; throttling (guessed passwords lock the account across
flows, guessed codes kill the code); enumeration (an unknown username answers as a known one with a wrong password or
code, and is locked out after the same number of tries). Codes reach a real SMTP server (``mailbox``). The clients
send every call once (a retried guess would be two guesses).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pycognito.aws_srp import AWSSRP  # type: ignore[import-untyped]

from syncsvc.clock import ManualClock
from tests.conftest import call
from tests.userpools_helpers import Mailbox, mailbox, overrides
from tests.userpools_signin_helpers import (
    EVERY_FLOW,
    PASSWORD,
    SIGNED_IN,
    Pool,
    UserPoolClients,
    new_user,
    refused,
    sign_in,
    sign_in_answer,
)

__all__ = ["mailbox", "overrides"]  # fixtures
INCORRECT = ("NotAuthorizedException", "Incorrect username or password.")
EXCEEDED = ("NotAuthorizedException", "Password attempts exceeded")
MISMATCH = ("CodeMismatchException", "Invalid verification code provided, please try again.")
NOT_FOUND = ("UserNotFoundException", "User does not exist.")
WRONG, NEW_PASSWORD, TEMPORARY = "Wrong-Horse-9", "Battery-Staple-7", "Temporary-Pass-1"
Attack = Callable[["Target"], Awaitable[tuple[str, str]]]
Check = Callable[["Target"], Awaitable[None]]


@dataclass(frozen=True)
class Target:
    """The attacked pool (codes by e-mail, every flow, PreventUserExistenceErrors ENABLED) and its user alice
    (CONFIRMED, ``PASSWORD``, verified alice@example.com); ``sent``: messages in the mailbox before the attack."""

    clients: UserPoolClients
    pool: Pool
    mailbox: Mailbox
    sent: int

    async def status_of(self, username: str) -> str:
        user = await call(self.clients.admin, "admin_get_user", UserPoolId=self.pool.pool_id, Username=username)
        status: str = user["UserStatus"]
        return status

    async def code_to(self, address: str) -> str:
        """The code of the latest message to ``address`` (waited for)."""
        return (await self.mailbox.next_to(address, after=max(len(self.mailbox.to(address)) - 1, 0))).code

    def wrong_code(self, address: str) -> str:
        """A code that is not the one last sent to ``address`` (any, when none was)."""
        sent = self.mailbox.to(address)
        return "123456" if not sent else f"{(int(sent[-1].code) + 1) % 1_000_000:06d}"

    def public(self, operation: str, username: str, **params: Any) -> Awaitable[dict[str, Any]]:
        return call(self.clients.public, operation, ClientId=self.pool.client_id, Username=username, **params)

    def refused(self, operation: str, username: str, **params: Any) -> Awaitable[tuple[str, str]]:
        return refused(self.clients.public, operation, ClientId=self.pool.client_id, Username=username, **params)


@pytest.fixture
def app_clock() -> ManualClock:
    """Time held still: the first lockout lasts 1 s, and a slow machine must not see it lapse between two tries."""
    return ManualClock(int(time.time() * 1000))


@pytest.fixture
async def target(endpoint: str, mailbox: Mailbox) -> Target:
    clients = UserPoolClients(endpoint)
    created = await call(clients.admin, "create_user_pool", PoolName="attacked", AutoVerifiedAttributes=["email"])
    pool_id = created["UserPool"]["Id"]
    client = await call(
        clients.admin,
        "create_user_pool_client",
        UserPoolId=pool_id,
        ClientName="app",
        ExplicitAuthFlows=EVERY_FLOW,
        PreventUserExistenceErrors="ENABLED",
    )
    await new_user(clients, pool_id, "alice")
    return Target(clients, Pool(pool_id, client["UserPoolClient"]["ClientId"]), mailbox, len(mailbox.all()))


def _email(username: str) -> list[dict[str, str]]:
    return [{"Name": "email", "Value": f"{username}@example.com"}]


def _admin(t: Target, operation: str, username: str, **params: Any) -> Awaitable[tuple[str, str]]:
    return refused(t.clients.admin, operation, UserPoolId=t.pool.pool_id, Username=username, **params)


# --- 1. the password policy, wherever a password is set ---------------------------------------------------------------


async def _change_password_weak(t: Target) -> tuple[str, str]:
    tokens = await sign_in(t.clients, t.pool, "alice")
    params = {"AccessToken": tokens["AccessToken"], "PreviousPassword": PASSWORD, "ProposedPassword": "NoSymbols99"}
    answer = await refused(t.clients.public, "change_password", **params)
    assert (await call(t.clients.public, "get_user", AccessToken=tokens["AccessToken"]))["Username"] == "alice"
    return answer


async def _confirm_forgot_weak(t: Target) -> tuple[str, str]:
    await t.public("forgot_password", "alice")
    code = await t.code_to("alice@example.com")
    return await t.refused("confirm_forgot_password", "alice", ConfirmationCode=code, Password="no-upper-case-9")


async def _bob_with_temporary(t: Target) -> dict[str, Any]:
    """USER_PASSWORD_AUTH for bob with ``TEMPORARY``."""
    auth = {"USERNAME": "bob", "PASSWORD": TEMPORARY}
    return await call(
        t.clients.public, "initiate_auth", ClientId=t.pool.client_id, AuthFlow="USER_PASSWORD_AUTH", AuthParameters=auth
    )


async def _new_password_required_weak(t: Target) -> tuple[str, str]:
    await call(
        t.clients.admin,
        "admin_create_user",
        UserPoolId=t.pool.pool_id,
        Username="bob",
        TemporaryPassword=TEMPORARY,
        MessageAction="SUPPRESS",
    )
    challenge = await _bob_with_temporary(t)
    return await refused(
        t.clients.public,
        "respond_to_auth_challenge",
        ClientId=t.pool.client_id,
        ChallengeName="NEW_PASSWORD_REQUIRED",
        Session=challenge["Session"],
        ChallengeResponses={"USERNAME": "bob", "NEW_PASSWORD": "No-Numbers-Here!"},
    )


async def _mallory_not_created(t: Target) -> None:
    assert await _admin(t, "admin_get_user", "mallory") == NOT_FOUND
    assert len(t.mailbox.all()) == t.sent


async def _alice_keeps_her_password(t: Target) -> None:
    assert await t.status_of("alice") == "CONFIRMED"
    assert await sign_in_answer(t.clients, t.pool, "password", "alice", PASSWORD) == SIGNED_IN


async def _bob_keeps_his_temporary_password(t: Target) -> None:
    assert await t.status_of("bob") == "FORCE_CHANGE_PASSWORD"
    assert (await _bob_with_temporary(t))["ChallengeName"] == "NEW_PASSWORD_REQUIRED"


POLICY_ATTACKS: list[Any] = [
    pytest.param(
        lambda t: t.refused("sign_up", "mallory", Password="Sh0rt!", UserAttributes=_email("mallory")),
        "Password not long enough",
        _mallory_not_created,
        id="sign-up",
    ),
    pytest.param(
        lambda t: _admin(
            t,
            "admin_create_user",
            "mallory",
            TemporaryPassword="NO-LOWER-CASE-9",
            DesiredDeliveryMediums=["EMAIL"],
            UserAttributes=[*_email("mallory"), {"Name": "email_verified", "Value": "true"}],
        ),
        "Password must have lowercase characters",
        _mallory_not_created,
        id="admin-create-user-temporary-password",
    ),
    pytest.param(
        lambda t: _admin(t, "admin_set_user_password", "alice", Password="no-upper-case-9", Permanent=True),
        "Password must have uppercase characters",
        _alice_keeps_her_password,
        id="admin-set-user-password-permanent",
    ),
    pytest.param(
        lambda t: _admin(t, "admin_set_user_password", "alice", Password="No-Numbers-Here!", Permanent=False),
        "Password must have numeric characters",
        _alice_keeps_her_password,
        id="admin-set-user-password-temporary",
    ),
    pytest.param(
        _change_password_weak, "Password must have symbol characters", _alice_keeps_her_password, id="change-password"
    ),
    pytest.param(
        _confirm_forgot_weak,
        "Password must have uppercase characters",
        _alice_keeps_her_password,
        id="confirm-forgot-password",
    ),
    pytest.param(
        _new_password_required_weak,
        "Password must have numeric characters",
        _bob_keeps_his_temporary_password,
        id="new-password-required",
    ),
]


@pytest.mark.parametrize(("attack", "rule", "unchanged"), POLICY_ATTACKS)
async def test_a_weak_password_is_refused_wherever_a_password_is_set(
    target: Target, attack: Attack, rule: str, unchanged: Check
) -> None:
    assert await attack(target) == ("InvalidPasswordException", f"Password did not conform with policy: {rule}")

    await unchanged(target)


# --- 2. throttling: guessing locks the account, in every flow at once; guessing a code kills it ----------------------


GUESSES: list[Any] = [
    pytest.param(["password"] * 5, "password", EXCEEDED, id="user-password-auth"),
    pytest.param(["srp"] * 5, "srp", EXCEEDED, id="user-srp-auth"),
    pytest.param(["admin"] * 5, "password", EXCEEDED, id="admin-initiate-auth"),
    pytest.param(["password", "srp", "admin", "srp", "password"], "admin", EXCEEDED, id="mixed-flows"),
    pytest.param(["password", "srp", "admin", "srp"], "srp", SIGNED_IN, id="four-guesses-do-not-lock"),
]


@pytest.mark.parametrize(("guesses", "flow", "answer"), GUESSES)
async def test_guessed_passwords_lock_the_account_across_flows(
    target: Target, guesses: list[str], flow: str, answer: tuple[str, str]
) -> None:
    for guess in guesses:
        assert await sign_in_answer(target.clients, target.pool, guess, "alice", WRONG) == INCORRECT

    assert await sign_in_answer(target.clients, target.pool, flow, "alice", PASSWORD) == answer


async def _sign_up_code(t: Target) -> str:
    await t.public("sign_up", "carol", Password=PASSWORD, UserAttributes=_email("carol"))
    return "carol@example.com"


async def _reset_code(t: Target) -> str:
    await t.public("forgot_password", "alice")
    return "alice@example.com"


async def _carol_unconfirmed(t: Target) -> None:
    assert await t.status_of("carol") == "UNCONFIRMED"


async def _alice_password_unchanged(t: Target) -> None:
    await _alice_keeps_her_password(t)
    assert await sign_in_answer(t.clients, t.pool, "password", "alice", NEW_PASSWORD) == INCORRECT


CODE_GUESSES: list[Any] = [
    pytest.param(
        _sign_up_code,
        lambda t, code: t.refused("confirm_sign_up", "carol", ConfirmationCode=code),
        _carol_unconfirmed,
        id="confirm-sign-up",
    ),
    pytest.param(
        _reset_code,
        lambda t, code: t.refused("confirm_forgot_password", "alice", ConfirmationCode=code, Password=NEW_PASSWORD),
        _alice_password_unchanged,
        id="confirm-forgot-password",
    ),
]


@pytest.mark.parametrize(("send", "redeem", "unchanged"), CODE_GUESSES)
async def test_five_wrong_codes_kill_the_code_even_for_the_right_one(
    target: Target,
    send: Callable[[Target], Awaitable[str]],
    redeem: Callable[[Target, str], Awaitable[tuple[str, str]]],
    unchanged: Check,
) -> None:
    address = await send(target)
    right, wrong = await target.code_to(address), target.wrong_code(address)

    for _ in range(5):
        assert await redeem(target, wrong) == MISMATCH
    assert await redeem(target, right) == (
        "LimitExceededException",
        "Attempt limit exceeded, please try after some time.",
    )
    assert await redeem(target, right) == (
        "ExpiredCodeException",
        "Invalid code provided, please request a code again.",
    )
    await unchanged(target)


# --- 3. enumeration: an unknown username answers as a known one ------------------------------------------------------

MASKED = re.compile(r"\w\*\*\*@\w\*\*\*")
Probe = Callable[[Target, str], Awaitable[Any]]


async def _alice(t: Target) -> str:
    return "alice"


async def _carol(t: Target) -> str:
    """carol signed up (UNCONFIRMED, a sign-up code sent to her)."""
    await t.code_to(await _sign_up_code(t))
    return "carol"


def _tries(flow: str, tries: int = 1) -> Probe:
    async def probe(t: Target, name: str) -> Any:
        return [await sign_in_answer(t.clients, t.pool, flow, name, WRONG) for _ in range(tries)]

    return probe


async def _srp_challenge(t: Target, name: str) -> Any:
    """The PASSWORD_VERIFIER challenge's shape, then the answer to a wrong password."""
    srp_a = AWSSRP(name, WRONG, t.pool.pool_id, t.pool.client_id, client=t.clients.public).get_auth_params()["SRP_A"]
    auth = {"USERNAME": name, "SRP_A": srp_a}
    challenge = await call(
        t.clients.public, "initiate_auth", ClientId=t.pool.client_id, AuthFlow="USER_SRP_AUTH", AuthParameters=auth
    )
    parameters = challenge["ChallengeParameters"]
    shape = (
        challenge["ChallengeName"],
        sorted(parameters),
        parameters["USERNAME"] == parameters["USER_ID_FOR_SRP"] == name,
        bool(re.fullmatch(r"[0-9a-f]+", parameters["SALT"] + parameters["SRP_B"])),
        bool(challenge["Session"]),
    )
    return shape, await sign_in_answer(t.clients, t.pool, "srp", name, WRONG)


def _delivery(operation: str) -> Probe:
    async def probe(t: Target, name: str) -> Any:
        details = (await t.public(operation, name))["CodeDeliveryDetails"]
        return details["DeliveryMedium"], details["AttributeName"], bool(MASKED.fullmatch(details["Destination"]))

    return probe


async def _confirm_forgot_probe(t: Target, name: str) -> Any:
    await t.public("forgot_password", name)
    code = t.wrong_code(f"{name}@example.com")
    return await t.refused("confirm_forgot_password", name, ConfirmationCode=code, Password=NEW_PASSWORD)


SRP_SHAPE = ("PASSWORD_VERIFIER", ["SALT", "SECRET_BLOCK", "SRP_B", "USERNAME", "USER_ID_FOR_SRP"], True, True, True)
LOCKED_OUT = [INCORRECT] * 5 + [EXCEEDED]
ENUMERATION: list[Any] = [
    pytest.param(_alice, _tries("password"), [INCORRECT], id="user-password-auth"),
    pytest.param(_alice, _srp_challenge, (SRP_SHAPE, INCORRECT), id="user-srp-auth"),
    pytest.param(_alice, _tries("admin"), [INCORRECT], id="admin-initiate-auth"),
    pytest.param(_alice, _delivery("forgot_password"), ("EMAIL", "email", True), id="forgot-password"),
    pytest.param(_carol, _delivery("resend_confirmation_code"), ("EMAIL", "email", True), id="resend-confirmation"),
    pytest.param(
        _carol,
        lambda t, name: t.refused("confirm_sign_up", name, ConfirmationCode=t.wrong_code(f"{name}@example.com")),
        MISMATCH,
        id="confirm-sign-up",
    ),
    pytest.param(_alice, _confirm_forgot_probe, MISMATCH, id="confirm-forgot-password"),
    pytest.param(_alice, _tries("password", 6), LOCKED_OUT, id="locked-out-password"),
    pytest.param(_alice, _tries("srp", 6), LOCKED_OUT, id="locked-out-srp"),
    pytest.param(_alice, _tries("admin", 6), LOCKED_OUT, id="locked-out-admin"),
]


@pytest.mark.parametrize(("known", "probe", "answer"), ENUMERATION)
async def test_an_unknown_username_answers_as_a_known_one(
    target: Target, known: Callable[[Target], Awaitable[str]], probe: Probe, answer: Any
) -> None:
    name = await known(target)
    assert await probe(target, name) == answer
    sent = len(target.mailbox.all())

    assert await probe(target, "nobody") == answer

    assert len(target.mailbox.all()) == sent  # nothing sent for a user that does not exist
    assert await _admin(target, "admin_get_user", "nobody") == NOT_FOUND
