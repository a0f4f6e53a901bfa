"""UserDirectory: user pools, app clients, users, groups, passwords and sign-in throttling (no HTTP).

Rules that live here:

* A pool id is ``<region>_<9 letters and digits>``; an app client id 26 lowercase letters and digits; a client secret
  51 characters, sealed at rest (``syncsvc.userpools.sealing``).
* A user is found by its username or by an alias: its e-mail address, phone number or preferred_username when the
  pool makes them sign-in names (``UsernameAttributes``/``AliasAttributes``), or its ``sub``. In a pool whose
  UsernameAttributes are email/phone_number the stored username is the ``sub`` (a UUID) and the e-mail address an
  alias, as Cognito does. Aliases are unique per pool (claimed in the same script as the user's write).
* Passwords: the pool's policy, then an argon2id hash (in a thread) and an SRP verifier (sealed); setting one raises
  the user's generation (every token issued before dies: ``syncsvc.userpools.tokens`` checks it).
* Failed sign-ins: from the 5th failure within 15 minutes the user is locked out for 1 s, 2 s, 4 s … up to 15 minutes
  (AWS's "Password attempts exceeded").

(About 460 lines on purpose: pools, clients, users and groups share one store and one sealing, and each operation is
a few lines over them; sign-up and codes live in ``accounts.py``, records' encoding in ``records.py``.)
"""

from __future__ import annotations

import asyncio
import secrets
import string
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

import orjson

from syncsvc.clock import Clock
from syncsvc.errors import (
    AliasExistsError,
    GroupExistsError,
    InvalidParameterError,
    UsernameExistsError,
    UserNotFoundError,
    UserPoolNotFoundError,
)
from syncsvc.store.userpools import RedisUserPools, StaleUserError, StoredUser
from syncsvc.userpools import passwords, records, srp
from syncsvc.userpools.model import (
    AppClient,
    Group,
    User,
    UserPool,
    UserPoolSettings,
    UserPoolSpec,
    UserStatus,
    check_validities,
    refuse_unserved,
)
from syncsvc.userpools.sealing import PoolSecrets

_ID_ALPHABET = string.ascii_letters + string.digits
_CLIENT_ALPHABET = string.ascii_lowercase + string.digits
FAILURE_WINDOW_MS = 15 * 60 * 1000
FAILURES_BEFORE_LOCKOUT = 5
LONGEST_LOCKOUT_MS = 15 * 60 * 1000
_DAY_MS = 86_400_000


def _random(alphabet: str, size: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(size))


class UserDirectory:
    def __init__(
        self, store: RedisUserPools, secrets_: PoolSecrets, *, region: str, account: str, clock: Clock
    ) -> None:
        self._store = store
        self._secrets = secrets_
        self._region = region
        self._account = account
        self._clock = clock

    # --- pools ------------------------------------------------------------------------------------------------------

    async def create_pool(self, spec: UserPoolSpec) -> UserPool:
        refuse_unserved(spec)
        now = self._clock.now_ms() / 1000
        while True:
            pool_id = f"{self._region}_{_random(_ID_ALPHABET, 9)}"
            given = spec.model_dump(exclude_none=True, exclude={"PoolName", "Schema"})
            pool = UserPool.model_validate(
                {
                    **given,
                    "Id": pool_id,
                    "Name": spec.PoolName,
                    "Arn": f"arn:aws:cognito-idp:{self._region}:{self._account}:userpool/{pool_id}",
                    "CreationDate": now,
                    "LastModifiedDate": now,
                    "SchemaAttributes": [a.model_dump(exclude_none=True) for a in spec.Schema or ()] or None,
                }
            )
            if await self._store.put_pool(pool_id, pool.model_dump(exclude_none=True), new=True):
                return pool

    async def pool(self, pool_id: str) -> UserPool:
        stored = await self._store.pool(pool_id)
        if stored is None:
            raise UserPoolNotFoundError(f"User pool {pool_id} does not exist.")
        return UserPool.model_validate_json(stored, strict=False)

    async def describe_pool(self, pool_id: str) -> UserPool:
        """The pool with its EstimatedNumberOfUsers counted."""
        pool = await self.pool(pool_id)
        return pool.model_copy(update={"EstimatedNumberOfUsers": await self._store.count_users(pool_id)})

    async def update_pool(self, pool_id: str, settings: UserPoolSettings) -> UserPool:
        """Replaces the pool's settings with ``settings`` (members left out return to their defaults, as in AWS)."""
        refuse_unserved(settings)
        pool = await self.pool(pool_id)
        kept = pool.model_dump(
            include={
                "Id",
                "Name",
                "Arn",
                "CreationDate",
                "AliasAttributes",
                "UsernameAttributes",
                "SchemaAttributes",
                "UsernameConfiguration",
            },
            exclude_none=True,
        )
        updated = UserPool.model_validate(
            {**settings.model_dump(exclude_none=True), **kept, "LastModifiedDate": self._clock.now_ms() / 1000}
        )
        if settings.PoolName:
            updated = updated.model_copy(update={"Name": settings.PoolName})
        if not await self._store.put_pool(pool_id, updated.model_dump(exclude_none=True), new=False):
            raise UserPoolNotFoundError(f"User pool {pool_id} does not exist.")
        return updated

    async def delete_pool(self, pool_id: str) -> None:
        if not await self._store.delete_pool(pool_id):
            raise UserPoolNotFoundError(f"User pool {pool_id} does not exist.")

    async def pools(self, *, after: str | None, limit: int) -> list[UserPool]:
        pools = []
        for pool_id in await self._store.pool_ids(after=after, limit=limit):
            stored = await self._store.pool(pool_id)
            if stored is not None:
                pools.append(UserPool.model_validate_json(stored, strict=False))
        return pools

    # --- app clients ------------------------------------------------------------------------------------------------

    async def create_client(self, pool_id: str, settings: Mapping[str, Any], *, generate_secret: bool) -> AppClient:
        await self.pool(pool_id)
        now = self._clock.now_ms() / 1000
        secret = _random(_ID_ALPHABET, 51) if generate_secret else None
        while True:
            client_id = _random(_CLIENT_ALPHABET, 26)
            client = AppClient.model_validate(
                {
                    **settings,
                    "UserPoolId": pool_id,
                    "ClientId": client_id,
                    "ClientSecret": secret,
                    "CreationDate": now,
                    "LastModifiedDate": now,
                }
            )
            check_validities(client)
            if await self._store.put_client(pool_id, client_id, self._sealed(client), new=True):
                return client

    def _sealed(self, client: AppClient) -> str:
        stored = client.model_dump(exclude_none=True)
        if client.ClientSecret is not None:
            stored["ClientSecret"] = self._secrets.seal(f"client:{client.ClientId}", client.ClientSecret.encode())
        return orjson.dumps(stored).decode()

    def _opened(self, stored: str) -> AppClient:
        raw = orjson.loads(stored)
        if "ClientSecret" in raw:
            raw["ClientSecret"] = self._secrets.open(f"client:{raw['ClientId']}", raw["ClientSecret"]).decode()
        return AppClient.model_validate(raw, strict=False)

    async def client(self, pool_id: str, client_id: str) -> AppClient:
        await self.pool(pool_id)
        stored = await self._store.app_client(pool_id, client_id)
        if stored is None:
            raise UserPoolNotFoundError(f"User pool client {client_id} does not exist.")
        return self._opened(stored)

    async def client_by_id(self, client_id: str) -> tuple[UserPool, AppClient]:
        pool_id = await self._store.client_pool(client_id)
        if pool_id is None:
            raise UserPoolNotFoundError(f"User pool client {client_id} does not exist.")
        return await self.pool(pool_id), await self.client(pool_id, client_id)

    async def clients(self, pool_id: str) -> list[AppClient]:
        await self.pool(pool_id)
        stored = await self._store.app_clients(pool_id)
        return sorted((self._opened(value) for value in stored.values()), key=lambda c: (c.CreationDate, c.ClientId))

    async def update_client(self, pool_id: str, client_id: str, settings: Mapping[str, Any]) -> AppClient:
        current = await self.client(pool_id, client_id)
        kept = current.model_dump(include={"UserPoolId", "ClientId", "ClientSecret", "CreationDate"}, exclude_none=True)
        client = AppClient.model_validate({**settings, **kept, "LastModifiedDate": self._clock.now_ms() / 1000})
        check_validities(client)
        await self._store.put_client(pool_id, client_id, self._sealed(client), new=False)
        return client

    async def delete_client(self, pool_id: str, client_id: str) -> None:
        await self.pool(pool_id)
        if not await self._store.delete_client(pool_id, client_id):
            raise UserPoolNotFoundError(f"User pool client {client_id} does not exist.")

    # --- users ------------------------------------------------------------------------------------------------------

    def _user(self, pool_id: str, stored: StoredUser) -> User:
        return records.user_of(self._secrets, pool_id, stored)

    def _stored(self, pool: UserPool, user: User, version: str) -> StoredUser:
        return records.stored_of(self._secrets, pool, user, version)

    async def find_user(self, pool_id: str, name: str) -> User | None:
        """The user whose username or alias is ``name``; None when there is none."""
        stored = await self._store.user(pool_id, name)
        if stored is None:
            for attribute in ("email", "phone_number", "preferred_username", "sub"):
                owner = await self._store.alias_owner(pool_id, records.alias_key(attribute, name))
                if owner is not None:
                    stored = await self._store.user(pool_id, owner)
                    break
        return None if stored is None else self._user(pool_id, stored)

    async def user(self, pool_id: str, username_or_alias: str) -> User:
        await self.pool(pool_id)
        found = await self.find_user(pool_id, username_or_alias)
        if found is None:
            raise UserNotFoundError("User does not exist.")
        return found

    async def create_user(
        self,
        pool: UserPool,
        username: str,
        attributes: Mapping[str, str],
        *,
        password: str | None,
        status: UserStatus,
        temporary: bool = False,
    ) -> User:
        """A new user. In a pool whose usernames are e-mail addresses/phone numbers, ``username`` is one of those (it
        fills the attribute when absent) and the stored username is the new ``sub``. UsernameExistsException."""
        attributes = dict(attributes)
        sub = str(uuid.uuid4())
        if pool.username_is_alias():
            kind = "email" if "@" in username else "phone_number"
            if kind not in (pool.UsernameAttributes or ()):
                raise InvalidParameterError(f"Username should be {' or '.join(pool.UsernameAttributes or ())}.")
            if attributes.setdefault(kind, username) != username:
                raise InvalidParameterError(f"The {kind} attribute must be the username.")
            username = sub
        now = self._clock.now_ms()
        user = User(pool.Id, username, sub, attributes, status, True, now, now)
        if password is not None:
            user = await self._with_password(pool, user, password, temporary=temporary)
        alias_error = UsernameExistsError if pool.username_is_alias() else AliasExistsError
        stored = self._stored(pool, user, "")
        await self._store.write_user(
            pool.Id, username, stored.fields(), version=None, claim=stored.aliases, alias_error=alias_error
        )
        return user

    async def change_user(
        self,
        pool_id: str,
        username: str,
        change: Callable[[User], User],
        *,
        new_generation: bool = False,
        touch: bool = True,
    ) -> User:
        """Applies ``change`` to the stored user (read, change, write if unchanged meanwhile; a few tries).
        ``touch``: the change is the user's (UserLastModifiedDate moves); not for bookkeeping such as a spent MFA
        code."""
        pool = await self.pool(pool_id)
        for _ in range(5):
            stored = await self._store.user(pool_id, username)
            if stored is None:
                raise UserNotFoundError("User does not exist.")
            user = change(self._user(pool_id, stored))
            if touch:
                user = replace(user, modified_ms=self._clock.now_ms())
            fresh = self._stored(pool, user, stored.version)
            alias_error = UsernameExistsError if pool.username_is_alias() else AliasExistsError
            try:
                generation = await self._store.write_user(
                    pool_id,
                    username,
                    fresh.fields(),
                    version=stored.version,
                    claim=fresh.aliases,
                    release=[key for key in stored.aliases if key not in fresh.aliases],
                    new_generation=new_generation,
                    alias_error=alias_error,
                )
            except StaleUserError:
                continue
            return replace(user, generation=generation)
        raise StaleUserError(username)

    async def delete_user(self, pool_id: str, username: str) -> None:
        user = await self.user(pool_id, username)
        if not await self._store.delete_user(pool_id, user.username):
            raise UserNotFoundError("User does not exist.")

    async def update_attributes(self, pool_id: str, username: str, attributes: Mapping[str, str]) -> User:
        """Sets attributes; a changed e-mail/phone is no longer verified (``*_verified`` false) unless given."""
        user = await self.user(pool_id, username)

        def change(current: User) -> User:
            merged = {**current.attributes, **attributes}
            for attribute in ("email", "phone_number"):
                changed = attribute in attributes and attributes[attribute] != current.attributes.get(attribute)
                if changed and f"{attribute}_verified" not in attributes:
                    merged[f"{attribute}_verified"] = "false"
            return replace(current, attributes=merged)

        return await self.change_user(pool_id, user.username, change)

    # --- passwords and sign-in ----------------------------------------------------------------------------------

    async def _with_password(self, pool: UserPool, user: User, password: str, *, temporary: bool) -> User:
        passwords.check_policy(pool.password_policy, password)
        hashed = await passwords.hash_password(password)
        # a 3072-bit modular exponentiation: off the event loop, like the argon2 hash
        salt, verifier = await asyncio.to_thread(srp.make_verifier, pool.Id, user.username, password)
        expires = None
        if temporary:
            expires = self._clock.now_ms() + pool.password_policy.TemporaryPasswordValidityDays * _DAY_MS
        return replace(user, password_hash=hashed, srp_salt=salt, srp_verifier=verifier, password_expires_ms=expires)

    async def check_password(self, pool: UserPool, user: User, password: str) -> bool:
        """Whether ``password`` is the user's (argon2 in a thread; same cost without a hash; never says why not). A
        temporary password past its validity no longer matches."""
        matches = await passwords.verify_password(user.password_hash, password)
        expired = user.password_expires_ms is not None and user.password_expires_ms <= self._clock.now_ms()
        return matches and not expired

    async def set_password(self, pool_id: str, username: str, password: str, *, permanent: bool) -> User:
        """Sets a password (policy first: InvalidPasswordException); permanent: CONFIRMED, else
        FORCE_CHANGE_PASSWORD. Raises the user's generation."""
        pool = await self.pool(pool_id)
        user = await self.user(pool_id, username)
        with_password = await self._with_password(pool, user, password, temporary=not permanent)
        status = UserStatus.CONFIRMED if permanent else UserStatus.FORCE_CHANGE_PASSWORD

        def change(current: User) -> User:
            return replace(
                current,
                status=status,
                password_hash=with_password.password_hash,
                srp_salt=with_password.srp_salt,
                srp_verifier=with_password.srp_verifier,
                password_expires_ms=with_password.password_expires_ms,
            )

        return await self.change_user(pool_id, user.username, change, new_generation=True)

    async def sign_out_everywhere(self, pool_id: str, username: str) -> None:
        user = await self.user(pool_id, username)
        await self.change_user(pool_id, user.username, lambda current: current, new_generation=True)

    async def note_failed_sign_in(self, pool_id: str, username: str) -> None:
        await self._store.note_failure(
            pool_id,
            username,
            now_ms=self._clock.now_ms(),
            window_ms=FAILURE_WINDOW_MS,
            threshold=FAILURES_BEFORE_LOCKOUT,
            max_lock_ms=LONGEST_LOCKOUT_MS,
        )

    async def sign_in_allowed(self, pool_id: str, username: str) -> bool:
        return await self._store.locked_until(pool_id, username) <= self._clock.now_ms()

    async def clear_failed_sign_ins(self, pool_id: str, username: str) -> None:
        """Forgets the failures (after a successful sign-in)."""
        await self._store.clear_failures(pool_id, username)

    # --- listing ----------------------------------------------------------------------------------------------------

    async def page_users(self, pool_id: str, *, after: str | None, limit: int) -> list[User]:
        """Up to ``limit`` users in username order after ``after``."""
        names = await self._store.usernames(pool_id, after=after, limit=limit)
        return [self._user(pool_id, stored) for stored in await self._store.users(pool_id, names)]

    # --- groups -----------------------------------------------------------------------------------------------------

    async def create_group(self, pool_id: str, name: str, **details: Any) -> Group:
        await self.pool(pool_id)
        now = self._clock.now_ms()
        group = Group(
            pool_id, name, details.get("description"), details.get("role_arn"), details.get("precedence"), now, now
        )
        if not await self._store.put_group(pool_id, name, orjson.dumps(group.wire()).decode(), new=True):
            raise GroupExistsError("A group with the name already exists.")
        return group

    async def group(self, pool_id: str, name: str) -> Group:
        await self.pool(pool_id)
        stored = await self._store.group(pool_id, name)
        if stored is None:
            raise UserPoolNotFoundError("Group not found.")
        return _group(orjson.loads(stored))

    async def groups(self, pool_id: str) -> list[Group]:
        await self.pool(pool_id)
        return sorted(
            (_group(orjson.loads(v)) for v in (await self._store.groups(pool_id)).values()), key=lambda g: g.name
        )

    async def set_membership(self, pool_id: str, group: str, username: str, *, member: bool) -> None:
        await self.group(pool_id, group)
        user = await self.user(pool_id, username)
        await self._store.set_membership(pool_id, group, user.username, member=member)

    async def groups_of(self, pool_id: str, username: str) -> list[str]:
        """The names of the user's groups (``cognito:groups``), sorted."""
        return await self._store.groups_of(pool_id, username)

    async def set_enabled(self, pool_id: str, username: str, *, enabled: bool) -> User:
        """Enables or disables a user; disabling also ends every session (tokens issued before die), as Cognito
        revokes them."""
        user = await self.user(pool_id, username)
        return await self.change_user(
            pool_id, user.username, lambda current: replace(current, enabled=enabled), new_generation=not enabled
        )

    async def delete_attributes(self, pool_id: str, username: str, names: Collection[str]) -> User:
        """Removes attributes (an e-mail address's or phone number's ``*_verified`` with it, and any alias it was);
        ``sub`` and the pool's UsernameAttributes cannot go (InvalidParameterException)."""
        pool = await self.pool(pool_id)
        kept = {"sub", *(pool.UsernameAttributes or ())}
        if refused := sorted(kept.intersection(names)):
            raise InvalidParameterError(f"Cannot delete the required attribute(s): {', '.join(refused)}")
        doomed = set(names) | {f"{name}_verified" for name in names if name in ("email", "phone_number")}
        user = await self.user(pool_id, username)

        def change(current: User) -> User:
            return replace(current, attributes={k: v for k, v in current.attributes.items() if k not in doomed})

        return await self.change_user(pool_id, user.username, change)


def _group(wire: Mapping[str, Any]) -> Group:
    return Group(
        pool_id=wire["UserPoolId"],
        name=wire["GroupName"],
        description=wire.get("Description"),
        role_arn=wire.get("RoleArn"),
        precedence=wire.get("Precedence"),
        created_ms=round(wire["CreationDate"] * 1000),
        modified_ms=round(wire["LastModifiedDate"] * 1000),
    )
