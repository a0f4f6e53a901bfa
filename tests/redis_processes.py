"""redis-server processes of the tests' own, on loopback: the harnesses (tests/redis_cluster.py,
tests/redis_sentinel.py) and the tests that kill or reconfigure a Redis build on these.

A ``RedisNode`` is one process (a data node or a sentinel) with its data in a folder of its own; ``launch`` starts
redis-server for it, ``RedisNode.kill`` ends it with kill -9, ``stop_all`` ends many; ``wait_until`` bounds every wait
on them (``wait_answering`` on their first PING); ``started`` runs a harness (``start`` … ``stop``) for a block, and
``deployment_url`` one in a temporary folder unless the environment names a running deployment. A ``RedisProcess``
is a single redis-server with AOF on that a test kills and starts again: the fixture ``own_redis``
(registered for the whole suite in tests/conftest.py's ``pytest_plugins``) gives a test one of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self, TypeVar

import pytest
import redis

from tests.conftest import _wait_for_redis, free_port

#: Every wait on a harness is bounded by this.
WAIT_SECONDS = 30.0
#: AOF on, fsynced before each reply: a write a node acknowledged is on its disk, so what a kill -9 costs is only
#: what had not reached a replica.
DURABLE = ("--appendonly", "yes", "--appendfsync", "always")


@dataclass
class RedisNode:
    """One process on loopback: a data node or a sentinel."""

    port: int
    folder: Path
    #: A cluster node's bus port: chosen free too (the default, port + 10000, may be taken or past 65535).
    bus_port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def new(cls, folder: Path, *, bus: bool = False) -> Self:
        """A node on a free port (and a free bus port, with ``bus``), its data in ``folder`` (made if missing)."""
        folder.mkdir(parents=True, exist_ok=True)
        return cls(free_port(), folder, free_port() if bus else None)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=1)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: the node dies without a word (no AOF rewrite, no goodbye to its replicas, cluster or sentinels)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def require(*binaries: str) -> None:
    """Ends the test run, saying how to install them, unless every one of ``binaries`` is on the PATH."""
    if any(shutil.which(binary) is None for binary in binaries):
        several = len(binaries) > 1
        names = "/".join(binaries)
        pytest.exit(
            f"{names} {'are' if several else 'is'} not installed: run `make test`, which installs "
            f"{'them' if several else 'it'}",
            returncode=2,
        )


def launch(node: RedisNode, *extra_args: str, save: str = "") -> None:
    """Starts redis-server for ``node``: on its port, bound to loopback, its data in its folder, RDB snapshots on the
    ``save`` schedule (none by default), then ``extra_args``. Does not wait for it to answer."""
    require("redis-server")
    node.process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(node.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(node.folder),
            "--save",
            save,
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_all(nodes: Iterable[RedisNode]) -> None:
    """Asks every live node to stop (SIGTERM), then waits for each; kill -9 for one that takes more than 10 s."""
    processes = [node.process for node in nodes if node.process is not None]
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until(check: Callable[[], object], message: str, seconds: float = WAIT_SECONDS) -> None:
    """Until ``check()`` is true (a Redis or connection error counts as not yet); RuntimeError with ``message`` and
    the last such error after ``seconds``."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError) as error:
            last = error
        time.sleep(0.1)
    raise RuntimeError(f"{message} within {seconds:.0f} s" + (f" ({last})" if last else ""))


def wait_answering(nodes: Iterable[RedisNode]) -> None:
    """Until every one of ``nodes`` answers PING."""
    for node in nodes:
        wait_until(node.client().ping, f"redis-server on {node.address} did not answer")


class Harness(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class Deployment(Harness, Protocol):
    """A harness of several processes that clients reach through one URL."""

    @property
    def url(self) -> str: ...


HarnessT = TypeVar("HarnessT", bound=Harness)


@contextmanager
def started(harness: HarnessT) -> Iterator[HarnessT]:
    """``harness`` started for the block, and stopped after it (after a failed start too: what did start ends)."""
    try:
        harness.start()
        yield harness
    finally:
        harness.stop()


@contextmanager
def deployment_url(variable: str | None, make: Callable[[Path], Deployment], prefix: str) -> Iterator[str]:
    """The URL in the environment ``variable``, when set (nothing is started then); else the URL of ``make(folder)``,
    started in a temporary folder named with ``prefix`` for the block and stopped after it."""
    given = os.environ.get(variable) if variable else None
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as folder, started(make(Path(folder))) as deployment:
        yield deployment.url


class RedisProcess(RedisNode):
    """A redis-server with AOF on, that a test can kill -9 and start again on the same port and data."""

    @property
    def url(self) -> str:
        return f"redis://{self.address}/0"

    def start(self) -> None:
        launch(self, "--appendonly", "yes", "--appendfsync", "everysec")
        _wait_for_redis(self.url, self.process)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of the test's own, started (killed at the end if it still runs)."""
    process = RedisProcess.new(tmp_path)
    process.start()
    yield process
    if process.alive:
        process.kill()
