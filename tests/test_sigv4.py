"""SigV4 verification (``syncsvc.identity.sigv4``) of requests signed by botocore, as AWS SDKs send them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest, create_request_object, prepare_request_dict
from botocore.config import Config
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from syncsvc.errors import IncompleteSignatureError, InvalidSignatureError, MissingAuthenticationTokenError
from syncsvc.identity.sigv4 import Signature, SignedRequest, check, parse

SERVICE = "cognito-sync"
REGION = "us-east-1"
HOST = "cognito-sync.us-east-1.amazonaws.com"
ENDPOINT = f"https://{HOST}"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEJr//////////session+token/=="
CREDENTIALS = Credentials(ACCESS_KEY, SECRET)
SESSION_CREDENTIALS = Credentials(ACCESS_KEY, SECRET, TOKEN)
POOL = "us-east-1:11111111-2222-3333-4444-555555555555"
IDENTITY = "us-east-1:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
ZEROS = "0" * 64


def label(value: str) -> str:
    """A rest-json URI label as botocore's serializer encodes it."""
    return quote(value, safe="-._~")


RECORDS_PATH = f"/identitypools/{label(POOL)}/identities/{label(IDENTITY)}/datasets/ds/records"
DATASET_PATH = f"/identitypools/{label(POOL)}/identities/{label(IDENTITY)}/datasets/ds"


def sdk_request(
    method: str,
    url_path: str,
    *,
    query: Mapping[str, str] | None = None,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> AWSRequest:
    """An unsigned request built the way a botocore client builds one (query string already in the URL)."""
    request_dict: dict[str, Any] = {
        "url_path": url_path,
        "query_string": dict(query or {}),
        "method": method,
        "headers": dict(headers or {}),
        "body": body,
    }
    prepare_request_dict(request_dict, endpoint_url=ENDPOINT)
    request: AWSRequest = create_request_object(request_dict)
    return request


def signed(
    request: AWSRequest,
    *,
    credentials: Credentials = CREDENTIALS,
    service: str = SERVICE,
    region: str = REGION,
) -> AWSRequest:
    SigV4Auth(credentials, service, region).add_auth(request)
    return request


def presigned(request: AWSRequest, *, expires: int = 300) -> AWSRequest:
    SigV4QueryAuth(CREDENTIALS, SERVICE, REGION, expires=expires).add_auth(request)
    return request


def received(request: AWSRequest) -> SignedRequest:
    """The request as the server receives it: every header sent (repeats kept), then the transport's."""
    prepared = request.prepare()
    headers = list(request.headers.items())
    sent = {name.lower() for name, _ in headers}
    headers += [(name, value) for name, value in prepared.headers.items() if name.lower() not in sent]
    return on_the_wire(prepared, headers)


def on_the_wire(prepared: AWSPreparedRequest, headers: Sequence[tuple[str, str | bytes]]) -> SignedRequest:
    """``prepared`` as the server receives it (botocore keeps some header values as bytes until sending)."""
    url = urlsplit(prepared.url)
    body = prepared.body or b""
    assert isinstance(body, bytes)
    return SignedRequest(
        method=prepared.method,
        raw_path=url.path,
        raw_query=url.query,
        headers=[
            ("Host", url.netloc),
            *((name, value.decode() if isinstance(value, bytes) else value) for name, value in headers),
            ("User-Agent", "Boto3/1.44.8 test"),
        ],
        body=body,
    )


def header(request: SignedRequest, name: str) -> str | None:
    """The last ``name`` header of ``request``, whatever the case of its name."""
    return {n.lower(): v for n, v in request.headers}.get(name.lower())


def signing_time(request: SignedRequest) -> datetime:
    """The time botocore signed at, from X-Amz-Date (header, or query when presigned)."""
    amz_date = header(request, "X-Amz-Date") or parse_qs(request.raw_query)["X-Amz-Date"][0]
    return datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def verify(
    request: SignedRequest, *, secret: str = SECRET, now: datetime | None = None, service: str = SERVICE
) -> Signature:
    signature = parse(request, service=service, region=REGION, now=now or signing_time(request))
    check(request, signature, secret)
    return signature


def with_header(request: SignedRequest, name: str, value: str) -> SignedRequest:
    """``request`` with every ``name`` header replaced by one with ``value``."""
    headers = [(n, v) for n, v in request.headers if n.lower() != name.lower()]
    return dataclasses.replace(request, headers=[*headers, (name, value)])


def without_header(request: SignedRequest, name: str) -> SignedRequest:
    return dataclasses.replace(request, headers=[(n, v) for n, v in request.headers if n.lower() != name.lower()])


def claiming(authorization: str | None, *, amz_date: str | None = "20150526T081138Z") -> SignedRequest:
    """A hand-built GET whose claim is checked before any secret is involved."""
    headers = [("Host", HOST)]
    if amz_date is not None:
        headers.append(("X-Amz-Date", amz_date))
    if authorization is not None:
        headers.append(("Authorization", authorization))
    return SignedRequest(method="GET", raw_path="/", raw_query="", headers=headers, body=b"")


def authorization(
    *,
    credential: str = f"{ACCESS_KEY}/20150526/{REGION}/{SERVICE}/aws4_request",
    signed_headers: str = "host;x-amz-date",
    signature: str = ZEROS,
) -> str:
    return f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed_headers}, Signature={signature}"


def list_records_request() -> SignedRequest:
    query = {"lastSyncCount": "5", "syncSessionToken": "tok/+= x"}
    return received(signed(sdk_request("GET", RECORDS_PATH, query=query)))


def update_records_request() -> SignedRequest:
    body = json.dumps({"SyncSessionToken": "tok", "DeviceId": "dev1", "RecordPatches": []}).encode()
    headers = {"Content-Type": "application/json", "X-Amz-Client-Context": "eyJjbGllbnQiOnt9fQ=="}
    return received(
        signed(sdk_request("POST", RECORDS_PATH, body=body, headers=headers), credentials=SESSION_CREDENTIALS)
    )


# --- requests that verify -----------------------------------------------------------------------------------


def test_sdk_get_with_encoded_path_labels_and_query_verifies() -> None:
    request = list_records_request()

    verify(request)

    assert request.raw_path.startswith("/identitypools/us-east-1%3A1111")
    assert request.raw_query == "lastSyncCount=5&syncSessionToken=tok%2F%2B%3D%20x"


def test_sdk_post_with_json_body_session_token_and_client_context_verifies() -> None:
    verify(update_records_request())


def test_parse_returns_the_whole_claim() -> None:
    request = update_records_request()
    amz_date = signing_time(request).strftime("%Y%m%dT%H%M%SZ")

    signature = parse(request, service=SERVICE, region=REGION, now=signing_time(request))

    assert signature == Signature(
        access_key_id=ACCESS_KEY,
        security_token=TOKEN,
        amz_date=amz_date,
        scope_date=amz_date[:8],
        region=REGION,
        service=SERVICE,
        signed_headers=("content-type", "host", "x-amz-client-context", "x-amz-date", "x-amz-security-token"),
        signature=str(header(request, "Authorization")).rpartition("Signature=")[2],
        presigned=False,
    )


class _CapturedError(Exception):
    def __init__(self, request: AWSPreparedRequest) -> None:
        super().__init__("captured")
        self.request = request


def test_boto3_client_list_records_request_verifies() -> None:
    client = boto3.client(
        "cognito-sync",
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
        aws_session_token=TOKEN,
        config=Config(retries={"total_max_attempts": 1}),
    )

    def capture(request: AWSPreparedRequest, **_: Any) -> None:
        raise _CapturedError(request)

    client.meta.events.register("before-send.cognito-sync.ListRecords", capture)
    with pytest.raises(_CapturedError) as captured:
        client.list_records(
            IdentityPoolId=POOL,
            IdentityId=IDENTITY,
            DatasetName="ds",
            LastSyncCount=5,
            SyncSessionToken="t/+= x",
        )
    prepared = captured.value.request

    signature = verify(on_the_wire(prepared, list(prepared.headers.items())))

    assert signature.security_token == TOKEN


def test_authorization_without_spaces_after_commas_verifies() -> None:
    request = list_records_request()
    value = str(header(request, "Authorization")).replace(", ", ",")

    verify(with_header(request, "Authorization", value))


def test_authorization_with_extra_spaces_after_commas_verifies() -> None:
    request = list_records_request()
    value = str(header(request, "Authorization")).replace(", ", ",   ")

    verify(with_header(request, "Authorization", value))


def test_header_names_in_any_case_verify() -> None:
    request = list_records_request()
    lowered = dataclasses.replace(request, headers=[(name.lower(), value) for name, value in request.headers])

    verify(lowered)


def test_dot_segments_and_repeated_slashes_are_normalised_like_botocore() -> None:
    verify(received(signed(sdk_request("GET", "/identitypools/./a//b/../datasets"))))


def test_path_sent_with_unencoded_colons_verifies() -> None:
    verify(received(signed(sdk_request("GET", f"/identitypools/{POOL}/identities/{IDENTITY}/datasets"))))


def test_date_header_is_the_request_time_without_x_amz_date() -> None:
    request = received(signed(sdk_request("GET", RECORDS_PATH, headers={"Date": "placeholder"})))
    date = str(header(request, "Date"))
    now = datetime.strptime(date, "%a, %d %b %Y %H:%M:%S -0000").replace(tzinfo=UTC)

    signature = verify(request, now=now)

    assert header(request, "X-Amz-Date") is None
    assert signature.amz_date == now.strftime("%Y%m%dT%H%M%SZ")


@pytest.mark.parametrize("offset", [-299, 299])
def test_request_time_within_five_minutes_of_now_verifies(offset: int) -> None:
    request = list_records_request()

    verify(request, now=signing_time(request) + timedelta(seconds=offset))


def test_sdk_request_with_repeated_headers_verifies() -> None:
    request = sdk_request("GET", RECORDS_PATH)
    request.headers["X-Amz-Meta-Tag"] = "one"
    request.headers["X-Amz-Meta-Tag"] = "two"
    signed(request)

    signature = verify(received(request))

    assert "x-amz-meta-tag" in signature.signed_headers


def test_header_whitespace_is_folded_before_signing() -> None:
    request = received(signed(sdk_request("GET", RECORDS_PATH, headers={"X-Amz-Meta-Note": "a  b   c"})))

    verify(with_header(request, "X-Amz-Meta-Note", "  a \t b c  "))


def test_matching_content_sha256_header_verifies() -> None:
    body = b'{"DeviceId":"dev1"}'
    headers = {"X-Amz-Content-SHA256": sha256(body).hexdigest()}

    verify(received(signed(sdk_request("POST", RECORDS_PATH, body=body, headers=headers))))


def test_unsigned_payload_with_empty_body_verifies() -> None:
    headers = {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}

    verify(received(signed(sdk_request("DELETE", DATASET_PATH, headers=headers))))


def test_presigned_url_verifies() -> None:
    request = received(presigned(sdk_request("GET", RECORDS_PATH, query={"lastSyncCount": "5"})))

    signature = verify(request)

    assert signature.presigned
    assert signature.signed_headers == ("host",)


# --- requests that do not verify ----------------------------------------------------------------------------


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(InvalidSignatureError, match=r"^The request signature we calculated") as error:
        verify(list_records_request(), secret=SECRET + "x")

    assert error.value.message == MISMATCH


def test_tampered_body_is_rejected() -> None:
    request = update_records_request()

    with pytest.raises(InvalidSignatureError, match=r"^The request signature we calculated"):
        verify(dataclasses.replace(request, body=request.body.replace(b"dev1", b"dev2")))


def test_tampered_path_is_rejected() -> None:
    request = list_records_request()

    with pytest.raises(InvalidSignatureError, match=r"^The request signature we calculated"):
        verify(dataclasses.replace(request, raw_path=request.raw_path.replace("datasets/ds", "datasets/dx")))


def test_tampered_query_value_is_rejected() -> None:
    request = list_records_request()

    with pytest.raises(InvalidSignatureError, match=r"^The request signature we calculated"):
        verify(dataclasses.replace(request, raw_query=request.raw_query.replace("lastSyncCount=5", "lastSyncCount=6")))


def test_added_query_parameter_is_rejected() -> None:
    request = list_records_request()

    with pytest.raises(InvalidSignatureError, match=r"^The request signature we calculated"):
        verify(dataclasses.replace(request, raw_query=request.raw_query + "&maxResults=1"))


def test_reordered_repeated_header_values_are_rejected() -> None:
    request = sdk_request("GET", RECORDS_PATH)
    request.headers["X-Amz-Meta-Tag"] = "one"
    request.headers["X-Amz-Meta-Tag"] = "two"
    wire = received(signed(request))
    swapped = [(n, {"one": "two", "two": "one"}.get(v, v) if n == "X-Amz-Meta-Tag" else v) for n, v in wire.headers]

    with pytest.raises(InvalidSignatureError, match=r"^The request signature we calculated"):
        verify(dataclasses.replace(wire, headers=swapped))


def test_sdk_request_signed_more_than_five_minutes_ago_is_expired() -> None:
    request = list_records_request()

    with pytest.raises(InvalidSignatureError, match=r"^Signature expired: "):
        verify(request, now=signing_time(request) + timedelta(seconds=301))


def test_sdk_request_signed_more_than_five_minutes_ahead_is_not_yet_current() -> None:
    request = list_records_request()

    with pytest.raises(InvalidSignatureError, match=r"^Signature not yet current: "):
        verify(request, now=signing_time(request) - timedelta(seconds=301))


def test_expired_signature_message_has_the_aws_shape() -> None:
    request = claiming(
        authorization(credential=f"{ACCESS_KEY}/20150520/{REGION}/{SERVICE}/aws4_request"),
        amz_date="20150520T094646Z",
    )

    with pytest.raises(InvalidSignatureError) as error:
        parse(request, service=SERVICE, region=REGION, now=datetime(2015, 5, 26, 8, 11, 38, tzinfo=UTC))

    assert error.value.message == (
        "Signature expired: 20150520T094646Z is now earlier than 20150526T080638Z (20150526T081138Z - 5 min.)"
    )


def test_future_signature_message_has_the_aws_shape() -> None:
    request = claiming(authorization(), amz_date="20150526T081739Z")

    with pytest.raises(InvalidSignatureError) as error:
        parse(request, service=SERVICE, region=REGION, now=datetime(2015, 5, 26, 8, 11, 38, tzinfo=UTC))

    assert error.value.message == (
        "Signature not yet current: 20150526T081739Z is still later than 20150526T081638Z (20150526T081138Z + 5 min.)"
    )


def test_credential_for_another_service_is_rejected() -> None:
    request = received(signed(sdk_request("GET", RECORDS_PATH), service="cognito-identity"))

    with pytest.raises(InvalidSignatureError) as error:
        verify(request)

    assert error.value.message == "Credential should be scoped to correct service: 'cognito-sync'."


def test_credential_for_another_region_is_rejected() -> None:
    request = received(signed(sdk_request("GET", RECORDS_PATH), region="eu-west-1"))

    with pytest.raises(InvalidSignatureError) as error:
        verify(request)

    assert error.value.message == "Credential should be scoped to a valid region, not 'eu-west-1'."


def test_credential_scope_date_other_than_request_date_is_rejected() -> None:
    request = claiming(authorization(credential=f"{ACCESS_KEY}/20150525/{REGION}/{SERVICE}/aws4_request"))

    with pytest.raises(InvalidSignatureError) as error:
        parse(request, service=SERVICE, region=REGION, now=datetime(2015, 5, 26, 8, 11, 38, tzinfo=UTC))

    assert error.value.message == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        "'20150525' != '20150526', from 'X-Amz-Date'."
    )


def test_credential_with_another_terminator_is_rejected() -> None:
    request = claiming(authorization(credential=f"{ACCESS_KEY}/20150526/{REGION}/{SERVICE}/aws5_request"))

    with pytest.raises(InvalidSignatureError) as error:
        parse(request, service=SERVICE, region=REGION, now=datetime(2015, 5, 26, 8, 11, 38, tzinfo=UTC))

    assert (
        error.value.message
        == "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'."
    )


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
        parse(list_records_request(), service=SERVICE, region=REGION, now=datetime(2015, 5, 26))


def test_missing_authorization_is_missing_authentication_token() -> None:
    with pytest.raises(MissingAuthenticationTokenError, match=r"^Missing Authentication Token$"):
        verify(without_header(list_records_request(), "Authorization"))


def test_bearer_authorization_is_missing_authentication_token() -> None:
    with pytest.raises(MissingAuthenticationTokenError, match=r"^Missing Authentication Token$"):
        parse(claiming("Bearer abc.def.ghi"), service=SERVICE, region=REGION, now=datetime.now(UTC))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            f"AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature={ZEROS}",
            "Authorization header requires 'Credential' parameter.",
            id="no-credential",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20150526/{REGION}/{SERVICE}/aws4_request, Signature={ZEROS}",
            "Authorization header requires 'SignedHeaders' parameter.",
            id="no-signed-headers",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20150526/{REGION}/{SERVICE}/aws4_request, "
            "SignedHeaders=host;x-amz-date",
            "Authorization header requires 'Signature' parameter.",
            id="no-signature",
        ),
        pytest.param(
            "AWS4-HMAC-SHA256 ",
            "Authorization header requires 'Credential' parameter. "
            "Authorization header requires 'Signature' parameter. "
            "Authorization header requires 'SignedHeaders' parameter.",
            id="no-parameters",
        ),
        pytest.param(
            authorization(credential=f"{ACCESS_KEY}/20150526/{REGION}/aws4_request"),
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got '{ACCESS_KEY}/20150526/{REGION}/aws4_request'",
            id="four-part-credential",
        ),
        pytest.param(
            authorization(signature="0" * 63),
            "Signature must be 64 hexadecimal characters.",
            id="short-signature",
        ),
        pytest.param(
            authorization(signature="z" * 64),
            "Signature must be 64 hexadecimal characters.",
            id="non-hex-signature",
        ),
        pytest.param(
            authorization(signed_headers="host;;x-amz-date"),
            "SignedHeaders must be a ';'-separated list of names, got 'host;;x-amz-date'.",
            id="empty-signed-header-name",
        ),
        pytest.param(
            authorization().replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
            "Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256'.",
            id="other-algorithm",
        ),
    ],
)
def test_malformed_authorization_is_incomplete_signature(value: str, message: str) -> None:
    with pytest.raises(IncompleteSignatureError) as error:
        parse(claiming(value), service=SERVICE, region=REGION, now=datetime(2015, 5, 26, 8, 11, 38, tzinfo=UTC))

    assert error.value.message == message


def test_request_without_any_date_is_incomplete_signature() -> None:
    with pytest.raises(IncompleteSignatureError) as error:
        parse(claiming(authorization(), amz_date=None), service=SERVICE, region=REGION, now=datetime.now(UTC))

    assert error.value.message == (
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def test_x_amz_date_not_in_basic_format_is_incomplete_signature() -> None:
    request = claiming(authorization(), amz_date="2015-05-26T08:11:38Z")

    with pytest.raises(IncompleteSignatureError) as error:
        parse(request, service=SERVICE, region=REGION, now=datetime.now(UTC))

    assert error.value.message == (
        "Date must be in ISO-8601 'basic format'. Got '2015-05-26T08:11:38Z'. See http://en.wikipedia.org/wiki/ISO_8601"
    )


def test_unsigned_host_is_incomplete_signature() -> None:
    request = claiming(authorization(signed_headers="x-amz-date"))

    with pytest.raises(IncompleteSignatureError) as error:
        parse(request, service=SERVICE, region=REGION, now=datetime(2015, 5, 26, 8, 11, 38, tzinfo=UTC))

    assert error.value.message == "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."


def test_signed_header_missing_from_request_is_incomplete_signature() -> None:
    request = without_header(update_records_request(), "X-Amz-Client-Context")

    with pytest.raises(IncompleteSignatureError) as error:
        verify(request)

    assert error.value.message == "Signed header 'x-amz-client-context' is not present in the request."


def test_content_sha256_other_than_the_body_hash_is_rejected() -> None:
    headers = {"X-Amz-Content-SHA256": sha256(b"another body").hexdigest()}
    request = received(signed(sdk_request("POST", RECORDS_PATH, body=b"{}", headers=headers)))

    with pytest.raises(InvalidSignatureError) as error:
        verify(request)

    assert error.value.message == "The provided 'x-amz-content-sha256' header does not match what was computed."


def test_unsigned_payload_with_a_body_is_rejected() -> None:
    headers = {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    request = received(signed(sdk_request("POST", RECORDS_PATH, body=b"{}", headers=headers)))

    with pytest.raises(InvalidSignatureError) as error:
        verify(request)

    assert error.value.message == "The provided 'x-amz-content-sha256' header does not match what was computed."


def test_expired_presigned_url_is_rejected() -> None:
    request = received(presigned(sdk_request("GET", RECORDS_PATH), expires=300))

    with pytest.raises(InvalidSignatureError, match=r"^Signature expired: "):
        verify(request, now=signing_time(request) + timedelta(seconds=301))


def test_presigned_url_with_tampered_signature_is_rejected() -> None:
    request = received(presigned(sdk_request("GET", RECORDS_PATH)))
    query, _, _ = request.raw_query.partition("&X-Amz-Signature=")

    with pytest.raises(InvalidSignatureError, match=r"^The request signature we calculated"):
        verify(dataclasses.replace(request, raw_query=f"{query}&X-Amz-Signature={'a' * 64}"))


def test_authorization_header_and_presigned_query_together_are_incomplete_signature() -> None:
    query = received(presigned(sdk_request("GET", RECORDS_PATH))).raw_query
    request = dataclasses.replace(list_records_request(), raw_query=query)

    with pytest.raises(IncompleteSignatureError) as error:
        verify(request)

    assert error.value.message == (
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization "
        "header should be specified."
    )


def test_presigned_url_without_expires_is_incomplete_signature() -> None:
    request = received(presigned(sdk_request("GET", RECORDS_PATH)))
    query = "&".join(p for p in request.raw_query.split("&") if not p.startswith("X-Amz-Expires="))

    with pytest.raises(IncompleteSignatureError) as error:
        verify(dataclasses.replace(request, raw_query=query))

    assert error.value.message == (
        "AWS query-string parameters must include 'X-Amz-Expires'. Re-examine the query-string parameters."
    )


# --- properties ---------------------------------------------------------------------------------------------

printable = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    segments=st.lists(printable, min_size=1, max_size=4),
    query=st.dictionaries(printable, st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=12)),
    data=st.data(),
)
def test_any_sdk_signed_path_and_query_verify_and_a_flipped_body_byte_does_not(
    segments: list[str], query: dict[str, str], data: st.DataObject
) -> None:
    body = data.draw(st.binary(min_size=1, max_size=64), label="body")
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    path = "/" + "/".join(label(segment) for segment in segments)
    request = received(signed(sdk_request("PUT", path, query=query, body=body)))
    flipped = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]

    verify(request)
    with pytest.raises(InvalidSignatureError, match=r"^The request signature we calculated"):
        verify(dataclasses.replace(request, body=flipped))
