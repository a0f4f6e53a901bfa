"""What every console page shares: rendering a template, the sign-in guard of pages and changes, running an API
operation as the signed-in developer, and turning a refusal into a message on the page.

The console changes nothing by a path of its own: a change runs the same operation, with the same validation and
the same use-case, that an AWS SDK signed with the same developer credentials would run (:func:`perform`), so a
refusal reads as the API's (its AWS error name and message).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError

from syncsvc.api.console import paths, sessions
from syncsvc.api.console.sessions import ForbiddenChangeError, Session
from syncsvc.api.messages import SERVICES
from syncsvc.api.operations import Call, Surface
from syncsvc.api.validation import validation_error
from syncsvc.errors import SyncsvcError
from syncsvc.model import Caller

log = logging.getLogger(__name__)

_TEMPLATES = Environment(
    loader=PackageLoader("syncsvc.api.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
#: What a change may report after it redirects (the page shows the text; nothing a client sent is echoed).
NOTES = {
    "created": "Created.",
    "saved": "Saved.",
    "deleted": "Deleted.",
    "publishing": "Bulk publish started.",
}


def _when(seconds: float | int | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_TEMPLATES.filters["when"] = _when
_TEMPLATES.filters["json"] = lambda value: orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def render(
    request: web.Request, template: str, session: Session | None, *, status: int = 200, **context: Any
) -> web.Response:
    """The page ``template`` with ``context``, the session's CSRF token for its forms, and the console's headers."""
    note = NOTES.get(request.query.get("note", ""))
    text = _TEMPLATES.get_template(template).render(session=session, note=note, path=request.path, **context)
    return web.Response(text=text, status=status, content_type="text/html", headers=sessions.SECURITY_HEADERS)


def redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location, headers=sessions.SECURITY_HEADERS)


def page(handler: Callable[[web.Request, Session], Awaitable[web.StreamResponse]]) -> Callable[..., Any]:
    """A GET page for signed-in operators only (others are sent to sign in)."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        session = await sessions.current(request)
        if session is None:
            raise redirect(paths.SIGN_IN)
        return await handler(request, session)

    return guarded


#: What a page says of a form whose body cannot be read (see :func:`form_of`).
UNREADABLE_FORM = "The form could not be read: its fields must be URL-encoded UTF-8 text."


async def form_of(request: web.Request) -> dict[str, str] | None:
    """The fields of a POSTed form, or None when the body is no form the console's pages send: those are URL-encoded
    (no page uploads a file), so a multipart body is not parsed at all (no temporary files for anyone's uploads),
    and neither are bytes that are not text in the charset named, nor an unknown charset. Such a body gets a 400,
    never an error of the server."""
    if request.content_type != "application/x-www-form-urlencoded":
        return None
    try:
        fields = await request.post()
    except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError; an unknown charset is a LookupError
        return None
    return {key: value for key, value in fields.items() if isinstance(value, str)}


def change(
    handler: Callable[[web.Request, Session, Mapping[str, str]], Awaitable[web.StreamResponse]],
) -> Callable[..., Any]:
    """A POST that changes something: signed in, from this site, with the session's CSRF token (else 403 and
    nothing done); ``handler`` gets the form's fields. The body is read only once the session is known: a request
    without one is refused unread."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        session = await sessions.current(request)
        if session is None:
            message = "You are not signed in to the console (or your session ended), so nothing was done."
            return render(request, "refused.html", None, status=403, message=message)
        form = await form_of(request)
        if form is None:
            return render(request, "refused.html", session, status=400, message=UNREADABLE_FORM + " Nothing was done.")
        try:
            sessions.check_change(request, session, form.get("csrf", ""))
        except ForbiddenChangeError as refused:
            return render(request, "refused.html", session, status=403, message=str(refused))
        return await handler(request, session, form)

    return guarded


async def perform(
    request: web.Request,
    session: Session,
    surface: Surface,
    name: str,
    body: Mapping[str, Any] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    query: Mapping[str, int | str | None] | None = None,
) -> Any:
    """Runs the API operation ``name`` of ``surface`` as the session's developer: the body validated as the wire's
    JSON would be (a broken constraint raises the surface's validation error), then its use-case."""
    operation = surface.operations[name]
    try:
        given = operation.input.model_validate_json(orjson.dumps(body or {}), strict=True)
    except ValidationError as exc:
        raise validation_error(exc, operation.input, surface.invalid) from None
    declared = {parameter.name: None for parameter in operation.route.query} if operation.route is not None else {}
    call = Call(given, Caller.developer(session.access_key_id), labels or {}, {**declared, **(query or {})})
    return await operation.run(request.app[SERVICES], call)


def refusal(error: SyncsvcError) -> str:
    """A refusal as the page shows it: the AWS error name and its message."""
    return f"{error.code}: {error.message}"
