"""The benchmark run (`make bench`): every system and workload in one run, then the report.

    python -m bench.run [--out bench/results] [--seconds 5] [--repeats 3] [--levels 1,4,16,64] [--skip-peers]
    python -m bench.run --smoke --out DIR     # seconds-long version of every step (part of `make test`)

Order: the run's own Redis and Kafka start; syncsvc with 1 worker is measured on workloads 1-3 (HTTP, wrk), then
the syncsvc-only workloads 4-7 against it (push, stream, idle sockets, bulk publish); then syncsvc with
``--workers 2``; then the floor (answering syncsvc's own requests with syncsvc's own answers), Kinto on PostgreSQL,
PouchDB Server, and Redis alone running the write script. Each HTTP point: a warm-up run (not recorded), then
every concurrency level ``repeats`` times; workload 1 adds, for syncsvc, a paced point at half the system's peak and
one at three times it (``bench.overload``: the shed share and the admitted latency).
Absolute figures on a shared machine are noise: the report compares systems measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import overload, push_latency, report
from bench.load import CORES, Offsets, Point, RequestTemplate, run_wrk, settle
from bench.services import kafka_broker, redis_server
from bench.systems import redis_alone
from bench.systems.base import REPO, HttpSystem, free_port
from bench.systems.floor import Floor
from bench.systems.syncsvc import FILES_BESIDES_SOCKETS, SYNCSVC, Infrastructure, SyncSvc
from bench.workloads import bulk_publish, idle_sockets, stream_latency
from syncsvc.config import Settings

WORKLOADS = ("write", "delta", "pull")


@dataclass(frozen=True, slots=True)
class Plan:
    """How big the run is."""

    levels: tuple[int, ...] = (1, 4, 16, 64)
    seconds: float = 5.0
    repeats: int = 3
    warmup_seconds: float = 3.0
    #: Identities (templates) per workload: writes spread over them (each takes at most 1,000 records).
    write_users: int = 2000
    delta_users: int = 200
    pull_datasets: int = 8
    push_writes: int = 1000
    stream_writes: int = 1000
    idle_devices: int = 20000
    idle_step: int = 2000
    bulk_identities: int = 200
    bulk_datasets: int = 5
    bulk_records: int = 100
    #: The overload point: offered load as a multiple of the peak, over this many connections, at the server's
    #: bound of requests in flight per process (the product's default).
    overload_factor: float = 3.0
    overload_connections: int = 1024
    max_in_flight: int = Settings.model_fields["max_requests_in_flight"].default
    peers: bool = True

    @classmethod
    def smoke(cls) -> Plan:
        return cls(
            levels=(2,),
            seconds=1,
            repeats=1,
            warmup_seconds=1,
            write_users=20,
            delta_users=4,
            pull_datasets=1,
            push_writes=20,
            stream_writes=20,
            idle_devices=200,
            idle_step=100,
            bulk_identities=4,
            bulk_datasets=2,
            bulk_records=10,
            # Past the bound for sure in seconds, whatever the smoke peak (2 connections) is to the capacity: more
            # connections than two workers' places; the bound above the setup's own concurrency (100 sockets
            # connecting at once).
            overload_factor=10.0,
            overload_connections=512,
            max_in_flight=128,
            peers=False,
        )


@dataclass(slots=True)
class Results:
    plan: Plan
    machine: dict[str, Any]
    systems: dict[str, dict[str, str]] = field(default_factory=dict)
    #: One row per wrk/redis-benchmark run: {"system", "workload", "repeat", **Point}.
    points: list[dict[str, Any]] = field(default_factory=list)
    #: Workload 1 at a fixed rate (half the system's peak): {"system", "rate", **Point}.
    paced: list[dict[str, Any]] = field(default_factory=list)
    #: Workload 1 offered at overload_factor x the peak: {"system", **OverloadPoint}.
    overload: list[dict[str, Any]] = field(default_factory=list)
    push: dict[str, Any] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)
    idle: dict[str, Any] = field(default_factory=dict)
    bulk: dict[str, Any] = field(default_factory=dict)
    #: Wall-clock duration of the whole run, seconds.
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Run:
    """One benchmark run: owns the folder, the shared services and the results."""

    def __init__(self, plan: Plan, folder: Path, infrastructure: Infrastructure, redis_pid: int | None) -> None:
        self.plan = plan
        self.folder = folder
        self.infrastructure = infrastructure
        self.redis_pid = redis_pid
        self.results = Results(plan, machine_description())
        self.floor = Floor()
        self.offsets = Offsets()

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def measure_http(self, system: HttpSystem, *, capture_for_floor: bool = False, keep_running: bool = False) -> None:
        """Workloads 1-3 against ``system``, started here and stopped unless ``keep_running`` (then the caller
        stops it; it stays warm for workloads 4-7)."""
        system.install()
        system.start(self.folder / system.name, free_port())
        self.results.systems[system.name] = system.versions()
        try:
            for workload in WORKLOADS:
                templates = asyncio.run(self._templates(system, workload))
                if capture_for_floor:
                    answer = asyncio.run(_answer_of(system.url, templates[0]))
                    self.floor.use(workload, templates, answer, self.folder / "floor")
                self._levels(system, workload, templates)
            if isinstance(system, SyncSvc):
                self._paced_half_peak(system)
                self._overloaded(system, report.peak(self.results.points, system.name, "write")["throughput"])
            elif system is self.floor:
                self._floor_paced_alike()
        except BaseException:
            system.stop()
            raise
        if not keep_running:
            system.stop()

    async def _templates(self, system: HttpSystem, workload: str) -> list[RequestTemplate]:
        self.log(f"{system.name}: preparing {workload}")
        if workload == "write":
            return await system.write_templates(self.plan.write_users)
        if workload == "delta":
            return await system.delta_templates(self.plan.delta_users)
        return await system.full_pull_templates(self.plan.pull_datasets)

    def _wrk(
        self,
        system: HttpSystem,
        workload: str,
        templates: list[RequestTemplate],
        connections: int,
        seconds: float,
        rate: float | None = None,
    ) -> Point:
        bound = int(seconds * 100_000)  # no system here answers 100,000 requests a second
        offset = self.offsets.take(f"{system.name}/{workload}", len(templates), connections, bound)
        point = run_wrk(
            system.url,
            templates,
            connections=connections,
            seconds=seconds,
            offset=offset,
            server_pids=system.pids(),
            rate=rate,
        )
        # The requests wrk left in the server when it stopped run on; they would hold places in flight during the
        # next run's first moments (at a bound of 64, a run at 64 connections right after another was refused some).
        settle(system.pids())
        return point

    def _levels(self, system: HttpSystem, workload: str, templates: list[RequestTemplate]) -> None:
        plan = self.plan
        warm = self._wrk(system, workload, templates, max(plan.levels), plan.warmup_seconds)
        _check(system.name, workload, warm)
        for connections in plan.levels:
            for repeat in range(plan.repeats):
                point = self._wrk(system, workload, templates, connections, plan.seconds)
                _check(system.name, workload, point)
                self.results.points.append(
                    {"system": system.name, "workload": workload, "repeat": repeat, **point.as_dict()}
                )
                self.log(
                    f"{system.name} {workload} c={connections} #{repeat}: {point.throughput:,.0f}/s "
                    f"p50 {point.p50_ms:.2f} ms p99 {point.p99_ms:.2f} ms (wrk {point.generator_cpu:.0%} cpu)"
                )

    def _paced_half_peak(self, system: SyncSvc) -> None:
        """Workload 1 at half the peak just measured: the latency a deployment sized at 2x headroom sees."""
        peak = report.peak(self.results.points, system.name, "write")
        rate = peak["throughput"] / 2
        templates = asyncio.run(system.write_templates(self.plan.write_users))
        point = self._wrk(system, "write", templates, max(self.plan.levels), self.plan.seconds * 2, rate=rate)
        _check(system.name, "write (paced)", point)
        self.results.paced.append({"system": system.name, "rate": rate, **point.as_dict()})
        self.log(f"{system.name} write paced at {rate:,.0f}/s: got {point.throughput:,.0f}/s p99 {point.p99_ms:.2f} ms")

    def _overloaded(
        self, system: SyncSvc, peak: float, templates: list[RequestTemplate] | None = None
    ) -> list[overload.OverloadPoint]:
        """Workload 1 offered at ``overload_factor`` x ``peak`` (writes/s), ``repeats`` times: what is shed, how soon,
        and how fast the admitted rest is (``templates``: the writes, when made already)."""
        rate = peak * self.plan.overload_factor
        connections = self.plan.overload_connections
        if templates is None:
            templates = asyncio.run(system.write_templates(self.plan.write_users))
        seconds = self.plan.seconds * 2
        points = []
        for repeat in range(self.plan.repeats):
            offset = self.offsets.take(f"{system.name}/write", len(templates), connections, int(seconds * 100_000))
            point = overload.measure(
                system.url,
                templates,
                rate=rate,
                connections=connections,
                seconds=seconds,
                offset=offset,
                server_pids=system.pids(),
            )
            settle(system.pids())
            if point.admitted == 0 or point.other:
                raise RuntimeError(f"{system.name} overloaded: nothing admitted or answers that are errors: {point}")
            self.results.overload.append({"system": system.name, "repeat": repeat, **point.as_dict()})
            self.log(f"{system.name} #{repeat}: {point.line(seconds)}")
            points.append(point)
        return points

    def _floor_paced_alike(self) -> None:
        """The floor paced at each rate a syncsvc was: a tail the load method (wrk, paced.lua, this machine) makes
        shows here too, so what is left of syncsvc's tail is syncsvc's."""
        templates = asyncio.run(self.floor.write_templates(self.plan.write_users))
        for row in [row for row in self.results.paced if row["system"].startswith("syncsvc")]:
            rate = row["rate"]
            point = self._wrk(self.floor, "write", templates, max(self.plan.levels), self.plan.seconds * 2, rate=rate)
            _check("floor", "write (paced)", point)
            self.results.paced.append({"system": f"floor (as {row['system']})", "rate": rate, **point.as_dict()})
            self.log(f"floor write paced at {rate:,.0f}/s: got {point.throughput:,.0f}/s p99 {point.p99_ms:.2f} ms")

    def measure_syncsvc_only(self, system: SyncSvc) -> None:
        """Workloads 4-7 against a running syncsvc (``system``; a second instance is started for push)."""
        plan, infra = self.plan, self.infrastructure
        self.log("push latency, one instance")
        one = asyncio.run(push_latency.measure(system.url, system.url, infra.developer, plan.push_writes))
        second = SyncSvc(infra, workers=1, name="syncsvc-second")
        second.pool_id = system.pool_id  # the same deployment: no pool of its own, the same token issuer
        second.public_url = system.url
        second.start(self.folder / second.name, free_port())
        try:
            self.log("push latency, two instances")
            two = asyncio.run(push_latency.measure(system.url, second.url, infra.developer, plan.push_writes))
        finally:
            second.stop()
        self.results.push = {"one instance": push_latency.summary(one), "two instances": push_latency.summary(two)}
        self.log("stream latency")
        self.results.stream = asyncio.run(
            stream_latency.measure(system.url, infra.developer, infra.kafka_bootstrap, writes=plan.stream_writes)
        )
        self.log("bulk publish")
        self.results.bulk = asyncio.run(
            bulk_publish.measure(
                system.url,
                infra.developer,
                infra.kafka_bootstrap,
                infra.redis_url,
                identities=plan.bulk_identities,
                datasets_per_identity=plan.bulk_datasets,
                records_per_dataset=plan.bulk_records,
            )
        )
        self.log("idle sockets")
        server_pid = system.pids()[0]
        # Every socket is a file of the server's: a ramp into its open-files limit would only show EMFILE. Leave
        # room for its Redis pool (256), Kafka connections and files, and say so when that caps the ramp.
        room = idle_sockets.nofile_of(server_pid) - FILES_BESIDES_SOCKETS
        devices = min(plan.idle_devices, room)
        self.results.idle = asyncio.run(
            idle_sockets.measure(system.url, infra.developer, server_pid, devices=devices, step=plan.idle_step)
        )
        if devices < plan.idle_devices:
            self.results.idle["capped_by"] = (
                f"the server's open-files limit ({room + FILES_BESIDES_SOCKETS:,}; hard limit of this machine)"
            )

    def measure_redis_alone(self) -> None:
        if self.redis_pid is None:
            self.log("redis alone: skipped (the run was given a Redis it did not start)")
            return
        port = int(self.infrastructure.redis_url.rsplit(":", 1)[1].split("/")[0])
        self.results.systems[redis_alone.NAME] = {"redis": _redis_version(port)}
        calibration = redis_alone.run_point(
            port, connections=max(self.plan.levels), requests=5000, server_pid=self.redis_pid
        )
        requests = max(1000, int(calibration.throughput * self.plan.seconds))
        for connections in self.plan.levels:
            for repeat in range(self.plan.repeats):
                point = redis_alone.run_point(
                    port, connections=connections, requests=requests, server_pid=self.redis_pid
                )
                self.results.points.append(
                    {"system": redis_alone.NAME, "workload": "write", "repeat": repeat, **point.as_dict()}
                )
                self.log(f"redis alone c={connections} #{repeat}: {point.throughput:,.0f}/s p99 {point.p99_ms:.2f} ms")


def _check(system: str, workload: str, point: Point) -> None:
    """A run with failed requests is not a measurement: stop and say so."""
    if point.errors:
        raise RuntimeError(f"{system} {workload}: {point.errors} of {point.requests} requests failed")
    if point.requests == 0:
        raise RuntimeError(f"{system} {workload}: no request completed")


async def _answer_of(url: str, template: RequestTemplate) -> bytes:
    """What ``url`` answers to one instance of ``template`` (the floor answers the same bytes)."""
    path = template.path.replace("${seq}", "floor")
    body = template.body.replace("${seq}", "floor")
    async with (
        aiohttp.ClientSession() as session,
        session.request(template.method, url + path, data=body or None, headers=template.headers) as response,
    ):
        answer = await response.read()
        if response.status != 200:
            raise RuntimeError(f"capturing the floor's answer: {response.status} {answer[:200]!r}")
        return answer


def _redis_version(port: int) -> str:
    import redis

    return str(redis.Redis(port=port).info("server")["redis_version"])


def machine_description() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    with contextlib.suppress(OSError):
        memory = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    return {
        "cpu": model,
        "cores": CORES,
        "memory_bytes": memory,
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "wrk": _first_line(["wrk", "--version"]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def _first_line(command: list[str]) -> str:
    with contextlib.suppress(OSError):
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
        return (done.stdout or done.stderr).strip().splitlines()[0]
    return ""


@contextlib.contextmanager
def infrastructure(
    folder: Path, redis_url: str | None, kafka: str | None
) -> Iterator[tuple[Infrastructure, int | None]]:
    """The run's Redis and Kafka (started here unless given) and a root key in ``folder``."""
    root_key = folder / "root.key"
    subprocess.run(
        [str(SYNCSVC), "keys", "root-key", str(root_key)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with contextlib.ExitStack() as stack:
        redis_pid = None
        if redis_url is None:
            redis_url, redis_pid = stack.enter_context(redis_server(folder / "redis"))
        if kafka is None:
            kafka = stack.enter_context(kafka_broker(folder / "kafka"))
        yield Infrastructure(redis_url, kafka, root_key), redis_pid


def run(plan: Plan, out: Path, *, redis_url: str | None = None, kafka: str | None = None) -> Results:
    """The whole run; writes results.json, results.md and the charts into ``out``."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="syncsvc-bench-") as scratch:
        folder = Path(scratch)
        with infrastructure(folder, redis_url, kafka) as (infra, redis_pid):
            bench = Run(plan, folder, infra, redis_pid)
            one = SyncSvc(infra, workers=1, max_in_flight=plan.max_in_flight)
            bench.measure_http(one, capture_for_floor=True, keep_running=True)
            try:
                bench.measure_syncsvc_only(one)
            finally:
                one.stop()
            bench.measure_http(SyncSvc(infra, workers=2, max_in_flight=plan.max_in_flight))
            bench.measure_http(bench.floor)
            if plan.peers:
                from bench.systems.kinto import Kinto
                from bench.systems.pouchdb import PouchDBServer

                bench.measure_http(Kinto())
                bench.measure_http(PouchDBServer())
            bench.measure_redis_alone()
    bench.results.seconds = time.monotonic() - started
    report.write(bench.results.as_dict(), out)
    return bench.results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--smoke", action="store_true", help="seconds-long version of every step")
    parser.add_argument("--seconds", type=float, help="length of each measured point")
    parser.add_argument("--repeats", type=int, help="runs per concurrency level")
    parser.add_argument("--levels", help="concurrency levels, comma-separated")
    parser.add_argument("--skip-peers", action="store_true", help="leave out Kinto and PouchDB Server")
    args = parser.parse_args()
    changes: dict[str, Any] = {name: value for name in ("seconds", "repeats") if (value := getattr(args, name))}
    if args.levels:
        changes["levels"] = tuple(int(level) for level in args.levels.split(","))
    if args.skip_peers:
        changes["peers"] = False
    plan = dataclasses.replace(Plan.smoke() if args.smoke else Plan(), **changes)
    results = run(plan, args.out)
    print(f"report: {args.out / 'results.md'} ({results.seconds / 60:.1f} min)")


if __name__ == "__main__":
    main()
