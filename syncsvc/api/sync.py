"""Cognito Sync (rest-json, apiVersion 2014-06-30): routes by method + path, one small handler per operation.

Handlers only parse, call :class:`~syncsvc.service.SyncService`, and serialise. Path labels arrive
percent-encoded (``us-east-1%3A…``) and are decoded by the router. The push sync operations are in ``push.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from syncsvc import vv
from syncsvc.api import wire
from syncsvc.api.middleware import caller_of
from syncsvc.api.protocol import BULK, INTEGER, LONG, SYNC, parse, query_int, respond
from syncsvc.errors import InvalidParameterError
from syncsvc.identity.pools import CognitoStreamsSettings, PushSyncSettings, SyncConfiguration
from syncsvc.model import MAX_DATE_MS, MAX_SYNC_COUNT, MAX_VECTOR_COUNTER, Op, RecordPatch

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
    DeviceLastModifiedDate: Annotated[float, Field(ge=0, le=MAX_DATE_MS / 1000, allow_inf_nan=False)] | None = None
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


def _labels(request: web.Request) -> tuple[str, str]:
    info = request.match_info
    return info["IdentityPoolId"], info["IdentityId"]


async def list_records(request: web.Request) -> web.Response:
    pool_id, identity_id = _labels(request)
    result = await request.app[SYNC].list_records(
        caller_of(request),
        pool_id,
        identity_id,
        request.match_info["DatasetName"],
        last_sync_count=query_int(request, "lastSyncCount", LONG),
        max_results=query_int(request, "maxResults", INTEGER),
        next_token=request.query.get("nextToken") or None,
        session_token=request.query.get("syncSessionToken") or None,
    )
    payload = {
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
        payload["LastModifiedBy"] = result.dataset.modified_by
    if result.next_token is not None:
        payload["NextToken"] = result.next_token
    return respond(payload)


async def update_records(request: web.Request) -> web.Response:
    pool_id, identity_id = _labels(request)
    given = await parse(request, UpdateRecordsIn)
    result = await request.app[SYNC].update_records(
        caller_of(request),
        pool_id,
        identity_id,
        request.match_info["DatasetName"],
        patches=[patch.domain(index) for index, patch in enumerate(given.RecordPatches)],
        session_token=given.SyncSessionToken,
        device_id=given.DeviceId,
        client_context=request.headers.get("x-amz-Client-Context"),
    )
    return respond({"Records": [wire.record(item) for item in result.records]})


async def describe_dataset(request: web.Request) -> web.Response:
    pool_id, identity_id = _labels(request)
    found = await request.app[SYNC].describe_dataset(
        caller_of(request), pool_id, identity_id, request.match_info["DatasetName"]
    )
    return respond({"Dataset": wire.dataset(found)})


async def delete_dataset(request: web.Request) -> web.Response:
    pool_id, identity_id = _labels(request)
    deleted = await request.app[SYNC].delete_dataset(
        caller_of(request), pool_id, identity_id, request.match_info["DatasetName"]
    )
    return respond({"Dataset": wire.dataset(deleted)})


async def list_datasets(request: web.Request) -> web.Response:
    pool_id, identity_id = _labels(request)
    datasets, token = await request.app[SYNC].list_datasets(
        caller_of(request),
        pool_id,
        identity_id,
        max_results=query_int(request, "maxResults", INTEGER),
        next_token=request.query.get("nextToken") or None,
    )
    payload: dict[str, object] = {
        "Datasets": [wire.dataset(item) for item in datasets],
        "Count": len(datasets),
    }
    if token is not None:
        payload["NextToken"] = token
    return respond(payload)


async def describe_identity_usage(request: web.Request) -> web.Response:
    pool_id, identity_id = _labels(request)
    usage = await request.app[SYNC].describe_identity_usage(caller_of(request), pool_id, identity_id)
    return respond({"IdentityUsage": wire.identity_usage(usage)})


async def describe_identity_pool_usage(request: web.Request) -> web.Response:
    usage = await request.app[SYNC].describe_pool_usage(caller_of(request), request.match_info["IdentityPoolId"])
    return respond({"IdentityPoolUsage": wire.pool_usage(usage)})


async def list_identity_pool_usage(request: web.Request) -> web.Response:
    usages, page_size, token = await request.app[SYNC].list_pool_usage(
        caller_of(request),
        max_results=query_int(request, "maxResults", INTEGER),
        next_token=request.query.get("nextToken") or None,
    )
    payload: dict[str, object] = {
        "IdentityPoolUsages": [wire.pool_usage(item) for item in usages],
        "Count": len(usages),
        "MaxResults": page_size,
    }
    if token is not None:
        payload["NextToken"] = token
    return respond(payload)


def _configuration(pool_id: str, config: SyncConfiguration) -> dict[str, object]:
    return {"IdentityPoolId": pool_id, **config.model_dump(exclude_none=True, exclude={"Events"})}


async def get_identity_pool_configuration(request: web.Request) -> web.Response:
    pool_id = request.match_info["IdentityPoolId"]
    return respond(_configuration(pool_id, await request.app[SYNC].configuration(caller_of(request), pool_id)))


async def set_identity_pool_configuration(request: web.Request) -> web.Response:
    pool_id = request.match_info["IdentityPoolId"]
    given = await parse(request, PoolConfigurationIn)
    change = SyncConfiguration(PushSync=given.PushSync, CognitoStreams=given.CognitoStreams)
    return respond(_configuration(pool_id, await request.app[SYNC].configure(caller_of(request), pool_id, change)))


async def get_cognito_events(request: web.Request) -> web.Response:
    events = await request.app[SYNC].cognito_events(caller_of(request), request.match_info["IdentityPoolId"])
    return respond({"Events": events})


async def set_cognito_events(request: web.Request) -> web.Response:
    given = await parse(request, CognitoEventsIn)
    await request.app[SYNC].set_cognito_events(caller_of(request), request.match_info["IdentityPoolId"], given.Events)
    return respond({})


async def bulk_publish(request: web.Request) -> web.Response:
    pool_id = request.match_info["IdentityPoolId"]
    await request.app[BULK].start(caller_of(request), pool_id)
    return respond({"IdentityPoolId": pool_id})


async def get_bulk_publish_details(request: web.Request) -> web.Response:
    pool_id = request.match_info["IdentityPoolId"]
    job = await request.app[BULK].details(caller_of(request), pool_id)
    payload: dict[str, object] = {"IdentityPoolId": pool_id, "BulkPublishStatus": job.status.value}
    if job.started_ms is not None:
        payload["BulkPublishStartTime"] = wire.seconds(job.started_ms)
    if job.completed_ms is not None:
        payload["BulkPublishCompleteTime"] = wire.seconds(job.completed_ms)
    if job.failure is not None:
        payload["FailureMessage"] = job.failure
    return respond(payload)


def routes() -> list[web.RouteDef]:
    """Every Cognito Sync operation's route (the explicit list is the surface's table of contents)."""
    return [
        web.get(DATASET + "/records", list_records),
        web.post(DATASET, update_records),
        web.get(DATASET, describe_dataset),
        web.delete(DATASET, delete_dataset),
        web.get(IDENTITY + "/datasets", list_datasets),
        web.get(IDENTITY, describe_identity_usage),
        web.get(POOL, describe_identity_pool_usage),
        web.get("/identitypools", list_identity_pool_usage),
        web.post(POOL + "/bulkpublish", bulk_publish),
        web.post(POOL + "/getBulkPublishDetails", get_bulk_publish_details),
        web.get(POOL + "/events", get_cognito_events),
        web.post(POOL + "/events", set_cognito_events),
        web.get(POOL + "/configuration", get_identity_pool_configuration),
        web.post(POOL + "/configuration", set_identity_pool_configuration),
    ]
