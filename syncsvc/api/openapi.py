"""The OpenAPI 3.1 document of the whole HTTP surface, made from the operation tables the server serves from.

Nothing here is written by hand per operation: every path, parameter, request body and response comes from the
surfaces' :class:`~syncsvc.api.operations.Operation` entries (their routes, their pydantic input models, their
output TypedDicts, their access rules), so the document cannot drift from what is served. ``/openapi.json`` serves
it; ``docs/openapi.json`` is the committed copy (``make openapi`` writes it; a test fails when it differs).

How the AWS protocols map onto OpenAPI:

* Cognito Sync is rest-json: one path per operation, its labels and query parameters as parameters.
* Cognito Identity, KMS and Cognito user pools are json 1.1: every operation is ``POST /``, named by the
  ``X-Amz-Target`` header. OpenAPI keys a path by its URL only, so each operation gets the path
  ``/#X-Amz-Target=<target>`` (the fragment is not sent: the request goes to ``/``), with the header as a
  required parameter of that one value and ``x-amz-target`` naming it, the convention of AWS-to-OpenAPI converters.
* Blobs (KMS plaintexts, ciphertexts, signatures) are base64 text, as on the wire (``format: byte``).
* Every error has the AWS shape ``{"__type": <name>, "message": <text>}`` (some carry more members, as
  ResourceConflictException carries the stored records). Each surface's error schema (``<Surface>.Error``) lists the
  names its operations answer: those of :data:`ERRORS` and the ones every surface shares (:data:`COMMON_ERRORS`:
  the signature, the request's framing, overload, an outage).
* Signed requests use SigV4 (``Authorization: AWS4-HMAC-SHA256 …``: described, OpenAPI has no scheme for it); Cognito
  Sync also takes an identity's token as ``Authorization: Bearer``.

The web console (``/console``, ``syncsvc.api.console``) is left out: HTML pages for people, not an API; what it
reads and changes it does through the operations described here.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import TypeAdapter

from syncsvc import __version__, errors
from syncsvc.access import Access
from syncsvc.api import identity, kms, sync, userpools
from syncsvc.api.operations import Operation, Surface
from syncsvc.errors import SyncsvcError

#: The surfaces in the document's order, with the name their schemas are prefixed with (two services may name a
#: shape alike: ``PoolSummary`` is an identity pool in one and a user pool in the other).
SURFACES: tuple[tuple[str, Surface], ...] = (
    ("CognitoSync", sync.SURFACE),
    ("CognitoIdentity", identity.SURFACE),
    ("CognitoIdentityProvider", userpools.SURFACE),
    ("KMS", kms.SURFACE),
)
#: The errors any request may be answered with, whatever its surface: its signature or token refused, its body or
#: framing broken, no such operation, the server overloaded or its backend unreachable (InternalErrorException 503).
COMMON_ERRORS: tuple[type[SyncsvcError], ...] = (
    errors.MissingAuthenticationTokenError,
    errors.IncompleteSignatureError,
    errors.InvalidSignatureError,
    errors.UnrecognizedClientError,
    errors.ExpiredTokenError,
    errors.NotAuthorizedError,
    errors.SerializationError,
    errors.RequestTooLargeError,
    errors.RequestTimeoutError,
    errors.UnknownOperationError,
    errors.TooManyRequestsError,
    errors.BackendUnavailableError,
)


def _descendants(base: type[SyncsvcError]) -> tuple[type[SyncsvcError], ...]:
    found: list[type[SyncsvcError]] = []
    for child in base.__subclasses__():
        found += [child, *_descendants(child)]
    return tuple(found)


#: The errors of each surface's own model, by the surface's schema prefix.
ERRORS: dict[str, tuple[type[SyncsvcError], ...]] = {
    "CognitoSync": (
        errors.InvalidParameterError,
        errors.ResourceNotFoundError,
        errors.ResourceConflictError,
        errors.LimitExceededError,
        errors.InvalidConfigurationError,
        errors.DuplicateRequestError,
        errors.AlreadyStreamedError,
        errors.InvalidLambdaFunctionOutputError,
        errors.LambdaThrottledError,
    ),
    "CognitoIdentity": (
        errors.InputValidationError,
        errors.InvalidParameterError,
        errors.ResourceNotFoundError,
        errors.ResourceConflictError,
        errors.LimitExceededError,
    ),
    "CognitoIdentityProvider": (
        errors.InvalidParameterError,
        errors.InputValidationError,
        errors.InvalidLambdaFunctionOutputError,
        errors.LambdaThrottledError,
        *_descendants(errors.UserPoolError),
    ),
    "KMS": (errors.InvalidParameterError, errors.InvalidConfigurationError, *_descendants(errors.KmsError)),
}
_LABEL = re.compile(r"\{(\w+)\}")
_ERROR = {"$ref": "#/components/schemas/AwsError"}
_SIGV4: dict[str, list[str]] = {"sigv4": []}
_BEARER: dict[str, list[str]] = {"bearer": []}


@functools.cache
def document() -> dict[str, Any]:
    """The document (made once per process; it depends on the code only)."""
    schemas: dict[str, Any] = {"AwsError": _aws_error()}
    paths: dict[str, Any] = {}
    for prefix, served in SURFACES:
        schemas[f"{prefix}.Error"] = _surface_error(ERRORS[prefix])
        for operation in served.operations.values():
            path, method, entry = _operation(prefix, served, operation, schemas)
            paths.setdefault(path, {})[method] = entry
    paths.update(_plain_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "syncsvc",
            "version": __version__,
            "summary": "Cognito Sync, Cognito Identity, Cognito user pools and KMS, self-hosted",
            "description": __doc__,
        },
        "servers": [{"url": "http://127.0.0.1:8080", "description": "`make dev`"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "AWS Signature Version 4 (any AWS SDK or the AWS CLI signs requests so).",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An identity's OpenID token (GetOpenIdToken), for Cognito Sync.",
                },
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "A developer credential pair (access key id, secret): /metrics with "
                    "SYNCSVC_METRICS=developer.",
                },
            },
        },
    }


def _operation(
    prefix: str, served: Surface, operation: Operation[Any], schemas: dict[str, Any]
) -> tuple[str, str, dict[str, Any]]:
    """(path, method, OpenAPI operation object) of one operation; its schemas are added to ``schemas``."""
    entry: dict[str, Any] = {"operationId": f"{prefix}.{operation.name}", "tags": [prefix]}
    entry["security"] = _security(operation.access, rest=served.target_prefix is None)
    content_type = served.content_type
    parameters: list[dict[str, Any]] = []
    if operation.route is not None:
        path, method = operation.route.path, operation.route.method.lower()
        for label in _LABEL.findall(path):
            parameters.append({"name": label, "in": "path", "required": True, "schema": {"type": "string"}})
        for query in operation.route.query:
            schema: dict[str, Any] = {"type": "string"}
            if query.bounds is not None:  # an empty value counts as absent (``messages.query_int``)
                number = {"type": "integer", "minimum": query.bounds[0], "maximum": query.bounds[1]}
                schema = {"anyOf": [number, {"const": ""}]}
            parameters.append({"name": query.name, "in": "query", "required": False, "schema": schema})
    else:
        target = f"{served.target_prefix}{operation.name}"
        path, method = f"/#X-Amz-Target={target}", "post"
        entry["x-amz-target"] = target
        parameters.append({"name": "X-Amz-Target", "in": "header", "required": True, "schema": {"const": target}})
    if parameters:
        entry["parameters"] = parameters
    if operation.reads_body or operation.route is None:
        request = _schema(prefix, f"{operation.name}Request", operation.input, schemas)
        entry["requestBody"] = {"required": operation.route is None, "content": {content_type: {"schema": request}}}
    response = _schema(prefix, f"{operation.name}Response", operation.output, schemas)
    entry["responses"] = {
        "200": {"description": "The result.", "content": {content_type: {"schema": response}}},
        "4XX": {"description": "The request was refused (AWS error shape).", "content": _errors(content_type, prefix)},
        "5XX": {"description": "Retry later (503 carries Retry-After).", "content": _errors(content_type, prefix)},
    }
    return path, method, entry


def _schema(prefix: str, name: str, shape: type[Any], schemas: dict[str, Any]) -> dict[str, str]:
    """A reference to ``shape``'s JSON schema, kept as ``<prefix>.<name>`` with the shapes it uses beside it."""
    made = _blobs_as_base64(TypeAdapter(shape).json_schema(ref_template=f"#/components/schemas/{prefix}.{{model}}"))
    for nested, schema in made.pop("$defs", {}).items():
        schemas[f"{prefix}.{nested}"] = schema
    schemas[f"{prefix}.{name}"] = made
    return {"$ref": f"#/components/schemas/{prefix}.{name}"}


def _blobs_as_base64(schema: Any) -> Any:
    """``schema`` with every blob (pydantic's ``format: binary``) as the wire has it: base64 text (OpenAPI's
    ``format: byte``, JSON Schema's ``contentEncoding``), its length bounds those of the text that n bytes encode to
    (4 characters per 3 bytes, rounded up)."""
    if isinstance(schema, list):
        return [_blobs_as_base64(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "string" and schema.get("format") == "binary":
        text = {key: value for key, value in schema.items() if key not in ("minLength", "maxLength")}
        text |= {"format": "byte", "contentEncoding": "base64"}
        for bound in ("minLength", "maxLength"):
            if bound in schema:
                text[bound] = 4 * -(-schema[bound] // 3)
        return text
    return {key: _blobs_as_base64(value) for key, value in schema.items()}


def _security(access: Access, *, rest: bool) -> list[dict[str, list[str]]]:
    if access is Access.ANONYMOUS:
        return [{}]
    if access is Access.CALLER and rest:
        return [_SIGV4, _BEARER]
    return [_SIGV4]


def _errors(content_type: str, prefix: str | None = None) -> dict[str, Any]:
    schema = _ERROR if prefix is None else {"$ref": f"#/components/schemas/{prefix}.Error"}
    return {content_type: {"schema": schema}}


def _surface_error(own: tuple[type[SyncsvcError], ...]) -> dict[str, Any]:
    """An error of one surface: the AWS error shape, its ``__type`` one of the surface's names or the common ones."""
    names = sorted({error.code for error in (*COMMON_ERRORS, *own)})
    return {"allOf": [_ERROR], "properties": {"__type": {"enum": names}}}


def _aws_error() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["__type", "message"],
        "properties": {
            "__type": {"type": "string", "description": "The AWS error name, e.g. ResourceNotFoundException."},
            "message": {"type": "string"},
        },
        "description": "Every error answer. Some errors carry more members (ResourceConflictException: Records).",
    }


def _plain_paths() -> dict[str, Any]:
    """Health, discovery, the document itself and the push socket: not operations of an AWS surface."""
    json_object = {"application/json": {"schema": {"type": "object"}}}

    def public(summary: str) -> dict[str, Any]:
        ok = {"200": {"description": summary, "content": json_object}}
        return {"get": {"summary": summary, "security": [{}], "responses": ok}}

    readyz = public("Ready: Redis answers; the relay's state (503 when Redis may evict keys).")
    readyz["get"]["responses"]["503"] = {"description": "Not ready.", "content": json_object}
    return {
        "/healthz": public("Alive."),
        "/readyz": readyz,
        "/openapi.json": public("This document."),
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics in the text format (SYNCSVC_METRICS: open, developer Basic auth, off).",
                "security": [{}, {"basicAuth": []}],
                "responses": {
                    "200": {"description": "The metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": {"description": "SYNCSVC_METRICS=developer: a developer credential pair is needed."},
                    "404": {"description": "SYNCSVC_METRICS=off.", "content": _errors("application/json")},
                },
            }
        },
        "/.well-known/openid-configuration": public("OpenID discovery of the identity token issuer."),
        "/.well-known/jwks.json": public("The identity token issuer's public keys."),
        "/{userPoolId}/.well-known/openid-configuration": _with_pool(public("A user pool's OpenID discovery.")),
        "/{userPoolId}/.well-known/jwks.json": _with_pool(public("A user pool's public keys.")),
        sync.POOL + "/identity/{IdentityId}/device/{DeviceId}/push": {
            "get": {
                "summary": "The device's push socket: a WebSocket upgrade (see the README, Push sync).",
                "security": [_SIGV4, _BEARER],
                "parameters": [
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    for name in ("IdentityPoolId", "IdentityId", "DeviceId")
                ],
                "responses": {
                    "101": {"description": "Switching protocols: the socket is open."},
                    "4XX": {"description": "Refused (AWS error shape).", "content": _errors("application/json")},
                },
            }
        },
    }


def _with_pool(entry: dict[str, Any]) -> dict[str, Any]:
    """A user pool's discovery path: the pool id as the server matches it (``<region>_<id>``; another segment is not
    this path but an operation, refused unsigned), and ResourceNotFoundException for a pool that does not exist."""
    pool_id = {"type": "string", "pattern": r"^[\w-]+_[0-9a-zA-Z]+$"}
    entry["get"]["parameters"] = [{"name": "userPoolId", "in": "path", "required": True, "schema": pool_id}]
    refused = {"description": "No such user pool (AWS error shape).", "content": _errors("application/json")}
    entry["get"]["responses"]["4XX"] = refused
    return entry


def main() -> None:
    """``python -m syncsvc.api.openapi``: the document as JSON on standard output (``make openapi``)."""
    import sys

    import orjson

    sys.stdout.write(orjson.dumps(document(), option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
