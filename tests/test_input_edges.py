"""Input at the edges of what the wire allows: numbers out of range, header bytes that are not UTF-8, names with a
trailing newline. Each is answered with a 4xx in the AWS error shape (never a 500), and changes nothing.

Through the real server: botocore-signed raw HTTP (``Raw``) for JSON numbers and names boto3 would not send, and a
raw socket (``exchange``) for header bytes no HTTP client library sends, signed by botocore's signer where a
signature is needed (``send_signed``).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pydantic import ValidationError

from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION, Boto, Raw, make_settings

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
#: The largest integer update_records.lua keeps exactly (Redis's cjson writes 14 significant digits).
MAX_STORED_INTEGER = 10**14 - 1
#: The latest DeviceLastModifiedDate, in epoch seconds: MAX_STORED_INTEGER milliseconds.
LATEST_DATE = "99999999999.999"
ASCII_MALFORMED_TOKEN = b"x.a.b"

# --- helpers ----------------------------------------------------------------------------------------------------------


def label(value: str) -> str:
    """A rest-json URI label, percent-encoded as botocore encodes it."""
    return quote(value, safe="-._~")


def new_identity() -> str:
    return f"{REGION}:{uuid.uuid4()}"


def identity_path(pool_id: str, identity_id: str) -> str:
    return f"/identitypools/{label(pool_id)}/identities/{label(identity_id)}"


def dataset_path(pool_id: str, identity_id: str, dataset: str = "d") -> str:
    return f"{identity_path(pool_id, identity_id)}/datasets/{label(dataset)}"


async def session_token(raw: Raw, path: str) -> str:
    status, body, _ = await raw.send("GET", path + "/records")
    assert status == 200, body
    token: str = body["SyncSessionToken"]
    return token


async def update_with(raw: Raw, path: str, token: str, patch_members: str) -> tuple[int, dict[str, Any]]:
    """UpdateRecords with one patch of key ``k`` whose other members are ``patch_members``, JSON text written by
    hand (orjson cannot encode an integer past 64 bits, nor Infinity)."""
    body = (
        f'{{"SyncSessionToken":"{token}","RecordPatches":[{{"Op":"replace","Key":"k","Value":"v",{patch_members}}}]}}'
    ).encode()
    status, payload, _ = await raw.send("POST", path, body=body, headers={"Content-Type": "application/json"})
    return status, payload


async def assert_untouched(raw: Raw, path: str) -> None:
    status, body, _ = await raw.send("GET", path + "/records")
    assert (status, body["DatasetExists"], body["Records"]) == (200, False, [])


def invalid_parameter(message: str) -> tuple[int, dict[str, str]]:
    return 400, {"__type": "InvalidParameterException", "message": message}


def violation(value: str, member: str, constraint: str) -> str:
    """AWS's message for one member that breaks its constraint."""
    return f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"


def member_named(message: str) -> str:
    """The member an AWS validation message names (``… at 'identityPoolId' failed …``)."""
    return message.split(" at '", 1)[1].split("'", 1)[0]


def quoted(value: object) -> str:
    """A value as a validation message quotes it: cut after 256 characters."""
    text = str(value)
    return text if len(text) <= 256 else text[:256] + "..."


@pytest.fixture
async def target(boto: Boto, raw: Raw) -> tuple[str, str]:
    """(dataset path, a valid session token) of a new identity in a new pool."""
    path = dataset_path(await boto.new_pool(), new_identity())
    return path, await session_token(raw, path)


async def exchange(
    server: TestServer, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One HTTP/1.1 request written byte for byte on a socket: (status, response headers, JSON body). A body that
    is not JSON (aiohttp's own text/plain 500) comes back as ``{"text": …}``, for the assertion to show."""
    lines = [f"{method} {target} HTTP/1.1".encode(), f"Host: {server.host}:{server.port}".encode()]
    lines += [name + b": " + value for name, value in headers]
    lines += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await writer.drain()
            response = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
    head, _, payload = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    received = dict(line.split(": ", 1) for line in header_lines)
    json = "json" in received.get("Content-Type", "")
    answer: dict[str, Any] = orjson.loads(payload) if json else {"text": payload.decode("latin-1")}
    return int(status_line.split()[1]), received, answer


def aws_error(status: int, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, str, str, dict[str, Any]]:
    """What a client sees of an error: status, ``x-amzn-ErrorType``, content type, body."""
    return status, headers.get("x-amzn-ErrorType", ""), headers["Content-Type"].split(";")[0], body


def amz_now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def sigv4_claim(access_key_id: bytes, amz_date: str, signed_headers: bytes = b"host;x-amz-date") -> bytes:
    """A Cognito Sync Authorization header of the SigV4 header form, its signature zeros (a request carrying it
    fails before its signature is checked)."""
    scope = amz_date[:8].encode() + b"/us-east-1/cognito-sync/aws4_request"
    return (
        b"AWS4-HMAC-SHA256 Credential=" + access_key_id + b"/" + scope
        + b", SignedHeaders=" + signed_headers + b", Signature=" + b"0" * 64
    )  # fmt: skip


# --- 6. numbers out of range ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sync_count", [2**63, 2**64, 10**400])
async def test_sync_count_past_a_signed_long_is_an_invalid_parameter(
    raw: Raw, target: tuple[str, str], sync_count: int
) -> None:
    path, token = target
    status, body = await update_with(raw, path, token, f'"SyncCount":{sync_count}')
    assert (status, body) == invalid_parameter(
        violation(
            quoted(sync_count),
            "recordPatches.1.member.syncCount",
            f"Member must have value less than or equal to {LONG_MAX}",
        )
    )
    await assert_untouched(raw, path)


async def test_largest_long_sync_count_is_a_conflict_that_names_it_exactly(raw: Raw, target: tuple[str, str]) -> None:
    path, token = target
    status, body = await update_with(raw, path, token, f'"SyncCount":{LONG_MAX}')
    assert (status, body) == (
        409,
        {
            "__type": "ResourceConflictException",
            "message": f"Current SyncCount for: k is: 0 not: {LONG_MAX}",
            "Records": [],
            "DatasetSyncCount": 0,
            "VersionVector": {},
        },
    )
    await assert_untouched(raw, path)


@pytest.mark.parametrize("counter", [LONG_MAX, 2**64, 10**400])
async def test_version_vector_counter_past_what_the_store_keeps_exactly_is_an_invalid_parameter(
    raw: Raw, target: tuple[str, str], counter: int
) -> None:
    path, token = target
    status, body = await update_with(raw, path, token, f'"SyncCount":0,"VersionVector":{{"tablet":{counter}}}')
    assert (status, body) == invalid_parameter(
        violation(
            quoted(counter),
            "recordPatches.1.member.versionVector",
            f"Map value must satisfy constraint: [Member must have value less than or equal to {MAX_STORED_INTEGER}]",
        )
    )
    await assert_untouched(raw, path)


async def test_version_vector_counters_are_kept_exactly_up_to_the_bound_and_refused_past_it(
    raw: Raw, target: tuple[str, str]
) -> None:
    path, token = target
    past = await update_with(raw, path, token, f'"SyncCount":0,"VersionVector":{{"tablet":{MAX_STORED_INTEGER + 1}}}')
    assert past == invalid_parameter(
        violation(
            str(MAX_STORED_INTEGER + 1),
            "recordPatches.1.member.versionVector",
            f"Map value must satisfy constraint: [Member must have value less than or equal to {MAX_STORED_INTEGER}]",
        )
    )
    status, _ = await update_with(raw, path, token, f'"SyncCount":0,"VersionVector":{{"tablet":{MAX_STORED_INTEGER}}}')
    assert status == 200
    status, listed, _ = await raw.send("GET", path + "/records")
    kept = listed["Records"][0]["VersionVector"]["tablet"]
    assert (status, kept, type(kept)) == (200, MAX_STORED_INTEGER, int)


@pytest.mark.parametrize(
    ("date", "value", "constraint"),
    [
        ("1e300", "1e+300", f"Member must have value less than or equal to {LATEST_DATE}"),
        (str(2**63), str(2**63), f"Member must have value less than or equal to {LATEST_DATE}"),
        # 9999-12-31: past the store
        ("253402300799.999", "253402300799.999", f"Member must have value less than or equal to {LATEST_DATE}"),
        ("100000000000", "100000000000", f"Member must have value less than or equal to {LATEST_DATE}"),
        ("Infinity", "inf", "Member must be a finite number"),
        ("1e400", "inf", "Member must be a finite number"),
    ],
)
async def test_device_date_that_is_not_finite_or_past_what_the_store_keeps_is_an_invalid_parameter(
    raw: Raw, target: tuple[str, str], date: str, value: str, constraint: str
) -> None:
    path, token = target
    status, body = await update_with(raw, path, token, f'"SyncCount":0,"DeviceLastModifiedDate":{date}')
    assert (status, body) == invalid_parameter(
        violation(value, "recordPatches.1.member.deviceLastModifiedDate", constraint)
    )
    await assert_untouched(raw, path)


async def test_device_dates_are_kept_to_the_millisecond_up_to_the_bound_and_refused_past_it(
    raw: Raw, target: tuple[str, str]
) -> None:
    path, token = target
    past = await update_with(raw, path, token, '"SyncCount":0,"DeviceLastModifiedDate":99999999999.9996')
    assert past == invalid_parameter(
        violation(
            "99999999999.9996",
            "recordPatches.1.member.deviceLastModifiedDate",
            f"Member must have value less than or equal to {LATEST_DATE}",
        )
    )
    status, written = await update_with(raw, path, token, f'"SyncCount":0,"DeviceLastModifiedDate":{LATEST_DATE}')
    assert (status, written["Records"][0]["DeviceLastModifiedDate"]) == (200, float(LATEST_DATE))
    status, listed, _ = await raw.send("GET", path + "/records")
    assert (status, listed["Records"][0]["DeviceLastModifiedDate"]) == (200, float(LATEST_DATE))


LONG = (-(2**63), LONG_MAX)
INTEGER = (-(2**31), INT_MAX)


@pytest.mark.parametrize(
    ("query", "name", "given", "bounds"),
    [
        (f"lastSyncCount={2**63}", "lastSyncCount", str(2**63), LONG),
        (f"lastSyncCount={10**30}", "lastSyncCount", str(10**30), LONG),
        ("lastSyncCount=1_0", "lastSyncCount", "1_0", LONG),  # int() reads "1_0" as 10
        (f"maxResults={2**31}", "maxResults", str(2**31), INTEGER),
        ("maxResults=%D9%A5", "maxResults", "\u0665", INTEGER),  # ARABIC-INDIC DIGIT FIVE: int() reads it as 5
        ("maxResults=%205", "maxResults", " 5", INTEGER),
    ],
)
async def test_query_integer_outside_its_aws_type_is_an_invalid_parameter(
    raw: Raw, target: tuple[str, str], query: str, name: str, given: str, bounds: tuple[int, int]
) -> None:
    path, _ = target
    status, body, _ = await raw.send("GET", f"{path}/records?{query}")
    low, high = bounds
    assert (status, body) == invalid_parameter(f"{name} must be an integer from {low} to {high}, not '{given}'")


@pytest.mark.parametrize("operation", ["ListDatasets", "ListIdentityPoolUsage"])
async def test_max_results_past_an_integer_is_an_invalid_parameter_in_every_listing(
    raw: Raw, boto: Boto, operation: str
) -> None:
    paths = {
        "ListDatasets": identity_path(await boto.new_pool(), new_identity()) + "/datasets",
        "ListIdentityPoolUsage": "/identitypools",
    }
    status, body, _ = await raw.send("GET", f"{paths[operation]}?maxResults={2**31}")
    low, high = INTEGER
    assert (status, body) == invalid_parameter(f"maxResults must be an integer from {low} to {high}, not '{2**31}'")


def presigned_query(raw: Raw, path: str) -> str:
    request = AWSRequest(method="GET", url=raw.endpoint + path)
    SigV4QueryAuth(Credentials(DEVELOPER_KEY, DEVELOPER_SECRET), "cognito-sync", REGION, expires=60).add_auth(request)
    return str(request.url).split("?", 1)[1]


async def test_presigned_url_with_a_huge_expiry_is_an_incomplete_signature(raw: Raw) -> None:
    query = presigned_query(raw, "/identitypools")
    huge = "&".join("X-Amz-Expires=" + "1" * 5000 if p.startswith("X-Amz-Expires=") else p for p in query.split("&"))
    status, body, headers = await raw.send("GET", "/identitypools?" + huge, sign=False)
    assert (status, headers["x-amzn-ErrorType"], body) == (
        400,
        "IncompleteSignatureException",
        {
            "__type": "IncompleteSignatureException",
            "message": "X-Amz-Expires must be a whole number of seconds from 1 to 604800 (a week).",
        },
    )


@pytest.mark.parametrize("date", [b"Mon, 01 Jan 99999999999999999999 00:00:00 GMT", b"Fri, 31 Dec 9999 23:59:59 -2359"])
async def test_date_header_out_of_the_calendar_is_an_incomplete_signature(server: TestServer, date: bytes) -> None:
    authorization = sigv4_claim(DEVELOPER_KEY.encode(), amz_now(), b"host;date")
    answer = await exchange(server, "GET", "/identitypools", [(b"Authorization", authorization), (b"Date", date)])
    assert aws_error(*answer) == (
        400,
        "IncompleteSignatureException",
        "application/json",
        {
            "__type": "IncompleteSignatureException",
            "message": f"Date must be an RFC 1123 HTTP date. Got '{date.decode()}'.",
        },
    )


# --- 7. header bytes that are not UTF-8 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/identitypools", []),
        ("/identitypools/x/identities/y/datasets/d/records", []),
        ("/", [(b"X-Amz-Target", b"AWSCognitoIdentityService.ListIdentityPools")]),
        ("/", [(b"X-Amz-Target", b"TrentService.ListKeys")]),
    ],
)
async def test_non_utf8_bearer_token_is_refused_like_any_malformed_token(
    server: TestServer, path: str, headers: list[tuple[bytes, bytes]]
) -> None:
    method = "GET" if path != "/" else "POST"
    body = b"{}" if method == "POST" else b""
    malformed = await exchange(
        server, method, path, [(b"Authorization", b"Bearer " + ASCII_MALFORMED_TOKEN), *headers], body
    )
    answer = await exchange(server, method, path, [(b"Authorization", b"Bearer \xff.a.b"), *headers], body)
    assert aws_error(*answer) == aws_error(*malformed)
    assert answer[2] == {"__type": "NotAuthorizedException", "message": "Invalid identity token: malformed"}


@pytest.mark.parametrize(
    ("headers", "error", "message"),
    [
        (
            [(b"Authorization", b"AWS4-\xff")],
            "IncompleteSignatureException",
            "Unsupported AWS 'algorithm': 'AWS4-?'.",
        ),
        (
            [(b"Authorization", sigv4_claim(DEVELOPER_KEY.encode(), "20200101T000000Z")), (b"X-Amz-Date", b"2020\xff")],
            "IncompleteSignatureException",
            "Date must be in ISO-8601 'basic format'. Got '2020?'. See http://en.wikipedia.org/wiki/ISO_8601",
        ),
    ],
)
async def test_non_utf8_auth_header_echoed_in_the_error_gets_the_aws_error_shape(
    server: TestServer, headers: list[tuple[bytes, bytes]], error: str, message: str
) -> None:
    answer = await exchange(server, "GET", "/identitypools", headers)
    assert aws_error(*answer) == (400, error, "application/json", {"__type": error, "message": message})


async def test_non_ascii_access_key_with_a_valid_session_token_is_an_unrecognized_client(
    server: TestServer, boto: Boto
) -> None:
    identity = (await boto.call(boto.identity, "get_id", IdentityPoolId=await boto.new_pool()))["IdentityId"]
    credentials = (await boto.call(boto.identity, "get_credentials_for_identity", IdentityId=identity))["Credentials"]
    amz_date = amz_now()
    headers = [
        (b"Authorization", sigv4_claim(b"\xff" + credentials["AccessKeyId"].encode(), amz_date)),
        (b"X-Amz-Date", amz_date.encode()),
        (b"X-Amz-Security-Token", credentials["SessionToken"].encode()),
    ]
    answer = await exchange(server, "GET", "/identitypools", headers)
    assert aws_error(*answer) == (
        400,
        "UnrecognizedClientException",
        "application/json",
        {"__type": "UnrecognizedClientException", "message": "The security token included in the request is invalid."},
    )


class BytesSigV4(SigV4Auth):
    """botocore's signer for header values that are bytes, each given as its Latin-1 text (one character per byte):
    the canonical request is hashed as Latin-1, so a value is signed as exactly the bytes it stands for."""

    def string_to_sign(self, request: AWSRequest, canonical_request: str) -> str:
        digest = sha256(canonical_request.encode("latin-1")).hexdigest()
        return "\n".join(("AWS4-HMAC-SHA256", request.context["timestamp"], self.credential_scope(request), digest))


async def send_signed(
    server: TestServer,
    path: str,
    body: bytes,
    headers: dict[str, bytes],
    *,
    service: str = "cognito-sync",
    signed: dict[str, bytes] | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A POST on a socket with ``headers``, signed by :class:`BytesSigV4` over ``signed`` (default: ``headers``)."""
    url = f"http://{server.host}:{server.port}{path}"
    text = {name: value.decode("latin-1") for name, value in (signed or headers).items()}
    request = AWSRequest(method="POST", url=url, data=body, headers=text)
    BytesSigV4(Credentials(DEVELOPER_KEY, DEVELOPER_SECRET), service, REGION).add_auth(request)
    sent = {name: value.encode("latin-1") for name, value in request.headers.items() if name.lower() != "host"}
    sent.update(headers)
    return await exchange(server, "POST", path, [(name.encode(), value) for name, value in sent.items()], body)


def client_context(value: bytes) -> dict[str, bytes]:
    return {"Content-Type": b"application/json", "x-amz-Client-Context": value}


async def test_signed_header_verifies_over_the_bytes_sent_utf8_or_not(
    server: TestServer, target: tuple[str, str]
) -> None:
    """botocore sends a header value as its UTF-8 bytes and signs those; bytes that are not UTF-8 are signed as
    themselves. Both verify."""
    path, token = target
    body = orjson.dumps({"SyncSessionToken": token, "RecordPatches": []})
    for value in ("caf\u00e9 \u00ff".encode(), b"caf\xe9 \xff"):
        status, _, answer = await send_signed(server, path, body, client_context(value))
        assert (status, answer) == (200, {"Records": []}), value


async def test_signed_header_whose_bytes_differ_from_what_was_signed_is_an_invalid_signature(
    server: TestServer, target: tuple[str, str]
) -> None:
    """Signed as the text ``ÿ`` (UTF-8: C3 BF), sent as the byte FF: a 400, not a 500."""
    path, token = target
    body = orjson.dumps({"SyncSessionToken": token, "RecordPatches": []})
    sent, signed = client_context(b"\xff"), client_context("\u00ff".encode())
    answer = await send_signed(server, path, body, sent, signed=signed)
    assert aws_error(*answer)[:2] == (400, "InvalidSignatureException")


async def test_signed_request_for_a_target_that_is_not_utf8_is_an_unknown_operation(server: TestServer) -> None:
    """Signed over its bytes, so it passes; the error quoting the target is still JSON."""
    headers = {
        "Content-Type": b"application/x-amz-json-1.1",
        "X-Amz-Target": b"AWSCognitoIdentityService.Nothing\xff",
    }
    answer = await send_signed(server, "/", b"{}", headers, service="cognito-identity")
    assert aws_error(*answer) == (
        400,
        "UnknownOperationException",
        "application/x-amz-json-1.1",
        {
            "__type": "UnknownOperationException",
            "message": "Operation 'AWSCognitoIdentityService.Nothing?' is not supported",
        },
    )


# --- 9. names with a trailing newline ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    ["GET records", "GET", "DELETE", "POST"],
    ids=["ListRecords", "DescribeDataset", "DeleteDataset", "UpdateRecords"],
)
async def test_dataset_name_with_a_trailing_newline_is_an_invalid_parameter(raw: Raw, boto: Boto, method: str) -> None:
    pool, identity = await boto.new_pool(), new_identity()
    path = dataset_path(pool, identity, "a")
    token = await session_token(raw, path)
    assert (await raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": []}))[0] == 200
    verb, _, suffix = method.partition(" ")
    body: dict[str, Any] | bytes = {"SyncSessionToken": token, "RecordPatches": []} if verb == "POST" else b""
    status, answer, _ = await raw.send(verb, path + "%0A" + (f"/{suffix}" if suffix else ""), body=body)
    assert (status, answer) == invalid_parameter(
        "DatasetName 'a\n' must be 1-128 characters of a-z, A-Z, 0-9, '_', '.', ':' and '-'"
    )


async def test_write_to_a_dataset_name_with_a_trailing_newline_creates_nothing(raw: Raw, boto: Boto) -> None:
    pool, identity = await boto.new_pool(), new_identity()
    token = await session_token(raw, dataset_path(pool, identity, "a"))
    patch = {"Op": "replace", "Key": "k", "Value": "v", "SyncCount": 0}
    path = dataset_path(pool, identity, "a")
    assert (await raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": [patch]}))[0] == 200
    # What a client would do: a session token for "a\n" if ListRecords gives one, then the write.
    newline_token = (await raw.send("GET", path + "%0A/records"))[1].get("SyncSessionToken", token)
    await raw.send("POST", path + "%0A", body={"SyncSessionToken": newline_token, "RecordPatches": [patch]})
    status, listed, _ = await raw.send("GET", identity_path(pool, identity) + "/datasets")
    assert (status, [dataset["DatasetName"] for dataset in listed["Datasets"]]) == (200, ["a"])


@pytest.mark.parametrize(
    "suffix", ["/datasets/d/records", "/datasets", ""], ids=["ListRecords", "ListDatasets", "DescribeIdentityUsage"]
)
async def test_identity_id_with_a_trailing_newline_is_an_invalid_parameter(raw: Raw, boto: Boto, suffix: str) -> None:
    identity = new_identity()
    status, body, _ = await raw.send("GET", identity_path(await boto.new_pool(), identity) + "%0A" + suffix)
    assert (status, body) == invalid_parameter(f"IdentityId '{identity}\n' is not of the form <region>:<uuid>")


async def test_developer_write_to_an_identity_id_with_a_trailing_newline_writes_nothing(
    raw: Raw, boto: Boto, redis_client: aioredis.Redis
) -> None:
    pool, identity = await boto.new_pool(), new_identity()
    path = dataset_path(pool, identity + "\n")
    # With developer credentials, as a client would: a session token if ListRecords gives one, then the write.
    token = (await raw.send("GET", path + "/records"))[1].get("SyncSessionToken", "none")
    patch = {"Op": "replace", "Key": "k", "Value": "v", "SyncCount": 0}
    status, _, _ = await raw.send("POST", path, body={"SyncSessionToken": token, "RecordPatches": [patch]})
    assert status == 400
    assert [key async for key in redis_client.scan_iter(match=f"*{identity}\n*")] == []


@pytest.mark.parametrize(
    ("operation", "payload", "member"),
    [
        ("DescribeIdentityPool", {"IdentityPoolId": "us-east-1:1111\n"}, "identityPoolId"),
        ("DescribeIdentity", {"IdentityId": "us-east-1:1111\n"}, "identityId"),
        ("GetCredentialsForIdentity", {"IdentityId": "us-east-1:1111\n"}, "identityId"),
        (
            "CreateIdentityPool",
            {"IdentityPoolName": "p", "AllowUnauthenticatedIdentities": True, "DeveloperProviderName": "dev\n"},
            "developerProviderName",
        ),
    ],
)
async def test_identity_patterns_refuse_a_trailing_newline(
    raw: Raw, operation: str, payload: dict[str, Any], member: str
) -> None:
    """A guard: pydantic checks ``pattern=`` with Rust's regex engine, where ``$`` is the end of the text."""
    status, body, _ = await raw.identity(operation, payload)
    assert (status, body["__type"], member_named(body["message"])) == (400, "ValidationException", member)


@pytest.mark.parametrize(
    ("operation", "payload", "member"),
    [
        ("DescribeIdentityPool", {"IdentityPoolId": "us-east-\u0661:1111"}, "identityPoolId"),  # an Arabic-Indic one
        ("DescribeIdentity", {"IdentityId": "\u00fcs-east-1:1111"}, "identityId"),
        (
            "CreateIdentityPool",
            {"IdentityPoolName": "p\u00f8ol", "AllowUnauthenticatedIdentities": True},
            "identityPoolName",
        ),
        (
            "CreateIdentityPool",
            {"IdentityPoolName": "p", "AllowUnauthenticatedIdentities": True, "DeveloperProviderName": "d\u00e9v"},
            "developerProviderName",
        ),
    ],
)
async def test_identity_patterns_take_ascii_letters_and_digits_only_as_aws_does(
    raw: Raw, operation: str, payload: dict[str, Any], member: str
) -> None:
    """AWS's patterns are Java regexes: ``\\w`` and ``\\d`` are ASCII there, Unicode in Python and in pydantic."""
    status, body, _ = await raw.identity(operation, payload)
    assert (status, body["__type"], member_named(body["message"])) == (400, "ValidationException", member)


async def test_identity_id_with_a_non_ascii_letter_is_an_invalid_parameter(raw: Raw, boto: Boto) -> None:
    identity = "\u00fc" + new_identity()
    status, body, _ = await raw.send("GET", identity_path(await boto.new_pool(), identity) + "/datasets")
    assert (status, body) == invalid_parameter(f"IdentityId '{identity}' is not of the form <region>:<uuid>")


@pytest.mark.parametrize(
    ("configuration", "member"),
    [
        ({"CognitoStreams": {"StreamName": "stream\n"}}, "cognitoStreams.streamName"),
        ({"CognitoStreams": {"RoleArn": "arn:aws:iam::123456789012:role/r\n"}}, "cognitoStreams.roleArn"),
        (
            {"PushSync": {"ApplicationArns": ["arn:aws:sns:us-east-1:1:app/GCM/a\n"]}},
            "pushSync.applicationArns.1.member",
        ),
    ],
)
async def test_pool_configuration_patterns_refuse_a_trailing_newline(
    raw: Raw, boto: Boto, configuration: dict[str, Any], member: str
) -> None:
    """A guard, as above, for SetIdentityPoolConfiguration."""
    path = f"/identitypools/{label(await boto.new_pool())}/configuration"
    status, body, _ = await raw.send("POST", path, body=configuration)
    assert (status, body["__type"], member_named(body["message"])) == (400, "InvalidParameterException", member)


def test_public_url_with_a_trailing_newline_is_refused(redis_url: str) -> None:
    with pytest.raises(ValidationError, match="public_url"):
        make_settings(redis_url, public_url="https://sync.example.test\n")
