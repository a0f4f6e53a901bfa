"""What the schema-driven fuzz run (tests/test_fuzz.py) is made of: the server's OpenAPI document loaded into
schemathesis, the requests its cases become on the wire (json 1.1 pseudo-paths sent as ``POST /`` with their
``X-Amz-Target``), who signs each one, which generated ids are swapped for real ones, and a tally of what was sent.

Who signs a request (the caller is the point of the run, so a request is always properly authenticated; the
signature code has tests of its own in tests/test_sigv4.py):

* operations open to anyone (``security: [{}]``: GetId, sign-in, discovery …) go unsigned;
* Cognito Sync operations any identity may call (``security: [sigv4, bearer]``) are signed as the **attacker**
  identity, by SigV4 with its temporary credentials or by its OpenID token as ``Authorization: Bearer``, in turn;
* every other operation is signed by SigV4 with the developer credentials, for the service its surface signs for.

Generated values rarely name anything that exists, so some are swapped for ones that do (:class:`Known`): path
labels of Cognito Sync become the shared pool, the attacker's or the **victim's** identity and a dataset either
holds; the anonymous Cognito Identity operations get the pool and those identities in their bodies; user pool
operations a user pool, its app client, its user and that user's access token (what the user pools API takes in
the body where Cognito Sync takes ``Authorization: Bearer``); KMS operations a key. Developer requests never name
the victim or its pool: a developer may change any identity's data, an identity only its own.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.schemas import OpenApiSchema

from syncsvc.api import openapi
from syncsvc.api.messages import AMZ_JSON
from syncsvc.api.middleware import TARGET_SERVICES
from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION

#: A generated request of any operation of the document.
FuzzCase = schemathesis.Case[Any]
#: Examples per operation: `make test` runs a bounded number, `make fuzz` many more (``SYNCSVC_FUZZ_EXAMPLES``).
EXAMPLES = int(os.environ.get("SYNCSVC_FUZZ_EXAMPLES", "10"))
#: ``SYNCSVC_FUZZ_RANDOM=1`` (`make fuzz`): new examples every run; otherwise the same ones every run.
RANDOM = os.environ.get("SYNCSVC_FUZZ_RANDOM", "") not in ("", "0")
#: The seed of a random run (`make fuzz` picks one and prints it; ``FUZZ_SEED=N`` runs the same examples again).
SEED = int(os.environ["SYNCSVC_FUZZ_SEED"]) if RANDOM and os.environ.get("SYNCSVC_FUZZ_SEED") else None
#: The document's placeholder for a json 1.1 operation: ``/#X-Amz-Target=<target>`` (the request goes to ``/``).
PSEUDO_PATH = "/#X-Amz-Target="
SYNC_SERVICE = "cognito-sync"
#: The anonymous Cognito Identity operations whose body may name the pool and the identities (the attack surface
#: of an identity id someone else learned).
IDENTITY_BY_BODY = frozenset(
    f"CognitoIdentity.{name}" for name in ("GetId", "GetCredentialsForIdentity", "GetOpenIdToken", "UnlinkIdentity")
)

#: The operations that would delete, disable or sign out what the run aims the others at.
ENDINGS = frozenset(
    [
        *(
            f"CognitoIdentityProvider.{name}"
            for name in (
                "DeleteUserPool",
                "DeleteUserPoolClient",
                "UpdateUserPool",
                "UpdateUserPoolClient",
                "AdminDeleteUser",
                "AdminDisableUser",
                "AdminResetUserPassword",
                "AdminSetUserPassword",
                "AdminUserGlobalSignOut",
                "ChangePassword",
                "DeleteUser",
                "GlobalSignOut",
            )
        ),
        *(f"KMS.{name}" for name in ("ScheduleKeyDeletion", "DisableKey", "PutKeyPolicy", "UpdatePrimaryRegion")),
    ]
)


@schemathesis.serializer(AMZ_JSON)
def _amz_json(context: schemathesis.SerializationContext, value: Any) -> bytes:
    """json 1.1 bodies are JSON (schemathesis knows ``application/json`` and ``+json`` types only)."""
    return encode(value)


@schemathesis.deserializer(AMZ_JSON)
def _amz_json_answer(context: schemathesis.DeserializationContext, response: schemathesis.Response) -> Any:
    return json.loads(response.content)


def encode(value: Any) -> bytes:
    """A generated body as JSON (stdlib json: generated integers may exceed 64 bits)."""
    return json.dumps(value, ensure_ascii=False).encode()


def load_schema() -> OpenApiSchema:
    """The server's own document, as schemathesis tests it: valid and invalid inputs (``negative``), no generated
    ``Authorization`` (the run signs every request itself), the same examples every run unless :data:`RANDOM`."""
    config = schemathesis.Config.from_dict(
        {
            **({} if SEED is None else {"seed": SEED}),
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                "deterministic": not RANDOM,
                "with-security-parameters": False,
                "database": "none",
            },
            "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_dict(openapi.document(), config=config)


@dataclass(frozen=True, slots=True)
class Identity:
    """An identity as a device holds it: its id, temporary credentials and OpenID token."""

    identity_id: str
    credentials: Credentials
    token: str


@dataclass(frozen=True, slots=True)
class UserPool:
    """A user pool of the fuzz run's developer: an app client and a signed-in user (its access token)."""

    user_pool_id: str
    client_id: str
    username: str
    access_token: str


@dataclass(frozen=True, slots=True)
class Known:
    """What exists on the server: the identity pool both identities are in, the attacker (who signs the fuzzed
    Cognito Sync requests), the victim (whose data must not change), their datasets; a user pool and a KMS key."""

    pool_id: str
    attacker: Identity
    victim: Identity
    datasets: tuple[str, ...]
    user_pool: UserPool
    key_id: str

    def aimed(self, case: FuzzCase) -> st.SearchStrategy[FuzzCase]:
        """``case`` with some generated ids swapped for ones that exist, in path labels and body members. Only in a
        part generated valid (an invalid part stays as made, so that it is still refused)."""
        labels: st.SearchStrategy[Any] = st.just(case.path_parameters)
        body: st.SearchStrategy[Any] = st.just(case.body)
        if case.path_parameters and _valid_at(case, ParameterLocation.PATH):
            labels = _members(case.path_parameters, self._labels(), encoded=True)
        members = self._body_members(operation_id(case))
        if members and isinstance(case.body, dict) and _valid_at(case, ParameterLocation.BODY):
            body = _members(case.body, members, encoded=False)
        return st.tuples(labels, body).map(lambda drawn: _with(case, *drawn))

    def _labels(self) -> dict[str, list[str]]:
        """Path labels: Cognito Sync's name the attacker's or the victim's data (signed as the attacker)."""
        return {
            "IdentityPoolId": [self.pool_id],
            "IdentityId": [self.attacker.identity_id, self.victim.identity_id],
            "DatasetName": list(self.datasets),
            "userPoolId": [self.user_pool.user_pool_id],
        }

    def _body_members(self, operation: str) -> dict[str, list[str]]:
        """Body members by operation. A developer's request never names the victim or the shared identity pool (a
        developer may delete either); an anonymous one may (:data:`IDENTITY_BY_BODY`). Operations that would end
        the user pool, its user's session or the key (:data:`ENDINGS`) get generated ids only: the operations after
        them would otherwise find nothing to work on."""
        if operation in ENDINGS:
            return {}
        if operation in IDENTITY_BY_BODY:
            return {
                "IdentityPoolId": [self.pool_id],
                "IdentityId": [self.attacker.identity_id, self.victim.identity_id],
            }
        if operation.startswith("CognitoIdentityProvider."):
            pool = self.user_pool
            return {
                "UserPoolId": [pool.user_pool_id],
                "ClientId": [pool.client_id],
                "Username": [pool.username],
                "AccessToken": [pool.access_token],
            }
        if operation.startswith("KMS."):
            return {name: [self.key_id] for name in ("KeyId", "TargetKeyId", "SourceKeyId", "DestinationKeyId")}
        return {}


def _members(
    members: Mapping[str, Any], known: Mapping[str, list[str]], *, encoded: bool
) -> st.SearchStrategy[dict[str, Any]]:
    """``members`` with each one ``known`` names kept or swapped for a known value (percent-encoded, for labels):
    the generated value one time in 1 + 2n for n known ones."""
    drawn = {
        name: st.sampled_from([value, *[quote(id_, safe="") if encoded else id_ for id_ in known[name]] * 2])
        if name in known
        else st.just(value)
        for name, value in members.items()
    }
    return st.fixed_dictionaries(drawn)


def _valid_at(case: FuzzCase, location: ParameterLocation) -> bool:
    return case.meta is None or not case.meta.is_negative_at(location)


def _with(case: FuzzCase, labels: Any, body: Any) -> FuzzCase:
    if labels is not case.path_parameters:
        case.path_parameters = labels
    if body is not case.body:
        case.body = body
    return case


@dataclass
class Tally:
    """What the run sent and what came back: requests per status class, statuses per operation."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def count(self, operation: str, status: int) -> None:
        self.statuses[operation, status] += 1

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def by_class(self) -> dict[str, int]:
        classes: Counter[str] = Counter()
        for (_, status), count in self.statuses.items():
            classes[f"{status // 100}xx"] += count
        return {name: classes[name] for name in ("2xx", "4xx", "5xx")}

    def operations(self) -> int:
        return len({operation for operation, _ in self.statuses})

    def succeeded(self) -> set[str]:
        """The operations answered 2xx at least once (how deep the run got: the others were all refused)."""
        return {operation for operation, status in self.statuses if 200 <= status < 300}

    def summary(self) -> str:
        classes = ", ".join(f"{name} = {count}" for name, count in self.by_class().items())
        return (
            f"fuzz: {self.operations()} operations ({len(self.succeeded())} answered 2xx at least once), "
            f"{self.requests} requests fuzzed ({classes})"
        )


@dataclass(frozen=True, slots=True)
class Wire:
    """One request as sent: method, URL (path and query percent-encoded), headers, body."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


#: Every request of the run (printed at the end of the session by tests/conftest.py's terminal summary).
TALLY = Tally()


class Sender:
    """Turns schemathesis cases into signed requests to one server and counts the answers in :data:`TALLY`."""

    def __init__(self, endpoint: str, known: Known) -> None:
        self.endpoint = endpoint
        self.known = known
        self.session = requests.Session()
        self._developer = Credentials(DEVELOPER_KEY, DEVELOPER_SECRET)
        self._bearer_turn = itertools.cycle((False, True))

    def send(self, case: FuzzCase, caller: Identity | None = None) -> requests.Response:
        """Sends ``case``; a Cognito Sync request any identity may make is signed as ``caller`` (default: the
        attacker)."""
        wire = self.wire(case, caller or self.known.attacker)
        response = self.session.request(
            wire.method, wire.url, data=wire.body, headers=wire.headers, timeout=30, allow_redirects=False
        )
        TALLY.count(operation_id(case), response.status_code)
        return response

    def get(self, path: str, caller: Identity) -> requests.Response:
        """A Cognito Sync GET of ``path`` (percent-encoded) signed as ``caller``; not counted."""
        wire = _signed(Wire("GET", self.endpoint + path, {}, b""), caller.credentials, SYNC_SERVICE)
        return self.session.get(wire.url, headers=wire.headers, timeout=30)

    def wire(self, case: FuzzCase, caller: Identity) -> Wire:
        """The request ``case`` stands for (serialized by schemathesis), authenticated as the operation's caller."""
        sent = case.as_transport_kwargs(base_url=self.endpoint)
        url: str = sent["url"]
        path = url.removeprefix(self.endpoint)
        target = path.removeprefix(PSEUDO_PATH) if path.startswith(PSEUDO_PATH) else None
        if target is not None:
            url = self.endpoint + "/"
        body: bytes = sent["data"] if "data" in sent else encode(sent["json"]) if "json" in sent else b""
        query = "&".join(
            f"{quote(str(name), safe='-_.~')}={quote(_text(value), safe='-_.~')}"
            for name, values in sent.get("params", {}).items()
            for value in (values if isinstance(values, list) else [values])
        )
        headers = {str(name): str(value) for name, value in sent["headers"].items()}
        wire = Wire(case.method.upper(), url + (f"?{query}" if query else ""), headers, body)
        return self._authenticated(case, wire, target, caller)

    def _authenticated(self, case: FuzzCase, wire: Wire, target: str | None, caller: Identity) -> Wire:
        security = case.operation.definition.raw.get("security", [])
        if security == [{}]:
            return wire
        if target is None and {"bearer": []} in security:  # Cognito Sync, as an identity
            if next(self._bearer_turn):
                bearer = {**wire.headers, "Authorization": f"Bearer {caller.token}"}
                return Wire(wire.method, wire.url, bearer, wire.body)
            return _signed(wire, caller.credentials, SYNC_SERVICE)
        sent_target = wire.headers.get("X-Amz-Target", target or "")
        service = next((name for prefix, name in TARGET_SERVICES.items() if sent_target.startswith(prefix)), None)
        if service is None and target is not None:
            service = next(name for prefix, name in TARGET_SERVICES.items() if target.startswith(prefix))
        return _signed(wire, self._developer, service or SYNC_SERVICE)


def guest(session: requests.Session, endpoint: str, pool_id: str) -> Identity:
    """A new guest identity of ``pool_id``, as a device gets one (unsigned GetId)."""
    return guest_with_id(
        session, endpoint, _anonymous(session, endpoint, "GetId", {"IdentityPoolId": pool_id})["IdentityId"]
    )


def guest_with_id(session: requests.Session, endpoint: str, identity_id: str) -> Identity:
    """The guest identity ``identity_id`` with its credentials and OpenID token, as a device gets them (unsigned
    GetCredentialsForIdentity and GetOpenIdToken). These requests are the set-up's, not counted."""
    given = _anonymous(session, endpoint, "GetCredentialsForIdentity", {"IdentityId": identity_id})["Credentials"]
    token = _anonymous(session, endpoint, "GetOpenIdToken", {"IdentityId": identity_id})["Token"]
    credentials = Credentials(given["AccessKeyId"], given["SecretKey"], given["SessionToken"])
    return Identity(identity_id, credentials, str(token))


def _anonymous(session: requests.Session, endpoint: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Content-Type": AMZ_JSON, "X-Amz-Target": f"AWSCognitoIdentityService.{operation}"}
    response = session.post(endpoint + "/", data=encode(body), headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def operation_id(case: FuzzCase) -> str:
    return str(case.operation.definition.raw.get("operationId", case.operation.label))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _signed(wire: Wire, credentials: Credentials, service: str) -> Wire:
    """``wire`` signed by botocore's SigV4 signer, as an AWS SDK signs it."""
    request = AWSRequest(method=wire.method, url=wire.url, data=wire.body, headers=wire.headers)
    SigV4Auth(credentials, service, REGION).add_auth(request)
    headers = {name: value.decode() if isinstance(value, bytes) else value for name, value in request.headers.items()}
    return Wire(wire.method, wire.url, headers, wire.body)
