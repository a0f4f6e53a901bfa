"""The write loop the in-process benchmarks share: one identity's one-record UpdateRecords, timed."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from syncsvc.model import Caller, Op, RecordPatch
from syncsvc.sync import SyncService
from syncsvc.tokens import TokenSigner


async def write_latencies(
    sync: SyncService, signer: TokenSigner, pool_id: str, *, region: str, writes: int, value_bytes: int = 100
) -> list[float]:
    """Seconds per write of a new identity's record, ``writes`` times after a tenth more as warm-up (not counted)."""
    identity_id = f"{region}:{uuid.uuid4()}"
    caller = Caller.identity(pool_id, identity_id)
    session = signer.seal("SyncSessionToken", {"p": pool_id, "i": identity_id, "d": "bench"}, 3600)
    seconds = []
    for n in range(writes + writes // 10):
        patch = RecordPatch(Op.REPLACE, "k", "v" * value_bytes, n)
        started = time.perf_counter()
        await sync.update_records(
            caller,
            pool_id,
            identity_id,
            "bench",
            patches=[patch],
            session_token=session,
            device_id=None,
            client_context=None,
        )
        if n >= writes // 10:
            seconds.append(time.perf_counter() - started)
    return seconds


def print_latencies(label: str, seconds: list[float]) -> None:
    """One line for a person: ``label``, then the median and p99 of ``seconds``, in milliseconds."""
    cuts = statistics.quantiles(seconds, n=100)
    print(f"{label} median {cuts[49] * 1000:6.3f} ms  p99 {cuts[98] * 1000:6.3f} ms")


def main_of(doc: str, measure: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """The command line of an in-process benchmark: ``--writes N`` (default 2000), then ``measure(N)``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    asyncio.run(measure(parser.parse_args().writes))
