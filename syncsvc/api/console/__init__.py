"""The web console at ``/console`` (``SYNCSVC_CONSOLE``, on by default): what an operator coming from the Cognito
console expects to see and manage, served by every ``syncsvc serve`` instance.

Server-rendered pages (Jinja2, escaped by default) with a little script for what changes while a page is open; no
build step. The pages:

* ``/console/signin``: a developer credential pair (``sessions``).
* ``/console/pools``: identity pools with their usage; a new pool; one pool's settings, Cognito Streams, push sync,
  Cognito Events (the registered triggers to choose from), bulk publish, deletion (``pools``).
* ``/console/identities``: the identity browser: by id, by login, or a pool's list; an identity's logins and
  datasets; a dataset's records, live; deleting a dataset or an identity (``identities``).
* ``/console/streams``: the relay's lanes, backlog and lag as a live chart; the pools streaming, with bulk publish
  (``streams``).
* ``/console/push`` and ``/console/triggers``: the instances and their sockets, recent notifications; registered
  triggers, the pools they are attached to, recent calls (``activity``).
* ``/console/keys``: KMS keys, their state, rotation, scheduled deletion and aliases, read-only (``keys``).

Who may do what is ``sessions``' (sign-in, cookie, CSRF, headers); every read and change runs the API's own
operation as the signed-in developer (``views.perform``), so the console can do nothing the API would refuse those
credentials. The API's SigV4 authentication skips ``/console`` (``syncsvc.api.middleware.is_public``): the console
authenticates its own way, and an identity's credentials, signed or not, open none of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from importlib import resources
from typing import Any

from aiohttp import web

from syncsvc.api.console import activity, identities, keys, paths, pools, sessions, streams
from syncsvc.api.console.sessions import Session
from syncsvc.api.console.views import UNREADABLE_FORM, change, form_of, page, redirect, render
from syncsvc.config import Settings

_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    if await sessions.current(request) is not None:
        raise redirect("/console/pools")
    return render(request, "signin.html", None)


async def sign_in(request: web.Request) -> web.StreamResponse:
    """The form's pair checked (constant time); a session and its cookie, or the form again with 401."""
    form = await form_of(request)
    if form is None:
        return render(request, "signin.html", None, status=400, error=UNREADABLE_FORM)
    key_id, secret = form.get("access_key_id", ""), form.get("secret", "")
    if not sessions.same_site(request):
        return render(request, "signin.html", None, status=403, error="This sign-in came from another site's page.")
    if not sessions.credentials_match(request, key_id, secret):
        return render(
            request,
            "signin.html",
            None,
            status=401,
            error="That is not a developer credential pair of this server.",
        )
    response = redirect("/console/pools")
    await sessions.start(request, key_id, response)
    raise response


@change
async def sign_out(request: web.Request, session: Session, form: Mapping[str, str]) -> web.StreamResponse:
    response = redirect(paths.SIGN_IN)
    await sessions.end(request, response)
    raise response


@page
async def home(request: web.Request, session: Session) -> web.StreamResponse:
    raise redirect("/console/pools")


@page
async def not_found(request: web.Request, session: Session) -> web.StreamResponse:
    """Any other GET under /console: a page saying so (not the API's JSON error a browser would show as text)."""
    message = f"There is no console page at {request.path}."
    return render(request, "missing.html", session, status=404, heading="Not found", message=message)


def _static_routes() -> list[web.RouteDef]:
    """The console's stylesheet and script, read once, served with a day's caching."""
    served = []
    for entry in resources.files("syncsvc.api.console").joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if suffix not in _STATIC_TYPES:
            continue
        body, content_type = entry.read_bytes(), _STATIC_TYPES[suffix]

        async def serve(request: web.Request, body: bytes = body, content_type: str = content_type) -> web.Response:
            headers: dict[str, Any] = {**sessions.SECURITY_HEADERS, "Cache-Control": "public, max-age=86400"}
            return web.Response(body=body, content_type=content_type, headers=headers)

        served.append(web.get(f"/console/static/{entry.name}", serve))
    return served


def install(app: web.Application, settings: Settings) -> None:
    """The console's routes and state on ``app``; nothing with ``SYNCSVC_CONSOLE=false``."""
    if not settings.console:
        return
    app[streams.READERS] = asyncio.Semaphore(streams.MAX_READERS)
    app.add_routes(_routes())


def _routes() -> list[web.RouteDef]:
    return [
        web.get(paths.ROOT, home),
        web.get(paths.ROOT + "/", home),
        web.get(paths.SIGN_IN, sign_in_page),
        web.post(paths.SIGN_IN, sign_in),
        web.post(paths.ROOT + "/signout", sign_out),
        *pools.routes(),
        *identities.routes(),
        *streams.routes(),
        *activity.routes(),
        *keys.routes(),
        *_static_routes(),
        web.get(paths.ROOT + "/{unknown:.*}", not_found),  # last: only what no route above matched
    ]
