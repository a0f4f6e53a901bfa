"""AWS Signature Version 4 verification for a server (reference §5). Pure: no I/O.

(Over 400 lines on purpose: one algorithm, its two request forms and AWS's wording of each refusal, kept in one module
so the canonical request can be checked against botocore in one reading.)

Two steps, because the secret is only known once the access key has been looked up:

* ``parse`` reads what a request claims (header or presigned-URL form) and checks its form, its credential
  scope and its time. It raises ``MissingAuthenticationTokenError``, ``IncompleteSignatureError`` or
  ``InvalidSignatureError`` with the messages real AWS uses.
* ``check`` rebuilds the canonical request exactly as AWS SDKs (botocore) do and compares signatures in
  constant time. Header values are signed as the bytes received: botocore sends a value as its UTF-8 bytes and
  signs those, and a byte that is not UTF-8 (which aiohttp hands over as a lone surrogate) goes back to itself.

Where the docs could be read two ways, the canonical request follows botocore: the path is the raw (still
percent-encoded) path without dot segments and repeated slashes, encoded once more; query names and values
are decoded and re-encoded RFC 3986 style, ``+`` being a literal plus.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote, unquote, unquote_to_bytes

from syncsvc.errors import IncompleteSignatureError, InvalidSignatureError, MissingAuthenticationTokenError

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_EXPIRES_SECONDS = 604800

_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
#: A path with nothing for quote(path, safe="/~") to encode but "%".
_ENCODED_PATH = re.compile(r"[A-Za-z0-9\-._~/%]*")
_HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
#: X-Amz-Expires: seconds, few enough digits for int() to read (it refuses more than 4,300).
_EXPIRES = re.compile(r"[0-9]{1,7}")
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
#: The query parameters a presigned URL must carry (X-Amz-Security-Token is optional).
_PRESIGNED_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_PAYLOAD_MISMATCH = "The provided 'x-amz-content-sha256' header does not match what was computed."


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """An HTTP request as the server received it, before any decoding."""

    method: str
    #: The path exactly as received, still percent-encoded, without the query.
    raw_path: str
    #: The query string as received (no leading ``?``), ``""`` if none.
    raw_query: str
    #: Every header as received, in order; names in any case; repeated names allowed. Values as aiohttp decodes them:
    #: UTF-8, with any byte that is not UTF-8 kept as a lone surrogate (``surrogateescape``).
    headers: Sequence[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Signature:
    """What the request claims, parsed and checked for form and time, before any secret is known."""

    access_key_id: str
    #: The X-Amz-Security-Token header or query parameter, if present.
    security_token: str | None
    #: YYYYMMDDTHHMMSSZ
    amz_date: str
    scope_date: str
    region: str
    service: str
    #: Lowercase, as listed.
    signed_headers: tuple[str, ...]
    #: 64 lowercase hex digits.
    signature: str
    presigned: bool


@dataclass(frozen=True, slots=True)
class _Claim:
    """The raw auth parameters of either form, before their content is checked."""

    credential: str
    signed_headers: str
    signature: str
    time: datetime
    #: Where the time came from, for messages: "X-Amz-Date" or "Date".
    time_source: str
    security_token: str | None
    #: X-Amz-Expires of a presigned URL; None for the header form.
    expires: int | None


def parse(
    request: SignedRequest, *, service: str, region: str, now: datetime, max_skew_seconds: int = 300
) -> Signature:
    """Read and check the request's SigV4 claim; ``now`` must be timezone-aware."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    headers = _header_map(request.headers)
    query = _auth_query_params(request.raw_query)
    authorization = headers.get("authorization")
    if authorization is not None:
        claim = _claim_from_header(authorization[0], headers, query)
    elif "X-Amz-Algorithm" in query:
        claim = _claim_from_query(query, headers)
    else:
        raise MissingAuthenticationTokenError("Missing Authentication Token")

    access_key_id, scope = _split_credential(claim.credential)
    signed_headers = _split_signed_headers(claim.signed_headers, headers)
    if _HEX_SIGNATURE.fullmatch(claim.signature) is None:
        raise IncompleteSignatureError("Signature must be 64 hexadecimal characters.")
    _check_time(claim, now, timedelta(seconds=max_skew_seconds))
    amz_date = claim.time.strftime(_TIME_FORMAT)
    _check_scope(scope, amz_date, claim.time_source, service=service, region=region)
    return Signature(
        access_key_id=access_key_id,
        security_token=claim.security_token,
        amz_date=amz_date,
        scope_date=scope[0],
        region=scope[1],
        service=scope[2],
        signed_headers=signed_headers,
        signature=claim.signature.lower(),
        presigned=claim.expires is not None,
    )


def check(request: SignedRequest, signature: Signature, secret: str) -> None:
    """Raise ``InvalidSignatureError`` unless ``signature`` is the request's signature under ``secret``."""
    headers = _header_map(request.headers)
    canonical_request = "\n".join(
        (
            request.method,
            _canonical_uri(request.raw_path),
            _canonical_query(request.raw_query, presigned=signature.presigned),
            _canonical_headers(headers, signature.signed_headers),
            ";".join(signature.signed_headers),
            _hashed_payload(headers, request.body, presigned=signature.presigned),
        )
    )
    string_to_sign = (
        f"{ALGORITHM}\n{signature.amz_date}\n"
        f"{signature.scope_date}/{signature.region}/{signature.service}/{TERMINATOR}\n"
        f"{hashlib.sha256(canonical_request.encode('utf-8', 'surrogateescape')).hexdigest()}"
    )
    key = _signing_key(secret, signature.scope_date, signature.region, signature.service)
    expected = hmac.digest(key, string_to_sign.encode(), "sha256").hex()
    if not hmac.compare_digest(expected, signature.signature):
        raise InvalidSignatureError(_SIGNATURE_MISMATCH)


# --- parse --------------------------------------------------------------------------------------------------


def _header_map(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in headers:
        values = result.get(lowered := name.lower())
        if values is None:
            result[lowered] = [value]
        else:
            values.append(value)
    return result


def _auth_query_params(raw_query: str) -> dict[str, str]:
    """The decoded ``X-Amz-*`` query parameters; the first occurrence of a name wins."""
    params: dict[str, str] = {}
    if "X-Amz-" not in raw_query and "%" not in raw_query:
        return params
    for pair in raw_query.split("&"):
        raw_name, _, raw_value = pair.partition("=")
        name = unquote(raw_name)
        if name.startswith("X-Amz-") and name not in params:
            params[name] = unquote(raw_value)
    return params


def _claim_from_header(authorization: str, headers: dict[str, list[str]], query: dict[str, str]) -> _Claim:
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme != ALGORITHM:
        if scheme.startswith("AWS4-"):
            raise IncompleteSignatureError(f"Unsupported AWS 'algorithm': '{scheme}'.")
        raise MissingAuthenticationTokenError("Missing Authentication Token")
    if "X-Amz-Algorithm" in query:
        raise IncompleteSignatureError(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization "
            "header should be specified."
        )
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        params[name] = value
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name)
    ]
    if "x-amz-date" not in headers and "date" not in headers:
        problems.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if problems:
        raise IncompleteSignatureError(" ".join(problems))
    time, source = _header_time(headers)
    token = headers.get("x-amz-security-token")
    return _Claim(
        credential=params["Credential"],
        signed_headers=params["SignedHeaders"],
        signature=params["Signature"],
        time=time,
        time_source=source,
        security_token=token[0] if token is not None else query.get("X-Amz-Security-Token"),
        expires=None,
    )


def _claim_from_query(query: dict[str, str], headers: dict[str, list[str]]) -> _Claim:
    missing = [name for name in _PRESIGNED_PARAMS if not query.get(name)]
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        raise IncompleteSignatureError(
            f"AWS query-string parameters must include {names}. Re-examine the query-string parameters."
        )
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignatureError(f'X-Amz-Algorithm only supports "{ALGORITHM}".')
    expires = query["X-Amz-Expires"]
    if _EXPIRES.fullmatch(expires) is None or not 1 <= int(expires) <= MAX_EXPIRES_SECONDS:
        raise IncompleteSignatureError(
            f"X-Amz-Expires must be a whole number of seconds from 1 to {MAX_EXPIRES_SECONDS} (a week)."
        )
    token = query.get("X-Amz-Security-Token")
    if token is None and (header := headers.get("x-amz-security-token")) is not None:
        token = header[0]
    return _Claim(
        credential=query["X-Amz-Credential"],
        signed_headers=query["X-Amz-SignedHeaders"],
        signature=query["X-Amz-Signature"],
        time=_parse_amz_date(query["X-Amz-Date"]),
        time_source="X-Amz-Date",
        security_token=token,
        expires=int(expires),
    )


def _header_time(headers: dict[str, list[str]]) -> tuple[datetime, str]:
    """The request time of the header form: X-Amz-Date, else Date (one of them is known to be present)."""
    amz_date = headers.get("x-amz-date")
    if amz_date is not None:
        return _parse_amz_date(amz_date[0]), "X-Amz-Date"
    return _parse_http_date(headers["date"][0]), "Date"


def _parse_amz_date(value: str) -> datetime:
    if _AMZ_DATE.fullmatch(value) is not None:
        try:
            return datetime(
                int(value[0:4]),
                int(value[4:6]),
                int(value[6:8]),
                int(value[9:11]),
                int(value[11:13]),
                int(value[13:15]),
                tzinfo=UTC,
            )
        except ValueError:
            pass
    raise IncompleteSignatureError(
        f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
    )


def _parse_http_date(value: str) -> datetime:
    """A Date header as UTC; one past the calendar (a year of 20 digits, 9999-12-31 west of UTC) is malformed."""
    try:
        time = parsedate_to_datetime(value)
        return time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)
    except (TypeError, ValueError, OverflowError):
        raise IncompleteSignatureError(f"Date must be an RFC 1123 HTTP date. Got '{value}'.") from None


def _split_credential(credential: str) -> tuple[str, tuple[str, str, str, str]]:
    """The access key id and the scope (date, region, service, terminator) of ``AKID/date/region/service/term``."""
    parts = credential.split("/")
    if len(parts) != 5 or not parts[0]:
        raise IncompleteSignatureError(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got '{credential}'"
        )
    return parts[0], (parts[1], parts[2], parts[3], parts[4])


def _check_scope(
    scope: tuple[str, str, str, str], amz_date: str, time_source: str, *, service: str, region: str
) -> None:
    """Every way the credential scope differs from this service, region and request date, in one message."""
    scope_date, scope_region, scope_service, terminator = scope
    errors = []
    if scope_region != region:
        errors.append(f"Credential should be scoped to a valid region, not '{scope_region}'.")
    if scope_service != service:
        errors.append(f"Credential should be scoped to correct service: '{service}'.")
    if terminator != TERMINATOR:
        errors.append(f"Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator}'.")
    if scope_date != amz_date[:8]:
        errors.append(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{scope_date}' != '{amz_date[:8]}', from '{time_source}'."
        )
    if errors:
        raise InvalidSignatureError(" ".join(errors))


def _split_signed_headers(signed_headers: str, headers: dict[str, list[str]]) -> tuple[str, ...]:
    names = tuple(signed_headers.lower().split(";"))
    if "" in names:
        raise IncompleteSignatureError(f"SignedHeaders must be a ';'-separated list of names, got '{signed_headers}'.")
    if "host" not in names:
        raise IncompleteSignatureError("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    for name in names:
        if name not in headers:
            raise IncompleteSignatureError(f"Signed header '{name}' is not present in the request.")
    return names


def _check_time(claim: _Claim, now: datetime, skew: timedelta) -> None:
    """Reject a request time outside the allowed window, with AWS's message shape."""
    time = claim.time
    if claim.expires is None:
        earliest, window = now - skew, skew
    else:
        window = timedelta(seconds=claim.expires)
        earliest = now - window
    if time < earliest:
        raise InvalidSignatureError(
            f"Signature expired: {time:{_TIME_FORMAT}} is now earlier than {earliest:{_TIME_FORMAT}} "
            f"({now:{_TIME_FORMAT}} - {_describe(window)}.)"
        )
    if time > (latest := now + skew):
        raise InvalidSignatureError(
            f"Signature not yet current: {time:{_TIME_FORMAT}} is still later than {latest:{_TIME_FORMAT}} "
            f"({now:{_TIME_FORMAT}} + {_describe(skew)}.)"
        )


def _describe(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} sec"


# --- check --------------------------------------------------------------------------------------------------


def _canonical_uri(raw_path: str) -> str:
    """The raw path without dot segments and repeated slashes, percent-encoded once more, as botocore does."""
    if not raw_path:
        return "/"
    if raw_path[0] != "/" or "//" in raw_path or "/." in raw_path:
        raw_path = _remove_dot_segments(raw_path)
    if _ENCODED_PATH.fullmatch(raw_path) is not None:
        return raw_path.replace("%", "%25")  # what quote() gives, without its per-character loop
    return quote(raw_path, safe="/~")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, and empty segments dropped, exactly like ``botocore.utils.remove_dot_segments``."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and segments else ""
    return first + "/".join(segments) + last


def _canonical_query(raw_query: str, *, presigned: bool) -> str:
    pairs = []
    for pair in raw_query.split("&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition("=")
        name = _rfc3986(raw_name)
        if presigned and name == "X-Amz-Signature":
            continue
        pairs.append((name, _rfc3986(raw_value)))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def _rfc3986(component: str) -> str:
    """Decode (``+`` stays a plus) and re-encode with only unreserved characters left as they are."""
    return quote(unquote_to_bytes(component), safe="-_.~")


def _canonical_headers(headers: dict[str, list[str]], names: tuple[str, ...]) -> str:
    lines = []
    for name in names:
        values = headers.get(name)
        if values is None:
            raise IncompleteSignatureError(f"Signed header '{name}' is not present in the request.")
        lines.append(f"{name}:{','.join(' '.join(value.split()) for value in values)}\n")
    return "".join(lines)


def _hashed_payload(headers: dict[str, list[str]], body: bytes, *, presigned: bool) -> str:
    """The claimed payload hash, which must be the real one (or UNSIGNED-PAYLOAD where that is allowed)."""
    actual = hashlib.sha256(body).hexdigest()
    claimed = headers.get("x-amz-content-sha256")
    if claimed is None:
        return actual
    value = claimed[0]
    if value == UNSIGNED_PAYLOAD:
        if presigned or not body:
            return value
    elif value.lower() == actual:
        return value
    raise InvalidSignatureError(_PAYLOAD_MISMATCH)


@lru_cache(maxsize=256)
def _signing_key(secret: str, scope_date: str, region: str, service: str) -> bytes:
    """kSigning; valid for a whole day, so it is derived once per (secret, day, region, service)."""
    key = hmac.digest(f"AWS4{secret}".encode(), scope_date.encode(), "sha256")
    key = hmac.digest(key, region.encode(), "sha256")
    key = hmac.digest(key, service.encode(), "sha256")
    return hmac.digest(key, TERMINATOR.encode(), "sha256")
