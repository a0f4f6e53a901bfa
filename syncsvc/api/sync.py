"""Cognito Sync (rest-json, apiVersion 2014-06-30): one declarative operation per method + path.

:data:`SURFACE` is the surface's table of contents: each operation's route, input model, output shape, access rule
and the use-case it runs (:class:`~syncsvc.sync.SyncService`, bulk publish, push sync). Dispatch, authorization and
validation are ``syncsvc.api.operations``'s; a broken constraint is an InvalidParameterException in AWS's words. Path
labels arrive percent-encoded (``us-east-1%3A…``) and are decoded by the router. The push sync operations are in
``push.py``.
"""

from __future__ import annotations

from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,  # pydantic describes these TypedDicts on Python 3.11
)

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import TypedDict

from syncsvc import vv
from syncsvc.access import Access
from syncsvc.api import push, wire
from syncsvc.api.messages import INTEGER, LONG
from syncsvc.api.operations import Call, Operation, Query, Route, surface
from syncsvc.api.validation import EpochSeconds
from syncsvc.errors import InvalidParameterError, NotAuthorizedError
from syncsvc.identity.pools import CognitoStreamsSettings, PushSyncSettings, SyncConfiguration
from syncsvc.model import MAX_SYNC_COUNT, MAX_VECTOR_COUNTER, Caller, Op, RecordPatch
from syncsvc.runtime import Services

POOL = "/identitypools/{IdentityPoolId}"
IDENTITY = POOL + "/identities/{IdentityId}"
DATASET = IDENTITY + "/datasets/{DatasetName}"


class RecordPatchIn(BaseModel):
    """One RecordPatch. Its numbers are checked against the ranges in ``syncsvc.model`` (why those ranges: there):
    SyncCount a signed 64-bit Long, DeviceLastModifiedDate finite epoch seconds the store keeps to the millisecond,
    VersionVector counters what the store keeps exactly. Past them: InvalidParameterException naming the member."""

    model_config = ConfigDict(extra="forbid", strict=True)

    Op: Literal["replace", "remove"]
    Key: Annotated[str, StringConstraints(min_length=1)]
    Value: str | None = None
    SyncCount: Annotated[int, Field(ge=0, le=MAX_SYNC_COUNT)]
    DeviceLastModifiedDate: EpochSeconds | None = None
    #: syncsvc extension: the version vector the client last saw for this record; replaces the SyncCount check.
    #: Negative counters are refused by ``vv.normalize``.
    VersionVector: dict[str, Annotated[int, Field(le=MAX_VECTOR_COUNTER)]] | None = None

    def domain(self, index: int) -> RecordPatch:
        context = None
        if self.VersionVector is not None:
            try:
                context = vv.normalize(self.VersionVector)
            except ValueError as exc:
                raise InvalidParameterError(f"RecordPatches[{index}].VersionVector: {exc}") from None
        return RecordPatch(
            op=Op(self.Op),
            key=self.Key,
            value=self.Value,
            sync_count=self.SyncCount,
            device_last_modified_ms=(
                None if self.DeviceLastModifiedDate is None else wire.ms_from_seconds(self.DeviceLastModifiedDate)
            ),
            version_vector=context,
        )


class UpdateRecordsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    DeviceId: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    RecordPatches: list[RecordPatchIn] = []
    SyncSessionToken: Annotated[str, StringConstraints(min_length=1)]


class PoolConfigurationIn(BaseModel):
    """SetIdentityPoolConfiguration's body (the pool's Events are set with SetCognitoEvents only)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    PushSync: PushSyncSettings | None = None
    CognitoStreams: CognitoStreamsSettings | None = None


class CognitoEventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    Events: dict[str, str]


class NoInput(BaseModel):
    """The input of an operation whose inputs are all in its path and query: no body is read."""

    model_config = ConfigDict(extra="forbid", strict=True)


# --- outputs ---------------------------------------------------------------------------------------------------------


class Empty(TypedDict):
    pass


class ListRecordsOut(TypedDict):
    Records: list[wire.RecordOut]
    Count: int
    DatasetSyncCount: int
    DatasetExists: bool
    DatasetDeletedAfterRequestedSyncCount: bool
    MergedDatasetNames: list[str]
    SyncSessionToken: str
    VersionVector: dict[str, int]
    LastModifiedBy: NotRequired[str]
    NextToken: NotRequired[str]


class RecordsOut(TypedDict):
    Records: list[wire.RecordOut]


class DatasetOut(TypedDict):
    Dataset: wire.DatasetOut


class ListDatasetsOut(TypedDict):
    Datasets: list[wire.DatasetOut]
    Count: int
    NextToken: NotRequired[str]


class IdentityUsageOut(TypedDict):
    IdentityUsage: wire.IdentityUsageOut


class PoolUsageOut(TypedDict):
    IdentityPoolUsage: wire.PoolUsageOut


class ListPoolUsageOut(TypedDict):
    IdentityPoolUsages: list[wire.PoolUsageOut]
    Count: int
    MaxResults: int
    NextToken: NotRequired[str]


class ConfigurationOut(TypedDict):
    IdentityPoolId: str
    PushSync: NotRequired[dict[str, object]]
    CognitoStreams: NotRequired[dict[str, object]]


class EventsOut(TypedDict):
    Events: dict[str, str]


class PoolIdOut(TypedDict):
    IdentityPoolId: str


class BulkPublishDetailsOut(TypedDict):
    IdentityPoolId: str
    BulkPublishStatus: str
    BulkPublishStartTime: NotRequired[float]
    BulkPublishCompleteTime: NotRequired[float]
    FailureMessage: NotRequired[str]


# --- records and datasets ----------------------------------------------------------------------------------------


def _identity(call: Call[Any]) -> tuple[str, str]:
    return call.labels["IdentityPoolId"], call.labels["IdentityId"]


async def list_records(services: Services, call: Call[NoInput]) -> ListRecordsOut:
    result = await services.sync.list_records(
        call.caller,
        *_identity(call),
        call.labels["DatasetName"],
        last_sync_count=call.integer("lastSyncCount"),
        max_results=call.integer("maxResults"),
        next_token=call.text("nextToken"),
        session_token=call.text("syncSessionToken"),
    )
    output: ListRecordsOut = {
        "Records": [wire.record(item) for item in result.records],
        "Count": len(result.records),
        "DatasetSyncCount": result.dataset.sync_count,
        "DatasetExists": result.dataset.exists,
        "DatasetDeletedAfterRequestedSyncCount": result.deleted_after_requested,
        "MergedDatasetNames": list(result.dataset.merged),
        "SyncSessionToken": result.session_token,
        "VersionVector": result.dataset.version_vector,
    }
    if result.dataset.modified_by is not None:
        output["LastModifiedBy"] = result.dataset.modified_by
    if result.next_token is not None:
        output["NextToken"] = result.next_token
    return output


async def update_records(services: Services, call: Call[UpdateRecordsIn]) -> RecordsOut:
    given = call.given
    result = await services.sync.update_records(
        call.caller,
        *_identity(call),
        call.labels["DatasetName"],
        patches=[patch.domain(index) for index, patch in enumerate(given.RecordPatches)],
        session_token=given.SyncSessionToken,
        device_id=given.DeviceId,
        client_context=call.headers.get("x-amz-Client-Context"),
    )
    return {"Records": [wire.record(item) for item in result.records]}


async def describe_dataset(services: Services, call: Call[NoInput]) -> DatasetOut:
    found = await services.sync.describe_dataset(call.caller, *_identity(call), call.labels["DatasetName"])
    return {"Dataset": wire.dataset(found)}


async def delete_dataset(services: Services, call: Call[NoInput]) -> DatasetOut:
    deleted = await services.sync.delete_dataset(call.caller, *_identity(call), call.labels["DatasetName"])
    return {"Dataset": wire.dataset(deleted)}


async def list_datasets(services: Services, call: Call[NoInput]) -> ListDatasetsOut:
    datasets, token = await services.sync.list_datasets(
        call.caller,
        *_identity(call),
        max_results=call.integer("maxResults"),
        next_token=call.text("nextToken"),
    )
    output: ListDatasetsOut = {"Datasets": [wire.dataset(item) for item in datasets], "Count": len(datasets)}
    if token is not None:
        output["NextToken"] = token
    return output


# --- usage -----------------------------------------------------------------------------------------------------------


async def describe_identity_usage(services: Services, call: Call[NoInput]) -> IdentityUsageOut:
    usage = await services.sync.describe_identity_usage(call.caller, *_identity(call))
    return {"IdentityUsage": wire.identity_usage(usage)}


async def describe_identity_pool_usage(services: Services, call: Call[NoInput]) -> PoolUsageOut:
    usage = await services.pool_sync.describe_pool_usage(call.labels["IdentityPoolId"])
    return {"IdentityPoolUsage": wire.pool_usage(usage)}


async def list_identity_pool_usage(services: Services, call: Call[NoInput]) -> ListPoolUsageOut:
    usages, page_size, token = await services.pool_sync.list_pool_usage(
        max_results=call.integer("maxResults"), next_token=call.text("nextToken")
    )
    output: ListPoolUsageOut = {
        "IdentityPoolUsages": [wire.pool_usage(item) for item in usages],
        "Count": len(usages),
        "MaxResults": page_size,
    }
    if token is not None:
        output["NextToken"] = token
    return output


# --- pool configuration, events, bulk publish --------------------------------------------------------------------


def _configuration(pool_id: str, config: SyncConfiguration) -> ConfigurationOut:
    dumped = config.model_dump(exclude_none=True, exclude={"Events"})
    return {"IdentityPoolId": pool_id, **dumped}  # type: ignore[typeddict-item]


async def get_identity_pool_configuration(services: Services, call: Call[NoInput]) -> ConfigurationOut:
    pool_id = call.labels["IdentityPoolId"]
    return _configuration(pool_id, await services.pool_sync.configuration(pool_id))


async def set_identity_pool_configuration(services: Services, call: Call[PoolConfigurationIn]) -> ConfigurationOut:
    pool_id, given = call.labels["IdentityPoolId"], call.given
    change = SyncConfiguration(PushSync=given.PushSync, CognitoStreams=given.CognitoStreams)
    return _configuration(pool_id, await services.pool_sync.configure(pool_id, change))


async def get_cognito_events(services: Services, call: Call[NoInput]) -> EventsOut:
    return {"Events": await services.pool_sync.cognito_events(call.labels["IdentityPoolId"])}


async def set_cognito_events(services: Services, call: Call[CognitoEventsIn]) -> Empty:
    await services.pool_sync.set_cognito_events(call.labels["IdentityPoolId"], call.given.Events)
    return {}


async def bulk_publish(services: Services, call: Call[NoInput]) -> PoolIdOut:
    pool_id = call.labels["IdentityPoolId"]
    await services.bulk.start(pool_id)
    return {"IdentityPoolId": pool_id}


async def get_bulk_publish_details(services: Services, call: Call[NoInput]) -> BulkPublishDetailsOut:
    pool_id = call.labels["IdentityPoolId"]
    job = await services.bulk.details(pool_id)
    output: BulkPublishDetailsOut = {"IdentityPoolId": pool_id, "BulkPublishStatus": job.status.value}
    if job.started_ms is not None:
        output["BulkPublishStartTime"] = wire.seconds(job.started_ms)
    if job.completed_ms is not None:
        output["BulkPublishCompleteTime"] = wire.seconds(job.completed_ms)
    if job.failure is not None:
        output["FailureMessage"] = job.failure
    return output


def _refusal(name: str, caller: Caller) -> NotAuthorizedError:
    return NotAuthorizedError("This operation needs developer credentials")


CALLER, DEVELOPER = Access.CALLER, Access.DEVELOPER
NEXT, MAX = Query("nextToken"), Query("maxResults", INTEGER)
#: The Cognito Sync surface: every operation, its route, input, output, who may call it and what it runs.
SURFACE = surface(
    "cognito-sync",
    [
        Operation(
            "ListRecords",
            NoInput,
            ListRecordsOut,
            CALLER,
            list_records,
            Route(
                "GET",
                DATASET + "/records",
                (Query("lastSyncCount", LONG), MAX, NEXT, Query("syncSessionToken")),
            ),
            checks_standing=True,
        ),
        Operation(
            "UpdateRecords",
            UpdateRecordsIn,
            RecordsOut,
            CALLER,
            update_records,
            Route("POST", DATASET),
            checks_standing=True,
        ),
        Operation("DescribeDataset", NoInput, DatasetOut, CALLER, describe_dataset, Route("GET", DATASET)),
        Operation("DeleteDataset", NoInput, DatasetOut, CALLER, delete_dataset, Route("DELETE", DATASET)),
        Operation(
            "ListDatasets",
            NoInput,
            ListDatasetsOut,
            CALLER,
            list_datasets,
            Route("GET", IDENTITY + "/datasets", (MAX, NEXT)),
        ),
        Operation(
            "DescribeIdentityUsage", NoInput, IdentityUsageOut, CALLER, describe_identity_usage, Route("GET", IDENTITY)
        ),
        Operation(
            "DescribeIdentityPoolUsage",
            NoInput,
            PoolUsageOut,
            DEVELOPER,
            describe_identity_pool_usage,
            Route("GET", POOL),
        ),
        Operation(
            "ListIdentityPoolUsage",
            NoInput,
            ListPoolUsageOut,
            DEVELOPER,
            list_identity_pool_usage,
            Route("GET", "/identitypools", (MAX, NEXT)),
        ),
        Operation("BulkPublish", NoInput, PoolIdOut, DEVELOPER, bulk_publish, Route("POST", POOL + "/bulkpublish")),
        Operation(
            "GetBulkPublishDetails",
            NoInput,
            BulkPublishDetailsOut,
            DEVELOPER,
            get_bulk_publish_details,
            Route("POST", POOL + "/getBulkPublishDetails"),
        ),
        Operation(
            "GetCognitoEvents", NoInput, EventsOut, DEVELOPER, get_cognito_events, Route("GET", POOL + "/events")
        ),
        Operation(
            "SetCognitoEvents", CognitoEventsIn, Empty, DEVELOPER, set_cognito_events, Route("POST", POOL + "/events")
        ),
        Operation(
            "GetIdentityPoolConfiguration",
            NoInput,
            ConfigurationOut,
            DEVELOPER,
            get_identity_pool_configuration,
            Route("GET", POOL + "/configuration"),
        ),
        Operation(
            "SetIdentityPoolConfiguration",
            PoolConfigurationIn,
            ConfigurationOut,
            DEVELOPER,
            set_identity_pool_configuration,
            Route("POST", POOL + "/configuration"),
        ),
        *push.OPERATIONS,
    ],
    invalid=InvalidParameterError,
    refusal=_refusal,
)
