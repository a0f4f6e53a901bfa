"""Who may use a KMS key: principals, key policies and grants, as pure functions (no I/O).

Principals (what callers are, as ARNs of the deployment's single account :data:`~syncsvc.kms.model.ACCOUNT`):

* a developer (SigV4 developer credentials): ``arn:aws:iam::000000000000:user/<access key id>``;
* an identity (its temporary credentials or token): ``arn:aws:sts::000000000000:assumed-role/Cognito/<identity id>``.

Key policies: a documented subset of KMS's language. A policy is ``{"Version": "…", "Statement": [ … ]}`` (a single
statement object is accepted too); each statement has ``Effect`` ``Allow`` or ``Deny``, ``Principal``
``{"AWS": "<principal ARN>" | ["…", …] | "*"}`` (or ``"*"``), ``Action`` ``kms:<Operation>``, ``kms:*`` or ``*`` (a
string or a list; ``*`` and ``?`` are wildcards, matched case-insensitively as IAM does), optionally ``Sid`` and
``Resource`` (ignored: a key policy is about its own key). ``Condition``, ``NotPrincipal`` and ``NotAction`` are not
supported (MalformedPolicyDocumentException). The account root ``arn:aws:iam::000000000000:root`` stands for every
developer of the deployment (KMS: the root delegates to IAM, and a developer holds every IAM permission); ``*``
stands for every caller. Evaluation: an explicit Deny wins, then an Allow; nothing matching denies.

Decision (:func:`allowed`): a principal may perform an operation on a key when no statement of the key's policy
denies it, and either the caller is a developer whom the policy allows, or a grant on the key names the principal
as its GranteePrincipal, lists the operation and its constraints hold for the request's encryption context
(EncryptionContextEquals: exactly that context; EncryptionContextSubset: those pairs among the context's). So an
identity reaches a key only through a grant, and an explicit Deny in the key policy beats a grant, as in KMS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal, get_args

import orjson

from syncsvc.errors import InvalidArnError, MalformedPolicyDocumentError
from syncsvc.kms.model import ACCOUNT
from syncsvc.model import Caller

ROOT = f"arn:aws:iam::{ACCOUNT}:root"
DEVELOPER_PREFIX = f"arn:aws:iam::{ACCOUNT}:user/"
IDENTITY_PREFIX = f"arn:aws:sts::{ACCOUNT}:assumed-role/Cognito/"
MAX_POLICY_CHARS = 131072
#: KMS's default key policy ("Enable IAM User Permissions"): every developer of the deployment may do everything.
DEFAULT_POLICY = orjson.dumps(
    {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": ROOT},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    },
    option=orjson.OPT_INDENT_2,
).decode()
#: CreateGrant's Operations (KMS's GrantOperation enum).
GrantOperation = Literal[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
    "Encapsulate",
    "Decapsulate",
]
GRANT_OPERATIONS: tuple[str, ...] = get_args(GrantOperation)
Effect = Literal["Allow", "Deny"]
Decision = Literal["allow", "deny", "none"]
_STATEMENT_MEMBERS = {"Sid", "Effect", "Principal", "Action", "Resource"}
#: A principal a grant may name (matched in full: ``$`` would also match before a final newline).
_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:.+")


def developer_principal(access_key_id: str) -> str:
    return f"{DEVELOPER_PREFIX}{access_key_id}"


def identity_principal(identity_id: str) -> str:
    return f"{IDENTITY_PREFIX}{identity_id}"


def principal_of(caller: Caller) -> str:
    """The caller as a principal ARN (see the module docstring)."""
    if caller.is_developer:
        return developer_principal(caller.access_key_id)
    return identity_principal(caller.identity_id or "")


def check_principal(member: str, principal: str | None) -> None:
    """InvalidArnException unless ``principal`` (CreateGrant's ``member``), when given, is an IAM or STS ARN."""
    if principal is not None and not _PRINCIPAL.fullmatch(principal):
        raise InvalidArnError(f"{member} {principal[:256]} is not a valid IAM or STS principal ARN")


@dataclass(frozen=True, slots=True)
class Statement:
    effect: Effect
    principals: tuple[str, ...]
    actions: tuple[str, ...]

    def names(self, principal: str) -> bool:
        return any(_principal_matches(pattern, principal) for pattern in self.principals)

    def covers(self, action: str) -> bool:
        return any(_action_pattern(pattern).fullmatch(action) for pattern in self.actions)


@dataclass(frozen=True, slots=True)
class Policy:
    statements: tuple[Statement, ...]

    def decide(self, principal: str, action: str) -> Decision:
        """``deny`` when a Deny statement matches, else ``allow`` when an Allow one does, else ``none``."""
        matching = [s.effect for s in self.statements if s.names(principal) and s.covers(action)]
        if "Deny" in matching:
            return "deny"
        return "allow" if "Allow" in matching else "none"


def _principal_matches(pattern: str, principal: str) -> bool:
    if pattern in ("*", principal):
        return True
    return pattern == ROOT and principal.startswith(DEVELOPER_PREFIX)


@lru_cache(maxsize=512)
def _action_pattern(pattern: str) -> re.Pattern[str]:
    translated = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(translated, re.IGNORECASE)


def _malformed(message: str) -> MalformedPolicyDocumentError:
    return MalformedPolicyDocumentError(f"The key policy is malformed: {message}")


def _strings(value: Any, member: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) and item for item in items):
        raise _malformed(f"{member} must be a non-empty string or a non-empty list of strings")
    return tuple(items)


def _statement(raw: Any) -> Statement:
    if not isinstance(raw, dict):
        raise _malformed("every Statement must be a JSON object")
    if "Condition" in raw:
        raise _malformed("Condition is not supported by syncsvc's key policies (conditions are not supported)")
    unknown = sorted(set(raw) - _STATEMENT_MEMBERS)
    if unknown:
        raise _malformed(f"statement member(s) {', '.join(unknown)} are not supported")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise _malformed("Effect must be Allow or Deny")
    principal = raw.get("Principal")
    if principal == "*":
        principals: tuple[str, ...] = ("*",)
    elif isinstance(principal, dict) and set(principal) == {"AWS"}:
        principals = _strings(principal["AWS"], "Principal.AWS")
    else:
        raise _malformed('Principal must be "*" or {"AWS": <ARN, list of ARNs or "*">}')
    for name in principals:
        if name != "*" and not name.startswith("arn:"):
            raise _malformed(f"Principal {name[:256]} is not an ARN")
    actions = _strings(raw.get("Action"), "Action")
    for action in actions:
        if action != "*" and not action.lower().startswith("kms:"):
            raise _malformed(f"Action {action[:256]} is not a kms: action")
    return Statement(effect, principals, actions)


@lru_cache(maxsize=256)
def parse_policy(text: str) -> Policy:
    """A key policy document checked and parsed; MalformedPolicyDocumentException when it is not JSON, too long or
    not of the supported shape (see the module docstring). Cached: every read of a key parses its policy."""
    if len(text) > MAX_POLICY_CHARS:
        raise _malformed(f"it is longer than {MAX_POLICY_CHARS} characters")
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _malformed("it is not valid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("Version"), str) or "Statement" not in document:
        raise _malformed("it must be a JSON object with Version and Statement")
    if not set(document) <= {"Version", "Id", "Statement"}:
        raise _malformed("a policy has only Version, Id and Statement")
    raw = document["Statement"]
    raw_statements = [raw] if isinstance(raw, dict) else raw
    if not isinstance(raw_statements, list) or not raw_statements:
        raise _malformed("Statement must be a non-empty list of statements")
    return Policy(tuple(_statement(item) for item in raw_statements))


# --- grants ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """A grant on one key, as stored (JSON) and listed (:meth:`entry`)."""

    grant_id: str
    key_id: str
    grantee: str
    operations: tuple[str, ...]
    created_ms: int
    retiring: str | None = None
    name: str | None = None
    context_equals: dict[str, str] | None = None
    context_subset: dict[str, str] | None = None

    def stored(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_stored(cls, raw: bytes | str) -> Grant:
        fields = orjson.loads(raw)
        fields["operations"] = tuple(fields["operations"])
        return cls(**fields)

    def permits(self, principal: str, operation: str, context: Mapping[str, str]) -> bool:
        """This grant lets ``principal`` perform ``operation`` with this encryption context."""
        if self.grantee != principal or operation not in self.operations:
            return False
        if self.context_equals is not None and dict(context) != self.context_equals:
            return False
        return self.context_subset is None or all(context.get(k) == v for k, v in self.context_subset.items())

    def entry(self, key_arn: str) -> dict[str, Any]:
        """KMS's GrantListEntry."""
        wire: dict[str, Any] = {
            "KeyId": key_arn,
            "GrantId": self.grant_id,
            "CreationDate": self.created_ms / 1000,
            "GranteePrincipal": self.grantee,
            "IssuingAccount": ROOT,
            "Operations": list(self.operations),
        }
        if self.name is not None:
            wire["Name"] = self.name
        if self.retiring is not None:
            wire["RetiringPrincipal"] = self.retiring
        constraints: dict[str, Any] = {}
        if self.context_subset is not None:
            constraints["EncryptionContextSubset"] = self.context_subset
        if self.context_equals is not None:
            constraints["EncryptionContextEquals"] = self.context_equals
        if constraints:
            wire["Constraints"] = constraints
        return wire


def allowed(
    policy: Policy,
    grants: Iterable[Grant],
    principal: str,
    operation: str,
    *,
    developer: bool,
    context: Mapping[str, str] | None = None,
) -> bool:
    """Whether ``principal`` may perform ``operation`` (a KMS operation name, or ReEncryptFrom/ReEncryptTo) on the
    key of ``policy`` and ``grants`` (see the module docstring)."""
    decision = policy.decide(principal, f"kms:{operation}")
    if decision == "deny":
        return False
    if developer and decision == "allow":
        return True
    return any(grant.permits(principal, operation, context or {}) for grant in grants)
