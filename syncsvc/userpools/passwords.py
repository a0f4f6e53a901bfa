"""Passwords: the pool's password policy and argon2id hashing.

Hashing is CPU- and memory-heavy by design (argon2-cffi's ``PasswordHasher`` defaults: argon2id, 64 MiB, 3 passes),
so it runs in a worker thread, never on the event loop. :func:`check_policy` names the first rule a password breaks,
in Cognito's words (``Password did not conform with policy: Password must have uppercase characters``).
"""

from __future__ import annotations

import asyncio
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from syncsvc.errors import InvalidPasswordError
from syncsvc.userpools.model import PasswordPolicyType

#: Cognito's symbols: ^ $ * . [ ] { } ( ) ? " ! @ # % & / \ , > < ' : ; | _ ~ ` = + - and the space.
SYMBOLS = frozenset("^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ")
_HASHER = PasswordHasher()
#: A hash of a password nobody knows: verified against when there is no user, so both take as long.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def check_policy(policy: PasswordPolicyType, password: str) -> None:
    """Raises InvalidPasswordException naming the first rule ``password`` breaks."""
    rules = [
        (len(password) >= policy.MinimumLength, "Password not long enough"),
        (not policy.RequireLowercase or any(c.islower() for c in password), "Password must have lowercase characters"),
        (not policy.RequireUppercase or any(c.isupper() for c in password), "Password must have uppercase characters"),
        (not policy.RequireNumbers or any(c.isdigit() for c in password), "Password must have numeric characters"),
        (not policy.RequireSymbols or any(c in SYMBOLS for c in password), "Password must have symbol characters"),
    ]
    for kept, rule in rules:
        if not kept:
            raise InvalidPasswordError(f"Password did not conform with policy: {rule}")
    if len(password) > 256 or password != password.strip():
        raise InvalidPasswordError("Password did not conform with policy: Password must not start or end with spaces")


def temporary_password(policy: PasswordPolicyType) -> str:
    """A random password that satisfies ``policy`` (AdminCreateUser without TemporaryPassword)."""
    pools = [string.ascii_lowercase, string.ascii_uppercase, string.digits, "!@#%&*-_=+"]
    picked = [secrets.choice(pool) for pool in pools]
    alphabet = "".join(pools)
    picked += [secrets.choice(alphabet) for _ in range(max(policy.MinimumLength, 12) - len(picked))]
    secrets.SystemRandom().shuffle(picked)
    return "".join(picked)


async def hash_password(password: str) -> str:
    """The argon2id hash (PHC string, salt included) of ``password``, computed in a worker thread."""
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the argon2 hash ``stored``; with no hash, a dummy verification of the same cost
    (so an unknown user or one without a password is not told apart by the time taken)."""
    return await asyncio.to_thread(_verify, stored, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
