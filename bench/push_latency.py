"""Push latency: a write acknowledged to one device → the other device's socket notified.

    python -m bench.push_latency --developer KEY:SECRET http://127.0.0.1:8080 [http://127.0.0.1:8081] [--writes 500]

With one URL both devices use it; with two, the writer uses the second and the listener the first, so the
notification crosses instances through Redis. Creates a pool with push on, a guest identity and two devices, then
writes one record at a time (the next write after the notification arrived) and prints p50/p90/p99/max of the time
from the UpdateRecords response to the notification (the write script announces the change before the response
leaves, so this is often negative) and from the write being sent to the notification.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
import orjson

from bench.workloads.pools import create_pool, identity_call


async def measure(listener_url: str, writer_url: str, developer: str, writes: int) -> list[tuple[float, float]]:
    pool = await asyncio.to_thread(create_pool, listener_url, developer, push=True)
    async with aiohttp.ClientSession() as session:
        identity = (await identity_call(session, listener_url, "GetId", {"IdentityPoolId": pool}))["IdentityId"]
        token = (await identity_call(session, listener_url, "GetOpenIdToken", {"IdentityId": identity}))["Token"]
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        devices = []
        for name in ("listener", "writer"):
            path = f"{listener_url}/identitypools/{pool}/identity/{identity}/device"
            body = orjson.dumps({"Platform": "WEBSOCKET", "Token": name})
            async with session.post(path, data=body, headers=auth) as response:
                devices.append((await response.json())["DeviceId"])
        dataset = f"{listener_url}/identitypools/{pool}/identities/{identity}/datasets/bench"
        async with session.post(f"{dataset}/subscriptions/{devices[0]}", headers=auth) as response:
            assert response.status == 200, await response.text()
        socket = f"{listener_url}/identitypools/{pool}/identity/{identity}/device/{devices[0]}/push"
        writer_dataset = dataset.replace(listener_url, writer_url, 1)
        timings: list[tuple[float, float]] = []
        async with session.ws_connect(socket, headers=auth) as ws:
            async with session.get(writer_dataset + "/records", headers=auth) as response:
                listed = await response.json()
                assert response.status == 200, listed
                session_token = listed["SyncSessionToken"]
            for n in range(writes):
                notified = asyncio.create_task(_arrival(ws, n + 1))
                patch = {"Op": "replace", "Key": "k", "Value": f"v{n}", "SyncCount": n}
                body = orjson.dumps(
                    {"SyncSessionToken": session_token, "DeviceId": devices[1], "RecordPatches": [patch]}
                )
                sent = time.perf_counter()
                async with session.post(writer_dataset, data=body, headers=auth) as response:
                    assert response.status == 200, await response.text()
                acknowledged = time.perf_counter()
                arrived = await notified
                timings.append((arrived - acknowledged, arrived - sent))
    return timings


async def _arrival(ws: aiohttp.ClientWebSocketResponse, sync_count: int) -> float:
    """When the notification of ``sync_count`` arrived."""
    message = orjson.loads((await ws.receive(timeout=10)).data)
    assert message["syncCount"] == sync_count, message
    return time.perf_counter()


def summary(timings: list[tuple[float, float]]) -> dict[str, float]:
    """Milliseconds: p50/p99/max of acknowledged -> notified and of sent -> notified, and the count."""
    acknowledged = statistics.quantiles([a for a, _ in timings], n=100)
    sent = statistics.quantiles([s for _, s in timings], n=100)
    return {
        "writes": len(timings),
        "p50_ms": acknowledged[49] * 1000,
        "p99_ms": acknowledged[98] * 1000,
        "max_ms": max(a for a, _ in timings) * 1000,
        "sent_p50_ms": sent[49] * 1000,
        "sent_p99_ms": sent[98] * 1000,
    }


def _summary(label: str, seconds: list[float]) -> str:
    cuts = statistics.quantiles(seconds, n=100)
    return (
        f"  {label}: p50 {cuts[49] * 1000:.2f} ms  p90 {cuts[89] * 1000:.2f} ms  p99 {cuts[98] * 1000:.2f} ms  "
        f"max {max(seconds) * 1000:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+", help="one or two syncsvc endpoints")
    parser.add_argument("--developer", required=True, help="developer credentials KEY:SECRET")
    parser.add_argument("--writes", type=int, default=500)
    args = parser.parse_args()
    listener, writer = args.urls[0], args.urls[-1]
    timings = asyncio.run(measure(listener, writer, args.developer, args.writes))
    print(f"{len(args.urls)} instance(s), {len(timings)} writes")
    print(_summary("acknowledged -> notified (negative: the notification came first)", [a for a, _ in timings]))
    print(_summary("write sent -> notified", [s for _, s in timings]))


if __name__ == "__main__":
    main()
