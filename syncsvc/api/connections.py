"""How many connections one serving process holds, and how it listens.

A flood of sockets — opened and left idle, or half a request and never the rest — must not use up the process's
open files: Redis, Kafka and the next health check need descriptors too. So:

* **A cap** (``Settings.max_connections``; by default the open-files limit less ``Settings.reserved_descriptors``).
  A connection that arrives at the cap first evicts the longest-open *idle* connection (one with no request in the
  app: waiting between requests, or still sending its first request line and headers), so idle sockets cannot lock
  out a real client; only when every connection is busy is the new one closed at once.
* **A cap per client address** (``Settings.max_connections_per_address``, off by default: behind a load balancer or a
  carrier NAT one address is many clients): past it a new connection of that address is reset.
* **An idle timeout** (``Settings.idle_timeout_seconds``, aiohttp's keep-alive timeout): a connection that sends no
  request for that long, its first one included, is closed. Request bodies have their own time limit
  (``syncsvc.api.bodies``), push sockets their heartbeat.
* **Quiet logs**: the event loop's errors (``socket.accept() out of system resource`` and the like) are logged at
  most once per message and interval, with the number of repeats left out.
* **Malformed HTTP** that aiohttp refuses before the app sees a request is answered in the AWS error shape and
  logged at debug level (a client can send it as fast as it likes).

aiohttp's surface used: the runner's ``Server`` manages each connection's ``RequestHandler`` (made here, a subclass
answering parser errors, and wrapped to count it), a request's ``protocol`` says which connection is busy, and an
idle one is closed with ``force_close``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from syncsvc.api.middleware import new_request_id
from syncsvc.config import Settings

log = logging.getLogger("syncsvc.api")

Handler = Callable[[web.Request], Any]
#: aiohttp's handler argument that turns its access log off (its annotation says Logger; None is what it checks).
_NO_ACCESS_LOG: dict[str, Any] = {"access_log": None}
#: How often one event-loop error message is logged at most.
_LOG_INTERVAL_SECONDS = 10.0


class ConnectionGuard:
    """The listening socket's protocol factory: aiohttp's, capped at ``limit`` connections (see the module).

    Each connection's protocol is wrapped to count it; idle connections are kept oldest first, so finding the one
    to evict at the cap costs the same however many are open."""

    def __init__(self, limit: int, *, per_address: int = 0) -> None:
        self.limit = limit
        self.per_address = per_address
        self.open = 0
        #: Open connections per client address (only with a per-address cap).
        self._by_address: dict[str, int] = {}
        #: Connections with no request in the app, the longest idle first.
        self._idle: dict[asyncio.BaseProtocol, None] = {}
        self._busy: dict[asyncio.BaseProtocol, int] = {}
        self._last_warning = 0.0

    def factory(self, server: web.Server, *, idle_timeout: float) -> Callable[[], asyncio.BaseProtocol]:
        loop = asyncio.get_running_loop()
        return lambda: _Counted(_Handler(server, loop=loop, keepalive_timeout=idle_timeout, **_NO_ACCESS_LOG), self)

    def admit(self, handler: asyncio.BaseProtocol, address: str) -> bool:
        """Counts a connection that was just made; False (refuse it) when its address is at its cap, or the process
        at its cap with every connection busy. Decided here rather than when the protocol is made: a burst of
        accepts makes many protocols first."""
        if self.per_address and self._by_address.get(address, 0) >= self.per_address:
            self._warn("refusing a connection: %s holds its %d connections", address, self.per_address)
            return False
        if self.open >= self.limit and not self._evict_idle():
            self._warn("refusing a connection: all %d connections are busy", self.limit)
            return False
        self.open += 1
        self._idle[handler] = None
        if self.per_address:
            self._by_address[address] = self._by_address.get(address, 0) + 1
        return True

    def closed(self, handler: asyncio.BaseProtocol, address: str) -> None:
        self.open -= 1
        self._idle.pop(handler, None)
        self._busy.pop(handler, None)
        if self.per_address:
            left = self._by_address.pop(address, 0) - 1
            if left > 0:
                self._by_address[address] = left

    def _evict_idle(self) -> bool:
        if not self._idle:
            return False
        handler = next(iter(self._idle))
        del self._idle[handler]  # counted open until its connection_lost
        assert isinstance(handler, RequestHandler)
        handler.force_close()
        self._warn("at the limit of %d connections: closing the longest idle one", self.limit)
        return True

    @asynccontextmanager
    async def busy(self, handler: asyncio.BaseProtocol | None) -> AsyncIterator[None]:
        """Marks the connection busy while a request of it is in the app; then it is the newest idle one."""
        if handler is None or (handler not in self._idle and handler not in self._busy):
            yield  # not a connection this guard counts (a test server's), or one closing
            return
        self._idle.pop(handler, None)
        self._busy[handler] = self._busy.get(handler, 0) + 1
        try:
            yield
        finally:
            left = self._busy.pop(handler, 0) - 1
            if left > 0:
                self._busy[handler] = left
            elif left == 0:
                self._idle[handler] = None

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _LOG_INTERVAL_SECONDS:
            self._last_warning = now
            log.warning(message, *args)


class _Handler(RequestHandler):
    """aiohttp's connection handler, except for the requests aiohttp refuses itself (a malformed request line or
    header, an over-long URL or header): answered in the AWS error shape, and logged as one debug line rather than
    an error with a traceback (a client can send those as fast as it likes)."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        reason = type(exc).__name__ if exc is not None else "malformed"
        log.debug("refused a request from %s that is not well-formed HTTP (%s)", request.remote, reason)
        body = {"__type": "SerializationException", "message": f"The request is not well-formed HTTP ({reason})"}
        response = web.Response(status=status, body=orjson.dumps(body), content_type="application/x-amz-json-1.1")
        response.headers["x-amzn-ErrorType"] = "SerializationException"
        response.headers["x-amzn-RequestId"] = new_request_id()
        response.force_close()
        return response


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted by the guard from connection_made to connection_lost; a
    connection the guard refuses is reset at once (its descriptor is free again) and never reaches aiohttp."""

    __slots__ = ("_address", "_admitted", "_guard", "_inner")

    def __init__(self, inner: RequestHandler, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._admitted = False
        self._address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self._admitted = self._guard.admit(self._inner, self._address)
        if not self._admitted:
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._guard.closed(self._inner, self._address)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            self._inner.data_received(data)

    def eof_received(self) -> None:
        if self._admitted:
            self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def quiet_loop_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Logs the loop's errors at most once per message per interval (an accept() failing under a flood repeats
    thousands of times a second)."""
    last: dict[str, float] = {}

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "event loop error"))
        now = time.monotonic()
        if now - last.get(message, -_LOG_INTERVAL_SECONDS) < _LOG_INTERVAL_SECONDS:
            return
        if len(last) > 1000:  # messages carry no request data, but bound the table anyway
            last.clear()
        last[message] = now
        exception = context.get("exception")
        log.error("%s: %s (repeats within %.0f s are not logged)", message, exception, _LOG_INTERVAL_SECONDS)

    loop.set_exception_handler(handle)


async def serve(app: web.Application, settings: Settings, *, reuse_port: bool) -> None:
    """Serves ``app`` on ``settings.host:port`` until SIGINT or SIGTERM, then shuts down as ``web.run_app`` does
    (the listener closes, requests in flight finish, the app's shutdown and cleanup run)."""
    loop = asyncio.get_running_loop()
    quiet_loop_errors(loop)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, access_log=None)  # its connection handlers are made by the guard
    guard = app[CONNECTIONS]
    try:
        await runner.setup()
        assert runner.server is not None
        factory = guard.factory(runner.server, idle_timeout=settings.idle_timeout_seconds)
        listener = await loop.create_server(factory, settings.host, settings.port, reuse_port=reuse_port, backlog=1024)
        log.info("serving on http://%s:%s (at most %d connections)", settings.host, settings.port, guard.limit)
        settle_garbage_collector()
        await stop.wait()
        listener.close()
    finally:
        await runner.cleanup()


#: The collector's thresholds once serving (CPython's defaults: 700, 10, 10). A request makes a few hundred container
#: objects that die young; a first generation of 50,000 collects them in a tenth as many passes, and older ones are
#: looked at less often. Measured with ``python -m bench.probe`` (1 worker, writes, 2 cores, uvloop, frozen start-up):
#: c=64 2,116/s (defaults: 1,775/s), c=1 p99 4.3 ms (defaults: 10.7 ms).
GC_THRESHOLDS = (50_000, 20, 100)


def settle_garbage_collector() -> None:
    """Once started: what start-up made (modules, the services, caches) lives as long as the process, so it is moved
    out of the collector's sight (``gc.freeze``) instead of being traversed by every full collection; then the
    thresholds of :data:`GC_THRESHOLDS`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@web.middleware
async def busy_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: a connection with a request in the app is not idle (see :class:`ConnectionGuard`)."""
    async with request.app[CONNECTIONS].busy(request.protocol):
        response: web.StreamResponse = await handler(request)
        return response


CONNECTIONS = web.AppKey("connections", ConnectionGuard)
