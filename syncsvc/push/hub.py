"""The push hub of one instance: the device sockets connected here, and the Redis channels that wake them.

How a change reaches a device
-----------------------------
The write scripts announce every commit on the identity's sharded Pub/Sub channel (``IdentityKeyspace.push_channel``,
SPUBLISH inside update_records.lua and delete_dataset.lua), in commit order: the dataset, its new sync count, the
writer and the DeviceIds subscribed to it. For each identity with at least one socket here, the hub listens to that
channel (SSUBSCRIBE); an announcement queues a notification on every socket of a subscribed device except the
writer's. It works the same whichever instance took the write: Redis is the bus, as it is the store. The hub reaches
it only through :class:`Channels`, given by whoever builds the hub.

What a socket is promised
-------------------------
* **Order**: never an older sync count after a newer one for a dataset: each socket remembers the last count it was
  told (or that the device said it holds) per dataset and drops anything not newer.
* **Catch-up**: Pub/Sub is at-most-once. A device that was away sends ``resume`` with the counts it holds and is
  told at once of every subscribed dataset that moved past them (from the stored sync counts). A hub that loses its
  Redis connection resubscribes and catches every socket up the same way, so an announcement missed in an outage
  arrives late, never not at all.
* **Bounded memory**: each socket has a queue of ``Settings.push_queue_size`` messages; a socket that falls that far
  behind is closed with 4008 (slow reader) and the device reconnects and resumes. What a socket remembers per
  dataset covers only datasets it subscribed to, whatever names its frames carry.
* **Newest wins**: a device that connects again, here or on another instance, announces itself on the identity's
  channel; every older socket of that device is closed with 4009.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

from syncsvc import metrics
from syncsvc.errors import BackendUnavailableError
from syncsvc.rediskeys import IdentityKeyspace

log = logging.getLogger("syncsvc.push")

#: Close codes of a device socket (also in the README). 1001: the server is going away (reconnect, any instance).
SLOW_READER = 4008
REPLACED = 4009
#: The reason label of each close code the server counts (``syncsvc.metrics.PUSH_SOCKET_CLOSES``).
_CLOSE_REASONS = {SLOW_READER: "slow_reader", REPLACED: "replaced"}
#: What a hub that lost Redis waits before trying again, at most.
_MAX_BACKOFF_SECONDS = 5.0

CatchUp = Callable[[IdentityKeyspace, str], Awaitable[dict[str, int]]]
#: Notifications the hub remembers for the console.
RECENT = 50


@dataclass(frozen=True, slots=True)
class Delivered:
    """One announcement this instance passed on: when, whose dataset, its sync count, to how many sockets."""

    at: float
    identity_id: str
    dataset: str
    sync_count: int
    sockets: int


class Channels(Protocol):
    """The identity channels the hub listens and announces on (in Redis: ``syncsvc.store.channels.ShardedChannels``).
    Every call that reaches Redis raises :class:`~syncsvc.errors.BackendUnavailableError` when it cannot."""

    def masters_changed(self) -> bool: ...

    async def subscribe(self, *channels: str) -> None: ...

    async def unsubscribe(self, *channels: str) -> None: ...

    async def publish(self, channel: str, data: bytes) -> None: ...

    async def message(self, wait_seconds: float) -> tuple[str, bytes] | None: ...

    async def reconnect(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(eq=False)
class DeviceSocket:
    """One device's socket on this instance, with its bounded queue of outgoing messages (JSON text)."""

    keyspace: IdentityKeyspace
    device_id: str
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str]
    connection_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: dataset -> the last sync count the device was told of or said it holds.
    known: dict[str, int] = field(default_factory=dict)
    closing: bool = False
    close_code: int = 1000
    close_reason: str = ""

    def notify(self, dataset: str, sync_count: int) -> None:
        """Queues the notification unless the device already knows this count or a newer one."""
        if sync_count <= self.known.get(dataset, 0):
            return
        self.known[dataset] = sync_count
        self.send(
            {
                "source": "cognito-sync",
                "identityPoolId": self.keyspace.identity_pool_id,
                "identityId": self.keyspace.identity_id,
                "datasetName": dataset,
                "syncCount": sync_count,
            }
        )

    def send(self, message: dict[str, Any]) -> None:
        """Queues ``message``; a full queue closes the socket (4008), as the device reads too slowly."""
        if self.closing:
            return
        try:
            self.queue.put_nowait(orjson.dumps(message).decode())
        except asyncio.QueueFull:
            metrics.PUSH_NOTIFICATIONS_DROPPED.inc()
            self.close(SLOW_READER, "slow reader: too many notifications waiting; reconnect and resume")

    def close(self, code: int, reason: str) -> None:
        """Closes the socket in the background (the caller may be the hub's reader, which must not wait); before
        the handshake is done, the handler closes it right after (see ``closed_early``)."""
        if not self.closing:
            self.closing, self.close_code, self.close_reason = True, code, reason
            metrics.PUSH_SOCKET_CLOSES.labels(_CLOSE_REASONS.get(code, "other")).inc()
            if self.ws.prepared:
                asyncio.get_running_loop().create_task(self.ws.close(code=code, message=reason.encode()))

    async def pump(self) -> None:
        """Sends the queued messages, in order, until the socket closes (run as the socket's writer task)."""
        while not self.ws.closed:
            message = await self.queue.get()
            await self.ws.send_str(message)
            metrics.PUSH_MESSAGES_SENT.inc()


class PushHub:
    """Device sockets by identity channel, and the one Pub/Sub connection that feeds them (``channels``, which the hub
    closes when it closes)."""

    def __init__(self, channels: Channels, catch_up: CatchUp, *, queue_size: int, max_sockets: int) -> None:
        self._channels = channels
        self._catch_up = catch_up
        self._queue_size = queue_size
        self._max_sockets = max_sockets
        self._attached = 0
        self._sockets: dict[str, set[DeviceSocket]] = {}
        self._subscribed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        #: The last notifications this instance delivered, newest last (the console's push page).
        self.recent: deque[Delivered] = deque(maxlen=RECENT)

    @property
    def socket_count(self) -> int:
        """Sockets open here (one being closed no longer counts, though its close handshake may take a while)."""
        return sum(not socket.closing for sockets in self._sockets.values() for socket in sockets)

    @property
    def full(self) -> bool:
        """This instance holds its most sockets (``Settings.push_max_sockets``): a new one is refused."""
        return self._attached >= self._max_sockets

    @property
    def remembered_datasets(self) -> int:
        """Dataset counts remembered over every socket here: bounded by what the devices subscribed to."""
        return sum(len(socket.known) for sockets in self._sockets.values() for socket in sockets)

    def start(self) -> None:
        self._listener = asyncio.get_running_loop().create_task(self._listen(), name="push hub")

    async def close(self) -> None:
        """Closes every socket with 1001 (going away: the devices reconnect elsewhere) and stops listening."""
        await asyncio.gather(
            *(
                s.ws.close(code=1001, message=b"server shutting down")
                for group in self._sockets.values()
                for s in group
            ),
            return_exceptions=True,
        )
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._channels.close()

    def socket(self, keyspace: IdentityKeyspace, device_id: str, ws: web.WebSocketResponse) -> DeviceSocket:
        return DeviceSocket(keyspace, device_id, ws, asyncio.Queue(self._queue_size))

    async def attach(self, socket: DeviceSocket) -> None:
        """Starts delivering the identity's announcements to ``socket``; closes the device's older sockets."""
        channel = socket.keyspace.push_channel
        sockets = self._sockets.setdefault(channel, set())
        sockets.add(socket)
        self._attached += 1
        metrics.PUSH_SOCKETS.inc()
        if len(sockets) == 1:
            await self._channels.subscribe(channel)
            self._subscribed.set()
        hello = {"hello": socket.device_id, "connection": socket.connection_id}
        await self._channels.publish(channel, orjson.dumps(hello))

    async def detach(self, socket: DeviceSocket) -> None:
        channel = socket.keyspace.push_channel
        sockets = self._sockets.get(channel, set())
        if socket in sockets:
            sockets.discard(socket)
            self._attached -= 1
            metrics.PUSH_SOCKETS.dec()
        if not sockets and self._sockets.pop(channel, None) is not None:
            with contextlib.suppress(Exception):  # Redis may be down; a resubscription leaves the channel out
                await self._channels.unsubscribe(channel)

    async def resume(self, socket: DeviceSocket, holds: dict[str, int]) -> None:
        """The device holds ``holds``: tells it of every subscribed dataset that moved past, then ``resumed``. What
        the socket remembers is kept to the datasets the device subscribed to: names a device sends beyond those are
        not stored, so no sequence of resumes grows it past the identity's dataset limit."""
        current = await self._catch_up(socket.keyspace, socket.device_id)
        socket.known = {dataset: holds.get(dataset, socket.known.get(dataset, 0)) for dataset in current}
        for dataset, sync_count in current.items():
            socket.notify(dataset, sync_count)
        socket.send({"action": "resumed", "syncCounts": current})

    # --- the Pub/Sub reader -------------------------------------------------------------------------------------------

    async def _listen(self) -> None:
        failures = 0
        while True:
            await self._subscribed.wait()
            try:
                if failures:
                    await self._reconnect()
                    if not self._subscribed.is_set():
                        continue
                message = await self._channels.message(1.0)
                if failures:
                    await self._recovered(failures)
                    failures = 0
                elif self._channels.masters_changed():
                    log.warning(
                        "push hub: the Redis Cluster's masters changed; catching %d sockets up", self.socket_count
                    )
                    await self._catch_everyone_up()
            except (BackendUnavailableError, OSError) as exc:
                failures += 1
                if failures == 1:
                    log.warning("push hub lost Redis (%s); notifications wait until it is back", exc)
                await asyncio.sleep(min(_MAX_BACKOFF_SECONDS, 0.05 * 2**failures) * random.uniform(0.5, 1))  # noqa: S311 - jitter
                continue
            if message is not None:
                self._deliver(*message)

    async def _reconnect(self) -> None:
        """A new Pub/Sub connection subscribed to every channel with sockets (the old one may be half dead)."""
        await self._channels.reconnect()
        if not self._sockets:
            self._subscribed.clear()  # nothing to listen to until a socket attaches
            return
        await self._channels.subscribe(*self._sockets)

    async def _recovered(self, failures: int) -> None:
        """Back after an outage: every socket is caught up from the stored sync counts."""
        count = self.socket_count
        log.warning("push hub reached Redis again after %d failed attempts; catching %d sockets up", failures, count)
        await self._catch_everyone_up()

    async def _catch_everyone_up(self) -> None:
        """Every socket is told of each subscribed dataset's stored sync count (what it missed, if anything)."""
        for sockets in list(self._sockets.values()):
            for socket in list(sockets):
                for dataset, sync_count in (await self._catch_up(socket.keyspace, socket.device_id)).items():
                    socket.notify(dataset, sync_count)

    def _deliver(self, channel: str, data: bytes) -> None:
        sockets = self._sockets.get(channel)
        if not sockets:
            return
        announced = orjson.loads(data)
        if "hello" in announced:  # a device connected (maybe elsewhere): its older sockets here give way
            for socket in list(sockets):
                if socket.device_id == announced["hello"] and socket.connection_id != announced["connection"]:
                    socket.close(REPLACED, "replaced by a newer connection of this device")
            return
        subscribed = announced["to"] if isinstance(announced["to"], list) else []  # cjson: an empty set is {}
        told = 0
        for socket in sockets:
            if socket.device_id in subscribed and socket.device_id != announced["w"]:
                socket.notify(announced["d"], int(announced["sc"]))
                told += 1
        if told:
            keyspace = next(iter(sockets)).keyspace
            self.recent.append(Delivered(time.time(), keyspace.identity_id, announced["d"], int(announced["sc"]), told))
