"""The domain's nouns: records, patches, datasets and usage. Plain frozen dataclasses (and one named tuple), no I/O.

Times are integer epoch milliseconds inside the service (the wire speaks epoch seconds, the stream milliseconds).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

from syncsvc.errors import InvalidParameterError


class Op(StrEnum):
    REPLACE = "replace"
    REMOVE = "remove"


class RecordOpener(Protocol):
    """Opens what the store holds of an identity's records (``syncsvc.kms.envelope.IdentityCipher``)."""

    def open(self, dataset: str, key: str, value: str | None) -> str | None: ...

    def open_name(self, dataset: str, stored_key: str, sealed: str | None) -> str: ...

    def open_records(self, dataset: str, records: Sequence[Record]) -> list[Record]:
        """``records`` as the store read them, with their names and values opened."""
        ...

    def token(self, dataset: str, key: str) -> str: ...


class RecordSealer(RecordOpener, Protocol):
    """Seals an identity's record values and names for the store (``syncsvc.kms.envelope.IdentityCipher``)."""

    def seal(self, dataset: str, key: str, value: str) -> str: ...

    def seal_name(self, dataset: str, key: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class RecordPatch:
    """One change a device asks for. ``version_vector`` (an extension) replaces the SyncCount check when given."""

    op: Op
    key: str
    value: str | None
    sync_count: int
    device_last_modified_ms: int | None = None
    version_vector: dict[str, int] | None = None


class Record(NamedTuple):
    """A stored record. ``value`` is None for a tombstone (a removed record kept so deltas carry the removal).

    As the store reads it, ``key`` is what Redis holds (a token in place of the name) with the name sealed in
    ``sealed_name``, and ``value`` is sealed; ``RecordOpener.open_records`` gives the record with both opened.

    A named tuple rather than a frozen dataclass like its neighbours: as immutable, and a full pull builds 2,048 of
    them (read, then opened), where a frozen dataclass's ``__init__`` cost 0.6 µs more each (~10% of the pull)."""

    key: str
    value: str | None
    sync_count: int
    last_modified_ms: int
    last_modified_by: str
    device_last_modified_ms: int | None
    version_vector: dict[str, int]
    sealed_name: str | None = None


@dataclass(frozen=True, slots=True)
class Dataset:
    identity_id: str
    name: str
    created_ms: int
    modified_ms: int
    modified_by: str
    storage_bytes: int
    num_records: int
    sync_count: int
    version_vector: dict[str, int]


@dataclass(frozen=True, slots=True)
class DatasetState:
    """What ListRecords needs to know about a dataset, live or not."""

    exists: bool
    sync_count: int
    #: The sync count at which the dataset was last deleted (0 if never).
    purged_at: int
    modified_by: str | None
    version_vector: dict[str, int]
    #: Datasets merged into this one from other identities (``<name>.<source identity id>``).
    merged: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A committed UpdateRecords: the records as written, in patch order."""

    records: list[Record]
    sync_count: int
    #: True when this is the result of an earlier identical request by the same writer (an idempotent re-send).
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class IdentityUsage:
    identity_pool_id: str
    identity_id: str
    dataset_count: int
    storage_bytes: int
    modified_ms: int | None


@dataclass(frozen=True, slots=True)
class PoolUsage:
    identity_pool_id: str
    sync_sessions: int
    storage_bytes: int
    modified_ms: int | None


@dataclass(frozen=True, slots=True)
class Limits:
    """The quotas a write is checked against (Cognito's defaults, from Settings)."""

    max_datasets: int
    max_records: int
    max_bytes: int
    max_value_bytes: int
    max_key_length: int = 1024


class CallerKind(StrEnum):
    DEVELOPER = "developer"
    IDENTITY = "identity"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Standing:
    """What an identity caller was admitted on, for an operation that checks it in its own script instead of
    admission reading it first (one Redis round trip fewer; ``syncsvc.api.operations.Operation.checks_standing``):
    its profile still belongs to ``identity_pool_id`` with generation ``generation`` (a revocation raises it) and,
    when ``revision`` is set (a Bearer token, admitted on a cached profile), no login changed since (the profile's
    revision: every change of its logins raises it). A profile gone (a deleted or merged identity) never stands."""

    identity_pool_id: str
    identity_id: str
    generation: int
    revision: int | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request, once its credentials checked out.

    A developer (admin SigV4 credentials from settings) may act on any identity of an existing pool. An identity
    (temporary credentials or a Bearer token from GetOpenIdToken) may act only on its own data. Anonymous callers
    reach only the Cognito Identity operations that AWS marks as needing no signature (GetId and friends).
    """

    kind: CallerKind
    access_key_id: str = ""
    identity_id: str | None = None
    identity_pool_id: str | None = None
    #: Set only for an operation that checks it itself (see :class:`Standing`); otherwise admission checked already.
    standing: Standing | None = None

    @property
    def is_developer(self) -> bool:
        return self.kind is CallerKind.DEVELOPER

    @classmethod
    def developer(cls, access_key_id: str) -> Caller:
        return cls(CallerKind.DEVELOPER, access_key_id)

    @classmethod
    def identity(
        cls, identity_pool_id: str, identity_id: str, access_key_id: str = "", standing: Standing | None = None
    ) -> Caller:
        return cls(CallerKind.IDENTITY, access_key_id, identity_id, identity_pool_id, standing)


ANONYMOUS = Caller(CallerKind.ANONYMOUS)


#: Cognito's IdentityId (and IdentityPoolId) and DatasetName patterns, to be matched whole (``re.fullmatch``): with
#: ``re.match``, a ``$`` would also match before a final newline, and ``<id>\n`` would name a second, orphan identity.
#: AWS's patterns are Java regexes, whose ``\w``, ``\d`` and ``\s`` are ASCII; Python's and Rust's (pydantic) are
#: Unicode, so every pattern here spells the ASCII classes out.
IDENTITY_ID_PATTERN = r"[A-Za-z0-9_-]+:[0-9a-f-]+"
DATASET_NAME_PATTERN = r"[a-zA-Z0-9_.:-]{1,128}"
_IDENTITY_ID = re.compile(IDENTITY_ID_PATTERN)
_DATASET_NAME = re.compile(DATASET_NAME_PATTERN)


def check_identity_id(identity_id: str) -> None:
    if not 1 <= len(identity_id) <= 55 or not _IDENTITY_ID.fullmatch(identity_id):
        raise InvalidParameterError(f"IdentityId '{identity_id[:60]}' is not of the form <region>:<uuid>")


def check_dataset_name(name: str) -> None:
    if not _DATASET_NAME.fullmatch(name):
        raise InvalidParameterError(
            f"DatasetName '{name[:140]}' must be 1-128 characters of a-z, A-Z, 0-9, '_', '.', ':' and '-'"
        )


# The ranges of the numbers a request carries, checked where requests are parsed (``syncsvc.api``), so that nothing
# past them reaches the store's encoders (orjson stops at 64 bits) or its scripts.

#: SyncCount, LastSyncCount: AWS's Long, a signed 64-bit integer, as the SDKs hold it. The service hands out sync
#: counts from 1, one per write, so a count near the top never matches a stored record: it is a conflict, not an
#: error.
MAX_SYNC_COUNT = 2**63 - 1
#: The largest integer the store keeps exactly. update_records.lua keeps device dates and version-vector counters in
#: JSON written by Redis's cjson, which prints numbers with 14 significant digits: 99,999,999,999,999 is kept as it
#: is, 100,000,000,000,001 comes back as 1e+14. A larger value would be stored as another one (a vector a client can
#: never send back; a date off by milliseconds), so none is accepted.
MAX_STORED_INTEGER = 10**14 - 1
#: A version-vector counter: one per write of its writer, so the bound is no limit a real client meets.
MAX_VECTOR_COUNTER = MAX_STORED_INTEGER
#: DeviceLastModifiedDate, epoch ms, from 1970 (dates are not negative) to 5138-11-16T09:46:39.999Z: the latest date
#: the store keeps to the millisecond. Dates must be finite (no Infinity or NaN).
MAX_DATE_MS = MAX_STORED_INTEGER


Login = tuple[str, str]
"""A login: (provider name, subject). The provider is the ``Logins`` map key (``accounts.google.com``, an OIDC
issuer host, or the pool's developer provider name); the subject is the provider's user id."""


@dataclass(frozen=True, slots=True)
class IdentityProfile:
    """A registered identity. ``generation`` rises whenever its credentials are revoked (unlink); ``revision`` with
    every change of its logins (see :class:`Standing`)."""

    identity_id: str
    identity_pool_id: str
    logins: tuple[Login, ...]
    created_ms: int
    modified_ms: int
    generation: int
    revision: int = 0

    @property
    def authenticated(self) -> bool:
        return bool(self.logins)

    def subjects(self, provider: str) -> list[str]:
        return [subject for name, subject in self.logins if name == provider]
