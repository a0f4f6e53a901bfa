"""The console's streams page: each relay lane's backlog and how long its oldest unpublished change has waited, read
from Redis whichever process holds the lane, as a table and a live chart (the page's script reads
``/console/streams/lanes.json`` every two seconds and keeps the last five minutes); the pools whose stream is on,
each with its bulk publish status; and, for the pool chosen, its latest changes on its Kafka topic as they arrive
(``syncsvc.outbox.recent``: the page's script asks ``/console/streams/changes?pool=…`` every three seconds; at most
two such reads at a time per process, each with its own short-lived consumer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError

from syncsvc.api import identity, sync
from syncsvc.api.console import sessions
from syncsvc.api.console.sessions import Session
from syncsvc.api.console.views import page, perform, refusal, render
from syncsvc.api.messages import SERVICES, SETTINGS
from syncsvc.errors import SyncsvcError
from syncsvc.outbox.recent import recent_changes

#: The pools the page lists (the first page of ListIdentityPools).
MAX_POOLS = 60
#: Reads of the stream at once, per server (each opens a Kafka consumer for its read): a semaphore of the app's, so it
#: belongs to the app's event loop.
READERS = web.AppKey("console_stream_readers", asyncio.Semaphore)
MAX_READERS = 2


async def _lanes(request: web.Request) -> list[dict[str, float | int]]:
    return [
        {"lane": lane.lane, "backlog": lane.backlog, "behind_seconds": round(lane.behind_seconds, 3)}
        for lane in await request.app[SERVICES].relay.lanes()
    ]


@page
async def streams_page(request: web.Request, session: Session) -> web.StreamResponse:
    listed = await perform(request, session, identity.SURFACE, "ListIdentityPools", {"MaxResults": MAX_POOLS})
    pools = listed["IdentityPools"]

    def asking(name: str, pool: dict[str, str]) -> Awaitable[Any]:
        return perform(request, session, sync.SURFACE, name, labels={"IdentityPoolId": pool["IdentityPoolId"]})

    # the pools' settings together, then the bulk publish status of those streaming together (MAX_POOLS at most)
    configurations = await asyncio.gather(*(asking("GetIdentityPoolConfiguration", pool) for pool in pools))
    on = [
        (pool, streams)
        for pool, configuration in zip(pools, configurations, strict=True)
        if (streams := configuration.get("CognitoStreams") or {}).get("StreamingStatus") == "ENABLED"
    ]
    bulks = await asyncio.gather(*(asking("GetBulkPublishDetails", pool) for pool, _ in on))
    streaming = [
        {"pool": pool, "topic": streams.get("StreamName"), "bulk": bulk}
        for (pool, streams), bulk in zip(on, bulks, strict=True)
    ]
    chosen = next((item for item in streaming if item["pool"]["IdentityPoolId"] == request.query.get("pool")), None)
    return render(
        request,
        "streams.html",
        session,
        lanes=await _lanes(request),
        relay_here=request.app[SETTINGS].relay,
        streaming=streaming,
        chosen=chosen,
    )


@page
async def changes_fragment(request: web.Request, session: Session) -> web.StreamResponse:
    """The chosen pool's latest changes (an HTML fragment the page swaps in when they changed)."""
    pool_id = request.query.get("pool", "")
    labels = {"IdentityPoolId": pool_id}
    error, changes = "", []
    try:
        configuration = await perform(request, session, sync.SURFACE, "GetIdentityPoolConfiguration", labels=labels)
        topic = (configuration.get("CognitoStreams") or {}).get("StreamName")
        if topic:
            async with request.app[READERS]:
                changes = await recent_changes(request.app[SETTINGS].kafka_bootstrap, topic, pool_id)
    except SyncsvcError as refused:
        error = refusal(refused)
    except (KafkaError, TimeoutError) as exc:
        error = f"Kafka did not answer ({type(exc).__name__}); trying again"
    version = ",".join(f"{change['partition']}:{change['offset']}" for change in changes[:3]) or error or "none"
    return render(request, "changes.html", session, changes=changes, error=error, version=version)


@page
async def lanes_json(request: web.Request, session: Session) -> web.StreamResponse:
    """The lanes now, for the page's chart."""
    return web.json_response({"at": time.time(), "lanes": await _lanes(request)}, headers=sessions.SECURITY_HEADERS)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console/streams", streams_page),
        web.get("/console/streams/lanes.json", lanes_json),
        web.get("/console/streams/changes", changes_fragment),
    ]
