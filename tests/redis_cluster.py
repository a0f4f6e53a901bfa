"""A real Redis Cluster for the test suite: ``RedisClusterProcesses`` and the session fixture ``redis_cluster_url``.

Six ``redis-server --cluster-enabled yes`` processes on free loopback ports (three masters, one replica each), joined
by ``redis-cli --cluster create``, each with its data in a temporary folder and AOF on (``appendfsync always``: a
write a master acknowledged is on its disk before the reply, so what a kill -9 costs is only what had not reached a
replica). ``cluster-node-timeout`` is short (2 s) so a killed master's replica takes over within a few seconds.

``SYNCSVC_TEST_REDIS_CLUSTER_URL`` (``redis+cluster://host:port,…/``) points the suite at an existing cluster instead;
nothing is started or stopped then (fault tests, which kill nodes, start a cluster of their own).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port

#: Every wait below is bounded by this.
WAIT_SECONDS = 30.0
NODE_TIMEOUT_MS = 2000


@dataclass
class Node:
    port: int
    #: The cluster bus port: chosen free too (the default, port + 10000, may be taken or past 65535).
    bus_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=1)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class RedisClusterProcesses:
    """``masters`` masters with ``replicas`` replicas each, on loopback; ``start`` to build it, ``stop`` to end it."""

    folder: Path
    masters: int = 3
    replicas: int = 1
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(node.address for node in self.nodes) + "/"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None or shutil.which("redis-cli") is None:
            pytest.exit("redis-server/redis-cli are not installed: run `make test`, which installs them", returncode=2)
        for index in range(self.masters * (1 + self.replicas)):
            node = Node(free_port(), free_port(), self.folder / f"node{index}")
            node.folder.mkdir(parents=True)
            self.nodes.append(node)
            self._launch(node)
        for node in self.nodes:
            _wait(lambda node=node: node.client().ping(), f"redis-server on {node.address} did not answer")
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
        self.wait_until_healthy()

    def _launch(self, node: Node) -> None:
        node.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(node.port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(node.bus_port),
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--dir",
                str(node.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_until_healthy(self) -> None:
        """Until every live node says cluster_state:ok and sees every slot served by a live master."""

        def healthy() -> bool:
            for node in self.nodes:
                if not node.alive:
                    continue
                info = node.client().cluster("info")
                if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_fail", 0)) != 0:
                    return False
            return all(master.alive for master in self.current_masters())

        _wait(healthy, "the Redis Cluster did not become healthy")

    def current_masters(self) -> list[Node]:
        """The nodes that serve slots now (as a live node sees it)."""
        viewer = next(node for node in self.nodes if node.alive)
        by_address = {node.address: node for node in self.nodes}
        masters = []
        for line in viewer.client().execute_command("CLUSTER", "NODES").decode().splitlines():
            parts = line.split()
            address = parts[1].split("@")[0]
            if "master" in parts[2] and "fail" not in parts[2] and len(parts) > 8 and address in by_address:
                masters.append(by_address[address])
        return masters

    def kill(self, node: Node) -> None:
        """kill -9: the node dies without a word (no AOF rewrite, no goodbye to the cluster)."""
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive and node.process is not None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(timeout=10)


def _wait(check: object, message: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError) as error:
            last = error
        time.sleep(0.1)
    raise RuntimeError(f"{message} within {WAIT_SECONDS:.0f} s" + (f" ({last})" if last else ""))


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """``redis+cluster://…`` of a running Redis Cluster (3 masters, 1 replica each) for the whole session."""
    given = os.environ.get("SYNCSVC_TEST_REDIS_CLUSTER_URL")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="syncsvc-test-cluster-") as folder:
        cluster = RedisClusterProcesses(Path(folder))
        try:
            cluster.start()
            yield cluster.url
        finally:
            cluster.stop()
