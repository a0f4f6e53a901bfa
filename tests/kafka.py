"""A real Apache Kafka broker for the test suite: the session fixture ``kafka_bootstrap`` and ``KafkaBroker``.

The broker is the project's own (``deploy/kafka.sh``: KRaft, one JVM, the jars that ``make kafka-bin`` resolved),
started on free loopback ports with its data in a temporary folder, so it never meets the developer's ``make kafka``
broker or another test run. ``SYNCSVC_TEST_KAFKA_BOOTSTRAP`` (``host:port``) points the suite at an existing broker
instead; nothing is started or stopped then.

Registered once for the whole suite (``pytest_plugins = ["tests.kafka"]`` in tests/conftest.py), every test module
shares one broker. Imported into a module instead (``from tests.kafka import kafka_bootstrap  # noqa: F401``), it
is that module's own fixture: two modules importing it start two brokers. A test that needs a broker of its own
(to stop it mid-test) makes a ``KafkaBroker``.
"""

from __future__ import annotations

import os
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
# deploy/kafka.sh bounds its own waits (60 s to start, 30 s + 5 s to stop); these only catch a hung script.
START_TIMEOUT = 90.0
STOP_TIMEOUT = 45.0


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
        env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_DATA_DIR": str(self.folder),
        }
        try:
            done = subprocess.run(
                [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"deploy/kafka.sh {command} did not finish within {timeout:.0f} s") from error
        if done.returncode != 0:
            raise RuntimeError(f"deploy/kafka.sh {command} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


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
    if not JARS_STAMP.exists():
        pytest.exit("the Kafka broker jars are not installed: run `make test` (or `make kafka-bin`)", returncode=2)
    with tempfile.TemporaryDirectory(prefix="syncsvc-test-kafka-") as folder:
        broker = KafkaBroker(Path(folder))
        try:
            broker.start()
            yield broker.bootstrap
        finally:
            broker.stop()  # also after a failed start: the JVM may be running, and its folder is about to go
