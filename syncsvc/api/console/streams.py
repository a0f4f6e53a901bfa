"""The console's streams page: each relay lane's backlog and how long its oldest unpublished change has waited, read
from Redis whichever process holds the lane, as a table and a live chart (the page's script reads
``/console/streams/lanes.json`` every two seconds and keeps the last five minutes); the pools whose stream is on,
each with its bulk publish status."""

from __future__ import annotations

import time

from aiohttp import web

from syncsvc.api import identity, sync
from syncsvc.api.console import sessions
from syncsvc.api.console.sessions import Session
from syncsvc.api.console.views import page, perform, render
from syncsvc.api.messages import SERVICES, SETTINGS

#: The pools the page lists (the first page of ListIdentityPools).
MAX_POOLS = 60


async def _lanes(request: web.Request) -> list[dict[str, float | int]]:
    return [
        {"lane": lane.lane, "backlog": lane.backlog, "behind_seconds": round(lane.behind_seconds, 3)}
        for lane in await request.app[SERVICES].relay.lanes()
    ]


@page
async def streams_page(request: web.Request, session: Session) -> web.StreamResponse:
    listed = await perform(request, session, identity.SURFACE, "ListIdentityPools", {"MaxResults": MAX_POOLS})
    streaming = []
    for pool in listed["IdentityPools"]:
        labels = {"IdentityPoolId": pool["IdentityPoolId"]}
        configuration = await perform(request, session, sync.SURFACE, "GetIdentityPoolConfiguration", labels=labels)
        streams = configuration.get("CognitoStreams") or {}
        if streams.get("StreamingStatus") == "ENABLED":
            bulk = await perform(request, session, sync.SURFACE, "GetBulkPublishDetails", labels=labels)
            streaming.append({"pool": pool, "topic": streams.get("StreamName"), "bulk": bulk})
    return render(
        request,
        "streams.html",
        session,
        lanes=await _lanes(request),
        relay_here=request.app[SETTINGS].relay,
        streaming=streaming,
    )


@page
async def lanes_json(request: web.Request, session: Session) -> web.StreamResponse:
    """The lanes now, for the page's chart."""
    return web.json_response({"at": time.time(), "lanes": await _lanes(request)}, headers=sessions.SECURITY_HEADERS)


def routes() -> list[web.RouteDef]:
    return [web.get("/console/streams", streams_page), web.get("/console/streams/lanes.json", lanes_json)]
