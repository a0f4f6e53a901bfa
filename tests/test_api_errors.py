"""Bad input gets a clear 4xx with the AWS error name, and changes nothing."""

from __future__ import annotations

import asyncio
import os
import uuid

import boto3
import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from syncsvc.api.middleware import new_request_id
from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, Boto, Raw


def dataset_path(pool_id: str, identity_id: str, dataset: str = "d") -> str:
    return (
        f"/identitypools/{pool_id.replace(':', '%3A')}/identities/{identity_id.replace(':', '%3A')}/datasets/{dataset}"
    )


async def session_token(raw: Raw, path: str) -> str:
    status, body, _ = await raw.send("GET", path + "/records")
    assert status == 200
    token: str = body["SyncSessionToken"]
    return token


@pytest.fixture
async def target(boto: Boto, raw: Raw) -> tuple[str, str]:
    """(dataset path, a valid session token) in a fresh pool."""
    path = dataset_path(await boto.new_pool(), f"us-east-1:{uuid.uuid4()}")
    return path, await session_token(raw, path)


async def assert_dataset_untouched(raw: Raw, path: str) -> None:
    status, body, _ = await raw.send("GET", path + "/records")
    assert (status, body["DatasetExists"], body["Records"]) == (200, False, [])


async def test_malformed_json_body_is_a_serialization_error(raw: Raw, target: tuple[str, str]) -> None:
    path, _ = target
    status, body, headers = await raw.send(
        "POST", path, body=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (status, body["__type"], headers["x-amzn-ErrorType"]) == (
        400,
        "SerializationException",
        "SerializationException",
    )
    assert body["message"] == "The request body is not valid JSON"
    await assert_dataset_untouched(raw, path)


async def test_wrong_member_type_is_a_serialization_error_naming_the_member(raw: Raw, target: tuple[str, str]) -> None:
    path, token = target
    patch = {"Op": "replace", "Key": "k", "Value": "v", "SyncCount": "0"}
    status, body, _ = await raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": [patch]})
    assert (status, body["__type"]) == (400, "SerializationException")
    assert body["message"] == "Value at 'recordPatches.1.member.syncCount' must be an integer"
    await assert_dataset_untouched(raw, path)


async def test_string_date_is_rejected_like_cognito(raw: Raw, target: tuple[str, str]) -> None:
    path, token = target
    patch = {"Op": "replace", "Key": "k", "Value": "v", "SyncCount": 0, "DeviceLastModifiedDate": "2020-01-01"}
    status, body, _ = await raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": [patch]})
    assert (status, body["__type"]) == (400, "SerializationException")


async def test_unknown_member_is_an_invalid_parameter(raw: Raw, target: tuple[str, str]) -> None:
    path, token = target
    status, body, _ = await raw.send("POST", path, body={"SyncSessionToken": token, "Surprise": True})
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    assert body["message"] == "Surprise is not a known member of this request"


async def test_missing_session_token_is_an_invalid_parameter(raw: Raw, target: tuple[str, str]) -> None:
    path, _ = target
    status, body, _ = await raw.send("POST", path, body={"RecordPatches": []})
    assert (status, body["__type"], body["message"]) == (
        400,
        "InvalidParameterException",
        "1 validation error detected: Value null at 'syncSessionToken' failed to satisfy constraint: "
        "Member must not be null",
    )


async def test_negative_sync_count_is_an_invalid_parameter(raw: Raw, target: tuple[str, str]) -> None:
    path, token = target
    patch = {"Op": "replace", "Key": "k", "Value": "v", "SyncCount": -1}
    status, body, _ = await raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": [patch]})
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    await assert_dataset_untouched(raw, path)


async def test_unknown_op_is_an_invalid_parameter(raw: Raw, target: tuple[str, str]) -> None:
    path, token = target
    patch = {"Op": "upsert", "Key": "k", "Value": "v", "SyncCount": 0}
    status, body, _ = await raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": [patch]})
    assert (status, body["__type"]) == (400, "InvalidParameterException")


async def test_negative_last_sync_count_is_an_invalid_parameter(raw: Raw, target: tuple[str, str]) -> None:
    path, _ = target
    status, body, _ = await raw.send("GET", path + "/records?lastSyncCount=-3")
    assert (status, body["__type"]) == (400, "InvalidParameterException")


async def test_non_integer_max_results_is_an_invalid_parameter(raw: Raw, target: tuple[str, str]) -> None:
    path, _ = target
    status, body, _ = await raw.send("GET", path + "/records?maxResults=lots")
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    assert "maxResults" in body["message"]


async def test_oversize_body_is_refused_with_413(raw: Raw, target: tuple[str, str]) -> None:
    path, token = target
    patch = {"Op": "replace", "Key": "k", "Value": "x" * (3 * 1024 * 1024), "SyncCount": 0}
    status, body, _ = await raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": [patch]})
    assert (status, body["__type"]) == (413, "InvalidParameterException")
    await assert_dataset_untouched(raw, path)


async def test_unknown_path_is_a_json_unknown_operation(raw: Raw) -> None:
    status, body, headers = await raw.send("GET", "/nothing/here")
    assert (status, body["__type"]) == (404, "UnknownOperationException")
    assert headers["Content-Type"].startswith("application/json")
    assert headers["x-amzn-RequestId"]


async def test_a_request_to_the_json_endpoint_without_a_target_is_answered_as_json_1_1(raw: Raw) -> None:
    """``POST /`` serves only json 1.1 operations, so an error there is a json 1.1 error even when the request lacks
    ``X-Amz-Target`` (it was answered as rest-json, ``application/json``: found by tests/test_fuzz.py, whose invalid
    requests drop required headers)."""
    status, body, headers = await raw.send("POST", "/", body={})
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    assert headers["Content-Type"].startswith("application/x-amz-json-1.1")


async def test_wrong_method_is_a_json_error(raw: Raw, target: tuple[str, str]) -> None:
    path, _ = target
    status, body, _ = await raw.send("PUT", path)
    assert (status, body["__type"]) == (405, "UnknownOperationException")


async def test_unsigned_request_is_missing_authentication_token(raw: Raw, target: tuple[str, str]) -> None:
    path, _ = target
    status, body, _ = await raw.send("GET", path + "/records", sign=False)
    assert (status, body["__type"]) == (403, "MissingAuthenticationTokenException")


async def call_with(endpoint: str, operation: str, key_id: str, secret: str) -> ClientError:
    """The error of one boto3 cognito-sync call made with the given credentials."""
    client = boto3.client(
        "cognito-sync",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(getattr(client, operation))
    return caught.value


async def test_wrong_secret_is_an_invalid_signature(endpoint: str) -> None:
    error = await call_with(endpoint, "list_identity_pool_usage", DEVELOPER_KEY, "not-the-secret")
    assert error.response["Error"]["Code"] == "InvalidSignatureException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_unknown_access_key_is_an_unrecognized_client(endpoint: str) -> None:
    error = await call_with(endpoint, "list_identity_pool_usage", "AKIDNOBODY", "whatever")
    assert error.response["Error"]["Code"] == "UnrecognizedClientException"
    assert error.response["Error"]["Message"] == "The security token included in the request is invalid."


async def test_health_endpoints_need_no_signature(raw: Raw) -> None:
    assert (await raw.send("GET", "/healthz", sign=False))[:2] == (200, {"status": "ok"})
    assert (await raw.send("GET", "/readyz", sign=False))[:2] == (200, {"status": "ok", "redis": "ok", "relay": "off"})


def presigned_query(raw: Raw, path: str) -> str:
    """The query string botocore's SigV4QueryAuth adds to sign a GET of ``path`` for 60 s."""
    request = AWSRequest(method="GET", url=raw.endpoint + path)
    signer = SigV4QueryAuth(Credentials(DEVELOPER_KEY, DEVELOPER_SECRET), "cognito-sync", "us-east-1", expires=60)
    signer.add_auth(request)
    query: str = str(request.url).split("?", 1)[1]
    return query


async def test_presigned_url_is_accepted_and_carries_a_request_id(raw: Raw, target: tuple[str, str]) -> None:
    path, _ = target
    query = presigned_query(raw, path + "/records?lastSyncCount=0")
    status, body, headers = await raw.send("GET", path + "/records?" + query, sign=False)
    assert (status, body["DatasetExists"], body["Count"]) == (200, False, 0)
    assert len(headers["x-amzn-RequestId"]) == 36


async def test_presigned_url_for_another_path_is_an_invalid_signature(raw: Raw, target: tuple[str, str]) -> None:
    path, _ = target
    query = presigned_query(raw, path + "/records")
    other = path.replace("/datasets/d", "/datasets/e")
    status, body, _ = await raw.send("GET", other + "/records?" + query, sign=False)
    assert (status, body["__type"]) == (400, "InvalidSignatureException")


def test_request_ids_are_unique_and_drawn_again_in_a_forked_worker() -> None:
    """Request ids are a per-process random prefix and a counter: two in a row differ, and a forked child draws its
    own prefix (``serve --workers`` spawns its workers, which import the module afresh), so two processes never hand
    out the same id."""
    first, second = new_request_id(), new_request_id()
    assert first != second
    assert uuid.UUID(first) != uuid.UUID(second)
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        os.write(writing, new_request_id().encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    with os.fdopen(reading, "rb") as pipe:
        forked = pipe.read().decode()
    assert uuid.UUID(forked)
    assert forked[:23] != first[:23]
