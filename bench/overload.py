"""Workload 1 at three times the peak (issue 21): does a syncsvc past its capacity stay responsive?

wrk offers writes at ``factor`` x the peak just measured, paced, over more connections than the server admits
requests at once (``SYNCSVC_MAX_REQUESTS_IN_FLIGHT`` per process), so the server must refuse the excess.
``overload.lua`` tells the answers apart: admitted writes (200) with the latency of each, refusals (429
TooManyRequestsException, which the SDKs retry), anything else. Meanwhile a probe asks ``/healthz`` every 20 ms (a
load balancer's view). The point: answers per second, the shed share, the admitted p50/p99, the health p99.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import asdict, dataclass

from bench.load import CORES, OVERLOAD, RequestTemplate, wrk

_PROBE_EVERY_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class OverloadPoint:
    #: Requests per second asked of wrk (factor x the peak) and answers per second got.
    offered: float
    answered: float
    connections: int
    admitted: int
    shed: int
    #: Answers neither 200 nor a refusal, plus socket errors and timeouts: 0 for a responsive server.
    other: int
    admitted_p50_ms: float
    admitted_p99_ms: float
    admitted_max_ms: float
    #: wrk's p99 over every answer, refusals (most of them) included: how soon the excess is answered.
    answered_p99_ms: float
    healthz_probes: int
    healthz_p99_ms: float
    healthz_max_ms: float
    #: The prober's longest oversleep past its 20 ms wait: the machine not running the bench's own thread (a pause
    #: of the whole machine, which every latency here then includes); tens of ms at most on a healthy one.
    prober_stall_max_ms: float
    server_cpu: float

    @property
    def shed_share(self) -> float:
        return self.shed / max(self.admitted + self.shed + self.other, 1)

    def line(self, seconds: float) -> str:
        """The point in one line (``seconds``: how long it was offered)."""
        return (
            f"offered {self.offered:,.0f}/s: answered {self.answered:,.0f}/s (p99 {self.answered_p99_ms:.1f} ms), "
            f"shed {self.shed_share:.0%}, admitted {self.admitted / seconds:,.0f}/s p99 {self.admitted_p99_ms:.1f} ms, "
            f"/healthz p99 {self.healthz_p99_ms:.1f} ms (prober stalled {self.prober_stall_max_ms:.0f} ms at most)"
        )

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "shed_share": self.shed_share}


class HealthProbe(threading.Thread):
    """GET ``url``/healthz every 20 ms until stopped; the latency of each answer (a failed one counts as 10 s)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url + "/healthz"
        self.latencies_ms: list[float] = []
        self.stall_max_ms = 0.0
        self.halt = threading.Event()

    def run(self) -> None:
        while True:
            asleep = time.perf_counter()
            if self.halt.wait(_PROBE_EVERY_SECONDS):
                return
            started = time.perf_counter()
            self.stall_max_ms = max(self.stall_max_ms, (started - asleep - _PROBE_EVERY_SECONDS) * 1000)
            try:
                with urllib.request.urlopen(self.url, timeout=10) as answer:
                    answer.read()
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
            except OSError:
                self.latencies_ms.append(10_000.0)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else 0.0


def measure(
    url: str,
    templates: list[RequestTemplate],
    *,
    rate: float,
    connections: int,
    seconds: float,
    offset: int,
    server_pids: list[int],
) -> OverloadPoint:
    probe = HealthProbe(url)
    probe.start()
    try:
        run = wrk(
            url,
            templates,
            connections=connections,
            seconds=seconds,
            script=OVERLOAD,
            script_args=[str(offset), f"{rate:.1f}"],
            server_pids=server_pids,
        )
    finally:
        probe.halt.set()
        probe.join(timeout=15)
    summary, counts = run.summary, run.lines[-1]["overload"]
    errors = summary["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    admitted_us = counts["admitted_us"]
    return OverloadPoint(
        offered=rate,
        answered=summary["requests"] / run.wall_seconds,
        connections=connections,
        admitted=counts["admitted"],
        shed=counts["shed"],
        other=counts["other"] + counts["unmatched"] + socket_errors,
        admitted_p50_ms=admitted_us["p50"] / 1000,
        admitted_p99_ms=admitted_us["p99"] / 1000,
        admitted_max_ms=admitted_us["max"] / 1000,
        answered_p99_ms=summary["latency_us"]["p99"] / 1000,
        healthz_probes=len(probe.latencies_ms),
        healthz_p99_ms=probe.percentile(99),
        healthz_max_ms=max(probe.latencies_ms, default=0.0),
        prober_stall_max_ms=round(probe.stall_max_ms, 1),
        server_cpu=run.server_seconds / (run.wall_seconds * CORES),
    )
