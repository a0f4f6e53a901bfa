"""CognitoSource: reads one identity pool of a live Cognito Sync (AWS itself, or any wire-compatible server) through
the public APIs only, with boto3, into the shapes of :mod:`syncsvc.migration.model`.

What it calls: Cognito Identity ListIdentities (``HideDisabled=False``, paged), DescribeIdentity (only when a listing
lacks an identity's logins or dates), DescribeIdentityPool and, when asked, LookupDeveloperIdentity (one per identity
linked to the pool's developer provider: the developer user ids, the only login subjects the public API gives);
Cognito Sync ListDatasets, ListRecords (``LastSyncCount=0``, every page, tombstones included), GetCognitoEvents and
GetIdentityPoolConfiguration. It writes nothing anywhere.

boto3 blocks, so every call runs in a thread (``asyncio.to_thread``), at most ``concurrency`` at a time (a
semaphore, and as many pooled HTTP connections); botocore retries throttling and 5xx answers itself (standard mode).
A failure that is not retried, or still fails, is a :class:`SourceError`: one line for the operator.
"""

from __future__ import annotations

import asyncio
import csv
import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
import botocore.exceptions
from botocore.config import Config

from syncsvc.migration.model import SourceDataset, SourceIdentity, SourcePool, SourceRecord
from syncsvc.model import Login

T = TypeVar("T")

#: ListIdentities / LookupDeveloperIdentity MaxResults: the most the API allows.
IDENTITY_PAGE = 60
#: ListRecords MaxResults (what the SDKs send) and ListDatasets MaxResults.
RECORD_PAGE = 1024
DATASET_PAGE = 64
#: How some pools name the developer provider among an identity's DescribeIdentity logins.
COGNITO_DEVELOPER_LOGIN = "cognito-identity.amazonaws.com"


class SourceError(Exception):
    """The source could not be read; ``str()`` is one line naming the call and the reason, ``code`` the source's
    error code ("" when it did not answer)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SourceAccess:
    """Where the source is and who reads it: ``profile`` (a named profile), or an explicit key pair, or else
    boto3's default credential chain (environment, shared files, instance role)."""

    region: str
    endpoint_url: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    #: botocore attempts per call (standard retry mode: throttling, 5xx and LimitExceeded are retried with backoff).
    max_attempts: int = 8

    def session(self) -> boto3.session.Session:
        if self.profile is not None:
            return boto3.session.Session(profile_name=self.profile, region_name=self.region)
        return boto3.session.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            region_name=self.region,
        )


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """One dataset as ListDatasets gives it (no sync count: ListRecords gives that)."""

    name: str
    created_ms: int
    last_modified_ms: int
    last_modified_by: str


@dataclass(frozen=True, slots=True)
class IdentityPage:
    """One ListIdentities page, every identity completed; ``next_token`` None on the last page."""

    identities: tuple[SourceIdentity, ...]
    next_token: str | None


@dataclass(slots=True)
class CallCounts:
    """Calls made to the source, by operation (for the summary)."""

    calls: dict[str, int] = field(default_factory=dict)

    def add(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1


def epoch_ms(value: Any) -> int:
    """A botocore timestamp (a datetime; a number if a parser gave one) as epoch milliseconds."""
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
        return round(moment.timestamp() * 1000)
    return round(float(value) * 1000)


def read_logins_file(path: Path) -> dict[str, tuple[Login, ...]]:
    """An operator's CSV of known login subjects, ``identity_id,provider,subject`` per line (a header line naming
    those columns is allowed): identity id -> its logins. ValueError (naming the line) when a line is malformed."""
    logins: dict[str, list[Login]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or (number == 1 and [cell.strip() for cell in row] == ["identity_id", "provider", "subject"]):
                continue
            cells = [cell.strip() for cell in row]
            if len(cells) != 3 or not all(cells):
                raise ValueError(f"{path}:{number}: expected identity_id,provider,subject, got {len(cells)} fields")
            identity_id, provider, subject = cells
            if (provider, subject) not in logins.setdefault(identity_id, []):
                logins[identity_id].append((provider, subject))
    return {identity_id: tuple(pairs) for identity_id, pairs in logins.items()}


class CognitoSource:
    """The source pool ``pool_id``, read through ``access``. ``developer_users``: look the developer user ids up
    (LookupDeveloperIdentity, one call per developer-authenticated identity). ``known_logins``: identity id ->
    logins the operator knows (``--logins-file``), added to what the source gives."""

    def __init__(
        self,
        access: SourceAccess,
        pool_id: str,
        *,
        concurrency: int = 8,
        developer_users: bool = False,
        known_logins: Mapping[str, Sequence[Login]] | None = None,
    ) -> None:
        self.pool_id = pool_id
        self.developer_users = developer_users
        self.known_logins = dict(known_logins or {})
        self.counts = CallCounts()
        self._gate = asyncio.Semaphore(concurrency)
        self._developer_provider: str | None = None
        session = access.session()
        config = Config(
            retries={"mode": "standard", "max_attempts": access.max_attempts},
            max_pool_connections=max(concurrency, 1),
            connect_timeout=10,
            read_timeout=60,
        )
        self._identity = session.client("cognito-identity", endpoint_url=access.endpoint_url, config=config)
        self._sync = session.client("cognito-sync", endpoint_url=access.endpoint_url, config=config)

    async def _call(self, client: Any, operation: str, **params: Any) -> dict[str, Any]:
        """One API call in a thread, within the concurrency bound; SourceError when it fails for good."""
        method: Callable[..., dict[str, Any]] = getattr(client, operation)
        name = client.meta.method_to_api_mapping.get(operation, operation)
        self.counts.add(name)
        async with self._gate:
            try:
                answer = await asyncio.to_thread(method, **params)
            except botocore.exceptions.ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                message = f"{exc.operation_name}: {code or 'error'}: {error.get('Message', '')}".rstrip(": ")
                raise SourceError(message, code) from None
            except botocore.exceptions.BotoCoreError as exc:
                raise SourceError(f"{name}: {exc}") from None
        answer.pop("ResponseMetadata", None)
        return answer

    # --- the pool -----------------------------------------------------------------------------------------------

    async def pool(self) -> SourcePool:
        """DescribeIdentityPool, GetIdentityPoolConfiguration and GetCognitoEvents."""
        description = await self._call(self._identity, "describe_identity_pool", IdentityPoolId=self.pool_id)
        configuration, events = await asyncio.gather(
            self._call(self._sync, "get_identity_pool_configuration", IdentityPoolId=self.pool_id),
            self._call(self._sync, "get_cognito_events", IdentityPoolId=self.pool_id),
        )
        self._developer_provider = description.get("DeveloperProviderName")
        sync_configuration = {
            member: configuration[member] for member in ("PushSync", "CognitoStreams") if configuration.get(member)
        }
        return SourcePool(
            identity_pool_id=self.pool_id,
            description=description,
            sync_configuration=sync_configuration,
            events=dict(events.get("Events") or {}),
        )

    # --- identities ---------------------------------------------------------------------------------------------

    async def identity_page(self, next_token: str | None) -> IdentityPage:
        """One ListIdentities page (disabled identities included), each identity completed concurrently."""
        params: dict[str, Any] = {"IdentityPoolId": self.pool_id, "MaxResults": IDENTITY_PAGE, "HideDisabled": False}
        if next_token:
            params["NextToken"] = next_token
        listed = await self._call(self._identity, "list_identities", **params)
        identities = await asyncio.gather(*(self._identity_of(item) for item in listed.get("Identities") or []))
        return IdentityPage(tuple(identities), listed.get("NextToken") or None)

    async def _identity_of(self, listed: Mapping[str, Any]) -> SourceIdentity:
        description = listed
        if any(member not in listed for member in ("Logins", "CreationDate", "LastModifiedDate")):
            description = await self._call(self._identity, "describe_identity", IdentityId=listed["IdentityId"])
        identity_id = str(description["IdentityId"])
        providers = tuple(str(provider) for provider in description.get("Logins") or ())
        logins = list(self.known_logins.get(identity_id, ()))
        for login in await self._developer_logins(identity_id, providers):
            if login not in logins:
                logins.append(login)
        created = description.get("CreationDate")
        modified = description.get("LastModifiedDate", created)
        return SourceIdentity(
            identity_id=identity_id,
            created_ms=epoch_ms(created) if created is not None else 0,
            modified_ms=epoch_ms(modified) if modified is not None else 0,
            providers=providers,
            logins=tuple(logins),
        )

    async def _developer_logins(self, identity_id: str, providers: Sequence[str]) -> list[Login]:
        """The developer user ids of the identity (LookupDeveloperIdentity, every page), when asked for and the
        identity is linked to the pool's developer provider."""
        provider = self._developer_provider
        if not self.developer_users or not provider:
            return []
        if provider not in providers and COGNITO_DEVELOPER_LOGIN not in providers:
            return []
        users: list[Login] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "IdentityPoolId": self.pool_id,
                "IdentityId": identity_id,
                "MaxResults": IDENTITY_PAGE,
            }
            if token:
                params["NextToken"] = token
            found = await self._call(self._identity, "lookup_developer_identity", **params)
            users.extend((provider, str(user)) for user in found.get("DeveloperUserIdentifierList") or ())
            token = found.get("NextToken") or None
            if token is None:
                return users

    # --- datasets -----------------------------------------------------------------------------------------------

    async def datasets(self, identity_id: str) -> list[DatasetSummary]:
        """ListDatasets, every page: the identity's live datasets (the source does not list deleted ones)."""
        summaries: list[DatasetSummary] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "IdentityPoolId": self.pool_id,
                "IdentityId": identity_id,
                "MaxResults": DATASET_PAGE,
            }
            if token:
                params["NextToken"] = token
            listed = await self._call(self._sync, "list_datasets", **params)
            for item in listed.get("Datasets") or ():
                created = item.get("CreationDate")
                modified = item.get("LastModifiedDate", created)
                summaries.append(
                    DatasetSummary(
                        name=str(item["DatasetName"]),
                        created_ms=epoch_ms(created) if created is not None else 0,
                        last_modified_ms=epoch_ms(modified) if modified is not None else 0,
                        last_modified_by=str(item.get("LastModifiedBy") or ""),
                    )
                )
            token = listed.get("NextToken") or None
            if token is None:
                return summaries

    async def dataset(self, identity_id: str, summary: DatasetSummary) -> SourceDataset:
        """ListRecords(LastSyncCount=0), every page, tombstones included. A record written while the pages are read
        may come twice (its new copy on a later page): the copy with the highest sync count is kept, and the
        dataset's sync count is the highest any page reported."""
        records: dict[str, SourceRecord] = {}
        sync_count = 0
        last_modified_by = summary.last_modified_by
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "IdentityPoolId": self.pool_id,
                "IdentityId": identity_id,
                "DatasetName": summary.name,
                "LastSyncCount": 0,
                "MaxResults": RECORD_PAGE,
            }
            if token:
                params["NextToken"] = token
            page = await self._call(self._sync, "list_records", **params)
            sync_count = max(sync_count, int(page.get("DatasetSyncCount") or 0))
            last_modified_by = str(page.get("LastModifiedBy") or last_modified_by)
            for item in page.get("Records") or ():
                record = _record(item)
                kept = records.get(record.key)
                if kept is None or record.sync_count >= kept.sync_count:
                    records[record.key] = record
            token = page.get("NextToken") or None
            if token is None:
                break
        ordered = tuple(sorted(records.values(), key=lambda record: (record.sync_count, record.key)))
        newest = max((record.last_modified_ms for record in ordered), default=summary.last_modified_ms)
        return SourceDataset(
            identity_id=identity_id,
            name=summary.name,
            sync_count=sync_count,
            created_ms=summary.created_ms,
            last_modified_ms=max(summary.last_modified_ms, newest),
            last_modified_by=last_modified_by,
            records=ordered,
        )

    def close(self) -> None:
        """Closes the HTTP connection pools of both clients."""
        self._identity.close()
        self._sync.close()


def _record(item: Mapping[str, Any]) -> SourceRecord:
    device = item.get("DeviceLastModifiedDate")
    return SourceRecord(
        key=str(item["Key"]),
        value=item.get("Value"),
        sync_count=int(item.get("SyncCount") or 0),
        last_modified_ms=epoch_ms(item["LastModifiedDate"]) if item.get("LastModifiedDate") is not None else 0,
        last_modified_by=str(item.get("LastModifiedBy") or ""),
        device_last_modified_ms=epoch_ms(device) if device is not None else None,
    )
