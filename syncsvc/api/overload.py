"""Load shedding: a bound on the requests one process works on at once (``Settings.max_requests_in_flight``).

Past the bound a request is answered at once with TooManyRequestsException (429 on Cognito Sync, 400 on the json 1.1
surfaces, ``Retry-After: 1``), which every AWS SDK retries with backoff, instead of joining a queue whose wait grows
without bound: the requests admitted keep a bounded latency, and a client learns at once to back off.

What counts is a request past authentication (:func:`admit_middleware` is the innermost middleware): a client
without credentials cannot take a place, and a slow body is read before admission, under its own budget and timeout
(``syncsvc.api.bodies``). While the process is full, though, a request is refused before it is authenticated
(:func:`shed_middleware`, just inside the error formatting): past capacity the refusals are most of the work, and
checking a signature or a token for a request that will be refused anyway would take the CPU the admitted requests
need (measured in ``make bench``'s overload point). Health, discovery and the API description are never counted nor
refused; a push socket is long-lived and bounded on its own (``Settings.push_max_sockets``), so neither is it.
"""

from __future__ import annotations

from aiohttp import web

from syncsvc.api.middleware import Handler, is_public
from syncsvc.errors import OverloadedError


class InFlight:
    """The requests this process works on now, against its bound (0: none), and how many it shed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.now = 0
        self.shed = 0


IN_FLIGHT = web.AppKey("in_flight", InFlight)


def _counted(request: web.Request) -> bool:
    return not is_public(request) and request.headers.get("Upgrade", "").lower() != "websocket"


def _refuse(gate: InFlight) -> OverloadedError:
    gate.shed += 1
    return OverloadedError("The server is at its limit of requests in flight; retry with backoff")


@web.middleware
async def shed_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Before authentication: refuses at once while the process is full."""
    gate = request.app[IN_FLIGHT]
    if gate.limit and gate.now >= gate.limit and _counted(request):
        raise _refuse(gate)
    return await handler(request)


@web.middleware
async def admit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After authentication: takes a place for the request while it runs, or refuses it when there is none."""
    gate = request.app[IN_FLIGHT]
    if not gate.limit or not _counted(request):
        return await handler(request)
    if gate.now >= gate.limit:
        raise _refuse(gate)
    gate.now += 1
    try:
        return await handler(request)
    finally:
        gate.now -= 1
