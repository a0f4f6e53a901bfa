"""A real Redis Cluster for the test suite: ``RedisClusterProcesses`` and the session fixture ``redis_cluster_url``.

Six ``redis-server --cluster-enabled yes`` processes on free loopback ports (three masters, one replica each), joined
by ``redis-cli --cluster create``, each with its data in a temporary folder and AOF on (``appendfsync always``: a
write a master acknowledged is on its disk before the reply, so what a kill -9 costs is only what had not reached a
replica). ``cluster-node-timeout`` is short (2 s) so a killed master's replica takes over within a few seconds.

``SYNCSVC_TEST_REDIS_CLUSTER_URL`` (``redis+cluster://host:port,…/``) points the suite at an existing cluster instead;
nothing is started or stopped then (fault tests, which kill nodes, start a cluster of their own).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.redis_processes import (
    DURABLE,
    WAIT_SECONDS,
    RedisNode,
    deployment_url,
    launch,
    require,
    stop_all,
    wait_answering,
    wait_until,
)

NODE_TIMEOUT_MS = 2000
CLUSTER_NODE = ("--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS))


@dataclass
class RedisClusterProcesses:
    """``masters`` masters with ``replicas`` replicas each, on loopback; ``start`` to build it, ``stop`` to end it."""

    folder: Path
    masters: int = 3
    replicas: int = 1
    nodes: list[RedisNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(node.address for node in self.nodes) + "/"

    def start(self) -> None:
        require("redis-server", "redis-cli")
        for index in range(self.masters * (1 + self.replicas)):
            node = RedisNode.new(self.folder / f"node{index}", bus=True)
            self.nodes.append(node)
            launch(node, "--cluster-enabled", "yes", "--cluster-port", str(node.bus_port), *CLUSTER_NODE, *DURABLE)
        wait_answering(self.nodes)
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
        # A new cluster's replicas make their first full copy and gossip settles: once, on a machine just done with a
        # whole test run, that took more than WAIT_SECONDS.
        self.wait_until_healthy(seconds=2 * WAIT_SECONDS)

    def wait_until_healthy(self, replicas: int | None = None, *, seconds: float = WAIT_SECONDS) -> None:
        """Until every live node says cluster_state:ok and sees every slot served by a live master with ``replicas``
        replicas in sync (all it was built with, unless told fewer: after a node was killed), at most ``seconds``."""
        wanted = self.replicas if replicas is None else replicas

        def healthy() -> bool:
            for node in self.nodes:
                if not node.alive:
                    continue
                info = node.client().cluster("info")
                if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_fail", 0)) != 0:
                    return False
            masters = self.current_masters()
            if not all(master.alive for master in masters):
                return False
            # Replicas in sync: a replica still loading its first copy confirms no WAIT.
            for node in self.nodes:
                replica = node.alive and node not in masters
                if replica and node.client().info("replication").get("master_link_status") != "up":
                    return False
            return all(
                int(master.client().info("replication").get("connected_slaves", 0)) >= wanted for master in masters
            )

        wait_until(healthy, "the Redis Cluster did not become healthy", seconds)

    def current_masters(self) -> list[RedisNode]:
        """The nodes that serve slots now (as a live node sees it)."""
        viewer = next(node for node in self.nodes if node.alive)
        by_address = {node.address: node for node in self.nodes}
        masters = []
        described: bytes = viewer.client().execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
        for line in described.decode().splitlines():
            parts = line.split()
            address = parts[1].split("@")[0]
            if "master" in parts[2] and "fail" not in parts[2] and len(parts) > 8 and address in by_address:
                masters.append(by_address[address])
        return masters

    def stop(self) -> None:
        stop_all(self.nodes)


@contextmanager
def started_cluster() -> Iterator[str]:
    """A Redis Cluster (3 masters, 1 replica each) in a temporary folder while the block runs; yields its URL."""
    with deployment_url(None, RedisClusterProcesses, "syncsvc-test-cluster-") as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """``redis+cluster://…`` of a running Redis Cluster (3 masters, 1 replica each) for the whole session."""
    with deployment_url("SYNCSVC_TEST_REDIS_CLUSTER_URL", RedisClusterProcesses, "syncsvc-test-cluster-") as url:
        yield url
