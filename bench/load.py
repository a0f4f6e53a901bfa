"""The load generator every HTTP system is measured with: wrk (C, one thread) replaying request templates.

A workload is a list of ``RequestTemplate``; ``run_wrk`` writes them to a file, runs ``wrk`` with
``bench/replay.lua`` for a fixed time at one concurrency (closed loop: each connection sends its next request when
the answer to the last arrived) and returns a ``Point``: throughput, latency percentiles, non-2xx answers, and
the CPU that wrk itself and the measured server used, so a report can show the generator's share of the machine.

``${seq}`` in a template's path or body is replaced per request by a value no earlier request used (see
replay.lua); ``Offsets`` keeps that true across several runs against the same server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPLAY = Path(__file__).resolve().parent / "replay.lua"
PACED = Path(__file__).resolve().parent / "paced.lua"
OVERLOAD = Path(__file__).resolve().parent / "overload.lua"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class RequestTemplate:
    """One HTTP request; ``${seq}`` in ``path`` or ``body`` is filled per request. No tabs or newlines anywhere."""

    method: str
    path: str
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        fields = [self.method, self.path, self.body]
        for name, value in self.headers.items():
            fields += [name, value]
        if any("\t" in part or "\n" in part for part in fields):
            raise ValueError(f"a request template may not hold tabs or newlines: {self.method} {self.path}")
        return "\t".join(fields)


@dataclass(slots=True)
class Point:
    """One wrk run: ``connections`` clients for ``seconds``."""

    connections: int
    seconds: float
    requests: int
    throughput: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    #: Answers that were not 2xx/3xx plus socket errors and timeouts: a run with any is not a valid point.
    errors: int
    #: CPU time used, as a share of the whole machine (all cores) during the run.
    generator_cpu: float
    server_cpu: float
    #: The server's CPU time per request answered, ms (all its processes).
    cpu_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


class Offsets:
    """The next ``${seq}`` round per template set, so runs against one server never reuse a record name."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def take(self, name: str, templates: int, connections: int, requests_bound: int) -> int:
        """The offset for a run of at most ``requests_bound`` requests; reserves the rounds it may use."""
        offset = self._next.get(name, 0)
        self._next[name] = offset + (requests_bound + connections) // max(templates, 1) + 2
        return offset


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed: `make bench` installs the Debian package wrk")
    return binary


@dataclass(frozen=True, slots=True)
class WrkRun:
    """What one wrk run printed (the JSON lines of its script's done()) and the CPU it and the server used."""

    lines: list[dict[str, Any]]
    wall_seconds: float
    generator_seconds: float
    server_seconds: float

    @property
    def summary(self) -> dict[str, Any]:
        """replay.lua's line: counts and latency percentiles of every answer."""
        return self.lines[0]


def wrk(
    url: str,
    templates: list[RequestTemplate],
    *,
    connections: int,
    seconds: float,
    script: Path,
    script_args: list[str],
    server_pids: list[int],
    timeout_seconds: float = 10.0,
) -> WrkRun:
    """Runs wrk with ``script`` (replay.lua or one built on it) over ``templates`` (given as its first argument,
    then ``script_args``)."""
    if not templates:
        raise ValueError("no request templates")
    with tempfile.NamedTemporaryFile("w", prefix="bench-templates-", suffix=".tsv", delete=False) as file:
        file.write("\n".join(template.line() for template in templates) + "\n")
    command = [
        wrk_binary(),
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(seconds))}s",
        "--timeout",
        f"{timeout_seconds:g}s",
        "--script",
        str(script),
        url,
        "--",
        file.name,
        *script_args,
    ]
    server_before = cpu_seconds(server_pids)
    try:
        output, generator_seconds = run_generator(command)
    finally:
        os.unlink(file.name)
    server_used = cpu_seconds(server_pids) - server_before
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return WrkRun(lines, lines[0]["duration_us"] / 1e6, generator_seconds, server_used)


def run_wrk(
    url: str,
    templates: list[RequestTemplate],
    *,
    connections: int,
    seconds: float,
    offset: int = 0,
    server_pids: list[int] | None = None,
    timeout_seconds: float = 10.0,
    rate: float | None = None,
) -> Point:
    """Runs wrk against ``url`` (scheme://host:port) and returns the measured point; with ``rate`` the requests
    leave at that many per second (paced.lua) instead of as fast as the connections allow."""
    run = wrk(
        url,
        templates,
        connections=connections,
        seconds=seconds,
        script=PACED if rate else REPLAY,
        script_args=[str(offset), *([f"{rate:.1f}"] if rate else [])],
        server_pids=server_pids or [],
        timeout_seconds=timeout_seconds,
    )
    summary, wall = run.summary, run.wall_seconds
    latency = summary["latency_us"]
    return Point(
        connections=connections,
        seconds=wall,
        requests=summary["requests"],
        throughput=summary["requests"] / wall,
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        errors=sum(summary["errors"].values()),
        generator_cpu=run.generator_seconds / (wall * CORES),
        server_cpu=run.server_seconds / (wall * CORES),
        cpu_ms=run.server_seconds / max(summary["requests"], 1) * 1000,
    )


def run_generator(command: list[str]) -> tuple[str, float]:
    """Runs a load generator to its end; its stdout and the CPU seconds it used (its own, from wait4)."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        assert process.stdout is not None
        output = process.stdout.read().decode()  # a few lines; read to the end before reaping
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(
                f"{command[0]} failed ({process.returncode}): {errors.read().decode().strip() or output}"
            )
    return output, usage.ru_utime + usage.ru_stime


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                queue += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the live processes ``pids`` have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


def settle(pids: list[int], *, at_least: float = 0.5, at_most: float = 30.0) -> None:
    """Waits until the processes ``pids`` are all but idle (under a fifth of a core over 0.2 s), ``at_least`` and at
    most ``at_most`` seconds. wrk stops with requests in flight and the server runs them on: a full pull costs ~15 ms
    of CPU, so 64 of them keep a process busy for a second, holding places in flight the next run would be refused."""
    time.sleep(at_least)
    deadline = time.monotonic() + at_most - at_least
    used = cpu_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = cpu_seconds(pids)
        if now - used < 0.04:
            return
        used = now


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
