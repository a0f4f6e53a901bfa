"""SoftwareTokens: TOTP multi-factor authentication for user pools (AssociateSoftwareToken, VerifySoftwareToken,
SetUserMFAPreference, the pool's MFA configuration) and the rule that decides which MFA challenge a sign-in answers;
SoftwareTokenSetUp: the set-up steps by access token or inside the MFA_SETUP challenge.

What a user has is kept in the user record's ``mfa_options`` (written through the directory's compare-and-set
``change_user``, so concurrent writers cannot lose each other's change)::

    {"totp": {"secret": <sealed>, "enabled": bool, "preferred": bool, "last_step": int, "device": str},
     "totp_pending": <sealed>}

* ``totp_pending`` is the secret AssociateSoftwareToken handed out, waiting for its first code; a verified one
  replaces ``totp`` (a user re-associating keeps the old authenticator until the new one is verified).
* Secrets are sealed with the directory's :class:`~syncsvc.userpools.sealing.PoolSecrets` (as SRP verifiers are),
  bound to the pool and user: a copy of Redis holds no usable secret.
* A code is a 6-digit RFC 6238 TOTP (SHA-1, 30 s steps, pyotp-compatible), accepted for the current step and one
  step either side (clock drift), and only for a step later than the last one accepted: a code works once.
* Which challenge a sign-in answers (:func:`challenge_for`): pool MFA OFF — none; a user with TOTP enabled (or, in a
  pool whose MFA is ON, any verified TOTP) — SOFTWARE_TOKEN_MFA; pool ON and nothing set up — MFA_SETUP.

Only TOTP is served: SMS and e-mail MFA are not (a pool's MfaConfiguration other than OFF means TOTP). No HTTP; I/O
only through the directory (users, pools), the tokens (access tokens) and the challenges (Session strings).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from typing import Any, Literal

import pyotp

from syncsvc.clock import Clock
from syncsvc.errors import EnableSoftwareTokenMfaError, InvalidParameterError, UserPoolNotAuthorizedError
from syncsvc.userpools.challenges import Challenge, Challenges
from syncsvc.userpools.directory import UserDirectory
from syncsvc.userpools.model import User, UserPool, UserPoolSettings
from syncsvc.userpools.sealing import PoolSecrets
from syncsvc.userpools.tokens import UserPoolTokens

STEP_SECONDS = 30
#: Steps either side of ours a code may come from (an authenticator's clock drift).
DRIFT_STEPS = 1
SOFTWARE_TOKEN_MFA = "SOFTWARE_TOKEN_MFA"  # noqa: S105 (a challenge name, not a password)
MfaConfiguration = Literal["OFF", "ON", "OPTIONAL"]


@dataclass(frozen=True, slots=True)
class MfaSettings:
    """What GetUser / AdminGetUser say of a user's MFA: ``verified`` a TOTP authenticator is set up, ``enabled``
    it is turned on (UserMFASettingList), ``preferred`` it is the preferred one (PreferredMfaSetting)."""

    verified: bool
    enabled: bool
    preferred: bool

    @property
    def setting_list(self) -> list[str]:
        return [SOFTWARE_TOKEN_MFA] if self.enabled else []

    @property
    def preferred_setting(self) -> str | None:
        return SOFTWARE_TOKEN_MFA if self.preferred else None


def settings_of(user: User) -> MfaSettings:
    totp = user.mfa_options.get("totp")
    if not isinstance(totp, dict):
        return MfaSettings(verified=False, enabled=False, preferred=False)
    enabled = bool(totp.get("enabled"))
    return MfaSettings(verified=True, enabled=enabled, preferred=enabled and bool(totp.get("preferred")))


def challenge_for(pool: UserPool, user: User) -> str | None:
    """The MFA challenge a sign-in whose password checked out answers, or None (tokens)."""
    if pool.MfaConfiguration == "OFF":
        return None
    settings = settings_of(user)
    if settings.enabled or (pool.MfaConfiguration == "ON" and settings.verified):
        return SOFTWARE_TOKEN_MFA
    return "MFA_SETUP" if pool.MfaConfiguration == "ON" else None


class _RefusedError(Exception):
    """Inside a compare-and-set change: the code does not match (nothing is written)."""


class SoftwareTokens:
    """TOTP authenticators of users, over the directory's user records."""

    def __init__(self, directory: UserDirectory, secrets_: PoolSecrets, *, clock: Clock) -> None:
        self._directory = directory
        self._secrets = secrets_
        self._clock = clock

    # --- setting up -------------------------------------------------------------------------------------------------

    async def associate(self, pool_id: str, username: str) -> str:
        """A new secret (base32, for the authenticator app), kept sealed until a code from it is verified."""
        user = await self._directory.user(pool_id, username)
        secret = pyotp.random_base32()
        sealed = self._seal(pool_id, user.username, secret)
        await self._directory.change_user(
            pool_id, user.username, lambda current: _with_mfa(current, totp_pending=sealed)
        )
        return secret

    async def verify(self, pool_id: str, username: str, code: str, device_name: str | None, *, enable: bool) -> None:
        """VerifySoftwareToken: ``code`` must come from the pending secret (EnableSoftwareTokenMFAException); the
        secret becomes the user's authenticator, turned on (and preferred) when ``enable`` (the MFA_SETUP challenge)
        or when the one it replaces was on; otherwise SetUserMFAPreference turns it on. The code is spent."""
        user = await self._directory.user(pool_id, username)

        def change(current: User) -> User:
            sealed = current.mfa_options.get("totp_pending")
            if not isinstance(sealed, str):
                raise InvalidParameterError("AssociateSoftwareToken must be called before VerifySoftwareToken.")
            secret = self._open(pool_id, current.username, sealed)
            step = self._matching_step(secret, code, after=-1)
            if step is None:
                raise _RefusedError
            before = settings_of(current)
            totp = {
                "secret": self._seal(pool_id, current.username, secret),
                "enabled": enable or before.enabled,
                "preferred": enable or before.preferred,
                "last_step": step,
                "device": device_name or "",
            }
            return _with_mfa(current, totp=totp, totp_pending=None)

        try:
            await self._directory.change_user(pool_id, user.username, change)
        except _RefusedError:
            raise EnableSoftwareTokenMfaError("Code mismatch and fail enable Software Token MFA") from None

    async def set_preference(
        self, pool_id: str, username: str, *, enabled: bool | None, preferred: bool | None
    ) -> None:
        """SetUserMFAPreference / AdminSetUserMFAPreference (SoftwareTokenMfaSettings): turning TOTP on needs a
        verified authenticator; a preferred one is on; turning it off also drops the preference."""
        user = await self._directory.user(pool_id, username)
        if enabled is None and preferred is None:
            return

        def change(current: User) -> User:
            totp = current.mfa_options.get("totp")
            if not isinstance(totp, dict):
                if enabled or preferred:
                    raise InvalidParameterError("User has not verified software token mfa")
                return current
            on = bool(totp.get("enabled")) if enabled is None else enabled
            if preferred and not on:
                raise InvalidParameterError("A preferred MFA method must be enabled.")
            favoured = bool(totp.get("preferred")) if preferred is None else preferred
            return _with_mfa(current, totp={**totp, "enabled": on, "preferred": on and favoured})

        await self._directory.change_user(pool_id, user.username, change)

    # --- signing in -------------------------------------------------------------------------------------------------

    async def check(self, pool_id: str, username: str, code: str) -> bool:
        """Whether ``code`` is the user's current TOTP code and was not used yet (its step is then remembered, in
        the same compare-and-set write: two requests with one code cannot both pass)."""

        def change(current: User) -> User:
            totp = current.mfa_options.get("totp")
            if not isinstance(totp, dict):
                raise _RefusedError
            secret = self._open(pool_id, current.username, totp["secret"])
            step = self._matching_step(secret, code, after=int(totp.get("last_step", -1)))
            if step is None:
                raise _RefusedError
            return _with_mfa(current, totp={**totp, "last_step": step})

        try:
            await self._directory.change_user(pool_id, username, change, touch=False)
        except _RefusedError:
            return False
        return True

    def _matching_step(self, secret: str, code: str, *, after: int) -> int | None:
        """The time step (now ± DRIFT_STEPS, later than ``after``) whose code is ``code``; every candidate is
        compared, in constant time."""
        if len(code) != 6 or not code.isascii() or not code.isdigit():
            return None
        totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
        now_step = self._clock.now_ms() // 1000 // STEP_SECONDS
        found = None
        for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
            if hmac.compare_digest(totp.generate_otp(step).encode(), code.encode()) and step > after:
                found = step
        return found

    # --- the pool ---------------------------------------------------------------------------------------------------

    async def pool_config(self, pool_id: str) -> MfaConfiguration:
        pool = await self._directory.pool(pool_id)
        return pool.MfaConfiguration

    async def set_pool_config(
        self, pool_id: str, configuration: MfaConfiguration | None, software_token: bool | None
    ) -> MfaConfiguration:
        """SetUserPoolMfaConfig: ON/OPTIONAL need TOTP (the only MFA served) enabled; TOTP disabled means OFF."""
        pool = await self._directory.pool(pool_id)
        wanted = configuration or ("OFF" if software_token is False else pool.MfaConfiguration)
        if wanted != "OFF" and software_token is False:
            raise InvalidParameterError("MFA ON or OPTIONAL needs an MFA type enabled (only TOTP is served).")
        kept = {
            name: value
            for name, value in pool.model_dump(exclude_none=True).items()
            if name in UserPoolSettings.model_fields and name != "PoolName"
        }
        settings = UserPoolSettings.model_validate({**kept, "MfaConfiguration": wanted}, strict=False)
        await self._directory.update_pool(pool_id, settings)
        return wanted

    # --- sealing ----------------------------------------------------------------------------------------------------

    def _seal(self, pool_id: str, username: str, secret: str) -> str:
        return self._secrets.seal(f"totp:{pool_id}:{username}", secret.encode())

    def _open(self, pool_id: str, username: str, sealed: str) -> str:
        return self._secrets.open(f"totp:{pool_id}:{username}", sealed).decode()


class SoftwareTokenSetUp:
    """AssociateSoftwareToken / VerifySoftwareToken for the user of an access token, or inside a sign-in's
    MFA_SETUP challenge (its Session, renewed at each step: the one VerifySoftwareToken returns answers MFA_SETUP)."""

    def __init__(self, software_tokens: SoftwareTokens, tokens: UserPoolTokens, challenges: Challenges) -> None:
        self._software_tokens = software_tokens
        self._tokens = tokens
        self._challenges = challenges

    async def associate(self, access_token: str | None, session: str | None) -> tuple[str, str | None]:
        """A new TOTP secret for the user of the access token or of an MFA_SETUP Session (then with the Session
        to go on with)."""
        if access_token is not None and session is None:
            signed_in = await self._tokens.access(access_token)
            return await self._software_tokens.associate(signed_in.pool.Id, signed_in.user.username), None
        challenge, username = await self._setup_challenge(access_token, session)
        secret = await self._software_tokens.associate(challenge.pool_id, username)
        return secret, await self._renewed(challenge)

    async def verify(
        self, access_token: str | None, session: str | None, code: str, device_name: str | None
    ) -> str | None:
        """Verifies the first code of the associated secret (EnableSoftwareTokenMFAException when wrong); by
        Session, the set-up authenticator is turned on and the Session to answer MFA_SETUP with is returned (a
        wrong code leaves the Session usable, up to its MFA_TRIES)."""
        if access_token is not None and session is None:
            signed_in = await self._tokens.access(access_token)
            await self._software_tokens.verify(
                signed_in.pool.Id, signed_in.user.username, code, device_name, enable=False
            )
            return None
        challenge, username = await self._setup_challenge(access_token, session)
        try:
            await self._software_tokens.verify(challenge.pool_id, username, code, device_name, enable=True)
        except EnableSoftwareTokenMfaError:
            assert session is not None
            await self._challenges.keep(replace(challenge, failures=challenge.failures + 1), session)
            raise
        return await self._renewed(challenge)

    async def _setup_challenge(self, access_token: str | None, session: str | None) -> tuple[Challenge, str]:
        if access_token is not None or session is None:
            raise InvalidParameterError("Give either an AccessToken or a Session.")
        challenge = await self._challenges.take(session)
        if challenge is None or challenge.name != "MFA_SETUP" or challenge.username is None:
            raise UserPoolNotAuthorizedError("Invalid session for the user, session is expired.")
        return challenge, challenge.username

    async def _renewed(self, challenge: Challenge) -> str:
        session = await self._challenges.renew(challenge)
        if session is None:
            raise UserPoolNotAuthorizedError("Invalid session for the user, session is expired.")
        return session


def _with_mfa(user: User, **members: Any) -> User:
    """``user`` with ``mfa_options`` members set (None removes one)."""
    options = {**user.mfa_options, **members}
    return replace(user, mfa_options={name: value for name, value in options.items() if value is not None})
