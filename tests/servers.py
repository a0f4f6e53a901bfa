"""`syncsvc` processes the tests start as a user would: the executable of this venv, the environment of one (the
test's Redis and the suite's developer credentials, relay off), waiting until it serves, and ``syncsvc_process``, a
`syncsvc serve` on a free port with its output in a log file, stopped when the block ends.

It starts and stops only processes of its own; the Redis they use is the test's.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, free_port, process_environment

SYNCSVC = str(Path(sys.executable).with_name("syncsvc"))


def environment(redis_url: str, **extra: str) -> dict[str, str]:
    """A `syncsvc` process's environment: ``redis_url``, the suite's developer credentials, relay off, ``extra``."""
    return process_environment(
        SYNCSVC_REDIS_URL=redis_url,
        SYNCSVC_DEVELOPER_CREDENTIALS=f"{DEVELOPER_KEY}:{DEVELOPER_SECRET}",
        SYNCSVC_RELAY="false",
        **extra,
    )


def wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path | None = None) -> None:
    """Until ``url``/readyz answers (within 30 s: a start imports a lot, and a loaded machine shares two cores
    between several); AssertionError with what the process wrote (its stderr pipe, or ``log``) if it exits first."""
    for _ in range(600):
        if process.poll() is not None:
            written = log.read_text(errors="replace") if log is not None else process.stderr and process.stderr.read()
            raise AssertionError(f"syncsvc exited with {process.returncode}: {written!r}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1):  # noqa: S310 (loopback test URL)
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise AssertionError("syncsvc did not become ready within 30 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class Served:
    """A `syncsvc serve` process of the test's: its URL, port, process and log."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def rss_bytes(self) -> int:
        """Resident memory of the process, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()


@contextlib.contextmanager
def syncsvc_process(
    redis_url: str, log: Path, settings: Mapping[str, str] | None = None, *, workers: int = 1
) -> Iterator[Served]:
    """`syncsvc serve --workers WORKERS` on a free port with ``environment(redis_url, **settings)``, its output in
    ``log`` (a pipe nobody reads could fill up and stall it), once it is ready; stopped when the block ends."""
    port = free_port()
    with log.open("wb") as sink:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [SYNCSVC, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env=environment(redis_url, **(settings or {})),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, log)
        yield Served(url, port, process, log)
    finally:
        stop(process)


def healthz_seconds(url: str) -> float:
    """How long ``url``/healthz took to answer 200."""
    started = time.monotonic()
    with urllib.request.urlopen(url + "/healthz", timeout=10) as response:  # noqa: S310 (loopback test URL)
        assert response.status == 200
    return time.monotonic() - started
