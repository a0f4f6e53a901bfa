"""The processes a chaos run starts, owns, hurts and stops: one redis-server, one Kafka broker, two `syncsvc serve`
instances and two `syncsvc relay` processes (the first takes the relay lanes, the second stands by for their leases
to run out), all on free loopback ports, with their data and logs in the run's folder.

Redis runs with ``appendonly yes`` and ``appendfsync always``: a write is in the AOF, fsynced, before Redis replies,
so a kill -9 of Redis (the nemesis's choice: SIGTERM would make Redis write its AOF tidily and prove less) loses
nothing that syncsvc acknowledged, and the restarted server loads every acknowledged write from the AOF. (syncsvc
itself does not wait for the fsync: the Redis on this machine is 7.0, without WAITAOF, and
``SYNCSVC_REDIS_REPLICA_ACKS`` is about replicas; with ``everysec`` a kill -9 of the *process* would lose nothing
either, since Redis writes the AOF before replying, but a power loss could cost the last second.)

The broker is the project's own (deploy/kafka.sh, KRaft), paused with SIGSTOP and resumed with SIGCONT by its pid.
The `syncsvc` processes are this venv's executable with an environment made here (no SYNCSVC_* variable of the
caller's leaks in). Everything started is stopped by :meth:`Deployment.stop`, also after a failure; nothing else on
the machine is touched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import redis

from syncsvc.kms.root import FileKey

REPO = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = REPO / "deploy" / "kafka.sh"
SYNCSVC = str(Path(sys.executable).with_name("syncsvc"))
SHARDS = 4
LANES = 2
#: One issuer for both instances: a token one issues is accepted by the other.
PUBLIC_URL = "http://syncsvc.chaos"
#: Every wait on a process is bounded by this.
START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(
    check: Callable[[], object], what: str, process: subprocess.Popen[bytes] | None, seconds: float = START_SECONDS
) -> None:
    """Until ``check()`` is true (an exception counts as not yet); RuntimeError after ``seconds`` or if ``process``
    exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {seconds:.0f} s")


def _end(process: subprocess.Popen[bytes] | None, how: signal.Signals = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(how)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@dataclass
class RedisServer:
    """redis-server with its AOF (fsynced before every reply) in ``folder``; restarts on the same port and data."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make redis-bin` installs it")
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", ""]
        command += ["--appendonly", "yes", "--appendfsync", "always"]
        with (self.folder / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        # answering PING is not enough: while it loads the AOF, Redis answers LOADING to everything else
        _wait(lambda: client.ping() and client.dbsize() >= 0, "redis-server", self.process)

    def kill(self) -> None:
        _end(self.process, signal.SIGKILL)

    def stop(self) -> None:
        _end(self.process)


@dataclass
class KafkaBroker:
    """A one-node KRaft broker (deploy/kafka.sh) with its data in ``folder``."""

    folder: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    paused: bool = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _script(self, command: str, timeout: float) -> None:
        env = {
            **os.environ,
            "KAFKA_BROKERS": "1",
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_DATA_DIR": str(self.folder),
            "KAFKA_PYTHON": sys.executable,
        }
        env.pop("KAFKA_PORTS", None)
        env.pop("KAFKA_CONTROLLER_PORTS", None)
        done = subprocess.run(
            [str(KAFKA_SCRIPT), command], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"deploy/kafka.sh {command} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._script("start", 120)

    @property
    def pid(self) -> int:
        return int((self.folder / "kafka.pid").read_text())

    def pause(self) -> None:
        """SIGSTOP: the broker hangs, connections open, nothing answered (a GC pause, a frozen VM)."""
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.paused:
            with contextlib.suppress(OSError):
                self.resume()
        self._script("stop", 60)


@dataclass
class Syncsvc:
    """One `syncsvc serve` (``role`` "serve", relay off) or `syncsvc relay` process, restartable on its port."""

    name: str
    role: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        command = [SYNCSVC, self.role]
        if self.role == "serve":
            command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if self.role == "serve":
            _wait(self._ready, f"syncsvc serve {self.name}", self.process)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:  # noqa: S310 (loopback)
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def kill(self) -> None:
        _end(self.process, signal.SIGKILL)

    def stop(self) -> None:
        _end(self.process)


@dataclass
class Deployment:
    """Redis, Kafka, two serve instances and two relays, in ``folder``; the developer credentials they accept."""

    folder: Path
    redis: RedisServer
    kafka: KafkaBroker
    instances: list[Syncsvc]
    relays: list[Syncsvc]
    developer: tuple[str, str]

    @property
    def urls(self) -> list[str]:
        return [instance.url for instance in self.instances]

    def stop(self) -> None:
        """Stops everything still running: syncsvc first, then Kafka (resumed if paused), then Redis."""
        errors: list[str] = []
        with ThreadPoolExecutor(max_workers=4) as stopping:
            stops = {process.name: stopping.submit(process.stop) for process in [*self.instances, *self.relays]}
        for name, stopped in stops.items():
            if (error := stopped.exception()) is not None:  # every process got its stop; now the errors
                errors.append(f"{name}: {error}")
        for step in (self.kafka.stop, self.redis.stop):
            try:
                step()
            except Exception as error:
                errors.append(str(error))
        if errors:
            raise RuntimeError("; ".join(errors))


def _environment(redis_url: str, bootstrap: str, root_key: Path, developer: tuple[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SYNCSVC_")}
    return {
        **env,
        "SYNCSVC_REDIS_URL": redis_url,
        "SYNCSVC_KAFKA_BOOTSTRAP": bootstrap,
        "SYNCSVC_ROOT_KEY_FILE": str(root_key),
        "SYNCSVC_DEVELOPER_CREDENTIALS": ":".join(developer),
        "SYNCSVC_PUBLIC_URL": PUBLIC_URL,
        "SYNCSVC_SHARDS": str(SHARDS),
        "SYNCSVC_RELAY_LANES": str(LANES),
        "SYNCSVC_RELAY": "false",
        "SYNCSVC_POOL_CACHE_SECONDS": "0",
        "SYNCSVC_GET_ID_PER_SECOND": "0",
        "SYNCSVC_TOKEN_CALLS_PER_SECOND": "0",
        "SYNCSVC_LOG_LEVEL": "INFO",
    }


@contextlib.contextmanager
def deployment(folder: Path) -> Iterator[Deployment]:
    """Starts everything in ``folder`` (Redis, Kafka, two instances, two relays); stops it all when the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    root_key = folder / "root.key"
    FileKey.generate(root_key)
    developer = ("AKIDCHAOS" + secrets.token_hex(4).upper(), secrets.token_urlsafe(24))
    redis_server = RedisServer(folder / "redis")
    kafka = KafkaBroker(folder / "kafka")
    env = _environment(redis_server.url, kafka.bootstrap, root_key, developer)
    instances = [Syncsvc(f"serve-{index}", "serve", env, folder / f"serve-{index}.log") for index in range(2)]
    relays = [Syncsvc(f"relay-{index}", "relay", env, folder / f"relay-{index}.log") for index in range(2)]
    deployed = Deployment(folder, redis_server, kafka, instances, relays, developer)
    try:
        redis_server.start()
        # the broker's JVM and the instances start side by side (the instances need only Redis to be ready)
        with ThreadPoolExecutor(max_workers=3) as starting:
            for started in [starting.submit(step) for step in (kafka.start, *(i.start for i in instances))]:
                started.result()
        for relay in relays:
            relay.start()
        yield deployed
    finally:
        deployed.stop()
