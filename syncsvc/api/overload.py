"""Load shedding: a bound on the requests one process works on at once (``Settings.max_requests_in_flight``).

Past the bound a request is answered at once with TooManyRequestsException (429 on Cognito Sync, 400 on the json 1.1
surfaces, ``Retry-After: 1``), which every AWS SDK retries with backoff, instead of joining a queue whose wait grows
without bound: the requests admitted keep a bounded latency, and a client learns at once to back off.

What counts is a request past authentication (:func:`shed_middleware` is the innermost middleware): a client without
credentials is refused before it could take a place, and a slow body is read before admission, under its own budget
and timeout (``syncsvc.api.bodies``). Health, discovery and the API description never reach it; a push socket is
long-lived and bounded on its own (``Settings.push_max_sockets``), so it is not counted either.
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


@web.middleware
async def shed_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    gate = request.app[IN_FLIGHT]
    if not gate.limit or is_public(request) or request.headers.get("Upgrade", "").lower() == "websocket":
        return await handler(request)
    if gate.now >= gate.limit:
        gate.shed += 1
        raise OverloadedError("The server is at its limit of requests in flight; retry with backoff")
    gate.now += 1
    try:
        return await handler(request)
    finally:
        gate.now -= 1
