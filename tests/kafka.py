"""Real Apache Kafka for the test suite: the session fixtures ``kafka_bootstrap`` (one broker) and
``kafka_cluster_bootstrap`` (three), ``KafkaBroker`` and ``KafkaCluster``.

The brokers are the project's own (``deploy/kafka.sh``: KRaft, each JVM a broker and a controller, the jars that
``make kafka-bin`` resolved), started on free loopback ports with their data in a temporary folder, so they never
meet the developer's ``make kafka`` broker or another test run. ``SYNCSVC_TEST_KAFKA_BOOTSTRAP`` (``host:port``) points
the suite at an existing broker instead; nothing is started or stopped then.

Registered once for the whole suite (``pytest_plugins = ["tests.kafka"]`` in tests/conftest.py), every test module
shares one broker, and the modules that ask for the cluster share one cluster (started by the first of them, stopped
at the end of the session; no module gets it unless it asks). Imported into a module instead (``from tests.kafka
import kafka_bootstrap  # noqa: F401``), it is that module's own fixture: two modules importing it start two brokers.
A test that needs a broker of its own (to stop it mid-test) makes a ``KafkaBroker``; the cluster's tests kill and
restart its nodes themselves and leave all three running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "deploy" / "kafka.sh"
JARS_STAMP = REPO / ".data" / "kafka" / "libs" / ".installed"
# deploy/kafka.sh bounds its own waits (60 s to start one broker, 120 s a cluster, 30 s + 5 s to stop); these only
# catch a hung script.
START_TIMEOUT = 90.0
CLUSTER_START_TIMEOUT = 150.0
STOP_TIMEOUT = 45.0
#: How long a killed JVM may take to be gone.
KILL_TIMEOUT = 10.0


class KafkaBroker:
    """One ``deploy/kafka.sh`` broker on its own ports and data folder; ``stop`` then ``start`` keeps its data."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Starts the broker and returns once it answers a metadata request."""
        self._run("start", START_TIMEOUT)

    def stop(self) -> None:
        """Stops the broker gracefully (SIGTERM, then SIGKILL after 30 s)."""
        self._run("stop", STOP_TIMEOUT)

    def _run(self, command: str, timeout: float) -> None:
        kafka_sh(
            command,
            timeout,
            KAFKA_BROKERS="1",
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.controller_port),
            KAFKA_DATA_DIR=str(self.folder),
        )


class KafkaCluster:
    """``brokers`` ``deploy/kafka.sh`` nodes (``KAFKA_BROKERS``) on free ports, their data under one folder.

    Nodes are named by their Kafka node id, 1 to ``brokers``, as Kafka names them (a partition's leader, a
    coordinator). ``kill`` ends a node's JVM with SIGKILL; ``restart`` (or ``start``) starts the nodes that do not run
    and returns once every node answers and sees all the others; ``stop`` stops them all gracefully.
    """

    def __init__(self, folder: Path, brokers: int = 3) -> None:
        self.folder = folder
        ports = listener_ports(2 * brokers)
        self.ports, self.controller_ports = ports[:brokers], ports[brokers:]
        self.bootstrap = ",".join(f"127.0.0.1:{port}" for port in self.ports)

    @property
    def nodes(self) -> range:
        return range(1, len(self.ports) + 1)

    def start(self) -> None:
        self._run("start", CLUSTER_START_TIMEOUT)

    def stop(self) -> None:
        self._run("stop", STOP_TIMEOUT)

    def kill(self, node: int) -> None:
        """kill -9 of the node's JVM (its pid from the pidfile deploy/kafka.sh keeps); returns once it is gone."""
        pid = int((self.folder / f"node{node}" / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_TIMEOUT
        while _running(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka node {node} (pid {pid}) still runs {KILL_TIMEOUT:.0f} s after SIGKILL")
            time.sleep(0.05)

    def restart(self, node: int) -> None:
        """Starts the node again (with its data) after ``kill``; the other nodes keep running."""
        if node not in self.nodes:
            raise ValueError(f"no node {node} in a cluster of {len(self.ports)}")
        self.start()

    def _run(self, command: str, timeout: float) -> None:
        kafka_sh(
            command,
            timeout,
            KAFKA_BROKERS=str(len(self.ports)),
            KAFKA_PORTS=",".join(map(str, self.ports)),
            KAFKA_CONTROLLER_PORTS=",".join(map(str, self.controller_ports)),
            KAFKA_DATA_DIR=str(self.folder),
        )


def kafka_sh(command: str, timeout: float, **env: str) -> None:
    """Runs ``deploy/kafka.sh COMMAND`` with ``env`` over this process's environment, minus any port lists of a
    developer's shell that ``env`` does not set; raises with its output when it fails or hangs."""
    inherited = {
        name: value for name, value in os.environ.items() if name not in ("KAFKA_PORTS", "KAFKA_CONTROLLER_PORTS")
    }
    try:
        done = subprocess.run(
            [str(SCRIPT), command],
            env={**inherited, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"deploy/kafka.sh {command} did not finish within {timeout:.0f} s") from error
    if done.returncode != 0:
        raise RuntimeError(f"deploy/kafka.sh {command} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def listener_ports(count: int) -> list[int]:
    """``count`` different free loopback ports below the ephemeral range (``free_port``). A Kafka node opens its
    client listener only once the controllers have unfenced it, seconds after it started; meanwhile the nodes'
    connections to each other take ephemeral local ports, and one of them could take a port chosen there."""
    return [free_port() for _ in range(count)]


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (a killed JVM waits as one until init reaps it)."""
    with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(") ")[2][:1] != "Z"
    return False


def _wait_for_port(bootstrap: str, seconds: float) -> None:
    host, _, port = bootstrap.rpartition(":")
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise RuntimeError(f"nothing accepts connections on {bootstrap} ({error})") from error
            time.sleep(0.1)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a running Kafka broker (KRaft, one node), for the whole session."""
    given = os.environ.get("SYNCSVC_TEST_KAFKA_BOOTSTRAP")
    if given:
        _wait_for_port(given, 10)
        yield given
        return
    _require_jars()
    with tempfile.TemporaryDirectory(prefix="syncsvc-test-kafka-") as folder:
        broker = KafkaBroker(Path(folder))
        try:
            broker.start()
            yield broker.bootstrap
        finally:
            broker.stop()  # also after a failed start: the JVM may be running, and its folder is about to go


def _require_jars() -> None:
    if not JARS_STAMP.exists():
        pytest.exit("the Kafka broker jars are not installed: run `make test` (or `make kafka-bin`)", returncode=2)


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    """Three Kafka nodes (KRaft, a three-voter controller quorum, replication factor 3 and minimum ISR 2 for the
    internal topics), for the rest of the session once a test asks. A test may kill a node; it restarts it."""
    _require_jars()
    with tempfile.TemporaryDirectory(prefix="syncsvc-test-kafka-cluster-") as folder:
        cluster = KafkaCluster(Path(folder))
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()  # also after a failed start: some JVMs may be running, and their folder is about to go


@pytest.fixture(scope="session")
def kafka_cluster_bootstrap(kafka_cluster: KafkaCluster) -> str:
    """The three nodes' ``host:port`` addresses, comma-separated (a Kafka client's bootstrap servers)."""
    return kafka_cluster.bootstrap
