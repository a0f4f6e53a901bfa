"""Workload 6, idle sockets: how many WebSocket devices one syncsvc process holds, and its resident memory.

    python -m bench.workloads.idle_sockets http://127.0.0.1:8080 --developer KEY:SECRET --server-pid PID

Creates a pool with PushSync, one guest identity (Bearer token) per ``devices_per_identity`` devices, then ramps in
steps of ``step`` devices: each device is registered (``RegisterDevice`` with its own ``Token``, so its own
``DeviceId``), subscribed to one dataset and connected (``GET …/device/{DeviceId}/push``, handshakes
``connect_parallel`` at a time: fewer than the server's default bound of 64 requests in flight, so the ramp's own
requests are not refused). After each step it waits ``settle_seconds`` and reads the server's RSS from
``/proc/<pid>/status``. It stops at ``devices``, when the RSS passes ``rss_limit_bytes`` or when a device cannot be
registered or connected (the first error is reported). Every socket has a reader task, which answers the server's
heartbeat pings (aiohttp answers a ping only inside ``receive()``) and records notifications.

At the end it proves the sockets are alive: one write to the dataset by each sampled identity (the first and the
last, with no ``DeviceId``, so every device of the identity is to be told) must reach every one of their held
sockets within ``NOTIFY_TIMEOUT_SECONDS``. Then every socket is closed (bounded in time).

File descriptors: this process needs one per socket and raises its own ``RLIMIT_NOFILE`` (beyond the hard limit
when it may: root). The server needs one per socket plus its Redis and Kafka connections; ``syncsvc serve`` does not
change its limit, so it holds what it was started with (``server_nofile`` in the result: start it with a higher
``ulimit -n`` or ``prlimit --nofile`` to go past it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.load import rss_bytes
from bench.workloads.pools import (
    BenchError,
    Guest,
    call,
    create_pool,
    new_guests,
    refreshed,
    session_token,
)

DATASET = "push"
NOTIFY_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 30.0
TOKEN_RENEW_SECONDS = 300.0
#: One request or handshake; a server out of file descriptors leaves connections unaccepted, so this is how long the
#: last step waits before the ramp stops.
REQUEST_TIMEOUT_SECONDS = 20.0
#: File descriptors this process needs besides its sockets (HTTP connections, files, the event loop).
_SPARE_FDS = 512


@dataclass(slots=True)
class Device:
    guest: Guest
    device_id: str
    ws: aiohttp.ClientWebSocketResponse
    #: syncCount of the last notification per dataset.
    notified: dict[str, int] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        """Until the socket closes: answers pings (inside receive) and records notifications."""
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                body = orjson.loads(message.data)
                if "datasetName" in body:
                    self.notified[body["datasetName"]] = int(body["syncCount"])


@dataclass(slots=True)
class Ramp:
    url: str
    guests: list[Guest]
    per_identity: int
    parallel: int
    held: list[Device] = field(default_factory=list)
    first_error: str | None = None
    #: When each guest's token was issued (monotonic seconds): tokens live 10 minutes, a long ramp renews them.
    issued: dict[str, float] = field(default_factory=dict)

    async def add(self, session: aiohttp.ClientSession, count: int) -> None:
        """Registers, subscribes and connects the next ``count`` devices; the first failure is kept."""
        gate = asyncio.Semaphore(self.parallel)
        start = len(self.held)

        async def one(n: int) -> None:
            async with gate:
                if self.first_error is not None:
                    return
                try:
                    self.held.append(await self._device(session, n))
                except (aiohttp.ClientError, OSError, TimeoutError, BenchError) as exc:
                    self.first_error = self.first_error or f"device {n}: {type(exc).__name__}: {exc}"

        await asyncio.gather(*(one(n) for n in range(start, start + count)))

    async def _guest(self, session: aiohttp.ClientSession, n: int) -> Guest:
        """The guest of device ``n``, its token renewed when older than ``TOKEN_RENEW_SECONDS``."""
        index = n // self.per_identity
        guest = self.guests[index]
        if time.monotonic() - self.issued.setdefault(guest.identity_id, time.monotonic()) > TOKEN_RENEW_SECONDS:
            self.issued[guest.identity_id] = time.monotonic()
            guest = self.guests[index] = await refreshed(session, self.url, guest)
        return guest

    async def _device(self, session: aiohttp.ClientSession, n: int) -> Device:
        guest = await self._guest(session, n)
        base = f"{self.url}/identitypools/{guest.pool_id}"
        body = {"Platform": "WEBSOCKET", "Token": f"bench-device-{n}"}
        device_id = (await call(session, "POST", f"{base}/identity/{guest.identity_id}/device", guest.headers, body))[
            "DeviceId"
        ]
        subscription = f"{guest.dataset_url(self.url, DATASET)}/subscriptions/{device_id}"
        await call(session, "POST", subscription, guest.headers)
        socket = f"{base}/identity/{guest.identity_id}/device/{device_id}/push"
        ws = await session.ws_connect(
            socket,
            headers={"Authorization": guest.headers["Authorization"]},
            timeout=aiohttp.ClientWSTimeout(ws_close=5),
        )
        device = Device(guest, device_id, ws)
        device.reader = asyncio.create_task(device.read())
        return device

    def alive(self) -> int:
        return sum(1 for device in self.held if not device.ws.closed)


def raise_nofile(needed: int) -> int:
    """Raises this process's open-file limit to ``needed`` (past the hard limit if allowed); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
        return needed
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def nofile_of(pid: int) -> int:
    """The soft open-file limit of process ``pid``."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return 0


async def measure(
    url: str,
    developer: str,
    server_pid: int,
    *,
    devices: int = 20_000,
    step: int = 1000,
    rss_limit_bytes: int = 1 << 30,
    devices_per_identity: int = 100,
    connect_parallel: int = 48,
    settle_seconds: float = 1.0,
) -> dict[str, Any]:
    """Ramps idle device sockets to ``devices`` (or a limit) and reports the server's RSS along the way."""
    client_nofile = raise_nofile(devices + _SPARE_FDS)
    pool_id = await asyncio.to_thread(create_pool, url, developer, push=True)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        identities = -(-devices // devices_per_identity)
        ramp = Ramp(url, await new_guests(session, url, pool_id, identities), devices_per_identity, connect_parallel)
        baseline = rss_bytes(server_pid)
        steps: list[list[int]] = []
        step_seconds: list[float] = []
        stopped_because = f"reached {devices} devices"
        started = time.perf_counter()
        try:
            while len(ramp.held) < devices:
                began = time.perf_counter()
                await ramp.add(session, min(step, devices - len(ramp.held)))
                step_seconds.append(round(time.perf_counter() - began, 2))
                await asyncio.sleep(settle_seconds)
                steps.append([len(ramp.held), rss_bytes(server_pid)])
                if ramp.first_error is not None:
                    stopped_because = f"connect failed: {ramp.first_error}"
                    break
                if steps[-1][1] > rss_limit_bytes:
                    stopped_because = f"server RSS {steps[-1][1]} passed the limit {rss_limit_bytes}"
                    break
            ramp_seconds = time.perf_counter() - started
            alive = ramp.alive()
            notified, sampled = await _prove_alive(session, url, ramp)
        finally:
            await _close(ramp)
    held = len(ramp.held)
    rss = steps[-1][1] if steps else baseline
    return {
        "devices_held": held,
        "devices_alive": alive,
        "rss_bytes": rss,
        "rss_baseline_bytes": baseline,
        "rss_per_device_bytes": round((rss - baseline) / held) if held else 0,
        "steps": steps,
        "step_seconds": step_seconds,
        "stopped_because": stopped_because,
        "ramp_seconds": round(ramp_seconds, 2),
        "sample_notified": [notified, sampled],
        "server_nofile": nofile_of(server_pid),
        "client_nofile": client_nofile,
    }


async def _prove_alive(session: aiohttp.ClientSession, url: str, ramp: Ramp) -> tuple[int, int]:
    """One write per sampled identity (the first's and the last's); (notified, expected) sockets of theirs."""
    if not ramp.held:
        return 0, 0
    sample_ids = {ramp.held[0].guest.identity_id, ramp.held[-1].guest.identity_id}
    guests = [guest for guest in ramp.guests if guest.identity_id in sample_ids]
    expected = {guest.identity_id: 0 for guest in guests}
    for guest in guests:
        fresh = await refreshed(session, url, guest)  # the ramp may have outlived the token
        token = await session_token(session, url, fresh, DATASET)
        patch = {"Op": "replace", "Key": "alive", "Value": "yes", "SyncCount": 0}
        answer = await call(
            session,
            "POST",
            fresh.dataset_url(url, DATASET),
            fresh.headers,
            {"SyncSessionToken": token, "RecordPatches": [patch]},
        )
        expected[guest.identity_id] = int(answer["Records"][0]["SyncCount"])
    sample = [device for device in ramp.held if device.guest.identity_id in expected]
    deadline = time.monotonic() + NOTIFY_TIMEOUT_SECONDS

    def notified() -> int:
        return sum(1 for d in sample if d.notified.get(DATASET, 0) >= expected[d.guest.identity_id])

    while notified() < len(sample) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return notified(), len(sample)


async def _close(ramp: Ramp) -> None:
    """Closes every socket (a close handshake each, in parallel), then stops the readers; bounded in time."""
    gate = asyncio.Semaphore(500)

    async def close(device: Device) -> None:
        async with gate:
            await device.ws.close()

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await asyncio.gather(*(close(device) for device in ramp.held), return_exceptions=True)
    readers = [device.reader for device in ramp.held if device.reader is not None]
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url", help="syncsvc endpoint")
    parser.add_argument("--developer", required=True, help="developer credentials KEY:SECRET")
    parser.add_argument("--server-pid", type=int, required=True, help="the syncsvc process whose RSS is read")
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--step", type=int, default=1000)
    parser.add_argument("--rss-limit-bytes", type=int, default=1 << 30)
    args = parser.parse_args()
    result = asyncio.run(
        measure(
            args.url,
            args.developer,
            args.server_pid,
            devices=args.devices,
            step=args.step,
            rss_limit_bytes=args.rss_limit_bytes,
        )
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
