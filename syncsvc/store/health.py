"""Whether Redis is fit to be the system of record, and whether it has memory left: the start-up check and the watch.

**Eviction.** syncsvc refuses a Redis (every master of a cluster) whose ``maxmemory-policy`` is anything but
``noeviction``. ``allkeys-*`` policies drop any key once memory is full: acknowledged records, identities, master
keys, without a word. ``volatile-*`` policies drop the keys that have a TTL: syncsvc's relay lane and bulk publish
leases (the mutual exclusion of relays and of bulk publish workers), which must not end early; and once no such key
is left they refuse writes exactly as ``noeviction`` does, so they buy nothing. ``SYNCSVC_REDIS_ALLOW_EVICTION=true``
runs on such a Redis anyway (with a warning), for those who make sure its memory never reaches ``maxmemory``.

**Persistence.** A warning when a master has neither AOF nor RDB snapshots on: a restart of it loses every
acknowledged write. The snapshot schedule comes from ``CONFIG GET save``; where a managed Redis refuses CONFIG, only
AOF can be seen, and nothing is said.

**Memory.** With ``noeviction`` and ``maxmemory`` reached Redis refuses writes (``OOM command not allowed``): syncsvc
answers those with :class:`~syncsvc.errors.StoreOutOfMemoryError` (503 + Retry-After, see ``backend.py``), reads keep
working (their bookkeeping is best-effort, see ``list_records.lua``). :class:`RedisWatch` tells such an episode to the
operator once, and ``/readyz`` reports it.

Everything here reads ``INFO`` (one round trip per master, every Redis answers it; ``CONFIG`` only for the snapshot
schedule, at start-up and when a master is new).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from syncsvc.errors import BackendUnavailableError
from syncsvc.store.backend import backend
from syncsvc.store.connection import RedisClient

log = logging.getLogger("syncsvc.store.health")

#: The only policy under which Redis never drops a key: it refuses writes instead.
SAFE_POLICY = "noeviction"
#: How often the watch inspects Redis while all is well.
INTERVAL_SECONDS = 15.0
#: How often it inspects while Redis is out of memory, unsafe or did not answer (so a recovery or a reconnect shows at
#: once); also the beat of :meth:`RedisWatch.tick`.
EPISODE_SECONDS = 1.0


class UnsafeRedisError(Exception):
    """Redis may drop acknowledged data; ``str()`` is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Master:
    """What one master's ``INFO`` says about the facts syncsvc checks."""

    #: host:port on a cluster; "" for one Redis (or a Sentinel-managed primary).
    name: str
    #: Changes when the node restarts; a failover shows as another run id (Sentinel) or another name (cluster).
    run_id: str
    policy: str
    used_memory: int
    #: 0 = no limit.
    maxmemory: int
    #: Replication and AOF buffers, which Redis leaves out when it compares used memory to maxmemory.
    not_counted: int
    #: OOM error replies since the node started (``errorstat_OOM``, Redis 6.2+; 0 before).
    oom_replies: int
    aof: bool

    @classmethod
    def from_info(cls, name: str, info: dict[str, Any]) -> Master:
        errors = info.get("errorstat_OOM")
        return cls(
            name=name,
            run_id=str(info.get("run_id", "")),
            policy=str(info.get("maxmemory_policy", SAFE_POLICY)),
            used_memory=int(info.get("used_memory", 0)),
            maxmemory=int(info.get("maxmemory", 0)),
            not_counted=int(info.get("mem_not_counted_for_evict", 0)),
            oom_replies=int(errors.get("count", 0)) if isinstance(errors, dict) else 0,
            aof=bool(int(info.get("aof_enabled", 0))),
        )

    @property
    def label(self) -> str:
        return f"Redis {self.name}" if self.name else "Redis"

    @property
    def full(self) -> bool:
        """Redis refuses writes now (what it compares before each write command)."""
        return self.maxmemory > 0 and self.used_memory - self.not_counted > self.maxmemory

    @property
    def usage(self) -> str:
        if not self.maxmemory:
            return f"used {_mib(self.used_memory)}, no maxmemory"
        return f"used {_mib(self.used_memory)} of maxmemory {_mib(self.maxmemory)}"

    def oom_message(self) -> str:
        return f"{self.label} is out of memory ({self.usage}): writes refused until memory is freed"


async def masters(client: RedisClient) -> list[Master]:
    """Every master as ``INFO`` describes it (one round trip each, concurrently on a cluster)."""
    async with backend():
        if isinstance(client, RedisCluster):
            replies = await client.info(target_nodes=RedisCluster.PRIMARIES)
            return [Master.from_info(name, info) for name, info in sorted(replies.items())]
        return [Master.from_info("", await client.info())]


def eviction_risk(found: Iterable[Master]) -> str | None:
    """What is wrong when a master may evict keys (one line), or None when every master is ``noeviction``."""
    unsafe = [master for master in found if master.policy != SAFE_POLICY]
    if not unsafe:
        return None
    policies = " / ".join(sorted({master.policy for master in unsafe}))
    where = "" if not unsafe[0].name else " on " + ", ".join(master.name for master in unsafe)
    return (
        f"Redis maxmemory-policy is {policies}{where}: when its memory is full Redis evicts syncsvc's keys and "
        f"acknowledged data is lost"
    )


def eviction_refusal(found: Iterable[Master]) -> str | None:
    """The one line that refuses ``found`` (what is wrong and what to do), or None when every master is safe."""
    risk = eviction_risk(found)
    if risk is None:
        return None
    return (
        f"{risk}; set maxmemory-policy {SAFE_POLICY} (CONFIG SET and redis.conf), or "
        f"SYNCSVC_REDIS_ALLOW_EVICTION=true to run anyway"
    )


async def check(client: RedisClient, *, allow_eviction: bool) -> None:
    """The start-up check: :class:`UnsafeRedisError` when a master may evict keys (unless ``allow_eviction``, then a
    warning); a warning for each master that persists nothing."""
    found = await masters(client)
    refusal = eviction_refusal(found)
    if refusal is not None:
        if not allow_eviction:
            raise UnsafeRedisError(refusal)
        log.warning("%s (SYNCSVC_REDIS_ALLOW_EVICTION is set: running anyway)", eviction_risk(found))
    await _warn_unless_persistent(client, found)


async def _warn_unless_persistent(client: RedisClient, found: Sequence[Master]) -> None:
    for master in found:
        if master.aof or await _snapshots(client, master) is not False:
            continue
        log.warning(
            "%s persists nothing (appendonly no, no RDB snapshots): a restart of it loses every acknowledged write; "
            "turn AOF on (appendonly yes) or at least snapshots (save)",
            master.label,
        )


async def _snapshots(client: RedisClient, master: Master) -> bool | None:
    """Whether ``master`` has an RDB snapshot schedule; None when CONFIG is not allowed (some managed Redis)."""
    async with backend():
        try:
            if isinstance(client, RedisCluster):
                reply = await client.config_get("save", target_nodes=client.get_node(node_name=master.name))
            else:
                reply = await client.config_get("save")
        except ResponseError as exc:  # CONFIG renamed away or not permitted
            log.debug("cannot read the snapshot schedule of %s: %s", master.label, exc)
            return None
    return bool(str(reply.get("save", "")).strip())


class RedisWatch:
    """Watches every master while a server runs: its eviction policy, its memory, restarts and failovers.

    :meth:`inspect` reads ``INFO`` of every master (``/readyz`` calls it, and :meth:`tick` every
    :data:`INTERVAL_SECONDS`, every second while something is wrong) and logs each change of state once:

    * **out of memory**: a master is over ``maxmemory``, or answered OOM errors since the last inspection (a large
      write can fail just under the limit). The episode ends when an inspection finds it under ``maxmemory`` with no
      OOM error since the one before. :meth:`refused_write` (a request just met an OOM error) brings the next
      inspection forward.
    * **unsafe**: a master's policy is no longer ``noeviction`` (changed at run time, or a restart or failover onto a
      node configured so), without ``allow_eviction``. :attr:`refusal` then holds the one line, and the server
      refuses every request with it (503 + Retry-After) until the policy is safe again: the same Redis would not have
      been accepted at start-up.
    * **restart or failover** (a master's run id or name is new): its persistence is checked again.
    """

    def __init__(self, client: RedisClient, *, allow_eviction: bool) -> None:
        self._client = client
        self._allow_eviction = allow_eviction
        #: The masters of the last inspection that answered, by name.
        self._seen: dict[str, Master] = {}
        #: Masters in an out-of-memory episode, as last inspected.
        self._full: dict[str, Master] = {}
        self._refusal: str | None = None
        #: When the next :meth:`tick` inspects (monotonic seconds).
        self._next = 0.0
        self._lock = asyncio.Lock()

    @property
    def refusal(self) -> str | None:
        """Why every request is refused (Redis may evict keys), or None."""
        return self._refusal

    @property
    def out_of_memory(self) -> str | None:
        """What is out of memory (for ``/readyz``), or None."""
        return "; ".join(master.oom_message() for master in self._full.values()) or None

    def refused_write(self) -> None:
        """A request met an OOM error: inspect at the next beat rather than at the next interval."""
        if not self._full:
            self._next = 0.0

    async def tick(self) -> None:
        """Inspects when due (call every :data:`EPISODE_SECONDS`)."""
        if time.monotonic() >= self._next:
            await self.inspect()

    async def inspect(self) -> None:
        """Reads every master's ``INFO`` and updates the state; BackendUnavailableError when Redis does not answer."""
        async with self._lock:  # one at a time, so that each change of state is logged once
            try:
                found = await masters(self._client)
            except BackendUnavailableError:
                self._next = 0.0  # a reconnect is inspected at the next beat
                raise
            new = [master for master in found if self._seen and self._is_new(master)]
            for master in new:
                log.info("%s restarted or is a new primary: checking it again", master.label)
            self._watch_policy(found)
            for master in found:
                self._watch_memory(master, self._seen.get(master.name))
            self._seen = {master.name: master for master in found}
            self._full = {name: master for name, master in self._full.items() if name in self._seen}
            steady = not self._full and self._refusal is None
            self._next = time.monotonic() + (INTERVAL_SECONDS if steady else EPISODE_SECONDS)
            await _warn_unless_persistent(self._client, new)

    def _is_new(self, master: Master) -> bool:
        """A restart (another run id) or a failover (another run id, or on a cluster another name)."""
        before = self._seen.get(master.name)
        return before is None or before.run_id != master.run_id

    def _watch_policy(self, found: Sequence[Master]) -> None:
        refusal = None if self._allow_eviction else eviction_refusal(found)
        if refusal == self._refusal:
            return
        if refusal is not None:
            log.error("%s; until then every request is refused", refusal)
        else:
            log.info("Redis maxmemory-policy is %s again: requests accepted", SAFE_POLICY)
        self._refusal = refusal

    def _watch_memory(self, master: Master, before: Master | None) -> None:
        refused = before is not None and before.run_id == master.run_id and master.oom_replies > before.oom_replies
        if master.name in self._full:
            if master.full or refused:
                self._full[master.name] = master
                return
            del self._full[master.name]
            log.info("%s has memory again (%s): writes accepted", master.label, master.usage)
        elif master.full or refused:
            self._full[master.name] = master
            log.error("%s", master.oom_message())


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"
