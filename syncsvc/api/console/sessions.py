"""Who may use the console: sign-in with a developer credential pair, the session cookie, and the checks every page
and every change passes.

* **Sign-in** takes an access key id and its secret in a POST form (never in a URL) and compares them with every
  developer pair of the settings in constant time. An identity's credentials, whatever they are, sign no one in.
* **The session** is 256 random bits in a cookie (``HttpOnly``: no script reads it; ``SameSite=Strict``: no other
  site's page sends it; ``Secure`` when the request came over HTTPS, directly or through a proxy that says so in
  ``X-Forwarded-Proto``; ``Path=/console``). Redis keeps only its digest (``syncsvc.store.console``), so any instance
  serves it and a copy of Redis signs no one in. It ends after ``SYNCSVC_CONSOLE_SESSION_SECONDS`` without a request,
  12 hours after sign-in in any case, and at sign-out.
* **Every change** (a POST) must come from the console's own pages: the form carries the session's CSRF token,
  compared in constant time, and a browser's ``Origin`` (or ``Sec-Fetch-Site``) must name this site. A change
  without them is refused with 403 and nothing is done.
* **Every answer** carries headers that keep it to itself: a Content-Security-Policy allowing only the console's own
  scripts and styles and no framing, ``no-store`` caching, no MIME sniffing, and no referrer to other sites.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from syncsvc.api.console.paths import ROOT
from syncsvc.api.messages import SERVICES, SETTINGS

COOKIE = "syncsvc_console"
#: A session ends this long after sign-in, however busy.
MAX_SESSION_SECONDS = 12 * 3600
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in operator: the developer access key id they signed in with, and their session's CSRF token."""

    access_key_id: str
    csrf: str
    created: float


class ForbiddenChangeError(Exception):
    """A change refused before anything was done (no session, a wrong CSRF token, another site's form)."""


Page = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _ttl_ms(request: web.Request) -> int:
    return int(request.app[SETTINGS].console_session_seconds * 1000)


def credentials_match(request: web.Request, access_key_id: str, secret: str) -> bool:
    """Whether the pair is one of the settings' developer pairs; every pair compared, each in constant time."""
    given_id, given_secret = access_key_id.encode(), secret.encode()
    matched = False
    for credential in request.app[SETTINGS].developer_credentials:
        same_id = hmac.compare_digest(given_id, credential.access_key_id.encode())
        same_secret = hmac.compare_digest(given_secret, credential.secret.get_secret_value().encode())
        matched |= same_id & same_secret
    return matched


async def start(request: web.Request, access_key_id: str, response: web.StreamResponse) -> None:
    """A new session for ``access_key_id``, its cookie set on ``response``."""
    token = secrets.token_urlsafe(32)
    record = orjson.dumps({"key": access_key_id, "csrf": secrets.token_urlsafe(32), "created": time.time()})
    await request.app[SERVICES].console_sessions.put(_digest(token), record, ttl_ms=_ttl_ms(request))
    response.set_cookie(
        COOKIE,
        token,
        path=ROOT,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
        max_age=MAX_SESSION_SECONDS,
    )


async def end(request: web.Request, response: web.StreamResponse) -> None:
    """Signs the request's session out (if any) and clears its cookie."""
    token = request.cookies.get(COOKIE)
    if token:
        await request.app[SERVICES].console_sessions.delete(_digest(token))
    response.del_cookie(COOKIE, path=ROOT)


async def current(request: web.Request) -> Session | None:
    """The request's live session, renewed; None without one (no cookie, signed out, expired)."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        return None
    record = await request.app[SERVICES].console_sessions.use(_digest(token), ttl_ms=_ttl_ms(request))
    if record is None:
        return None
    fields = orjson.loads(record)
    if time.time() - fields["created"] > MAX_SESSION_SECONDS:
        return None
    return Session(fields["key"], fields["csrf"], fields["created"])


def is_https(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def same_site(request: web.Request) -> bool:
    """Whether a browser says the request came from this site's own pages (requests without those headers, from
    other clients than browsers, are judged by the CSRF token alone)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in {"same-origin", "none"}:
        return False
    origin = request.headers.get("Origin")
    if origin is None or (origin == "null" and fetch_site == "same-origin"):
        return True
    return origin == f"{'https' if is_https(request) else 'http'}://{request.host}"


def check_change(request: web.Request, session: Session, form_token: str) -> None:
    """Forbidden unless the change comes from this site with the session's CSRF token."""
    if not same_site(request):
        raise ForbiddenChangeError("This change came from another site's page, so nothing was done.")
    if not hmac.compare_digest(form_token.encode(), session.csrf.encode()):
        raise ForbiddenChangeError(
            "This form is out of date or did not come from the console (its CSRF token is missing or "
            "wrong), so nothing was done. Reload the page and try again."
        )


def guarded(headers: dict[str, str]) -> dict[str, str]:
    return {**SECURITY_HEADERS, **headers}
