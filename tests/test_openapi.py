"""The OpenAPI 3.1 document (syncsvc.api.openapi): valid, committed as made, served, covering every route, and what
the server answers fits it (a real server, real Redis)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from syncsvc.api import openapi
from syncsvc.api.app import create_app
from syncsvc.api.console.paths import is_console
from syncsvc.api.middleware import JSON_SURFACES
from syncsvc.config import Settings
from syncsvc.errors import SyncsvcError
from tests.conftest import Raw
from tests.datasets import empty_page

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
#: ECMA-262 regex (the dialect JSON Schema names) has Unicode property escapes; Python's re, with which the validator
#: checks ``format: regex``, has not. AWS's own patterns use them (user pools' Username).
UNICODE_PROPERTY = re.compile(r"\\p\{")
#: Where the document is, to the JSON Schema validator (its $refs are relative to it).
DOCUMENT_URI = "urn:syncsvc:openapi"


def test_the_document_is_valid_openapi_3_1() -> None:
    errors = list(OpenAPIV31SpecValidator(openapi.document()).iter_errors())
    others = [e for e in errors if not (e.validator == "format" and UNICODE_PROPERTY.search(str(e.instance)))]
    assert others == []


def test_the_committed_document_is_the_one_the_code_makes() -> None:
    """docs/openapi.json is written by `make openapi`: run it after changing an operation."""
    assert orjson.loads(COMMITTED.read_bytes()) == orjson.loads(orjson.dumps(openapi.document()))


def test_every_route_and_every_target_served_is_in_the_document(settings: Settings) -> None:
    documented = openapi.document()["paths"]
    app = create_app(settings)
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.canonical != "/"
        and not is_console(route.resource.canonical)  # HTML pages for people (see syncsvc.api.openapi)
    }
    assert {(method, path) for method, path in routes if method not in documented.get(path, {})} == set()
    targets = {f"{served.target_prefix}{name}" for served in JSON_SURFACES for name in served.operations}
    assert {target for target in targets if f"/#X-Amz-Target={target}" not in documented} == set()
    assert len(targets) == sum(1 for path in documented if path.startswith("/#X-Amz-Target="))


def test_every_error_the_server_answers_is_a_documented_error_type() -> None:
    """Each surface's error schema enumerates the AWS error names it answers (the fuzz run checks answers against
    them); a new error class must be placed in openapi.ERRORS or COMMON_ERRORS."""

    def descendants(base: type[SyncsvcError]) -> set[type[SyncsvcError]]:
        return {child for direct in base.__subclasses__() for child in (direct, *descendants(direct))}

    schemas = openapi.document()["components"]["schemas"]
    documented = {
        name
        for key, schema in schemas.items()
        if key.endswith(".Error")
        for name in schema["properties"]["__type"]["enum"]
    }
    assert {error.code for error in descendants(SyncsvcError)} - documented == set()
    resource = Resource.from_contents(openapi.document(), default_specification=DRAFT202012)
    sync_error = Draft202012Validator(
        {"$ref": DOCUMENT_URI + "#/components/schemas/CognitoSync.Error"},
        registry=Registry().with_resource(DOCUMENT_URI, resource),
    )
    assert sync_error.is_valid({"__type": "ResourceConflictException", "message": "m"})
    assert not sync_error.is_valid({"__type": "NotFoundException", "message": "m"})  # KMS's, not Cognito Sync's


def response_validator(operation_id: str) -> Draft202012Validator:
    """The 200 answer's schema of ``operation_id``, its $refs resolved in the document."""
    document = openapi.document()
    for entries in document["paths"].values():
        for entry in entries.values():
            if entry.get("operationId") == operation_id:
                (content,) = entry["responses"]["200"]["content"].values()
                resource = Resource.from_contents(document, default_specification=DRAFT202012)
                registry = Registry().with_resource(DOCUMENT_URI, resource)
                return Draft202012Validator({"$ref": DOCUMENT_URI + content["schema"]["$ref"]}, registry=registry)
    raise AssertionError(f"no operation {operation_id}")


async def test_the_server_serves_the_document_without_credentials(raw: Raw) -> None:
    status, body, headers = await raw.send("GET", "/openapi.json", sign=False)
    assert (status, headers["Content-Type"].split(";")[0]) == (200, "application/json")
    assert body == orjson.loads(orjson.dumps(openapi.document()))


async def test_answers_fit_their_documented_schemas(raw: Raw) -> None:
    """A json 1.1 answer (CreateIdentityPool, GetId) and rest-json ones (ListRecords, UpdateRecords), as served."""
    status, pool, _ = await raw.send(
        "POST",
        "/",
        body=orjson.dumps({"IdentityPoolName": "openapi", "AllowUnauthenticatedIdentities": True}),
        service="cognito-identity",
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSCognitoIdentityService.CreateIdentityPool",
        },
    )
    assert status == 200, pool
    response_validator("CognitoIdentity.CreateIdentityPool").validate(pool)
    status, got, _ = await raw.identity("GetId", {"IdentityPoolId": pool["IdentityPoolId"]})
    assert status == 200, got
    response_validator("CognitoIdentity.GetId").validate(got)

    dataset = f"/identitypools/{pool['IdentityPoolId']}/identities/{got['IdentityId']}/datasets/notes"
    status, listed, _ = await raw.send("GET", dataset + "/records")
    assert status == 200, listed
    response_validator("CognitoSync.ListRecords").validate(listed)
    patch = {"Op": "replace", "Key": "k", "Value": "v", "SyncCount": 0}
    body: dict[str, Any] = {"SyncSessionToken": listed["SyncSessionToken"], "RecordPatches": [patch]}
    status, written, _ = await raw.send("POST", dataset, body=body)
    assert status == 200, written
    response_validator("CognitoSync.UpdateRecords").validate(written)
    status, again, _ = await raw.send("GET", dataset + "/records")
    response_validator("CognitoSync.ListRecords").validate(again)
    assert [record["Key"] for record in again["Records"]] == ["k"]

    status, error, _ = await raw.send("GET", f"/identitypools/{pool['IdentityPoolId']}/identities/x/datasets/-/records")
    assert 400 <= status < 500
    Draft202012Validator(openapi.document()["components"]["schemas"]["AwsError"]).validate(error)


def test_an_answer_that_breaks_its_schema_is_caught() -> None:
    """The check above can fail: the schemas hold the answers' types, not just their names."""
    listed = response_validator("CognitoSync.ListRecords")
    good = empty_page(SyncSessionToken="t", VersionVector={})  # the wire answer: the vector is an extension member
    assert listed.is_valid(good)
    assert not listed.is_valid({key: value for key, value in good.items() if key != "SyncSessionToken"})
    assert not listed.is_valid({**good, "Count": "zero"})
    assert not listed.is_valid({**good, "Records": [{"Key": "k", "SyncCount": "1"}]})
