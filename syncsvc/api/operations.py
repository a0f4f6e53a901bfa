"""Every wire operation is one declarative :class:`Operation`; one dispatcher per AWS protocol serves them.

An operation says what it is and nothing else: its name, its input model (pydantic, strict, unknown members
refused), its output shape (a TypedDict: what the result holds, for readers and for an API description), who may
call it (one :class:`~syncsvc.access.Access` rule) and the use-case it runs. A :class:`Surface` groups one AWS
service's operations with what differs between services: the X-Amz-Target prefix or the routes, the SigV4 signing
name, the error a broken constraint answers, and the refusal of a caller the rule does not admit.

The dispatchers do the same steps for every operation, in this order: find the operation (unknown: 400
UnknownOperationException), admit the caller by the rule (before the body is parsed: a caller who may not call the
operation learns nothing from its validation), validate the body (AWS's wording, see ``syncsvc.api.validation``),
run the use-case, and answer its result as JSON; an input with a ``DryRun`` member set runs the operation (use-cases
given ``dry_run`` write nothing) and answers DryRunOperationException instead of the result.

* json 1.1 (Cognito Identity, KMS): ``POST /``, the operation named by ``X-Amz-Target: <prefix><Name>``
  (:func:`serve_json`).
* rest-json (Cognito Sync): one aiohttp route per operation, from its :class:`Route` (:func:`rest_routes`); path
  labels arrive percent-decoded in :attr:`Call.labels`, declared query parameters in :attr:`Call.query`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from syncsvc.access import Access, admits
from syncsvc.api.messages import AMZ_JSON, CALLER, REST_JSON, SERVICES, body_of, query_int, respond
from syncsvc.api.validation import validation_error
from syncsvc.errors import DryRunOperationError, SyncsvcError, UnknownTargetError
from syncsvc.model import Caller
from syncsvc.runtime import Services

InputT = TypeVar("InputT", bound=BaseModel)
ModelT = TypeVar("ModelT", bound=BaseModel)
#: What a use-case runs on: the services of this instance and the call.
Run = Callable[[Services, "Call[InputT]"], Awaitable[Mapping[str, Any]]]
#: The answer to a caller an operation's access rule does not admit: (operation name, caller) -> error.
Refusal = Callable[[str, Caller], SyncsvcError]
DRY_RUN = "The request would have succeeded, but the DryRun option is set."


@dataclass(frozen=True, slots=True)
class Query:
    """A query parameter of a rest-json operation: text, or an integer of the AWS type whose bounds are given
    (``syncsvc.api.messages.INTEGER``, ``LONG``)."""

    name: str
    bounds: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """Where a rest-json operation is served: method, path template (``{Label}`` segments), query parameters."""

    method: str
    path: str
    query: tuple[Query, ...] = ()


@dataclass(frozen=True, slots=True)
class Call(Generic[InputT]):
    """One call of an operation, as its use-case sees it."""

    given: InputT
    caller: Caller
    #: rest-json path labels, percent-decoded (``{"IdentityPoolId": "us-east-1:…"}``).
    labels: Mapping[str, str] = field(default_factory=dict)
    #: rest-json query parameters the route declares (absent or empty: None).
    query: Mapping[str, int | str | None] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def integer(self, name: str) -> int | None:
        """The integer query parameter ``name`` (declared with bounds in the route)."""
        value = self.query[name]
        if isinstance(value, str):
            raise TypeError(f"query parameter {name} is declared as text")
        return value

    def text(self, name: str) -> str | None:
        """The text query parameter ``name``."""
        value = self.query[name]
        if isinstance(value, int):
            raise TypeError(f"query parameter {name} is declared as an integer")
        return value


@dataclass(frozen=True, slots=True)
class Operation(Generic[InputT]):
    name: str
    input: type[InputT]
    #: The shape of the result (a TypedDict), for readers and API descriptions; not checked at run time.
    output: type[Any]
    access: Access
    run: Run[InputT]
    #: rest-json only: where the operation is served.
    route: Route | None = None
    #: The use-case checks that its identity caller still stands (``syncsvc.model.Standing``) in its own Redis
    #: script, so admission does not read the identity first (one round trip fewer on the hottest paths). Only for a
    #: use-case that passes ``Caller.standing`` to every script it runs (or checks it itself where it runs none).
    checks_standing: bool = False
    #: Whether a body is read: an input without members (every input in the path and query) reads none, as AWS
    #: ignores one. Worked out once, here, not per request.
    reads_body: bool = field(init=False)
    #: Whether the input has a ``DryRun`` member (the dispatcher then answers DryRunOperationException when set).
    dry_runs: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads_body", bool(self.input.model_fields))
        object.__setattr__(self, "dry_runs", "DryRun" in self.input.model_fields)


@dataclass(frozen=True, slots=True)
class Surface:
    """One AWS service's operations and what differs between services."""

    #: The SigV4 signing name (``cognito-identity``, ``kms``, ``cognito-sync``).
    signing_name: str
    operations: Mapping[str, Operation[Any]]
    #: The error a broken constraint answers (ValidationException or InvalidParameterException).
    invalid: type[SyncsvcError]
    refusal: Refusal
    #: json 1.1: the X-Amz-Target prefix (``TrentService.``); rest-json: None.
    target_prefix: str | None = None

    @property
    def content_type(self) -> str:
        return REST_JSON if self.target_prefix is None else AMZ_JSON

    def operation_for(self, target: str) -> Operation[Any] | None:
        """The operation an ``X-Amz-Target`` names on this json 1.1 surface, if any."""
        if self.target_prefix is None or not target.startswith(self.target_prefix):
            return None
        return self.operations.get(target.removeprefix(self.target_prefix))


def surface(signing_name: str, operations: Iterable[Operation[Any]], **options: Any) -> Surface:
    """A surface of ``operations`` (each name once)."""
    table = {operation.name: operation for operation in operations}
    return Surface(signing_name, table, **options)


async def parse(request: web.Request, model: type[ModelT], invalid: type[SyncsvcError]) -> ModelT:
    """The request body validated as ``model``; an empty body counts as ``{}``."""
    body = await body_of(request) or b"{}"
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise validation_error(exc, model, invalid) from None


async def _answer(
    request: web.Request, surface: Surface, operation: Operation[Any], call: Callable[[BaseModel], Call[Any]]
) -> web.Response:
    caller: Caller = request[CALLER]
    if not admits(operation.access, caller):
        raise surface.refusal(operation.name, caller)
    given = await parse(request, operation.input, surface.invalid) if operation.reads_body else operation.input()
    output = await operation.run(request.app[SERVICES], call(given))
    if operation.dry_runs and given.DryRun is True:
        raise DryRunOperationError(DRY_RUN)
    return respond(output, content_type=surface.content_type)


def json_dispatcher(surfaces: Iterable[Surface]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``POST /`` handler of every json 1.1 surface."""
    served = tuple(surfaces)

    async def serve_json(request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        for candidate in served:
            operation = candidate.operation_for(target)
            if operation is not None:
                return await _answer(request, candidate, operation, lambda given: Call(given, request[CALLER]))
        raise UnknownTargetError(f"Operation '{target[:100]}' is not supported")

    return serve_json


def rest_routes(surface: Surface) -> list[web.RouteDef]:
    """One aiohttp route per rest-json operation of ``surface``, named as the operation."""
    return [
        web.route(
            operation.route.method,
            operation.route.path,
            _rest_handler(surface, operation, operation.route),
            name=operation.name,
        )
        for operation in surface.operations.values()
        if operation.route is not None
    ]


def standing_checked(surface: Surface) -> frozenset[str]:
    """The rest-json operations of ``surface`` that check their caller's standing themselves (their route names)."""
    return frozenset(
        name for name, operation in surface.operations.items() if operation.route and operation.checks_standing
    )


def _rest_handler(
    surface: Surface, operation: Operation[Any], route: Route
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve_rest(request: web.Request) -> web.Response:
        def call(given: BaseModel) -> Call[Any]:
            query = {
                parameter.name: (
                    request.query.get(parameter.name) or None
                    if parameter.bounds is None
                    else query_int(request, parameter.name, parameter.bounds)
                )
                for parameter in route.query
            }
            return Call(given, request[CALLER], request.match_info, query, request.headers)

        return await _answer(request, surface, operation, call)

    return serve_rest


def anonymous_targets(surfaces: Iterable[Surface]) -> frozenset[str]:
    """The X-Amz-Targets served without a signature (their rule is :attr:`Access.ANONYMOUS`)."""
    return frozenset(
        f"{served.target_prefix}{name}"
        for served in surfaces
        if served.target_prefix is not None
        for name, operation in served.operations.items()
        if not operation.access.needs_signature
    )
