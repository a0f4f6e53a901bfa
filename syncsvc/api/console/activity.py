"""The console's push and triggers pages: what the deployment's instances hold and what this one did lately.

* ``/console/push``: every serving instance as it last reported itself (``syncsvc.store.instances``: host, process,
  push sockets, since when; an instance silent for over a minute is shown as gone; the instances drop a record an
  hour after its last report), and
  the last notifications this instance passed to device sockets (``PushHub.recent``).
* ``/console/triggers``: the triggers registered on this server (isolation, timeout, concurrency, handler), the
  pools whose Cognito Events attach each, and the last calls made here with their outcome and duration
  (``TriggerRunner.recent``).

What an instance remembers of its own activity stays in its memory, bounded (50 notifications, 100 calls): the page
says which instance answered.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from syncsvc.api import identity, sync
from syncsvc.api.console.sessions import Session
from syncsvc.api.console.views import page, perform, render
from syncsvc.api.messages import SERVICES

#: An instance that has not reported for this long is shown as gone (its record is dropped after an hour).
GONE_SECONDS = 60.0
MAX_POOLS = 60


@page
async def push_page(request: web.Request, session: Session) -> web.StreamResponse:
    services = request.app[SERVICES]
    now = time.time()
    instances: list[dict[str, Any]] = []
    for instance_id, record in (await services.instances.all()).items():
        fields = orjson.loads(record)
        age = now - float(fields["at"])
        instances.append({**fields, "id": instance_id, "age": age, "live": age <= GONE_SECONDS})
    instances.sort(key=lambda instance: (not instance["live"], instance["host"], instance["pid"]))
    return render(
        request,
        "push.html",
        session,
        instances=instances,
        here=services.instance_id,
        sockets=sum(instance["sockets"] for instance in instances if instance["live"]),
        recent=list(reversed(services.hub.recent)),
    )


@page
async def triggers_page(request: web.Request, session: Session) -> web.StreamResponse:
    services = request.app[SERVICES]
    attached: dict[str, list[dict[str, str]]] = {}
    listed = await perform(request, session, identity.SURFACE, "ListIdentityPools", {"MaxResults": MAX_POOLS})
    for pool in listed["IdentityPools"]:
        labels = {"IdentityPoolId": pool["IdentityPoolId"]}
        events = (await perform(request, session, sync.SURFACE, "GetCognitoEvents", labels=labels))["Events"]
        for event, name in events.items():
            attached.setdefault(name, []).append({**pool, "event": event})
    return render(
        request,
        "triggers.html",
        session,
        triggers=sorted(services.triggers, key=lambda spec: spec.name),
        attached=attached,
        recent=list(reversed(services.runner.recent)),
        here=services.instance_id,
    )


def routes() -> list[web.RouteDef]:
    return [web.get("/console/push", push_page), web.get("/console/triggers", triggers_page)]
