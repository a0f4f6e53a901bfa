"""A quick look at one part of the benchmark while working on it (not the report: `make bench` is the measurement).

    python -m bench.probe [--workers 1] [--workloads write] [--levels 1,64] [--seconds 5] [--paced] [--overload]
                          [--floor]

Starts its own Redis and Kafka and one ``syncsvc serve``, runs the chosen HTTP workloads at the chosen concurrency
levels with wrk (the same templates and wrk script as `make bench`), optionally the write workload paced at half the
peak just measured, at three times it (``--overload``: what is shed, the admitted latency) and the floor at the
same points, and prints one line per point: throughput, p50, p99, and the
server's CPU time per request (CPU seconds over requests, all its processes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.load import Point
from bench.run import WORKLOADS, Plan, Run, _answer_of, infrastructure
from bench.systems.base import HttpSystem, free_port
from bench.systems.syncsvc import SyncSvc


def _line(name: str, workload: str, point: Point) -> str:
    return (
        f"{name:12} {workload:6} c={point.connections:<3} {point.throughput:8,.0f}/s  p50 {point.p50_ms:6.2f} ms  "
        f"p99 {point.p99_ms:7.2f} ms  server cpu {point.cpu_ms:.3f} ms/request  errors {point.errors}"
    )


def _measure(
    bench: Run, system: HttpSystem, workloads: list[str], levels: list[int], seconds: float, profile: Path | None
) -> list[Point]:
    points = []
    for workload in workloads:
        templates = asyncio.run(bench._templates(system, workload))
        if isinstance(system, SyncSvc):
            answer = asyncio.run(_answer_of(system.url, templates[0]))
            bench.floor.use(workload, templates, answer, bench.folder / "floor")
        bench._wrk(system, workload, templates, max(levels), 2)  # warm-up, not shown
        for connections in levels:
            last = workload == workloads[-1] and connections == levels[-1]
            with _recorded(system, seconds, profile if last else None):
                point = bench._wrk(system, workload, templates, connections, seconds)
            points.append(point)
            print(_line(system.name, workload, point), flush=True)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--workloads", default="write", help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument("--levels", default="1,64")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--paced", action="store_true", help="also writes paced at half the peak measured")
    parser.add_argument("--overload", action="store_true", help="also writes offered at 3x the peak measured")
    parser.add_argument("--in-flight", type=int, default=Plan().max_in_flight, help="SYNCSVC_MAX_REQUESTS_IN_FLIGHT")
    parser.add_argument("--floor", action="store_true", help="also the floor, at the same points")
    parser.add_argument("--logs", type=Path, help="keep the server's log files in this folder")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy records the server during the last point (the paced one with --paced, else the overload one "
        "with --overload) into this file, one "
        "per process (.svg: a flame graph; .txt: collapsed stacks)",
    )
    args = parser.parse_args()
    workloads = args.workloads.split(",")
    levels = [int(level) for level in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="syncsvc-probe-") as scratch:
        folder = Path(scratch)
        with infrastructure(folder, None, None) as (infra, redis_pid):
            plan = Plan(write_users=2000, seconds=args.seconds, max_in_flight=args.in_flight)
            bench = Run(plan, folder, infra, redis_pid)
            system = SyncSvc(infra, workers=args.workers, max_in_flight=plan.max_in_flight)
            system.start(folder / system.name, free_port())
            rate = 0.0
            try:
                paced = args.paced and "write" in workloads
                last = paced or args.overload
                points = _measure(bench, system, workloads, levels, args.seconds, None if last else args.profile)
                writes = [p.throughput for p, w in zip(points, _each(workloads, levels), strict=True) if w == "write"]
                if paced:
                    rate = max(writes) / 2
                    templates = asyncio.run(system.write_templates(2000))
                    with _recorded(system, args.seconds * 2, args.profile):
                        point = bench._wrk(system, "write", templates, max(levels), args.seconds * 2, rate=rate)
                    print(_line(system.name, f"paced@{rate:,.0f}", point), flush=True)
                if args.overload and writes:
                    templates = asyncio.run(system.write_templates(plan.write_users))
                    with _recorded(system, args.seconds * 2, None if paced else args.profile):
                        for overloaded in bench._overloaded(system, max(writes), templates):
                            print(overloaded, flush=True)
            finally:
                system.stop()
                if args.logs:
                    shutil.copytree(folder / system.name, args.logs, dirs_exist_ok=True)
            if args.floor:
                bench.floor.start(folder / "floor", free_port())
                try:
                    for workload in workloads:
                        templates = asyncio.run(bench._templates(bench.floor, workload))
                        for connections in levels:
                            point = bench._wrk(bench.floor, workload, templates, connections, args.seconds)
                            print(_line("floor", workload, point), flush=True)
                    if rate:  # the floor paced as syncsvc was: a tail the load method makes shows here too
                        templates = asyncio.run(bench._templates(bench.floor, "write"))
                        paced = bench._wrk(bench.floor, "write", templates, max(levels), args.seconds * 2, rate=rate)
                        print(_line("floor", f"paced@{rate:,.0f}", paced), flush=True)
                finally:
                    bench.floor.stop()


@contextlib.contextmanager
def _recorded(system: HttpSystem, seconds: float, into: Path | None) -> Iterator[None]:
    """py-spy samples every server process while the block runs (nothing when ``into`` is None)."""
    if into is None:
        yield
        return
    spy = str(Path(sys.executable).with_name("py-spy"))
    formats = {".svg": "flamegraph", ".txt": "raw", ".json": "speedscope"}
    recorders = [
        subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(pid),
                "-d",
                str(int(seconds)),
                "-r",
                "200",
                "--nonblocking",
                "-f",
                formats[into.suffix],
                "-o",
                str(into.with_stem(f"{into.stem}-{pid}")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in system.pids()
    ]
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.wait(timeout=seconds + 30)


def _each(workloads: list[str], levels: list[int]) -> list[str]:
    return [workload for workload in workloads for _ in levels]


if __name__ == "__main__":
    main()
