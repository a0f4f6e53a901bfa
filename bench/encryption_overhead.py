"""What encryption at rest costs a write, measured in process (no HTTP): the same one-record UpdateRecords of a
100-byte value, with values sealed as syncsvc does (data key cached), with the cache defeated (every write unwraps
the identity's data key through KMS), and with sealing replaced by nothing (the floor, for comparison only).

    SYNCSVC_REDIS_URL=redis://127.0.0.1:6379/15 SYNCSVC_ROOT_KEY_FILE=.data/root.key \\
        python -m bench.encryption_overhead [--writes 2000]

It FLUSHES the Redis database it is given: point it at a scratch database.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.writes import main_of, print_latencies, write_latencies
from syncsvc.access import DataAccess
from syncsvc.config import load_settings
from syncsvc.identity.pools import IdentityPoolSpec
from syncsvc.kms.envelope import CacheLimits, DataKeyCache, Envelope, IdentityCipher
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.runtime import Services, open_services
from syncsvc.store.datakeys import RedisDataKeys
from syncsvc.store.rates import RedisRates
from syncsvc.sync import SyncService


@dataclass(slots=True)
class PlainCipher(IdentityCipher):
    """Seals nothing: the floor a write would cost without encryption (never used by syncsvc itself)."""

    def seal(self, dataset: str, key: str, value: str) -> str:
        return value

    def open(self, dataset: str, key: str, value: str | None) -> str | None:
        return value


class PlainEnvelope(Envelope):
    async def cipher(self, keyspace: IdentityKeyspace, *, create: bool = True) -> IdentityCipher:
        return PlainCipher(keyspace, 1, {})


def sync_with(services: Services, envelope: Envelope) -> SyncService:
    access = DataAccess(services.pools, shards=services.settings.shards)
    return SyncService(
        services.store,
        services.pools,
        services.signer,
        services.settings,
        services.runner,
        envelope,
        access,
        clock=services.clock,
        rates=RedisRates(services.store.client),
    )


async def measure(writes: int) -> None:
    settings = load_settings()
    async with open_services(settings) as services:
        await services.store.client.flushdb()
        pool = await services.pools.create(
            IdentityPoolSpec(IdentityPoolName="bench", AllowUnauthenticatedIdentities=True)
        )
        client = services.store.client
        cases = {
            "sealed, data key cached": services.envelope,
            "sealed, no cache (KMS unwrap per write)": Envelope(
                services.kms, RedisDataKeys(client), DataKeyCache(CacheLimits(max_uses=1))
            ),
            "not sealed (floor)": PlainEnvelope(services.kms, RedisDataKeys(client), DataKeyCache(CacheLimits())),
        }
        for label, envelope in cases.items():
            sync = sync_with(services, envelope)
            seconds = await write_latencies(
                sync, services.signer, pool.IdentityPoolId, region=settings.region, writes=writes
            )
            print_latencies(f"{label:42}", seconds)


def main() -> None:
    main_of(__doc__ or "", measure)


if __name__ == "__main__":
    main()
