"""User-pool triggers: a pool's ``LambdaConfig`` names Python triggers of the server's registry, called with
Cognito's event shapes (no HTTP, no Redis: the callers store what the answers decide).

A ``LambdaConfig`` value is a registered trigger's name or a Lambda ARN ``arn:aws:lambda:…:function:<name>``
standing for ``<name>`` (as SetCognitoEvents resolves them). The triggers acted on, each with its ``triggerSource``:

* **PreSignUp** (``PreSignUp_SignUp``, ``PreSignUp_AdminCreateUser``): before the user is stored. Raising refuses the
  sign-up (nothing stored); ``response.autoConfirmUser`` / ``autoVerifyEmail`` / ``autoVerifyPhone`` confirm the user
  and mark the e-mail/phone verified (no code is sent for what is confirmed).
* **PostConfirmation** (``PostConfirmation_ConfirmSignUp``, ``PostConfirmation_ConfirmForgotPassword``): after the
  confirmation is stored; a failure is reported but the confirmation stands, as in Cognito.
* **PreAuthentication** (``PreAuthentication_Authentication``): before a password or SRP sign-in is checked; raising
  refuses it. For an unknown user it runs (``request.userNotFound`` true) only when the app client hides user
  existence, as Cognito does.
* **PreTokenGeneration** (``TokenGeneration_Authentication``, ``TokenGeneration_RefreshTokens``, …): version 1 event;
  ``response.claimsOverrideDetails`` adds/overrides/suppresses ID-token claims and may override the groups
  (``cognito:groups`` in both tokens, ``cognito:roles`` and ``cognito:preferred_role`` in the ID token). Claims that
  make the token what it is (:data:`RESERVED_CLAIMS`) are never changed: such entries are ignored and logged.

Every call goes through :class:`~syncsvc.triggers.runner.TriggerRunner` (the trigger's timeout, 5 s by default as
Cognito's, a blocking handler in its own threads or processes). Errors, as Cognito names them: the handler raised
(``Rejected`` or any exception) → UserLambdaValidationException ``<Trigger> failed with error <message>.``; an answer
without a usable ``response`` → InvalidLambdaResponseException; not registered, timed out or throttled →
UnexpectedLambdaException.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from syncsvc.errors import (
    InvalidLambdaFunctionOutputError,
    InvalidLambdaResponseError,
    LambdaThrottledError,
    UnexpectedLambdaError,
    UserLambdaValidationError,
)
from syncsvc.triggers.failures import TriggerFailure, TriggerOutputError, TriggerRaised, TriggerTimeout
from syncsvc.triggers.registry import resolve_arn
from syncsvc.triggers.runner import TriggerRunner
from syncsvc.userpools.directory import UserDirectory
from syncsvc.userpools.model import AppClient, User, UserPool

log = logging.getLogger("syncsvc.triggers")

TriggerKind = Literal["PreSignUp", "PostConfirmation", "PreAuthentication", "PreTokenGeneration"]
#: ``callerContext.clientId`` of calls made without an app client (AdminCreateUser, AdminConfirmSignUp), as Cognito.
NO_CLIENT = "CLIENT_ID_NOT_APPLICABLE"
SDK_VERSION = "syncsvc"
#: ID-token claims a PreTokenGeneration answer may not add, override or suppress.
RESERVED_CLAIMS = frozenset(
    {
        "acr",
        "amr",
        "at_hash",
        "aud",
        "auth_time",
        "azp",
        "c_hash",
        "client_id",
        "cognito:username",
        "event_id",
        "exp",
        "iat",
        "identities",
        "iss",
        "jti",
        "nbf",
        "nonce",
        "origin_jti",
        "scope",
        "sub",
        "token_use",
        "username",
    }
)
_MAX_MESSAGE = 1024


@dataclass(frozen=True, slots=True)
class SignUpDecision:
    """What a PreSignUp answer decided (nothing, when the pool has no PreSignUp trigger)."""

    auto_confirm: bool = False
    auto_verify_email: bool = False
    auto_verify_phone: bool = False

    def verified(self, attributes: Mapping[str, str]) -> dict[str, str]:
        """``attributes`` with ``email_verified`` / ``phone_number_verified`` set where the answer verified them."""
        out = dict(attributes)
        for flag, attribute in ((self.auto_verify_email, "email"), (self.auto_verify_phone, "phone_number")):
            if flag and out.get(attribute):
                out[f"{attribute}_verified"] = "true"
        return out


@dataclass(frozen=True, slots=True)
class ClaimsOverride:
    """What a PreTokenGeneration answer asks for. ``groups`` None keeps the user's groups."""

    add: dict[str, str] = field(default_factory=dict)
    suppress: frozenset[str] = frozenset()
    groups: list[str] | None = None
    roles: list[str] | None = None
    preferred_role: str | None = None

    def apply(self, claims: dict[str, Any]) -> dict[str, Any]:
        """ID-token ``claims`` with the additions, suppressions, roles and preferred role (groups: see ``groups``)."""
        out = {name: value for name, value in claims.items() if name not in self.suppress}
        out.update(self.add)
        if self.roles:
            out["cognito:roles"] = list(self.roles)
        if self.preferred_role:
            out["cognito:preferred_role"] = self.preferred_role
        return out


NO_OVERRIDE = ClaimsOverride()


class UserPoolHooks:
    """Calls the triggers a pool's LambdaConfig names. ``runner`` None: no triggers at all (every hook a no-op)."""

    def __init__(self, runner: TriggerRunner | None, directory: UserDirectory) -> None:
        self._runner = runner
        self._directory = directory

    def trigger(self, pool: UserPool, kind: TriggerKind) -> str | None:
        """The registered trigger name the pool's LambdaConfig gives for ``kind``; None when it names none."""
        value = (pool.LambdaConfig or {}).get(kind)
        if self._runner is None or not isinstance(value, str) or not value:
            return None
        return resolve_arn(value)

    # --- the four triggers ------------------------------------------------------------------------------------------

    async def pre_sign_up(
        self,
        pool: UserPool,
        client_id: str | None,
        username: str,
        attributes: Mapping[str, str],
        *,
        validation_data: Mapping[str, str] | None = None,
        client_metadata: Mapping[str, str] | None = None,
        admin: bool = False,
    ) -> SignUpDecision:
        """PreSignUp before a user is stored (``admin``: AdminCreateUser). UserLambdaValidationException refuses."""
        name = self.trigger(pool, "PreSignUp")
        if name is None:
            return SignUpDecision()
        request = {
            "userAttributes": dict(attributes),
            "validationData": dict(validation_data or {}),
            "clientMetadata": dict(client_metadata or {}),
        }
        response = {"autoConfirmUser": False, "autoVerifyEmail": False, "autoVerifyPhone": False}
        source = "PreSignUp_AdminCreateUser" if admin else "PreSignUp_SignUp"
        answer = await self._call(name, "PreSignUp", pool, client_id, username, source, request, response)
        return SignUpDecision(
            auto_confirm=_flag(name, answer, "autoConfirmUser"),
            auto_verify_email=_flag(name, answer, "autoVerifyEmail"),
            auto_verify_phone=_flag(name, answer, "autoVerifyPhone"),
        )

    async def post_confirmation(
        self,
        pool: UserPool,
        client_id: str | None,
        user: User,
        *,
        client_metadata: Mapping[str, str] | None = None,
        forgot_password: bool = False,
    ) -> None:
        """PostConfirmation after a confirmation is stored; its failure is raised (the confirmation stands)."""
        name = self.trigger(pool, "PostConfirmation")
        if name is None:
            return
        source = "PostConfirmation_ConfirmForgotPassword" if forgot_password else "PostConfirmation_ConfirmSignUp"
        request = {"userAttributes": user_attributes(user), "clientMetadata": dict(client_metadata or {})}
        await self._call(name, "PostConfirmation", pool, client_id, user.username, source, request, {})

    async def pre_authentication(
        self,
        pool: UserPool,
        client: AppClient,
        username: str,
        *,
        client_metadata: Mapping[str, str] | None = None,
    ) -> None:
        """PreAuthentication for a sign-in attempt as ``username`` (a username or alias), before its password or
        SRP proof is checked. UserLambdaValidationException refuses the sign-in. An unknown user is passed on
        (``userNotFound``) only when the client hides user existence; else nothing runs (the sign-in fails anyway)."""
        name = self.trigger(pool, "PreAuthentication")
        if name is None:
            return
        user = await self._directory.find_user(pool.Id, username)
        if user is None and not client.hides_user_existence:
            return
        request: dict[str, Any] = {
            "userAttributes": user_attributes(user) if user is not None else {},
            "validationData": dict(client_metadata or {}),
            "userNotFound": user is None,
        }
        user_name = user.username if user is not None else username
        source = "PreAuthentication_Authentication"
        await self._call(name, "PreAuthentication", pool, client.ClientId, user_name, source, request, {})

    async def pre_token_generation(
        self,
        pool: UserPool,
        client: AppClient,
        user: User,
        groups: Sequence[str],
        *,
        source: str = "TokenGeneration_Authentication",
        client_metadata: Mapping[str, str] | None = None,
    ) -> ClaimsOverride:
        """PreTokenGeneration (version 1) before ID and access tokens are signed: what to change in them."""
        name = self.trigger(pool, "PreTokenGeneration")
        if name is None:
            return NO_OVERRIDE
        request = {
            "userAttributes": user_attributes(user),
            "groupConfiguration": {"groupsToOverride": list(groups), "iamRolesToOverride": [], "preferredRole": None},
            "clientMetadata": dict(client_metadata or {}),
        }
        response = {"claimsOverrideDetails": None}
        answer = await self._call(
            name, "PreTokenGeneration", pool, client.ClientId, user.username, source, request, response
        )
        return _claims_override(name, answer.get("claimsOverrideDetails"))

    # --- calling ----------------------------------------------------------------------------------------------------

    async def _call(
        self,
        name: str,
        kind: TriggerKind,
        pool: UserPool,
        client_id: str | None,
        username: str,
        source: str,
        request: dict[str, Any],
        response: dict[str, Any],
    ) -> dict[str, Any]:
        """The trigger's ``response`` object for the event of ``source``."""
        assert self._runner is not None
        event = {
            "version": "1",
            "triggerSource": source,
            "region": pool.region,
            "userPoolId": pool.Id,
            "userName": username,
            "callerContext": {"awsSdkVersion": SDK_VERSION, "clientId": client_id or NO_CLIENT},
            "request": request,
            "response": response,
        }

        def refused(message: str) -> Exception:
            return UserLambdaValidationError(f"{kind} failed with error {message[:_MAX_MESSAGE]}.")

        def failed(failure: TriggerFailure) -> Exception:  # the details are logged by the runner, not shown
            if isinstance(failure, TriggerRaised):
                return refused(_raised_message(str(failure)))
            if isinstance(failure, TriggerOutputError):
                return InvalidLambdaResponseError(f"Unrecognizable lambda output: {kind} trigger '{name}' {failure}")
            if isinstance(failure, TriggerTimeout):
                return UnexpectedLambdaError(f"{kind} trigger '{name}' did not answer in time")
            return UnexpectedLambdaError(f"{kind} trigger '{name}' failed")

        try:
            answer = await self._runner.invoke(
                name,
                event,
                identity=None,
                label=f"{kind} trigger",
                on_rejected=refused,
                on_failure=failed,
            )
        except (InvalidLambdaFunctionOutputError, LambdaThrottledError) as exc:  # not registered / at its limit
            raise UnexpectedLambdaError(exc.message) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("response"), dict):
            raise InvalidLambdaResponseError(
                f"Unrecognizable lambda output: {kind} trigger '{name}' must return the event with its response object"
            )
        result: dict[str, Any] = answer["response"]
        return result


def user_attributes(user: User) -> dict[str, str]:
    """``request.userAttributes`` as Cognito sends them: every attribute, ``sub`` and ``cognito:user_status``."""
    return {"sub": user.sub, **user.attributes, "cognito:user_status": user.status.value}


def _flag(name: str, response: Mapping[str, Any], key: str) -> bool:
    value = response.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidLambdaResponseError(
            f"Unrecognizable lambda output: PreSignUp trigger '{name}' answered {key} as {type(value).__name__}"
        )
    return value


def _claims_override(name: str, details: Any) -> ClaimsOverride:
    """A ClaimsOverride from ``claimsOverrideDetails`` (null: nothing changes); reserved claims are left alone."""
    if details is None:
        return NO_OVERRIDE

    def bad(problem: str) -> InvalidLambdaResponseError:
        return InvalidLambdaResponseError(
            f"Unrecognizable lambda output: PreTokenGeneration trigger '{name}' {problem}"
        )

    if not isinstance(details, dict):
        raise bad("answered claimsOverrideDetails that is not an object")
    add = details.get("claimsToAddOrOverride") or {}
    suppress = details.get("claimsToSuppress") or []
    if not isinstance(add, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in add.items()):
        raise bad("answered claimsToAddOrOverride that is not an object of strings")
    if not isinstance(suppress, list) or not all(isinstance(item, str) for item in suppress):
        raise bad("answered claimsToSuppress that is not a list of strings")
    ignored = sorted({*add, *suppress} & RESERVED_CLAIMS)
    if ignored:
        log.warning("PreTokenGeneration trigger %r may not change the claims %s: ignored", name, ", ".join(ignored))
    groups = roles = None
    preferred = None
    override = details.get("groupOverrideDetails")
    if override is not None:
        if not isinstance(override, dict):
            raise bad("answered groupOverrideDetails that is not an object")
        groups, roles = _strings(override, "groupsToOverride", bad), _strings(override, "iamRolesToOverride", bad)
        preferred = override.get("preferredRole")
        if preferred is not None and not isinstance(preferred, str):
            raise bad("answered preferredRole that is not a string")
    return ClaimsOverride(
        add={k: v for k, v in add.items() if k not in RESERVED_CLAIMS},
        suppress=frozenset(suppress) - RESERVED_CLAIMS,
        groups=groups,
        roles=roles,
        preferred_role=preferred,
    )


def _strings(details: Mapping[str, Any], key: str, bad: Any) -> list[str] | None:
    value = details.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad(f"answered {key} that is not a list of strings")
    return list(value)


def _raised_message(traceback_text: str) -> str:
    """The message of the exception a handler raised, from its formatted traceback (``Type: message`` last)."""
    lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    kind, sep, message = last.partition(": ")
    return message.strip() if sep and message.strip() else kind.strip().rsplit(".", 1)[-1]
