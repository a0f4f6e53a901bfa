"""Accounts: sign-up, confirmation, forgotten passwords and invitations, with their one-time codes (no HTTP).

Codes are 6 digits, single use, stored as HMAC digests (``syncsvc.userpools.sealing``), with a lifetime by purpose
and at most :data:`~syncsvc.userpools.codes.MAX_TRIES` tries (``syncsvc.userpools.codes``). Asking for a new code
replaces the previous one.

No user enumeration where Cognito avoids it: with the app client's PreventUserExistenceErrors ENABLED (the default),
ForgotPassword and ResendConfirmationCode for an unknown user answer a plausible CodeDeliveryDetails and send nothing,
and ConfirmSignUp/ConfirmForgotPassword answer CodeMismatchException as for a wrong code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import replace

from syncsvc.clock import Clock
from syncsvc.errors import (
    CodeMismatchError,
    ExpiredCodeError,
    InvalidParameterError,
    UnsupportedUserStateError,
    UserNotFoundError,
    UserPoolLimitExceededError,
    UserPoolNotAuthorizedError,
)
from syncsvc.store.userpools import RedisUserPools
from syncsvc.userpools import codes, passwords
from syncsvc.userpools.codes import CodeSender
from syncsvc.userpools.directory import UserDirectory
from syncsvc.userpools.hooks import UserPoolHooks
from syncsvc.userpools.model import AppClient, CodeDelivery, CodePurpose, User, UserPool, UserStatus
from syncsvc.userpools.sealing import PoolSecrets


def secret_hash(client_secret: str, username: str, client_id: str) -> str:
    """base64(HMAC-SHA256(client secret, username + client id)), as the SDKs compute SECRET_HASH."""
    mac = hmac.new(client_secret.encode(), (username + client_id).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def check_secret_hash(client: AppClient, username: str, given: str | None) -> None:
    """SECRET_HASH is required iff the client has a secret, and compared in constant time (NotAuthorizedException)."""
    if client.ClientSecret is None:
        return
    expected = secret_hash(client.ClientSecret, username, client.ClientId)
    if given is None or not hmac.compare_digest(expected.encode(), given.encode()):
        raise UserPoolNotAuthorizedError(
            f"Client {client.ClientId} is configured with secret but SECRET_HASH was not received"
            if given is None
            else f"Unable to verify secret hash for client {client.ClientId}"
        )


def _decoy(name: str) -> CodeDelivery:
    """What a code for an unknown user would have looked like."""
    if "@" in name or ("@" not in name and not name.startswith("+")):
        return codes.delivery("email", name if "@" in name else f"{name}@example.com")
    return codes.delivery("phone_number", name)


class Accounts:
    def __init__(
        self,
        directory: UserDirectory,
        store: RedisUserPools,
        secrets_: PoolSecrets,
        sender: CodeSender,
        *,
        clock: Clock,
        hooks: UserPoolHooks | None = None,
    ) -> None:
        self._hooks = hooks or UserPoolHooks(None, directory)
        self._directory = directory
        self._store = store
        self._secrets = secrets_
        self._sender = sender
        self._clock = clock

    # --- codes ------------------------------------------------------------------------------------------------------

    async def _send_code(self, pool: UserPool, user: User, purpose: CodePurpose, attribute: str) -> CodeDelivery:
        destination = user.attributes[attribute]
        code = codes.new_code()
        digest = self._secrets.digest(f"{purpose.value}:{pool.Id}:{user.username}", code)
        expires = self._clock.now_ms() + codes.LIFETIME_MS[purpose]
        await self._store.put_code(pool.Id, purpose.value, user.username, digest, expires)
        sent = codes.delivery(attribute, destination)
        await self._sender.send(codes.message_for(purpose, user.username, destination, sent.medium, code))
        return sent

    async def _redeem(self, pool_id: str, purpose: CodePurpose, username: str, code: str) -> None:
        """Uses the user's code of ``purpose`` (CodeMismatch, ExpiredCode, LimitExceeded when it cannot)."""
        reply = await self._store.code_attempt(
            pool_id, purpose.value, username, tries=codes.MAX_TRIES, now_ms=self._clock.now_ms()
        )
        if reply[0] == "exhausted":
            raise UserPoolLimitExceededError("Attempt limit exceeded, please try after some time.")
        if reply[0] != "try":
            raise ExpiredCodeError("Invalid code provided, please request a code again.")
        given = self._secrets.digest(f"{purpose.value}:{pool_id}:{username}", code)
        if not hmac.compare_digest(reply[1].encode(), given.encode()):
            raise CodeMismatchError("Invalid verification code provided, please try again.")
        if not await self._store.consume_code(pool_id, purpose.value, username):
            raise ExpiredCodeError("Invalid code provided, please request a code again.")

    @staticmethod
    def _verifiable(pool: UserPool, user: User) -> str | None:
        """The attribute a code goes to: the first of the pool's AutoVerifiedAttributes the user has."""
        for attribute in pool.AutoVerifiedAttributes or ():
            if user.attributes.get(attribute):
                return attribute
        return None

    async def _known(self, pool: UserPool, client: AppClient, username: str) -> User | None:
        """The user, or None when unknown and the client hides that (else UserNotFoundException)."""
        user = await self._directory.find_user(pool.Id, username)
        if user is None and not client.hides_user_existence:
            raise UserNotFoundError("Username/client id combination not found.")
        return user

    # --- public flows -----------------------------------------------------------------------------------------------

    async def sign_up(
        self,
        client_id: str,
        username: str,
        password: str,
        attributes: Mapping[str, str],
        given_hash: str | None,
        *,
        validation_data: Mapping[str, str] | None = None,
        client_metadata: Mapping[str, str] | None = None,
    ) -> tuple[User, CodeDelivery | None]:
        """SignUp. The pool's PreSignUp trigger runs before the user is stored: it may refuse (nothing stored), or
        confirm the user (no code sent; PostConfirmation runs) and mark the e-mail/phone verified."""
        pool, client = await self._directory.client_by_id(client_id)
        check_secret_hash(client, username, given_hash)
        if pool.AdminCreateUserConfig.AllowAdminCreateUserOnly:
            raise UserPoolNotAuthorizedError("SignUp is not permitted for this user pool")
        passwords.check_policy(pool.password_policy, password)
        attributes = _with_username_attribute(pool, username, attributes)
        decision = await self._hooks.pre_sign_up(
            pool, client_id, username, attributes, validation_data=validation_data, client_metadata=client_metadata
        )
        status = UserStatus.CONFIRMED if decision.auto_confirm else UserStatus.UNCONFIRMED
        user = await self._directory.create_user(
            pool, username, decision.verified(attributes), password=password, status=status
        )
        if decision.auto_confirm:
            await self._hooks.post_confirmation(pool, client_id, user, client_metadata=client_metadata)
            return user, None
        attribute = self._verifiable(pool, user)
        delivery = None if attribute is None else await self._send_code(pool, user, CodePurpose.SIGN_UP, attribute)
        return user, delivery

    async def confirm_sign_up(
        self,
        client_id: str,
        username: str,
        code: str,
        given_hash: str | None,
        *,
        client_metadata: Mapping[str, str] | None = None,
    ) -> None:
        """ConfirmSignUp, then the pool's PostConfirmation trigger (its failure is raised; the confirmation stands)."""
        pool, client = await self._directory.client_by_id(client_id)
        check_secret_hash(client, username, given_hash)
        user = await self._known(pool, client, username)
        if user is None:
            raise CodeMismatchError("Invalid verification code provided, please try again.")
        if user.status != UserStatus.UNCONFIRMED:
            raise UserPoolNotAuthorizedError(f"User cannot be confirmed. Current status is {user.status.value}")
        await self._redeem(pool.Id, CodePurpose.SIGN_UP, user.username, code)
        confirmed = await self._directory.change_user(pool.Id, user.username, lambda u: self._confirmed(pool, u))
        await self._hooks.post_confirmation(pool, client_id, confirmed, client_metadata=client_metadata)

    def _confirmed(self, pool: UserPool, user: User) -> User:
        attributes = dict(user.attributes)
        attribute = self._verifiable(pool, user)
        if attribute is not None:
            attributes[f"{attribute}_verified"] = "true"
        return replace(user, status=UserStatus.CONFIRMED, attributes=attributes)

    async def admin_confirm(
        self, pool_id: str, username: str, *, client_metadata: Mapping[str, str] | None = None
    ) -> None:
        """AdminConfirmSignUp, then the pool's PostConfirmation trigger (as ConfirmSignUp)."""
        pool = await self._directory.pool(pool_id)
        user = await self._directory.user(pool_id, username)
        if user.status != UserStatus.UNCONFIRMED:
            raise UserPoolNotAuthorizedError(f"User cannot be confirmed. Current status is {user.status.value}")
        confirmed = await self._directory.change_user(
            pool_id, user.username, lambda u: replace(u, status=UserStatus.CONFIRMED)
        )
        await self._hooks.post_confirmation(pool, None, confirmed, client_metadata=client_metadata)

    async def resend_confirmation(self, client_id: str, username: str, given_hash: str | None) -> CodeDelivery:
        pool, client = await self._directory.client_by_id(client_id)
        check_secret_hash(client, username, given_hash)
        user = await self._known(pool, client, username)
        if user is None:
            return _decoy(username)
        if user.status != UserStatus.UNCONFIRMED:
            raise InvalidParameterError("User is already confirmed.")
        attribute = self._verifiable(pool, user)
        if attribute is None:
            raise InvalidParameterError("Auto verification not turned on.")
        return await self._send_code(pool, user, CodePurpose.SIGN_UP, attribute)

    async def forgot_password(self, client_id: str, username: str, given_hash: str | None) -> CodeDelivery:
        pool, client = await self._directory.client_by_id(client_id)
        check_secret_hash(client, username, given_hash)
        user = await self._known(pool, client, username)
        if user is None:
            return _decoy(username)
        if not user.enabled:
            raise UserPoolNotAuthorizedError("User is disabled.")
        for attribute in ("email", "phone_number"):
            if user.attributes.get(attribute) and user.attributes.get(f"{attribute}_verified") == "true":
                return await self._send_code(pool, user, CodePurpose.RESET, attribute)
        raise InvalidParameterError(
            "Cannot reset password for the user as there is no registered/verified email or phone_number"
        )

    async def confirm_forgot_password(
        self,
        client_id: str,
        username: str,
        code: str,
        password: str,
        given_hash: str | None,
        *,
        client_metadata: Mapping[str, str] | None = None,
    ) -> None:
        """ConfirmForgotPassword, then the pool's PostConfirmation trigger (PostConfirmation_ConfirmForgotPassword)."""
        pool, client = await self._directory.client_by_id(client_id)
        check_secret_hash(client, username, given_hash)
        user = await self._known(pool, client, username)
        if user is None:
            raise CodeMismatchError("Invalid verification code provided, please try again.")
        passwords.check_policy(pool.password_policy, password)
        await self._redeem(pool.Id, CodePurpose.RESET, user.username, code)
        changed = await self._directory.set_password(pool.Id, user.username, password, permanent=True)
        await self._hooks.post_confirmation(
            pool, client_id, changed, client_metadata=client_metadata, forgot_password=True
        )

    # --- admin ------------------------------------------------------------------------------------------------------

    async def admin_create_user(
        self,
        pool_id: str,
        username: str,
        attributes: Mapping[str, str],
        *,
        temporary_password: str | None,
        message_action: str | None,
        mediums: list[str],
        validation_data: Mapping[str, str] | None = None,
        client_metadata: Mapping[str, str] | None = None,
    ) -> User:
        """A user in FORCE_CHANGE_PASSWORD with a temporary password (given or generated), sent through the code
        sender unless SUPPRESS; RESEND sends a new temporary password to an existing such user. A new user passes
        the pool's PreSignUp trigger first (PreSignUp_AdminCreateUser: it may refuse, or verify the e-mail/phone)."""
        pool = await self._directory.pool(pool_id)
        password = temporary_password or passwords.temporary_password(pool.password_policy)
        if message_action == "RESEND":
            existing = await self._directory.user(pool_id, username)
            if existing.status != UserStatus.FORCE_CHANGE_PASSWORD:
                raise UnsupportedUserStateError("User is not in the FORCE_CHANGE_PASSWORD state; cannot resend.")
            user = await self._directory.set_password(pool_id, existing.username, password, permanent=False)
        else:
            attributes = _with_username_attribute(pool, username, attributes)
            decision = await self._hooks.pre_sign_up(
                pool,
                None,
                username,
                attributes,
                validation_data=validation_data,
                client_metadata=client_metadata,
                admin=True,
            )
            user = await self._directory.create_user(
                pool,
                username,
                decision.verified(attributes),
                password=password,
                status=UserStatus.FORCE_CHANGE_PASSWORD,
                temporary=True,
            )
        if message_action != "SUPPRESS":
            await self._invite(user, username, password, mediums)
        return user

    async def _invite(self, user: User, username: str, password: str, mediums: list[str]) -> None:
        for medium, attribute in (("EMAIL", "email"), ("SMS", "phone_number")):
            destination = user.attributes.get(attribute)
            if medium in mediums and destination:
                await self._sender.send(
                    codes.invitation(username, destination, "EMAIL" if medium == "EMAIL" else "SMS", password)
                )

    # --- attribute verification and administrator resets ------------------------------------------------------------

    @staticmethod
    def _attribute_context(pool_id: str, user: User, attribute: str) -> str:
        """An attribute code is bound to the attribute and its value: it proves nothing about another, or a new one."""
        return f"attribute:{pool_id}:{user.username}:{attribute}:{user.attributes.get(attribute, '')}"

    async def send_attribute_code(self, pool: UserPool, user: User, attribute: str) -> CodeDelivery:
        """A code to verify the user's e-mail address or phone number (replaces any earlier attribute code)."""
        destination = user.attributes.get(attribute) if attribute in ("email", "phone_number") else None
        if not destination:
            raise InvalidParameterError(f"The user has no {attribute} attribute to verify.")
        code = codes.new_code()
        digest = self._secrets.digest(self._attribute_context(pool.Id, user, attribute), code)
        expires = self._clock.now_ms() + codes.LIFETIME_MS[CodePurpose.ATTRIBUTE]
        await self._store.put_code(pool.Id, CodePurpose.ATTRIBUTE.value, user.username, digest, expires)
        sent = codes.delivery(attribute, destination)
        await self._sender.send(codes.message_for(CodePurpose.ATTRIBUTE, user.username, destination, sent.medium, code))
        return sent

    async def verify_attribute(self, pool: UserPool, user: User, attribute: str, code: str) -> None:
        """VerifyUserAttribute: ``<attribute>_verified`` becomes true if ``code`` was sent for the value the attribute
        still has (CodeMismatch, ExpiredCode, LimitExceeded otherwise, as for the other codes)."""
        purpose, value = CodePurpose.ATTRIBUTE.value, user.attributes.get(attribute)
        reply = await self._store.code_attempt(
            pool.Id, purpose, user.username, tries=codes.MAX_TRIES, now_ms=self._clock.now_ms()
        )
        if reply[0] == "exhausted":
            raise UserPoolLimitExceededError("Attempt limit exceeded, please try after some time.")
        if reply[0] != "try" or value is None:
            raise ExpiredCodeError("Invalid code provided, please request a code again.")
        given = self._secrets.digest(self._attribute_context(pool.Id, user, attribute), code)
        if not hmac.compare_digest(reply[1].encode(), given.encode()):
            raise CodeMismatchError("Invalid verification code provided, please try again.")
        if not await self._store.consume_code(pool.Id, purpose, user.username):
            raise ExpiredCodeError("Invalid code provided, please request a code again.")

        def verified(current: User) -> User:
            if current.attributes.get(attribute) != value:  # changed meanwhile: the code proved the old value
                raise CodeMismatchError("Invalid verification code provided, please try again.")
            return replace(current, attributes={**current.attributes, f"{attribute}_verified": "true"})

        await self._directory.change_user(pool.Id, user.username, verified)

    async def admin_reset_password(self, pool_id: str, username: str) -> CodeDelivery:
        """AdminResetUserPassword: the password stops working (RESET_REQUIRED, every session ends) and a reset code
        goes to the verified e-mail address or phone number; ConfirmForgotPassword with it sets a new one."""
        pool = await self._directory.pool(pool_id)
        user = await self._directory.user(pool_id, username)
        verified = [a for a in ("email", "phone_number") if user.attributes.get(a) and _verified(user, a)]
        if not verified:
            raise InvalidParameterError(
                "Cannot reset password for the user as there is no registered/verified email or phone_number"
            )
        user = await self._directory.change_user(
            pool_id, user.username, lambda u: replace(u, status=UserStatus.RESET_REQUIRED), new_generation=True
        )
        return await self._send_code(pool, user, CodePurpose.RESET, verified[0])


def _verified(user: User, attribute: str) -> bool:
    return user.attributes.get(f"{attribute}_verified") == "true"


def _with_username_attribute(pool: UserPool, username: str, attributes: Mapping[str, str]) -> dict[str, str]:
    """``attributes`` with the e-mail address or phone number that is the username, in pools whose usernames are
    those (what triggers see; ``UserDirectory.create_user`` checks the two agree)."""
    out = dict(attributes)
    if pool.username_is_alias():
        out.setdefault("email" if "@" in username else "phone_number", username)
    return out
