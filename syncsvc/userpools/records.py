"""How a user is kept: :class:`~syncsvc.userpools.model.User` to and from the store's
:class:`~syncsvc.store.userpools.StoredUser` (SRP material sealed), and the alias keys a user holds. No I/O."""

from __future__ import annotations

import orjson

from syncsvc.store.userpools import StoredUser
from syncsvc.userpools.model import User, UserPool, UserStatus
from syncsvc.userpools.sealing import PoolSecrets


def alias_key(attribute: str, value: str) -> str:
    """How an alias is indexed: e-mail addresses and preferred usernames compare without case."""
    return f"{attribute}:{value.lower() if attribute != 'phone_number' else value}"


def aliases_of(pool: UserPool, user: User) -> list[str]:
    """The alias keys ``user`` holds: ``sub`` always; a sign-in attribute when it is the username
    (UsernameAttributes), or when verified (AliasAttributes email/phone_number), or preferred_username."""
    held = [alias_key("sub", user.sub)]
    for attribute in sorted(pool.alias_attributes()):
        value = user.attributes.get(attribute)
        if value is None:
            continue
        verified = user.attributes.get(f"{attribute}_verified") == "true"
        if attribute in (pool.UsernameAttributes or ()) or attribute == "preferred_username" or verified:
            held.append(alias_key(attribute, value))
    return held


def user_of(secrets: PoolSecrets, pool_id: str, stored: StoredUser) -> User:
    salt = verifier = None
    if stored.sealed_srp:
        material = orjson.loads(secrets.open(f"srp:{pool_id}:{stored.username}", stored.sealed_srp))
        salt, verifier = bytes.fromhex(material["s"]), bytes.fromhex(material["v"])
    return User(
        pool_id=pool_id,
        username=stored.username,
        sub=stored.sub,
        attributes=stored.attributes,
        status=UserStatus(stored.status),
        enabled=stored.enabled,
        created_ms=stored.created_ms,
        modified_ms=stored.modified_ms,
        generation=stored.generation,
        password_hash=stored.password_hash,
        srp_salt=salt,
        srp_verifier=verifier,
        password_expires_ms=stored.password_expires_ms,
        mfa_options=stored.mfa_options,
    )


def stored_of(secrets: PoolSecrets, pool: UserPool, user: User, version: str) -> StoredUser:
    sealed = None
    if user.srp_salt is not None and user.srp_verifier is not None:
        material = orjson.dumps({"s": user.srp_salt.hex(), "v": user.srp_verifier.hex()})
        sealed = secrets.seal(f"srp:{pool.Id}:{user.username}", material)
    return StoredUser(
        username=user.username,
        sub=user.sub,
        attributes=user.attributes,
        status=user.status.value,
        enabled=user.enabled,
        created_ms=user.created_ms,
        modified_ms=user.modified_ms,
        generation=user.generation,
        password_hash=user.password_hash,
        sealed_srp=sealed,
        password_expires_ms=user.password_expires_ms,
        mfa_options=user.mfa_options,
        version=version,
        aliases=tuple(aliases_of(pool, user)),
    )
