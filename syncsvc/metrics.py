"""Prometheus metrics of a syncsvc process (issue 22): what is counted and timed, and the text ``/metrics`` answers.

Names and labels follow Prometheus' conventions: the unit in the name (``_seconds``, ``_bytes``), ``_total`` on
counters (prometheus-client adds it), and bounded label sets: a service, an operation, an outcome, never an identity,
a pool, a dataset or a key.

Under ``syncsvc serve --workers N`` each worker is a process of its own. prometheus-client's multiprocess mode keeps
every value in a memory-mapped file of a directory the processes share (``PROMETHEUS_MULTIPROC_DIR``, which the
parent makes and sets before it starts its workers, and removes when they end), so whichever worker answers
``/metrics`` answers with the sum of them all. The mode is chosen when prometheus-client is first imported: this
module is imported by every worker after the variable is set (the workers are spawned, not forked).
"""

from __future__ import annotations

import os
import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

#: prometheus-client's variable naming the directory its processes share (see the module).
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: The text format's content type: version 0.0.4, which every Prometheus reads (what ``generate_latest`` writes).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: Request latency buckets in seconds: a write alone takes ~1 ms, tens of ms at the peak; a full pull 20 ms to 1 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "syncsvc_http_requests",
    "HTTP requests answered, by AWS service (its signing name; syncsvc for health and discovery), operation, and "
    "outcome (ok, or the AWS error type answered).",
    ["service", "operation", "outcome"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "syncsvc_http_request_duration_seconds",
    "Time from a request reaching the app to its answer, by AWS service and operation.",
    ["service", "operation"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS_SHED = Counter(
    "syncsvc_http_requests_shed",
    "Requests refused at once with TooManyRequestsException because the process was at its bound of requests in "
    "flight (SYNCSVC_MAX_REQUESTS_IN_FLIGHT). Most are refused before their operation is known; those refused "
    "after authentication are in syncsvc_http_requests_total too, with that outcome.",
)
HTTP_REQUESTS_IN_FLIGHT = Gauge(
    "syncsvc_http_requests_in_flight",
    "Requests being worked on now, of those the bound counts (summed over the live processes).",
    multiprocess_mode="livesum",
)


class Exposition:
    """The text ``/metrics`` answers, made at most once per ``fresh_seconds``: making it reads every worker's file
    (under ``--workers N``), and a scraper or a flood of requests to an open ``/metrics`` must not cost more than
    that. Blocking (it reads files): call :meth:`text` off the event loop."""

    def __init__(self, fresh_seconds: float = 1.0) -> None:
        self.fresh_seconds = fresh_seconds
        self._text = b""
        self._made = float("-inf")

    def text(self) -> bytes:
        now = time.monotonic()
        if now - self._made >= self.fresh_seconds:
            self._text = generate_latest(_registry())
            self._made = now
        return self._text


def _registry() -> CollectorRegistry:
    if MULTIPROCESS_DIR not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
