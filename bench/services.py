"""The run's own Redis (AOF, fsync every second, as `make dev` runs it) and Kafka broker (deploy/kafka.sh, KRaft),
on free loopback ports with their data in the run's folder, so a benchmark never touches a developer's data."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import redis

from bench.systems.base import REPO, free_port, stop_process, wait_until

KAFKA_SCRIPT = REPO / "deploy" / "kafka.sh"


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[tuple[str, int]]:
    """A redis-server with its AOF in ``folder``; yields its URL and pid."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: `make bench` installs it")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", ""]
    command += ["--appendonly", "yes", "--appendfsync", "everysec"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        wait_until(lambda: bool(client.ping()), what="redis-server", process=process, seconds=10)
        yield f"redis://127.0.0.1:{port}/0", process.pid
    finally:
        stop_process(process)


@contextlib.contextmanager
def kafka_broker(folder: Path) -> Iterator[str]:
    """A one-node KRaft broker (the project's deploy/kafka.sh) with its data in ``folder``; yields host:port."""
    folder.mkdir(parents=True, exist_ok=True)
    port, controller = free_port(), free_port()
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_DATA_DIR": str(folder),
    }
    subprocess.run([str(KAFKA_SCRIPT), "start"], env=env, check=True, timeout=120, stdout=subprocess.DEVNULL)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(KAFKA_SCRIPT), "stop"], env=env, check=False, timeout=60, stdout=subprocess.DEVNULL)
