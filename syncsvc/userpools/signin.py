"""SignIn: the user-pool sign-in use-cases — InitiateAuth, AdminInitiateAuth, RespondToAuthChallenge, and what an
access token opens (GetUser, ChangePassword, GlobalSignOut) or a refresh token (RevokeToken).

Flows: USER_PASSWORD_AUTH and ADMIN_USER_PASSWORD_AUTH / ADMIN_NO_SRP_AUTH (password in the request),
REFRESH_TOKEN_AUTH / REFRESH_TOKEN, USER_SRP_AUTH (SRP_A → PASSWORD_VERIFIER, ``syncsvc.userpools.srp``), each only
when the app client's ExplicitAuthFlows allow it. A user created by AdminCreateUser answers NEW_PASSWORD_REQUIRED.

Account protection, as Cognito: a wrong password and an unknown user answer the same NotAuthorizedException
"Incorrect username or password." after the same work (an argon2 verification of a dummy hash; for SRP a challenge
whose salt is derived from the username, so asking twice tells nothing); a disabled user is told so, an unconfirmed
one too, only after the password checked out; failed attempts are counted per user by the directory, which refuses
sign-ins for a while after too many ("Password attempts exceeded"), and per name for unknown users, so the lockout
does not tell them apart either.

A challenge's server state stays in Redis (``syncsvc.userpools.challenges``) under the digest of the ``Session``
string the client gets, for 3 minutes, and is taken once: a Session string cannot be replayed, and the SRP secret
never leaves the server. A PASSWORD_VERIFIER's Session is its SECRET_BLOCK (64 random bytes): Cognito's clients
(pycognito, amplify) answer that challenge without a Session, and the secret block they echo finds the state.

MFA (``syncsvc.userpools.mfa``): once the password checked out, a pool whose MfaConfiguration is ON or OPTIONAL
answers SOFTWARE_TOKEN_MFA to a user with TOTP (a wrong code: CodeMismatchException, the Session survives up to 5),
and a pool whose MFA is ON answers MFA_SETUP to a user without (AssociateSoftwareToken / VerifySoftwareToken take
that Session, then RespondToAuthChallenge MFA_SETUP gives the tokens).

(About 420 lines: every flow ends in the same challenge and token steps; the challenge store is in challenges.py.)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from syncsvc.clock import Clock
from syncsvc.errors import (
    CodeMismatchError,
    InvalidParameterError,
    InvalidPasswordError,
    PasswordResetRequiredError,
    UserNotConfirmedError,
    UserNotFoundError,
    UserPoolNotAuthorizedError,
)
from syncsvc.store.usersessions import RedisUserSessions
from syncsvc.userpools import passwords, srp
from syncsvc.userpools.challenges import Challenge, Challenges
from syncsvc.userpools.directory import UserDirectory
from syncsvc.userpools.mfa import SoftwareTokens, SoftwareTokenSetUp, challenge_for
from syncsvc.userpools.model import AppClient, User, UserPool, UserStatus
from syncsvc.userpools.sealing import PoolSecrets
from syncsvc.userpools.tokens import SignedIn, Tokens, UserPoolTokens

#: How far a PASSWORD_VERIFIER's TIMESTAMP may be from our clock.
TIMESTAMP_SKEW_SECONDS = 300
INCORRECT = "Incorrect username or password."
#: Which ExplicitAuthFlows entries allow each AuthFlow (the legacy names included).
_ALLOWED_BY = {
    "USER_PASSWORD_AUTH": ("ALLOW_USER_PASSWORD_AUTH", "USER_PASSWORD_AUTH"),
    "ADMIN_USER_PASSWORD_AUTH": ("ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"),
    "ADMIN_NO_SRP_AUTH": ("ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"),
    "REFRESH_TOKEN_AUTH": ("ALLOW_REFRESH_TOKEN_AUTH",),
    "REFRESH_TOKEN": ("ALLOW_REFRESH_TOKEN_AUTH",),
    "USER_SRP_AUTH": ("ALLOW_USER_SRP_AUTH",),
}
_ADMIN_FLOWS = frozenset({"ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"})
_ANSWERABLE = frozenset({"NEW_PASSWORD_REQUIRED", "PASSWORD_VERIFIER", "SOFTWARE_TOKEN_MFA", "MFA_SETUP"})
_UNKNOWN_USER_LABEL = b"syncsvc user-pool unknown users"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What InitiateAuth / RespondToAuthChallenge answer: tokens, or a challenge with its Session string."""

    tokens: Tokens | None = None
    challenge: str | None = None
    session: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        if self.tokens is not None:
            return {"AuthenticationResult": self.tokens.wire(), "ChallengeParameters": {}}
        return {"ChallengeName": self.challenge, "Session": self.session, "ChallengeParameters": self.parameters}


class SignIn:
    """The sign-in use-cases over the directory (users, passwords, throttling) and the tokens."""

    def __init__(
        self,
        directory: UserDirectory,
        tokens: UserPoolTokens,
        sessions: RedisUserSessions,
        *,
        secret: bytes,
        clock: Clock,
    ) -> None:
        self._directory = directory
        self._tokens = tokens
        self._challenges = Challenges(sessions, secret=secret, clock=clock)
        self._unknown_key = hmac.new(secret, _UNKNOWN_USER_LABEL, hashlib.sha256).digest()
        self._clock = clock
        #: TOTP authenticators (``syncsvc.userpools.mfa``), sealed with the directory's keys (same secret), and
        #: their set-up by access token or inside the MFA_SETUP challenge.
        self.mfa = SoftwareTokens(directory, PoolSecrets(secret), clock=clock)
        self.mfa_setup = SoftwareTokenSetUp(self.mfa, tokens, self._challenges)

    # --- InitiateAuth -----------------------------------------------------------------------------------------------

    async def initiate(
        self, client_id: str, flow: str, parameters: Mapping[str, str], *, admin_pool_id: str | None = None
    ) -> AuthResult:
        """InitiateAuth (``admin_pool_id`` None) or AdminInitiateAuth (the developer names the pool)."""
        if admin_pool_id is None:
            pool, client = await self._directory.client_by_id(client_id)
            if flow in _ADMIN_FLOWS:
                raise InvalidParameterError("Initiate Auth method not supported.")
        else:
            pool = await self._directory.pool(admin_pool_id)
            client = await self._directory.client(admin_pool_id, client_id)
        if flow not in _ALLOWED_BY:
            raise InvalidParameterError(f"{flow} flow is not supported by syncsvc")
        if not any(name in client.ExplicitAuthFlows for name in _ALLOWED_BY[flow]):
            raise InvalidParameterError(f"{flow} flow not enabled for this client")
        if flow in ("REFRESH_TOKEN_AUTH", "REFRESH_TOKEN"):
            return AuthResult(tokens=await self._refresh(pool, client, parameters))
        username = _required(parameters, "USERNAME")
        self._check_secret_hash(client, username, parameters.get("SECRET_HASH"))
        # the pool's PreAuthentication trigger: before any password work, never on a refresh (as Cognito)
        await self._tokens.hooks.pre_authentication(pool, client, username)
        if flow == "USER_SRP_AUTH":
            return await self._srp_challenge(pool, client, username, _required(parameters, "SRP_A"))
        password = _required(parameters, "PASSWORD")
        user = await self._password_user(pool, username, password)
        return await self._signed_in(pool, client, user)

    async def _password_user(self, pool: UserPool, username: str, password: str) -> User:
        """The user whose password this is; the same NotAuthorizedException for an unknown user and a wrong
        password, after the same work."""
        try:
            user = await self._directory.user(pool.Id, username)
        except UserNotFoundError:
            await self._throttle_name(pool, _unknown(username))
            await passwords.verify_password(None, password)  # the same argon2 work as for a user
            await self._directory.note_failed_sign_in(pool.Id, _unknown(username))
            raise UserPoolNotAuthorizedError(INCORRECT) from None
        await self._throttle(pool, user)
        if not await self._directory.check_password(pool, user, password):
            await self._directory.note_failed_sign_in(pool.Id, user.username)
            raise UserPoolNotAuthorizedError(INCORRECT)
        return user

    async def _throttle(self, pool: UserPool, user: User) -> None:
        await self._throttle_name(pool, user.username)

    async def _throttle_name(self, pool: UserPool, name: str) -> None:
        """Password attempts exceeded while ``name`` (a username, or an unknown user's ``_unknown`` name) is locked."""
        if not await self._directory.sign_in_allowed(pool.Id, name):
            raise UserPoolNotAuthorizedError("Password attempts exceeded")

    async def _signed_in(
        self, pool: UserPool, client: AppClient, user: User, *, mfa_passed: bool = False
    ) -> AuthResult:
        """After the password (and, ``mfa_passed``, the MFA code) checked out: the user's state decides between
        tokens, a challenge (a new password, MFA) and an error."""
        if not user.enabled:
            raise UserPoolNotAuthorizedError("User is disabled.")
        if user.status == UserStatus.UNCONFIRMED:
            raise UserNotConfirmedError("User is not confirmed.")
        if user.status == UserStatus.RESET_REQUIRED:
            raise PasswordResetRequiredError("Password reset required for the user")
        if user.status == UserStatus.FORCE_CHANGE_PASSWORD:
            if user.password_expires_ms is not None and user.password_expires_ms <= self._clock.now_ms():
                raise UserPoolNotAuthorizedError(
                    "Temporary password has expired and must be reset by an administrator."
                )
            parameters = {
                "USER_ID_FOR_SRP": user.username,
                "requiredAttributes": "[]",
                "userAttributes": orjson.dumps(dict(user.attributes)).decode(),
            }
            return await self._challenge("NEW_PASSWORD_REQUIRED", pool, client, user.username, parameters)
        mfa = None if mfa_passed else challenge_for(pool, user)
        if mfa is not None:
            parameters = {"USER_ID_FOR_SRP": user.username}
            if mfa == "MFA_SETUP":
                parameters["MFAS_CAN_SETUP"] = '["SOFTWARE_TOKEN_MFA"]'
            return await self._challenge(mfa, pool, client, user.username, parameters)
        await self._directory.clear_failed_sign_ins(pool.Id, user.username)
        groups = await self._directory.groups_of(pool.Id, user.username)
        return AuthResult(tokens=await self._tokens.sign_in(pool, client, user, groups))

    async def _refresh(self, pool: UserPool, client: AppClient, parameters: Mapping[str, str]) -> Tokens:
        """REFRESH_TOKEN_AUTH. A client with a secret sends SECRET_HASH computed over the user's name: the username,
        or (as SDKs do for pools that sign in by e-mail) the ``sub`` or an alias."""
        given = parameters.get("SECRET_HASH")

        def check_secret(user: User) -> None:
            if client.ClientSecret is None:
                return
            names = {user.username, user.sub, *(user.attributes.get(name) or "" for name in ("email", "phone_number"))}
            expected = [secret_hash(client.ClientSecret, name, client.ClientId) for name in names if name]
            if given is None or not any(hmac.compare_digest(given.encode(), hash_.encode()) for hash_ in expected):
                raise UserPoolNotAuthorizedError(f"Unable to verify secret hash for client {client.ClientId}")

        refresh_token = _required(parameters, "REFRESH_TOKEN")
        return await self._tokens.refresh(pool, client, refresh_token, self._directory.groups_of, accept=check_secret)

    # --- USER_SRP_AUTH ----------------------------------------------------------------------------------------------

    async def _srp_challenge(self, pool: UserPool, client: AppClient, username: str, srp_a: str) -> AuthResult:
        """PASSWORD_VERIFIER for a user; for an unknown user (or one without a verifier) a challenge just as
        plausible, whose salt is derived from the name (so asking again gives the same), that no answer passes."""
        try:
            user: User | None = await self._directory.user(pool.Id, username)
        except UserNotFoundError:
            user = None
        await self._throttle_name(pool, user.username if user is not None else _unknown(username))
        user_id = user.username if user is not None else username
        stored = None
        if user is not None and user.srp_salt is not None and user.srp_verifier is not None:
            stored = (user.srp_salt, user.srp_verifier)
        try:
            state, parameters = await asyncio.to_thread(self._start, pool.Id, user_id, stored, srp_a)
        except srp.SrpError as exc:
            raise InvalidParameterError(f"Invalid SRP_A: {exc}") from None
        known = user.username if user is not None and user.srp_verifier is not None else None
        encoded = base64.b64encode(state.to_bytes()).decode()
        return await self._challenge(
            "PASSWORD_VERIFIER", pool, client, known, parameters, srp_state=encoded, session=parameters["SECRET_BLOCK"]
        )

    def _start(
        self, pool_id: str, user_id: str, stored: tuple[bytes, bytes] | None, srp_a: str
    ) -> tuple[srp.ServerState, dict[str, str]]:
        """srp.start with the user's salt and verifier, or the decoy's for a name without them. The decoy is worked
        out either way, so a known and an unknown name cost the same time (blocking: run it in a thread)."""
        decoy = self._decoy(pool_id, user_id)
        salt, verifier = stored if stored is not None else decoy
        return srp.start(pool_id, user_id, salt, verifier, srp_a)

    def _decoy(self, pool_id: str, username: str) -> tuple[bytes, bytes]:
        """A salt and verifier for a user that does not exist: the same for the same name, unusable by anyone."""
        seed = hmac.new(self._unknown_key, f"{pool_id}\n{username}".encode(), hashlib.sha256).digest()
        return seed[: srp.SALT_BYTES], pow(srp.G, int.from_bytes(seed, "big"), srp.N).to_bytes(srp.N_BYTES, "big")

    async def _password_verifier(
        self, pool: UserPool, client: AppClient, challenge: Challenge, responses: Mapping[str, str]
    ) -> AuthResult:
        username = _required(responses, "USERNAME")
        timestamp = _required(responses, "TIMESTAMP")
        block = _required(responses, "PASSWORD_CLAIM_SECRET_BLOCK")
        signature = _required(responses, "PASSWORD_CLAIM_SIGNATURE")
        if challenge.srp_state is None:
            raise UserPoolNotAuthorizedError("Invalid session for the user.")
        state = srp.ServerState.from_bytes(base64.b64decode(challenge.srp_state))
        moment = srp.parse_timestamp(timestamp)
        recent = moment is not None and abs(moment.timestamp() - self._clock.now_ms() / 1000) <= TIMESTAMP_SKEW_SECONDS
        proven = await asyncio.to_thread(srp.check, state, username, timestamp, block, signature)
        if challenge.username is None:  # an unknown user: throttled and counted as a known one is
            await self._throttle_name(pool, _unknown(username))
            await self._directory.note_failed_sign_in(pool.Id, _unknown(username))
            raise UserPoolNotAuthorizedError(INCORRECT)
        try:
            user = await self._directory.user(pool.Id, challenge.username)
        except UserNotFoundError:
            raise UserPoolNotAuthorizedError(INCORRECT) from None
        await self._throttle(pool, user)
        if not (proven and recent):
            await self._directory.note_failed_sign_in(pool.Id, user.username)
            raise UserPoolNotAuthorizedError(INCORRECT)
        return await self._signed_in(pool, client, user)

    # --- RespondToAuthChallenge ---------------------------------------------------------------------------------

    async def respond(
        self,
        client_id: str,
        challenge_name: str,
        session: str | None,
        responses: Mapping[str, str],
        *,
        admin_pool_id: str | None = None,
    ) -> AuthResult:
        """RespondToAuthChallenge / AdminRespondToAuthChallenge: NEW_PASSWORD_REQUIRED, PASSWORD_VERIFIER,
        SOFTWARE_TOKEN_MFA, MFA_SETUP."""
        if admin_pool_id is None:
            pool, client = await self._directory.client_by_id(client_id)
        else:
            pool = await self._directory.pool(admin_pool_id)
            client = await self._directory.client(admin_pool_id, client_id)
        if challenge_name not in _ANSWERABLE:
            raise InvalidParameterError(f"The challenge {challenge_name} is not supported by syncsvc")
        self._check_secret_hash(client, _required(responses, "USERNAME"), responses.get("SECRET_HASH"))
        if challenge_name == "PASSWORD_VERIFIER":  # Cognito's clients send no Session here: the secret block is one
            session = session or responses.get("PASSWORD_CLAIM_SECRET_BLOCK")
        if not session:
            raise InvalidParameterError("Missing required parameter Session")
        challenge = await self._challenges.take(session)
        if challenge is None or (challenge.pool_id, challenge.client_id, challenge.name) != (
            pool.Id,
            client.ClientId,
            challenge_name,
        ):
            raise UserPoolNotAuthorizedError("Invalid session for the user, session is expired.")
        if challenge_name == "PASSWORD_VERIFIER":
            return await self._password_verifier(pool, client, challenge, responses)
        if challenge_name in ("SOFTWARE_TOKEN_MFA", "MFA_SETUP"):
            return await self._mfa_answer(pool, client, challenge, session, responses)
        return await self._new_password(pool, client, challenge, session, responses)

    async def _new_password(
        self, pool: UserPool, client: AppClient, challenge: Challenge, session: str, responses: Mapping[str, str]
    ) -> AuthResult:
        """NEW_PASSWORD_REQUIRED: the user sets a password of its own, becomes CONFIRMED, and is signed in. A
        password the policy refuses leaves the session usable for another try."""
        password = _required(responses, "NEW_PASSWORD")
        assert challenge.username is not None
        given = await self._resolve(pool, _required(responses, "USERNAME"))
        if given != challenge.username:
            raise UserPoolNotAuthorizedError("Invalid session for the user.")
        try:
            user = await self._directory.set_password(pool.Id, challenge.username, password, permanent=True)
        except InvalidPasswordError:
            await self._challenges.keep(challenge, session)
            raise
        return await self._signed_in(pool, client, user)

    async def _mfa_answer(
        self, pool: UserPool, client: AppClient, challenge: Challenge, session: str, responses: Mapping[str, str]
    ) -> AuthResult:
        """SOFTWARE_TOKEN_MFA (a code from the user's authenticator: CodeMismatchException when wrong, and the
        Session survives MFA_TRIES wrong codes) or MFA_SETUP (answered once VerifySoftwareToken set one up)."""
        assert challenge.username is not None
        if await self._resolve(pool, _required(responses, "USERNAME")) != challenge.username:
            raise UserPoolNotAuthorizedError("Invalid session for the user.")
        user = await self._directory.user(pool.Id, challenge.username)
        await self._throttle(pool, user)
        if challenge.name == "MFA_SETUP":
            if challenge_for(pool, user) != "SOFTWARE_TOKEN_MFA":
                await self._challenges.keep(challenge, session)
                raise InvalidParameterError("Set up a software token (VerifySoftwareToken) before answering MFA_SETUP.")
            return await self._signed_in(pool, client, user, mfa_passed=True)
        code = _required(responses, "SOFTWARE_TOKEN_MFA_CODE")
        if not await self.mfa.check(pool.Id, user.username, code):
            await self._directory.note_failed_sign_in(pool.Id, user.username)
            await self._challenges.keep(replace(challenge, failures=challenge.failures + 1), session)
            raise CodeMismatchError("Invalid code received for user")
        return await self._signed_in(pool, client, user, mfa_passed=True)

    async def _resolve(self, pool: UserPool, username: str) -> str | None:
        try:
            return (await self._directory.user(pool.Id, username)).username
        except UserNotFoundError:
            return None

    async def _challenge(
        self,
        name: str,
        pool: UserPool,
        client: AppClient,
        username: str | None,
        parameters: dict[str, str],
        *,
        srp_state: str | None = None,
        session: str | None = None,
    ) -> AuthResult:
        """A pending challenge (``Challenges.open``), answered with its Session string."""
        session = await self._challenges.open(
            name, pool.Id, client.ClientId, username, srp_state=srp_state, session=session
        )
        return AuthResult(challenge=name, session=session, parameters=parameters)

    # --- with a token -----------------------------------------------------------------------------------------------

    async def get_user(self, access_token: str) -> User:
        return (await self._tokens.access(access_token)).user

    async def change_password(self, access_token: str, previous: str, proposed: str) -> None:
        """ChangePassword: the previous password must check out (counted as a sign-in attempt). The user's
        generation rises: every token issued before, this one included, stops working."""
        signed_in = await self._tokens.access(access_token)
        await self._throttle(signed_in.pool, signed_in.user)
        if not await self._directory.check_password(signed_in.pool, signed_in.user, previous):
            await self._directory.note_failed_sign_in(signed_in.pool.Id, signed_in.user.username)
            raise UserPoolNotAuthorizedError(INCORRECT)
        await self._directory.set_password(signed_in.pool.Id, signed_in.user.username, proposed, permanent=True)

    async def global_sign_out(self, access_token: str) -> None:
        """GlobalSignOut: every token of the user, on every client and device, stops working."""
        signed_in: SignedIn = await self._tokens.access(access_token)
        await self._directory.sign_out_everywhere(signed_in.pool.Id, signed_in.user.username)

    async def revoke_token(self, client_id: str, token: str, client_secret: str | None) -> None:
        """RevokeToken: the refresh token (and what was issued from it) of a client; the client's secret when it
        has one."""
        pool, client = await self._directory.client_by_id(client_id)
        if client.ClientSecret is not None and (
            client_secret is None or not hmac.compare_digest(client_secret.encode(), client.ClientSecret.encode())
        ):
            raise UserPoolNotAuthorizedError(f"Unable to verify secret for client {client_id}")
        await self._tokens.revoke(pool, client, token)

    # --- the client's secret ----------------------------------------------------------------------------------------

    @staticmethod
    def _check_secret_hash(client: AppClient, username: str, given: str | None) -> None:
        """SECRET_HASH = base64(HMAC-SHA256(client secret, username + client id)), required when the client has a
        secret (compared in constant time)."""
        if client.ClientSecret is None:
            return
        expected = secret_hash(client.ClientSecret, username, client.ClientId)
        if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
            raise UserPoolNotAuthorizedError(f"Unable to verify secret hash for client {client.ClientId}")


def secret_hash(client_secret: str, username: str, client_id: str) -> str:
    digest = hmac.new(client_secret.encode(), (username + client_id).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _unknown(username: str) -> str:
    """The name an unknown user's failed sign-ins are counted under: they lock it out as a known user's lock the
    user out, so the lockout does not tell which names exist. The newline, which no username holds, keeps it apart
    from every real username."""
    return f"unknown\n{username}"


def _required(parameters: Mapping[str, str], name: str) -> str:
    value = parameters.get(name)
    if not value:
        raise InvalidParameterError(f"Missing required parameter {name}")
    return value
