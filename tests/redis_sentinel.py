"""A real Sentinel-managed Redis for the test suite: ``RedisSentinelProcesses`` and the session fixture
``redis_sentinel_url``.

One primary and two replicas (``redis-server --replicaof``), each with its data in a temporary folder and AOF on
(``appendfsync always``: a write the primary acknowledged is on its disk before the reply, so what a kill -9 costs is
only what had not reached a replica), watched by three sentinels (``redis-server <conf> --sentinel``: Debian ships no
``redis-sentinel`` binary, and a sentinel rewrites its configuration file, so each gets a writable one) that monitor
the primary as service ``syncsvc`` with quorum 2. ``down-after-milliseconds`` is 1 s and ``failover-timeout`` 4 s, so
a killed primary's replica takes over within a few seconds.

``SYNCSVC_TEST_REDIS_SENTINEL_URL`` (``redis+sentinel://host:port,…/service``) points the suite at an existing
deployment instead; nothing is started or stopped then (fault tests, which kill nodes, start processes of their own).

``python -m tests.redis_sentinel`` starts one and prints its URL until interrupted, to run other tests against it
(``SYNCSVC_TEST_REDIS_URL=<url> pytest …``).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from tests.redis_processes import DURABLE, RedisNode, deployment_url, launch, stop_all, wait_answering, wait_until

SERVICE = "syncsvc"
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000


@dataclass
class RedisSentinelProcesses:
    """A primary with ``replicas`` replicas and ``sentinels`` sentinels; ``start`` to build it, ``stop`` to end it."""

    folder: Path
    replicas: int = 2
    sentinels: int = 3
    #: The data nodes; the first is the primary at start.
    nodes: list[RedisNode] = field(default_factory=list)
    watchers: list[RedisNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(watcher.address for watcher in self.watchers) + f"/{SERVICE}"

    def start(self) -> None:
        for index in range(1 + self.replicas):
            node = RedisNode.new(self.folder / f"node{index}")
            self.nodes.append(node)
            replication = ["--replicaof", "127.0.0.1", str(self.nodes[0].port)] if index else []
            # --repl-diskless-sync-delay 0: a replica starts at once (the default waits 5 s for others)
            launch(node, *replication, *DURABLE, "--repl-diskless-sync-delay", "0", "--logfile", "redis.log")
        wait_answering(self.nodes)
        wait_until(self._replicated, "the replicas did not catch up with the primary")
        for index in range(self.sentinels):
            watcher = RedisNode.new(self.folder / f"sentinel{index}")
            self.watchers.append(watcher)
            self._launch_sentinel(watcher, self.nodes[0])
        wait_until(self._watched, "the sentinels did not find the replicas and each other")

    def _launch_sentinel(self, watcher: RedisNode, primary: RedisNode) -> None:
        config = watcher.folder / "sentinel.conf"
        config.write_text(
            f"port {watcher.port}\n"
            "bind 127.0.0.1\n"
            f"dir {watcher.folder}\n"
            "logfile sentinel.log\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} {QUORUM}\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {SERVICE} {self.replicas}\n"
        )
        watcher.process = subprocess.Popen(
            ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _replicated(self) -> bool:
        info = self.nodes[0].client().info("replication")
        return int(info["connected_slaves"]) == self.replicas and all(
            node.client().info("replication").get("master_link_status") == "up" for node in self.nodes[1:]
        )

    def _watched(self) -> bool:
        """Every sentinel knows the primary, its replicas and the other sentinels (a failover needs a majority)."""
        for watcher in self.watchers:
            state = cast(dict[str, Any], watcher.client().sentinel_master(SERVICE))
            if state["num-slaves"] != self.replicas or state["num-other-sentinels"] != self.sentinels - 1:
                return False
        return True

    def primary(self) -> RedisNode:
        """The data node a live sentinel names as the primary now."""
        by_address = {node.address: node for node in self.nodes}
        for watcher in self.watchers:
            if not watcher.alive:
                continue
            try:
                address = cast(tuple[bytes, int] | None, watcher.client().sentinel_get_master_addr_by_name(SERVICE))
            except (redis.RedisError, OSError):
                continue
            if address is not None:
                return by_address[f"{address[0].decode()}:{address[1]}"]
        raise RuntimeError("no sentinel named a primary")

    def wait_for_new_primary(self, old: RedisNode) -> RedisNode:
        """Until the sentinels have promoted another node and it answers as a primary; returns it."""
        promoted: list[RedisNode] = []

        def moved() -> bool:
            node = self.primary()
            if node is old or not node.alive or node.client().info("replication")["role"] != "master":
                return False
            promoted.append(node)
            return True

        wait_until(moved, f"the sentinels did not promote a replica of {old.address}")
        return promoted[-1]

    def stop(self) -> None:
        stop_all(self.watchers + self.nodes)


@pytest.fixture(scope="session")
def redis_sentinel_url() -> Iterator[str]:
    """``redis+sentinel://…/syncsvc`` of a running Sentinel deployment (1 primary, 2 replicas, 3 sentinels)."""
    with deployment_url("SYNCSVC_TEST_REDIS_SENTINEL_URL", RedisSentinelProcesses, "syncsvc-test-sentinel-") as url:
        yield url


if __name__ == "__main__":
    with deployment_url(None, RedisSentinelProcesses, "syncsvc-sentinel-") as url:
        print(url, flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
