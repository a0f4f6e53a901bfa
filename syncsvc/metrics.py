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


#: Relay transaction buckets in seconds: a few broker round trips on a healthy cluster, up to the relay's timeout.
COMMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

RELAY_TRANSACTIONS = Counter(
    "syncsvc_relay_transactions",
    "Kafka transactions of the relay (each carries a lane's pending changes and positions), by lane and outcome "
    "(committed, or aborted: nothing of it is visible to read_committed consumers, and the lane starts over).",
    ["lane", "outcome"],
)
RELAY_RECORDS = Counter(
    "syncsvc_relay_records_published",
    "Changes published to the stream by committed relay transactions, by lane.",
    ["lane"],
)
RELAY_COMMIT_SECONDS = Histogram(
    "syncsvc_relay_transaction_duration_seconds",
    "One relay transaction, from its first record sent to its commit (committed ones), by lane.",
    ["lane"],
    buckets=COMMIT_BUCKETS,
)
OUTBOX_BACKLOG = Gauge(
    "syncsvc_outbox_backlog_entries",
    "Changes in the outbox of a relay lane's shards (published ones are trimmed after each commit), as the process "
    "holding the lane last read them (every 10 s).",
    ["lane"],
    multiprocess_mode="livemax",
)
RELAY_BEHIND_SECONDS = Gauge(
    "syncsvc_relay_behind_seconds",
    "How long the oldest change of a lane not yet published has waited (0: all published), as the process holding "
    "the lane last read it (every 10 s).",
    ["lane"],
    multiprocess_mode="livemax",
)

PUSH_SOCKETS = Gauge(
    "syncsvc_push_sockets",
    "Device push sockets attached now, summed over the live processes.",
    multiprocess_mode="livesum",
)
PUSH_MESSAGES_SENT = Counter(
    "syncsvc_push_messages_sent",
    "Messages written to device push sockets (notifications, and the answers to resume).",
)
PUSH_NOTIFICATIONS_DROPPED = Counter(
    "syncsvc_push_notifications_dropped",
    "Messages dropped because a socket's queue was full (SYNCSVC_PUSH_QUEUE_SIZE): the socket is closed as a slow "
    "reader (4008) and the device reconnects and resumes, so it misses nothing.",
)
PUSH_SOCKET_CLOSES = Counter(
    "syncsvc_push_socket_closes",
    "Push sockets the server closed, by reason: slow_reader (4008), replaced (4009: a newer connection of the device).",
    ["reason"],
)

#: Trigger call buckets in seconds: an inline handler takes microseconds, a process-isolated one a round trip, up to
#: its timeout (seconds).
TRIGGER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

TRIGGER_CALLS = Counter(
    "syncsvc_trigger_calls",
    "Calls of registered triggers (Cognito Events and user-pool triggers), by trigger and outcome: ok, rejected "
    "(the handler refused the write), throttled (at its max_concurrency; not called), or the failure "
    "(TriggerTimeout, TriggerCrashed, TriggerRaised, TriggerOutputError).",
    ["trigger", "outcome"],
)
TRIGGER_SECONDS = Histogram(
    "syncsvc_trigger_call_duration_seconds",
    "One trigger call, by trigger (throttled ones are not called and not timed).",
    ["trigger"],
    buckets=TRIGGER_BUCKETS,
)
DATA_KEY_CACHE = Counter(
    "syncsvc_kms_data_key_cache_lookups",
    "Lookups of an identity's data key in the process's cache of unwrapped keys, by result (hit, or miss: the key "
    "is read from Redis and unwrapped under its KMS key). The hit ratio is hit / (hit + miss).",
    ["result"],
)
CREDENTIALS_ISSUED = Counter(
    "syncsvc_credentials_issued",
    "Credentials issued to identities, by kind: openid_token (GetOpenIdToken*, signed JWTs) or "
    "temporary_credentials (GetCredentialsForIdentity).",
    ["kind"],
)
RATE_LIMITED = Counter(
    "syncsvc_rate_limited",
    "Calls refused with TooManyRequestsException by a configured rate limit, by limit: IdentityWrites and "
    "PoolWrites (SYNCSVC_WRITES_PER_*_PER_SECOND), GetId and the token calls (per pool).",
    ["limit"],
)

#: Redis call buckets in seconds: a script on a local Redis takes ~0.1 ms; a replica wait up to its timeout (1 s).
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REDIS_SCRIPT_SECONDS = Histogram(
    "syncsvc_redis_script_duration_seconds",
    "One run of a Lua script of the store (every write of user data, identities and KMS keys is one), from the "
    "call to the reply, the replicas' confirmation included when SYNCSVC_REDIS_REPLICA_ACKS asks for it; by script.",
    ["script"],
    buckets=REDIS_BUCKETS,
)
REDIS_ERRORS = Counter(
    "syncsvc_redis_errors",
    "Redis calls that failed, by the driver's error (ConnectionError, TimeoutError, OutOfMemoryError, ...): each "
    "is answered 503 + Retry-After, or retried by the background work that made it.",
    ["error"],
)
