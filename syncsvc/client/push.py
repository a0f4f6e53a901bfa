"""Push sync over a WebSocket: the device's connection to the server, kept open, and the syncs it triggers.

Protocol (``GET /identitypools/{pool}/identity/{identity}/device/{DeviceId}/push``, ``Authorization: Bearer``):

* client → server: ``{"action": "resume", "syncCounts": {dataset: count held}}`` right after connecting (the server
  then notifies every subscribed dataset that moved past what the client holds, then answers ``{"action":
  "resumed", "syncCounts": {...}}``); ``{"action": "ping"}`` (answered ``{"action": "pong"}``).
* server → client: ``{"source": "cognito-sync", "identityPoolId", "identityId", "datasetName", "syncCount"}``.
* close codes: 1001 server going away (reconnect now), 4008 slow reader, 4009 replaced by a newer connection of the
  same device (the listener stops: :class:`SyncClientError` ``ConnectionReplaced``), 1003/1007 bad frames.

The listener sees the client only through :class:`Subscriber`, the few members it reads and calls (``SyncClient`` is
one).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

from syncsvc.client.algorithm import SyncResult
from syncsvc.client.conflicts import ConflictHandler
from syncsvc.client.errors import CONNECTION_ERROR, CONNECTION_REPLACED, SyncClientError
from syncsvc.client.local import LocalState
from syncsvc.client.transport import SyncTransport

log = logging.getLogger("syncsvc.client.push")

#: ``on_change(dataset, result)``, sync or async: called after each sync a notification caused.
ChangeHandler = Callable[[str, SyncResult], Awaitable[None] | None]

GOING_AWAY = 1001
REPLACED = 4009
#: handshake answers worth retrying (else the refusal is final: wrong identity, push not configured, …)
_RETRYABLE_STATUS = frozenset({408, 429})


class Subscriber(Protocol):
    """A device subscribed to datasets, as its push listener uses it: who it is, where its socket is, what it
    holds, and how it syncs a dataset a notification announces."""

    @property
    def identity_id(self) -> str: ...

    @property
    def state(self) -> LocalState: ...

    @property
    def transport(self) -> SyncTransport: ...

    def push_path(self) -> str:
        """The path of the device's push WebSocket (raises DeviceNotRegistered before RegisterDevice)."""

    def last_sync_count(self, dataset: str) -> int: ...

    async def synchronize_if_behind(
        self, dataset: str, sync_count: int, on_conflict: ConflictHandler | None
    ) -> SyncResult | None:
        """Syncs ``dataset`` unless the local copy already reached ``sync_count``."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnection delays: ``initial * factor**(n-1)`` capped at ``maximum`` for the n-th failure in a row, each
    drawn between half and all of it (jitter). A connection that got its ``resumed`` answer resets the count."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, failures: int) -> float:
        ceiling = min(self.maximum, self.initial * self.factor ** max(failures - 1, 0))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not cryptography

    def going_away(self) -> float:
        """The delay after the server said it is going away (1001): reconnect now, spread over ``initial``."""
        return random.uniform(0, self.initial)  # noqa: S311 - jitter, not cryptography


class PushListener:
    """Keeps one device's push WebSocket open and synchronizes each dataset a notification says moved past the
    local copy. Syncs run beside the reader (a slow sync never makes a slow reader); notifications for a dataset
    whose sync is running are coalesced into one more sync after it.

    ``resumed`` is set while a connection is up and resumed; :meth:`wait_resumed` waits for it (or for the listener
    to fail). ``ping_interval``: seconds of silence before a ping, and again before the connection is given up.
    """

    def __init__(
        self,
        client: Subscriber,
        *,
        on_change: ChangeHandler | None = None,
        on_conflict: ConflictHandler | None = None,
        backoff: Backoff | None = None,
        ping_interval: float = 30.0,
    ) -> None:
        self.client = client
        self.on_change = on_change
        self.on_conflict = on_conflict
        self.backoff = backoff or Backoff()
        self.ping_interval = ping_interval
        self.resumed = asyncio.Event()
        #: connections opened so far (each one sends ``resume``)
        self.connections = 0
        self._wanted: dict[str, int] = {}
        self._again: set[str] = set()
        self._syncs: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._healthy = False  # the current connection got its ``resumed`` answer

    # --- running ------------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[PushListener]:
        """Runs :meth:`run` in a task for the block; a failure of the listener is raised when the block ends."""
        self._task = asyncio.create_task(self.run(), name="syncsvc-push-listener")
        try:
            yield self
        finally:
            self._task.cancel()
            await asyncio.wait([self._task])
        failure = None if self._task.cancelled() else self._task.exception()
        if failure is not None:
            raise failure

    async def wait_resumed(self) -> None:
        """Waits until a connection is up and resumed; raises the listener's error if it stops first."""
        waiter = asyncio.create_task(self.resumed.wait())
        watched: set[asyncio.Future[Any]] = {waiter}
        if self._task is not None:
            watched.add(self._task)
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._task is not None and self._task.done() and not self.resumed.is_set():
            self._task.result()
            raise SyncClientError(CONNECTION_ERROR, "the push listener stopped", 0)

    async def wait_stopped(self) -> None:
        """Waits until the listener of :meth:`running` stops by itself (its error is raised when the block ends)."""
        if self._task is not None:
            await asyncio.wait([self._task])

    async def run(self) -> None:
        """Connects, reconnects with backoff, until cancelled (or refused for good: raises SyncClientError)."""
        target = self.client.push_path()  # raises DeviceNotRegistered before register_device()
        failures = 0
        try:
            while True:
                code = await self._connection(target)
                if self._healthy:
                    failures = 0
                failures += 1
                delay = self.backoff.going_away() if code == GOING_AWAY else self.backoff.delay(failures)
                log.info("push connection closed (%s); reconnecting in %.2f s", code, delay)
                await asyncio.sleep(delay)
        finally:
            self.resumed.clear()
            await self._stop_syncs()

    async def _connection(self, target: str) -> int | None:
        """One connection, from handshake to close; its close code (None when it could not be opened)."""
        self._healthy = False
        try:
            ws = await self.client.transport.websocket(target)
        except SyncClientError as exc:
            if exc.code != CONNECTION_ERROR and exc.status not in _RETRYABLE_STATUS and exc.status < 500:
                raise
            log.info("push connection failed: %s", exc)
            return None
        self.connections += 1
        try:
            await ws.send_str(orjson.dumps({"action": "resume", "syncCounts": self._held()}).decode())
            await self._read(ws)
        except (aiohttp.ClientError, ConnectionError) as exc:
            log.info("push connection lost: %s", exc)
        finally:
            self.resumed.clear()
            await ws.close()
        if ws.close_code == REPLACED:
            raise SyncClientError(CONNECTION_REPLACED, "a newer connection of this device replaced this one", REPLACED)
        return ws.close_code

    def _held(self) -> dict[str, int]:
        names = self.client.state.subscriptions | self.client.state.datasets.keys()
        return {name: max(self.client.last_sync_count(name), 0) for name in sorted(names)}

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        pinged = False
        while True:
            try:
                message = await ws.receive(timeout=self.ping_interval)
            except TimeoutError:
                if pinged:
                    log.info("push connection silent after a ping: reconnecting")
                    return
                await ws.send_str('{"action":"ping"}')
                pinged = True
                continue
            pinged = False
            if message.type is aiohttp.WSMsgType.TEXT:
                self._frame(message.data)
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return
            elif message.type is aiohttp.WSMsgType.ERROR:
                log.info("push connection error: %s", ws.exception())
                return

    # --- frames -------------------------------------------------------------------------------------------------

    def _frame(self, text: str) -> None:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            log.warning("push: ignoring a frame that is not JSON: %.100s", text)
            return
        if not isinstance(frame, dict):
            return
        action = frame.get("action")
        if action == "resumed":
            self._healthy = True
            self.resumed.set()
        elif action is None and frame.get("source") == "cognito-sync":
            self._notified(frame)

    def _notified(self, frame: dict[str, Any]) -> None:
        dataset, count = frame.get("datasetName"), frame.get("syncCount")
        if frame.get("identityId") != self.client.identity_id or not isinstance(dataset, str):
            return
        try:
            moved_to = int(count)  # type: ignore[arg-type]  # a number (or a numeric string, as GCM sends it)
        except (TypeError, ValueError):
            log.warning("push: ignoring a notification with syncCount %r", count)
            return
        if moved_to <= self.client.last_sync_count(dataset):
            return
        self._wanted[dataset] = max(self._wanted.get(dataset, 0), moved_to)
        if dataset in self._syncs:
            self._again.add(dataset)  # coalesced: one more sync once the running one is done
            return
        self._syncs[dataset] = asyncio.create_task(self._follow(dataset), name=f"syncsvc-push-sync-{dataset}")

    # --- syncs --------------------------------------------------------------------------------------------------

    async def _follow(self, dataset: str) -> None:
        """Syncs ``dataset`` until no notification came in during the last sync. A sync that failed for a reason
        that passes (the server unreachable or hung, a 5xx, 408, 429) is tried again after a backoff delay: the
        notification that asked for it will not come again, and the socket may well stay up (a server that hung and
        came back), so nothing else would ever pull what it announced."""
        failures = 0
        try:
            while True:
                self._again.discard(dataset)
                if not await self._sync(dataset):
                    failures += 1
                    await asyncio.sleep(self.backoff.delay(failures))
                    continue
                if dataset not in self._again:
                    return
        finally:
            self._syncs.pop(dataset, None)

    async def _sync(self, dataset: str) -> bool:
        """One sync up to the count wanted; False when it failed for a reason that passes (worth trying again)."""
        try:
            result = await self.client.synchronize_if_behind(dataset, self._wanted[dataset], self.on_conflict)
        except SyncClientError as exc:
            passing = exc.code == CONNECTION_ERROR or exc.status >= 500 or exc.status in _RETRYABLE_STATUS
            log.warning("push: sync of %s failed: %s%s", dataset, exc, "; trying again" if passing else "")
            return not passing
        if result is None or self.on_change is None:
            return True
        try:
            answer = self.on_change(dataset, result)
            if inspect.isawaitable(answer):
                await answer
        except Exception:
            log.exception("push: on_change failed for %s", dataset)
        return True

    async def _stop_syncs(self) -> None:
        tasks = list(self._syncs.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
