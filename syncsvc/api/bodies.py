"""Request bodies: read whole (a SigV4 signature covers the body), within bounds a client without credentials
cannot move.

* A body is read only after the caller was admitted on its headers (the auth middleware), so an unknown caller never
  gets one buffered; the anonymous operations (GetId and its kind) are the exception, and the limits below hold them.
* The bytes all requests of a process hold at once are bounded (``Settings.max_buffered_body_bytes``): a request is
  charged its Content-Length (or the largest body, when chunked) from before its body is read until it is answered;
  one that would pass the bound is refused at once with ``TooManyRequestsException`` (which the SDKs retry).
* A body must arrive within ``Settings.body_timeout_seconds``; a client that trickles it is answered 408.
* A body larger than ``Settings.max_body_bytes`` by its Content-Length is refused before a byte of it is read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from syncsvc.errors import IncompleteRequestError, RequestTimeoutError, RequestTooLargeError, TooManyRequestsError

log = logging.getLogger("syncsvc.api")


class BodyBudget:
    """Reads request bodies within the bounds of the module docstring."""

    def __init__(self, *, total_bytes: int, max_body_bytes: int, timeout_seconds: float) -> None:
        self.total_bytes = total_bytes
        self.max_body_bytes = max_body_bytes
        self.timeout_seconds = timeout_seconds
        #: Bytes charged to requests in the app now.
        self.held = 0

    @asynccontextmanager
    async def read(self, request: web.Request) -> AsyncIterator[bytes]:
        """The whole body, charged to the budget until the ``async with`` ends."""
        size = request.content_length
        if size is not None and size > self.max_body_bytes:
            raise RequestTooLargeError(f"The request body is larger than {self.max_body_bytes} bytes")
        charge = size if size is not None else (self.max_body_bytes if request.body_exists else 0)
        if self.held + charge > self.total_bytes:
            raise TooManyRequestsError("The server is receiving too many request bodies at once; retry shortly")
        self.held += charge
        try:
            yield await self._whole(request)
        finally:
            self.held -= charge

    async def _whole(self, request: web.Request) -> bytes:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await request.read()
        except TimeoutError:
            raise RequestTimeoutError(
                f"The request body did not arrive within {self.timeout_seconds:g} seconds"
            ) from None
        except (ConnectionError, HttpProcessingError) as exc:
            log.debug("%s %s: the body ended early (%s)", request.method, request.path, exc)
            raise IncompleteRequestError("The request body ended before its Content-Length") from None


BODIES = web.AppKey("bodies", BodyBudget)
