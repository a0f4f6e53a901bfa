"""What SYNCSVC_REDIS_REPLICA_ACKS costs a write, measured in process (no HTTP): the same one-record UpdateRecords
of a 100-byte value, acknowledged on the primary's word (0) and once one replica confirmed it (1: WAIT in the same
round trip as the write script).

    SYNCSVC_REDIS_URL=redis+cluster://127.0.0.1:7000/ SYNCSVC_ROOT_KEY_FILE=.data/root.key \\
        python -m bench.replica_acks [--writes 2000]

The Redis it is given needs a replica per master (a cluster, or a Sentinel-managed primary). It FLUSHES every master:
point it at a scratch deployment.
"""

from __future__ import annotations

from bench.writes import main_of, print_latencies, write_latencies
from syncsvc.config import load_settings
from syncsvc.identity.pools import IdentityPoolSpec
from syncsvc.runtime import open_services


async def measure(writes: int) -> None:
    base = load_settings()
    for replicas in (0, 1):
        settings = base.model_copy(update={"redis_replica_acks": replicas})
        async with open_services(settings) as services:
            await services.store.client.flushdb()
            pool = await services.pools.create(
                IdentityPoolSpec(IdentityPoolName="bench", AllowUnauthenticatedIdentities=True)
            )
            seconds = await write_latencies(
                services.sync, services.signer, pool.IdentityPoolId, region=settings.region, writes=writes
            )
        print_latencies(f"SYNCSVC_REDIS_REPLICA_ACKS={replicas}", seconds)


def main() -> None:
    main_of(__doc__ or "", measure)


if __name__ == "__main__":
    main()
