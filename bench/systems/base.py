"""What the benchmark run needs of an HTTP system under test (syncsvc, the floor, Kinto, PouchDB Server).

Lifecycle: ``install()`` (idempotent; may apt-get / npm / pip into ``.data/bench``), ``start(folder, port)`` (returns
once the server answers; its data lives in ``folder``), ``stop()`` (ends every process it started; safe to call
twice). Between them the run asks for the request templates of workloads 1 to 3, each method seeding whatever data
the requests need before returning:

* ``write_templates(users)``: one template per user; each request creates a new record with a 100-byte value in
  that user's own collection/dataset, conditionally ("must not exist yet"); the record name contains ``${seq}``.
* ``delta_templates(users)``: one template per user, whose collection holds 100 records of which the last 10 were
  changed after a marker; the request asks for the changes since the marker (answer: those 10 records).
* ``full_pull_templates(datasets)``: one template per dataset of 1,024 records with 1,000-byte values (about
  1 MB); the request asks for all of it at once, as a device holding nothing would.

A system that runs one server process (and its children) is a ``ServerProcess``: it starts it with ``serve``, and
``stop`` and ``pids`` come with it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol, TypeVar

import aiohttp

from bench.load import RequestTemplate, process_tree

REPO = Path(__file__).resolve().parents[2]
#: Where installed peers (Kinto's venv, PouchDB Server's node_modules) live: git-ignored, kept between runs.
INSTALLS = REPO / ".data" / "bench"
WRITE_VALUE = "v" * 100
PULL_RECORDS = 1024
PULL_VALUE_BYTES = 1000
DELTA_RECORDS = 100
DELTA_CHANGED = 10
#: The pinned installs of the peers: Kinto's hashed requirements, PouchDB Server's package-lock.json.
PEERS = REPO / "bench" / "peers"
#: The password of every user the peers' workloads make.
PASSWORD = "secret"


def run(command: list[str], *, cwd: Path | None = None, stdin: str | None = None) -> str:
    """Runs ``command``; its stdout, or a RuntimeError holding its output."""
    done = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return done.stdout


def basic_auth(user: str, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256: names an install stamp, so a new lock re-installs."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def pinned_version(requirements: Path, package: str) -> str:
    """The ``package==version`` pin of a compiled requirements file (for the report)."""
    found = re.search(rf"^{re.escape(package)}==(\S+)", requirements.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{requirements} pins no {package}")
    return found.group(1)


class HttpSystem(Protocol):
    #: Short name used in the report ("kinto", "pouchdb", "syncsvc-2w", ...).
    name: str
    #: scheme://host:port once started.
    url: str

    def install(self) -> None: ...

    def start(self, folder: Path, port: int) -> None: ...

    def stop(self) -> None: ...

    def pids(self) -> list[int]:
        """Every server process (for CPU accounting), children included."""
        ...

    def versions(self) -> dict[str, str]: ...

    async def write_templates(self, users: int) -> list[RequestTemplate]: ...

    async def delta_templates(self, users: int) -> list[RequestTemplate]: ...

    async def full_pull_templates(self, datasets: int) -> list[RequestTemplate]: ...


T = TypeVar("T")
#: Seeding requests in flight at once, per system.
SEEDING_CONCURRENCY = 16


async def gather_bounded(calls: Iterable[Awaitable[T]], *, at_once: int = SEEDING_CONCURRENCY) -> list[T]:
    """Awaits every call, at most ``at_once`` at a time; the results in order."""
    limit = asyncio.Semaphore(at_once)

    async def bounded(call: Awaitable[T]) -> T:
        async with limit:
            return await call

    return list(await asyncio.gather(*(bounded(call) for call in calls)))


async def for_each_user(
    url: str, users: list[str], seed: Callable[[aiohttp.ClientSession, str], Awaitable[T]]
) -> list[T]:
    """``seed(session, user)`` for every user, at most ``SEEDING_CONCURRENCY`` at a time, on one session whose
    relative URLs go to ``url``."""
    async with aiohttp.ClientSession(base_url=url) as session:
        return await gather_bounded(seed(session, user) for user in users)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    ready: Callable[[], bool], *, what: str, process: subprocess.Popen[bytes] | None, seconds: float
) -> None:
    """Polls ``ready`` every 0.1 s until it holds; fails if ``process`` exits first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready within {seconds:g} s")


def answers_ok(url: str) -> bool:
    """Whether a GET of ``url`` is answered 200 within a second."""
    with urllib.request.urlopen(url, timeout=1) as response:
        return bool(response.status == 200)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_process(process: subprocess.Popen[bytes] | None, *, seconds: float = 15.0) -> None:
    """SIGTERM to the process and its descendants, SIGKILL to whatever is left after ``seconds``."""
    if process is None or process.poll() is not None:
        return
    tree = process_tree(process.pid)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=seconds)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


class ServerProcess:
    """The server process of an ``HttpSystem`` that runs one (with its children): ``serve`` starts it and returns once
    it answers, ``stop`` ends it and everything it started, ``pids`` lists them."""

    url = ""
    _process: subprocess.Popen[bytes] | None = None

    def serve(
        self,
        command: list[str],
        port: int,
        *,
        what: str,
        ready_path: str = "/",
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        seconds: float = 60,
    ) -> None:
        """Starts ``command``, its output appended to ``log`` (stdout dropped without one), and waits up to
        ``seconds`` until ``http://127.0.0.1:PORT`` + ``ready_path`` answers 200."""
        if log is None:
            self._process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
        else:
            with log.open("ab") as sink:  # the child keeps its own descriptor
                self._process = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers_ok(self.url + ready_path), what=what, process=self._process, seconds=seconds)

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None

    def pids(self) -> list[int]:
        """Every server process (for CPU accounting), children included."""
        return process_tree(self._process.pid) if self._process is not None else []
