"""Load shedding: a bound on the requests one process works on at once (``Settings.max_requests_in_flight``).

Past the bound a request is answered at once with TooManyRequestsException (429 on Cognito Sync, 400 on the json 1.1
surfaces, ``Retry-After: 1``), which every AWS SDK retries with backoff, instead of joining a queue whose wait grows
without bound: the requests admitted keep a bounded latency, and a client learns at once to back off.

What counts is a request past authentication (:func:`admit_middleware` is the innermost middleware): a client
without credentials cannot take a place, and a slow body is read before admission, under its own budget and timeout
(``syncsvc.api.bodies``). While the process is full, though, a request is refused before anything else is done for it
(:func:`shed_middleware`, the outermost middleware, answers it itself). Past capacity the refusals are most of the
work, and whatever a refusal costs (a signature or token check, the middlewares, the error formatting) is taken from
the admitted requests: at three times the peak, a refusal costing a fifth of a write leaves almost nothing for writes
(``make bench``'s overload point; README "Past capacity"). Health, discovery and the API description are never
counted nor refused; a push socket is long-lived and bounded on its own (``Settings.push_max_sockets``), so neither
is it.
"""

from __future__ import annotations

from aiohttp import web

from syncsvc.api.middleware import Handler, error_response, is_public, new_request_id
from syncsvc.errors import OverloadedError
from syncsvc.metrics import HTTP_REQUESTS_IN_FLIGHT, HTTP_REQUESTS_SHED


class InFlight:
    """The requests this process works on now, against its bound (0: none), and how many it shed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.now = 0
        self.shed = 0


IN_FLIGHT = web.AppKey("in_flight", InFlight)


def _counted(request: web.Request) -> bool:
    return not is_public(request) and request.headers.get("Upgrade", "").lower() != "websocket"


def _refusal() -> OverloadedError:
    return OverloadedError("The server is at its limit of requests in flight; retry with backoff")


@web.middleware
async def shed_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: while the process is full, refuses a counted request at once, and nothing else is
    done for it."""
    gate = request.app[IN_FLIGHT]
    if not (gate.limit and gate.now >= gate.limit and _counted(request)):
        return await handler(request)
    gate.shed += 1
    HTTP_REQUESTS_SHED.inc()
    response = error_response(request, _refusal())
    response.headers["x-amzn-RequestId"] = new_request_id()
    return response


@web.middleware
async def admit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After authentication: takes a place for the request while it runs, or refuses it when there is none."""
    gate = request.app[IN_FLIGHT]
    if not _counted(request):
        return await handler(request)
    if gate.limit and gate.now >= gate.limit:
        gate.shed += 1
        HTTP_REQUESTS_SHED.inc()
        raise _refusal()
    gate.now += 1
    HTTP_REQUESTS_IN_FLIGHT.inc()
    try:
        return await handler(request)
    finally:
        gate.now -= 1
        HTTP_REQUESTS_IN_FLIGHT.dec()
