"""What a sync trigger adds to an UpdateRecords, measured in process (no HTTP, no signing): the same one-record
write by one identity, with no trigger and with an empty trigger in each isolation.

    SYNCSVC_REDIS_URL=redis://127.0.0.1:6379/15 python -m bench.trigger_overhead [--writes 2000]

It FLUSHES the Redis database it is given: point it at a scratch database. Prints, per case, the median and p99
latency of a write and what the trigger adds to the median. A hooked write reads a snapshot of the dataset first,
so the figure includes that extra Redis round trip, not only the handler call.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.writes import main_of, write_latencies
from syncsvc.config import load_settings
from syncsvc.identity.pools import IdentityPoolSpec, SyncConfiguration
from syncsvc.runtime import open_services, start_triggers
from syncsvc.triggers import TriggerRegistry


def empty(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return event


async def empty_async(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return event


CASES = {"no trigger": None, "inline (async)": "inline", "thread": "thread", "process": "process"}


async def measure(writes: int) -> None:
    from bench import trigger_overhead as handlers  # by module name: a process worker imports the handler

    registry = TriggerRegistry()
    registry.register("inline", handlers.empty_async, isolation="inline")
    registry.register("thread", handlers.empty, isolation="thread")
    registry.register("process", handlers.empty, isolation="process")
    settings = load_settings()
    async with open_services(settings, triggers=registry) as services:
        await services.store.client.flushdb()
        await start_triggers(services)
        spec = IdentityPoolSpec(IdentityPoolName="bench", AllowUnauthenticatedIdentities=True)
        pool = await services.pools.create(spec)
        medians: dict[str, float] = {}
        for label, trigger in CASES.items():
            events = {"SyncTrigger": trigger} if trigger else {"SyncTrigger": ""}
            await services.pools.configure(pool.IdentityPoolId, SyncConfiguration(Events=events))
            seconds = await write_latencies(
                services.sync, services.signer, pool.IdentityPoolId, region=settings.region, writes=writes
            )
            medians[label] = statistics.median(seconds)
            p99 = statistics.quantiles(seconds, n=100)[98]
            added = (medians[label] - medians["no trigger"]) * 1000
            median = medians[label] * 1000
            print(f"{label:16} median {median:6.3f} ms  p99 {p99 * 1000:6.3f} ms  added {added:+6.3f} ms")


def main() -> None:
    main_of(__doc__ or "", measure)


if __name__ == "__main__":
    main()
