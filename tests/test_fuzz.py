"""Schema-driven fuzzing (issue 21): schemathesis generates requests for every operation of the server's own OpenAPI
document (docs/openapi.json), valid and invalid ones, and a real `syncsvc serve` answers them.

What one run proves, for every operation, on every answer:

* no 5xx: bad input is the caller's error, never the server's;
* every 4xx is an AWS error (``__type`` and ``message``; rest-json also the ``x-amzn-ErrorType`` header naming it)
  whose type the document lists for the operation's service;
* every answer fits the document: its status, its content type, and its body against the operation's schema;
* isolation: the fuzzed Cognito Sync requests are signed as an *attacker* identity and name, among others, a
  *victim* identity of the same pool in their paths; afterwards the victim's data is what it was, byte for byte in
  Redis and as the victim reads it through the server.

A stateful run (:class:`Chain`, a Hypothesis state machine drawing its bodies from the document's schemas) goes
further than single requests reach: a new pool, GetId, credentials, ListRecords, UpdateRecords with the session
token ListRecords gave, ListRecords again (the written records must be there).

`make test` runs a bounded number of examples per operation (``SYNCSVC_FUZZ_EXAMPLES``, 10), the same every run;
`make fuzz` many more, new ones every run. The counts (operations, requests, per status class) are printed at the
end of the session. How requests are made and signed: tests/fuzzing.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import hypothesis
import pytest
import redis
import requests
import schemathesis
from botocore.config import Config
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, precondition, rule
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION
from tests.fuzzing import (
    EXAMPLES,
    RANDOM,
    FuzzCase,
    Identity,
    Known,
    Sender,
    UserPool,
    guest,
    guest_with_id,
    load_schema,
)
from tests.servers import Served, syncsvc_process

SCHEMA = load_schema()
DATASETS = ("notes", "settings")
PASSWORD = "Fuzz-passw0rd!"
ONE_TRY = Config(retries={"max_attempts": 1})
#: How many pools and identities one run of the state machine makes (its other steps read and write records).
MADE = 4


@schemathesis.check
def aws_error(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: FuzzCase) -> bool:
    """A 4xx is an AWS error: ``__type`` and ``message``; on rest-json the ``x-amzn-ErrorType`` header names the same
    type (botocore reads the header there, the body's ``__type`` on json 1.1). Its type being one the document lists
    is the response schema's check (each service's error schema enumerates them)."""
    if not 400 <= response.status_code < 500:
        return True
    body = json.loads(response.content)
    assert isinstance(body, dict), body
    assert isinstance(body.get("__type"), str), body
    assert isinstance(body.get("message"), str), body
    header = response.headers.get("x-amzn-errortype", [None])[0]
    assert header == body["__type"], (header, body)
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    aws_error,
]


def sync_client(endpoint: str, identity: Identity) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=identity.credentials.access_key,
        aws_secret_access_key=identity.credentials.secret_key,
        aws_session_token=identity.credentials.token,
        region_name=REGION,
    )
    return session.client("cognito-sync", endpoint_url=endpoint, config=ONE_TRY)


def write(endpoint: str, identity: Identity, pool_id: str, dataset: str, values: dict[str, str]) -> None:
    client = sync_client(endpoint, identity)
    names = {"IdentityPoolId": pool_id, "IdentityId": identity.identity_id, "DatasetName": dataset}
    token = client.list_records(**names)["SyncSessionToken"]
    patches = [{"Op": "replace", "Key": key, "Value": value, "SyncCount": 0} for key, value in values.items()]
    client.update_records(**names, SyncSessionToken=token, RecordPatches=patches, DeviceId="setup")


def as_seen_by(endpoint: str, identity: Identity, pool_id: str) -> dict[str, Any]:
    """Every dataset of ``identity`` and its records, read through the server as the identity itself."""
    client = sync_client(endpoint, identity)
    names = {"IdentityPoolId": pool_id, "IdentityId": identity.identity_id}
    datasets = client.list_datasets(**names)["Datasets"]
    seen: dict[str, Any] = {}
    for dataset in datasets:
        records = client.list_records(**names, DatasetName=dataset["DatasetName"])
        seen[dataset["DatasetName"]] = (dataset, records["Records"], records["DatasetSyncCount"])
    return seen


def stored(client: redis.Redis, identity_id: str) -> dict[bytes, bytes | None]:
    """Every Redis key that names ``identity_id`` and its serialized value (DUMP): the identity's data as stored."""
    return {key: client.dump(key) for key in sorted(client.scan_iter(match=f"*{identity_id}*", count=1000))}


def user_pool(developer: boto3.session.Session, endpoint: str) -> UserPool:
    """A user pool with an app client and a user signed in (the developer's admin sign-in: no e-mail needed)."""
    idp = developer.client("cognito-idp", endpoint_url=endpoint, config=ONE_TRY)
    pool_id = idp.create_user_pool(PoolName="fuzz")["UserPool"]["Id"]
    flows = ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    client_id = idp.create_user_pool_client(UserPoolId=pool_id, ClientName="fuzz", ExplicitAuthFlows=flows)[
        "UserPoolClient"
    ]["ClientId"]
    user = {"UserPoolId": pool_id, "Username": "fuzzer"}
    idp.admin_create_user(**user, MessageAction="SUPPRESS")
    idp.admin_set_user_password(**user, Password=PASSWORD, Permanent=True)
    signed_in = idp.admin_initiate_auth(
        UserPoolId=pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "fuzzer", "PASSWORD": PASSWORD},
    )
    return UserPool(pool_id, client_id, "fuzzer", signed_in["AuthenticationResult"]["AccessToken"])


def kms_key(developer: boto3.session.Session, endpoint: str) -> str:
    """A symmetric KMS key of the developer's (no identity's data is sealed under it)."""
    kms = developer.client("kms", endpoint_url=endpoint, config=ONE_TRY)
    key_id: str = kms.create_key(Description="fuzz")["KeyMetadata"]["KeyId"]
    return key_id


class World:
    """The server under fuzzing and what exists on it."""

    def __init__(self, served: Served, known: Known, redis_url: str) -> None:
        self.served = served
        self.known = known
        self.sender = Sender(served.url, known)
        self.redis = redis.Redis.from_url(redis_url)
        self.victim_stored = stored(self.redis, known.victim.identity_id)
        self.victim_seen = as_seen_by(served.url, known.victim, known.pool_id)


@pytest.fixture(scope="module")
def world(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A `syncsvc serve` on a flushed Redis, a pool with an attacker and a victim identity, each holding datasets."""
    redis.Redis.from_url(redis_url).flushdb()
    log = tmp_path_factory.mktemp("fuzz") / "syncsvc.log"
    with syncsvc_process(redis_url, log) as served:
        developer_session = boto3.session.Session(
            aws_access_key_id=DEVELOPER_KEY, aws_secret_access_key=DEVELOPER_SECRET, region_name=REGION
        )
        developer = developer_session.client("cognito-identity", endpoint_url=served.url, config=ONE_TRY)
        pool_id = developer.create_identity_pool(IdentityPoolName="fuzz", AllowUnauthenticatedIdentities=True)[
            "IdentityPoolId"
        ]
        session = requests.Session()
        attacker, victim = guest(session, served.url, pool_id), guest(session, served.url, pool_id)
        for identity in (attacker, victim):
            for dataset in DATASETS:
                write(served.url, identity, pool_id, dataset, {"k": f"{dataset} of {identity.identity_id}", "k2": ""})
        known = Known(
            pool_id,
            attacker,
            victim,
            DATASETS,
            user_pool(developer_session, served.url),
            kms_key(developer_session, served.url),
        )
        KNOWN["known"] = known
        try:
            yield World(served, known, redis_url)
        finally:
            KNOWN.clear()
        print(f"\nthe fuzzed syncsvc's log: {log}")


#: What exists on the server, for the hook below: filled by the ``world`` fixture (hooks run at generation time,
#: where no fixture reaches).
KNOWN: dict[str, Known] = {}


@SCHEMA.hook
def flatmap_case(context: schemathesis.HookContext, case: FuzzCase) -> st.SearchStrategy[FuzzCase]:
    """Cases aimed at what exists (:meth:`Known.aimed`) once the ``world`` fixture made it."""
    known = KNOWN.get("known")
    return st.just(case) if known is None else known.aimed(case)


@SCHEMA.parametrize()
@hypothesis.settings(max_examples=EXAMPLES, derandomize=not RANDOM, database=None, deadline=None)
def test_operation(case: FuzzCase, world: World) -> None:
    """One generated request of one operation (schemathesis makes a test per operation), its answer checked."""
    response = world.sender.send(case)
    case.validate_response(response, checks=CHECKS)


def operation(operation_id: str) -> schemathesis.APIOperation[Any, Any, Any, Any]:
    """The document's operation ``operation_id``, as schemathesis loaded it."""
    found: schemathesis.APIOperation[Any, Any, Any, Any] = SCHEMA.find_operation_by_id(operation_id)
    return found


def valid(operation_id: str) -> st.SearchStrategy[FuzzCase]:
    """Valid requests of ``operation_id`` (the document's schema, positive mode)."""
    return operation(operation_id).as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE)


class Chain(RuleBasedStateMachine):
    """Create pool → GetId → credentials → ListRecords → UpdateRecords → ListRecords, each request drawn from the
    document's schema with the ids and the session token the earlier answers gave put in, each answer checked like
    a single request's; records UpdateRecords acknowledged must be listed after it. An identity signs its own Cognito
    Sync requests (so they get past authorization, where single requests mostly stop)."""

    world: World
    #: Pools and identities made so far: past :data:`MADE`, the steps go to ListRecords and UpdateRecords.
    made = 0
    pools = Bundle("pools")
    identities = Bundle("identities")
    sessions = Bundle("sessions")

    def checked(self, case: FuzzCase, caller: Identity | None = None) -> requests.Response:
        response = self.world.sender.send(case, caller)
        case.validate_response(response, checks=CHECKS)
        return response

    @initialize(target=identities, pool=valid("CognitoIdentity.CreateIdentityPool"), who=valid("CognitoIdentity.GetId"))
    def first_identity(self, pool: FuzzCase, who: FuzzCase) -> tuple[str, Identity]:
        """Every run starts with a pool and an identity of its own, so the Cognito Sync rules have one to act as."""
        return self.new_identity(self.new_pool(pool), who)

    @precondition(lambda self: self.made < MADE)
    @rule(target=pools, case=valid("CognitoIdentity.CreateIdentityPool"))
    def create_pool(self, case: FuzzCase) -> str:
        return self.new_pool(case)

    @precondition(lambda self: self.made < MADE)
    @rule(target=identities, pool=pools, case=valid("CognitoIdentity.GetId"))
    def get_id(self, pool: str, case: FuzzCase) -> tuple[str, Identity]:
        return self.new_identity(pool, case)

    @rule(target=sessions, owner=identities, case=valid("CognitoSync.ListRecords"), dataset=st.sampled_from(DATASETS))
    def list_records(self, owner: tuple[str, Identity], case: FuzzCase, dataset: str) -> tuple[Any, ...]:
        """The generated lastSyncCount and maxResults; no generated page or session token (the single requests
        fuzz those), so that the chain gets a session token to go on with."""
        pool, identity = owner
        case.path_parameters = labels(pool, identity.identity_id, dataset)
        case.query = {
            name: value for name, value in (case.query or {}).items() if name in ("lastSyncCount", "maxResults")
        }
        response = self.checked(case, identity)
        token = response.json().get("SyncSessionToken") if response.status_code == 200 else "none"
        return pool, identity, dataset, token

    def new_pool(self, case: FuzzCase) -> str:
        """A pool made by the generated CreateIdentityPool (guests allowed), or the shared one if it was refused."""
        self.made += 1
        case.body = {**as_object(case.body), "AllowUnauthenticatedIdentities": True}
        response = self.checked(case)
        return str(response.json()["IdentityPoolId"]) if response.status_code == 200 else self.world.known.pool_id

    def new_identity(self, pool: str, case: FuzzCase) -> tuple[str, Identity]:
        self.made += 1
        case.body = {"IdentityPoolId": pool}
        response = self.checked(case)
        assert response.status_code == 200, response.text
        return pool, guest_with_id(self.world.sender.session, self.world.served.url, response.json()["IdentityId"])

    @rule(session=sessions, case=valid("CognitoSync.UpdateRecords"))
    def update_records(self, session: tuple[Any, ...], case: FuzzCase) -> None:
        pool, identity, dataset, token = session
        case.path_parameters = labels(pool, identity.identity_id, dataset)
        body = as_object(case.body)
        # every patch as to a new record (SyncCount 0): what SyncCount conflicts answer, the single requests fuzz
        patches: list[Any] = [
            {**patch, "SyncCount": 0} for patch in body.get("RecordPatches", []) if isinstance(patch, dict)
        ]
        case.body = {**body, "RecordPatches": patches, "SyncSessionToken": token}
        response = self.checked(case, identity)
        if response.status_code != 200:
            return
        written = {record["Key"]: record for record in response.json()["Records"]}
        listing = self.world.sender.get(records_path(pool, identity.identity_id, dataset), identity)
        assert listing.status_code == 200, listing.text
        listed = {record["Key"]: record for record in listing.json()["Records"]}
        assert {key: listed.get(key) for key in written} == written


def as_object(body: Any) -> dict[str, Any]:
    """A valid (positive) case's JSON object body; none (a rest-json body is optional): an empty one."""
    if body is NOT_SET:
        return {}
    assert isinstance(body, dict), body
    return body


def labels(pool: str, identity_id: str, dataset: str) -> dict[str, str]:
    """Cognito Sync path labels, percent-encoded as sent."""
    return {"IdentityPoolId": quote(pool, safe=""), "IdentityId": quote(identity_id, safe=""), "DatasetName": dataset}


def records_path(pool: str, identity_id: str, dataset: str) -> str:
    return "/identitypools/{IdentityPoolId}/identities/{IdentityId}/datasets/{DatasetName}/records".format(
        **labels(pool, identity_id, dataset)
    )


def test_create_pool_get_id_update_and_list_records(world: World) -> None:
    Chain.world = world
    runs = hypothesis.settings(
        max_examples=max(3, EXAMPLES // 2),
        stateful_step_count=12,
        derandomize=not RANDOM,
        database=None,
        deadline=None,
        suppress_health_check=[hypothesis.HealthCheck.filter_too_much],
        # no shrinking: against a live server whose state each step changes, it is slow and rarely reproducible
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.reuse, hypothesis.Phase.generate],
    )
    hypothesis.stateful.run_state_machine_as_test(Chain, settings=runs)


def test_the_victim_is_unchanged(world: World) -> None:
    """After every fuzzed request (this module's tests run in order; alone, it checks the set-up), the victim's data
    is what it was: in Redis, and as the victim reads it through the server."""
    assert stored(world.redis, world.known.victim.identity_id) == world.victim_stored
    assert as_seen_by(world.served.url, world.known.victim, world.known.pool_id) == world.victim_seen
