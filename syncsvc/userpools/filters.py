"""ListUsers' Filter: ``attribute = "value"`` (equals) or ``attribute ^= "value"`` (starts with), as Cognito parses it.

Searchable attributes are Cognito's: username, email, phone_number, name, given_name, family_name,
preferred_username, cognito:user_status (UNCONFIRMED, CONFIRMED, …), status (Enabled/Disabled) and sub. An empty
filter matches every user. Anything else is InvalidParameterException. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from syncsvc.errors import InvalidParameterError
from syncsvc.userpools.model import User

SEARCHABLE = frozenset(
    {
        "username",
        "email",
        "phone_number",
        "name",
        "given_name",
        "family_name",
        "preferred_username",
        "cognito:user_status",
        "status",
        "sub",
    }
)
_FILTER = re.compile(r'^\s*([\w:]+)\s*(=|\^=)\s*"((?:[^"\\]|\\.)*)"\s*$')


@dataclass(frozen=True, slots=True)
class UserFilter:
    attribute: str
    prefix: bool
    value: str

    @classmethod
    def parse(cls, text: str) -> UserFilter | None:
        """The filter ``text`` states (None for an empty one); InvalidParameterException when it is not one."""
        if not text.strip():
            return None
        found = _FILTER.match(text)
        if found is None:
            raise InvalidParameterError("Error while parsing filter.")
        attribute, operator, value = found.groups()
        if attribute not in SEARCHABLE:
            raise InvalidParameterError(f"Invalid search attribute: {attribute}")
        return cls(attribute, operator == "^=", re.sub(r"\\(.)", r"\1", value))

    def matches(self, user: User) -> bool:
        actual = _value_of(self.attribute)(user)
        if actual is None:
            return False
        return actual.startswith(self.value) if self.prefix else actual == self.value


def _value_of(attribute: str) -> Callable[[User], str | None]:
    special: dict[str, Callable[[User], str | None]] = {
        "username": lambda user: user.username,
        "sub": lambda user: user.sub,
        "cognito:user_status": lambda user: user.status.value,
        "status": lambda user: "Enabled" if user.enabled else "Disabled",
    }
    return special.get(attribute, lambda user: user.attributes.get(attribute))
