"""GET /metrics (issue 22): requests counted and timed by service, operation and outcome, with labels only from the
app's own tables; the ``SYNCSVC_METRICS`` setting (open, developer Basic auth, off); the sum over ``--workers N``."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from syncsvc import rediskeys
from syncsvc.errors import BackendUnavailableError, InvalidLambdaFunctionOutputError, SyncsvcError
from syncsvc.outbox import relay
from syncsvc.store import connection
from syncsvc.store.backend import backend
from syncsvc.triggers import LambdaContext, Rejected, TriggerRegistry
from syncsvc.triggers.runner import TriggerRunner
from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, Boto, Raw, free_port
from tests.phones import notification, push_pool, receive, subscribed_pair
from tests.servers import syncsvc_process
from tests.streams import LANES, SHARDS, create_topic, read_topic, relay_process, serving_with_relay, streaming_pool

REPO = Path(__file__).resolve().parent.parent
#: /metrics is made at most once a second (syncsvc.metrics.Exposition): a read this long after another is fresh.
FRESH = 1.1


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics text: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def sample(name: str, **labels: str) -> float:
    """A value of this process's metrics (the in-process test servers'), 0 when never set."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Waits, bounded, for what the server does right after the client saw its effect."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def read_metrics(endpoint: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(endpoint + "/metrics", headers=headers) as response:
        return response.status, await response.text(), dict(response.headers)


async def fresh_metrics(endpoint: str) -> str:
    await asyncio.sleep(FRESH)
    status, text, headers = await read_metrics(endpoint)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return text


async def test_requests_are_counted_and_timed_by_service_operation_and_outcome(endpoint: str, boto: Boto) -> None:
    before = await fresh_metrics(endpoint)
    pool = await boto.new_pool()
    me = {"IdentityPoolId": pool, "IdentityId": f"us-east-1:{uuid.uuid4()}", "DatasetName": "settings"}
    await boto.call(boto.sync, "list_records", **me)
    await boto.call(boto.sync, "list_records", **me)
    with pytest.raises(boto.sync.exceptions.ResourceNotFoundException):
        await boto.call(boto.sync, "describe_dataset", **me)
    after = await fresh_metrics(endpoint)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "syncsvc_http_requests_total"
    assert grew(requests, service="cognito-identity", operation="CreateIdentityPool", outcome="ok") == 1
    assert grew(requests, service="cognito-sync", operation="ListRecords", outcome="ok") == 2
    assert grew(requests, service="cognito-sync", operation="DescribeDataset", outcome="ResourceNotFoundException") == 1
    timed = "syncsvc_http_request_duration_seconds"
    assert grew(f"{timed}_count", service="cognito-sync", operation="ListRecords") == 2
    assert grew(f"{timed}_sum", service="cognito-sync", operation="ListRecords") > 0
    assert grew(f"{timed}_bucket", service="cognito-sync", operation="ListRecords", le="+Inf") == 2
    assert grew(requests, service="syncsvc", operation="/metrics", outcome="ok") >= 1


async def test_labels_come_from_the_app_tables_never_from_what_a_client_sent(endpoint: str, raw: Raw) -> None:
    before = await fresh_metrics(endpoint)
    made_up = f"Invented{uuid.uuid4().hex}"
    status, _, _ = await raw.identity(made_up, {})
    assert status == 400
    status, _, _ = await raw.send("GET", f"/{made_up}/nowhere")
    assert status == 404
    after = await fresh_metrics(endpoint)
    assert made_up not in after
    requests = "syncsvc_http_requests_total"
    unknown_target = {"service": "cognito-identity", "operation": "unknown", "outcome": "UnknownOperationException"}
    assert value(after, requests, **unknown_target) - value(before, requests, **unknown_target) == 1
    assert value(after, requests, service="syncsvc", operation="unknown", outcome="UnknownOperationException") >= 1


@pytest.mark.parametrize("overrides", [{"metrics": "developer"}])
async def test_developer_metrics_ask_for_a_developer_pair_over_basic_auth(endpoint: str) -> None:
    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    status, _, headers = await read_metrics(endpoint)
    assert (status, headers["WWW-Authenticate"]) == (401, 'Basic realm="syncsvc metrics"')
    for refused in (basic(DEVELOPER_KEY, DEVELOPER_SECRET + "x"), basic("AKIDNOBODY", DEVELOPER_SECRET), "Basic %%%"):
        status, text, _ = await read_metrics(endpoint, Authorization=refused)
        assert status == 401
        assert "syncsvc_http_requests_total" not in text
    status, text, _ = await read_metrics(endpoint, Authorization=basic(DEVELOPER_KEY, DEVELOPER_SECRET))
    assert status == 200
    assert "syncsvc_http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize("overrides", [{"metrics": "off"}])
async def test_metrics_off_are_not_served(endpoint: str) -> None:
    status, text, _ = await read_metrics(endpoint)
    assert status == 404
    assert "syncsvc_http_requests_total" not in text


def _get(url: str) -> tuple[int, str]:
    """One GET over a new connection (so SO_REUSEPORT spreads them over the workers)."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback test URL)
        body: bytes = response.read()
        return response.status, body.decode()


async def test_every_worker_answers_with_the_sum_over_all_workers(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> None:
    def healthz_count(text: str) -> float:
        return value(text, "syncsvc_http_requests_total", service="syncsvc", operation="/healthz", outcome="ok")

    with syncsvc_process(redis_url, tmp_path / "serve.log", workers=2) as served:
        await asyncio.sleep(FRESH)
        before = healthz_count(await asyncio.to_thread(lambda: _get(served.url + "/metrics")[1]))
        for _ in range(60):  # over new connections: both workers take some (all on one: 2^-59)
            assert (await asyncio.to_thread(_get, served.url + "/healthz"))[0] == 200
        await asyncio.sleep(FRESH)
        reads: list[Any] = [await asyncio.to_thread(_get, served.url + "/metrics") for _ in range(8)]
    counts = {healthz_count(text) - before for _, text in reads}
    assert counts == {60}


@pytest.mark.timeout(120)  # a fresh broker takes a while to elect its transaction coordinator
async def test_the_relay_counts_its_transactions_and_changes_and_reports_what_waits(
    redis_url: str, warm_kafka: str, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay, "MEASURE_SECONDS", 0.2)  # the lane reads its backlog every 0.2 s instead of 10 s
    run = uuid.uuid4().hex[:8]
    identity = f"us-east-1:{uuid.uuid4()}"
    lane = str(rediskeys.shard_of(identity, SHARDS) % LANES)

    def published() -> float:
        return sample("syncsvc_relay_records_published_total", lane=lane)

    committed_before = sample("syncsvc_relay_transactions_total", lane=lane, outcome="committed")
    aborted_before = sample("syncsvc_relay_transactions_total", lane=lane, outcome="aborted")
    published_before = published()
    timed_before = sample("syncsvc_relay_transaction_duration_seconds_count", lane=lane)
    async with serving_with_relay(redis_url, warm_kafka, run=run, shards=SHARDS, relay_lanes=LANES) as endpoint:
        boto, topic = Boto(endpoint), f"changes-{run}"
        await create_topic(warm_kafka, topic)
        names = {"IdentityPoolId": await streaming_pool(boto, topic), "IdentityId": identity, "DatasetName": "d"}
        token = (await boto.call(boto.sync, "list_records", **names))["SyncSessionToken"]
        for count in range(5):
            patch = {"Op": "replace", "Key": "k", "Value": str(count), "SyncCount": count}
            await boto.call(boto.sync, "update_records", **names, SyncSessionToken=token, RecordPatches=[patch])
        assert len(await read_topic(warm_kafka, topic, 5)) == 5
        # The lane's next reading after its last commit: its outboxes hold only the entry at the published position
        # (trimming keeps it), and nothing waits.
        async with asyncio.timeout(10):
            while published() - published_before < 5 or sample("syncsvc_outbox_backlog_entries", lane=lane) != 1:
                await asyncio.sleep(0.05)
        assert sample("syncsvc_relay_behind_seconds", lane=lane) == 0
    committed = sample("syncsvc_relay_transactions_total", lane=lane, outcome="committed") - committed_before
    assert published() - published_before == 5
    assert 1 <= committed <= 5
    assert sample("syncsvc_relay_transaction_duration_seconds_count", lane=lane) - timed_before == committed
    assert sample("syncsvc_relay_transactions_total", lane=lane, outcome="aborted") == aborted_before


async def test_push_sockets_messages_and_replacements_are_counted(endpoint: str, boto: Boto) -> None:
    async with aiohttp.ClientSession() as session:
        phone, tablet = await subscribed_pair(session, await push_pool(boto), endpoint)
        sockets, sent = sample("syncsvc_push_sockets"), sample("syncsvc_push_messages_sent_total")
        replaced = sample("syncsvc_push_socket_closes_total", reason="replaced")
        async with await phone.connect() as older:
            await until(lambda: sample("syncsvc_push_sockets") == sockets + 1)
            sync_count = await tablet.write("dark")
            assert await receive(older) == notification(phone, sync_count)
            await until(lambda: sample("syncsvc_push_messages_sent_total") == sent + 1)
            async with await phone.connect() as newer:
                closed = await older.receive(timeout=5)
                assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, 4009)
                assert sample("syncsvc_push_socket_closes_total", reason="replaced") == replaced + 1
                await until(lambda: sample("syncsvc_push_sockets") == sockets + 1)  # the newer one alone
                assert not newer.closed
        await until(lambda: sample("syncsvc_push_sockets") == sockets)


async def test_trigger_calls_are_counted_by_outcome_and_timed() -> None:
    def accept(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return event

    def refuse(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        raise Rejected("no")

    def boom(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        raise RuntimeError("a bug")

    names = {kind: f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("accept", "refuse", "boom")}
    registry = TriggerRegistry()
    registry.register(names["accept"], accept)
    registry.register(names["refuse"], refuse)
    registry.register(names["boom"], boom)
    runner = TriggerRunner(registry, region="us-east-1")
    await runner.start()
    try:
        for _ in range(2):
            await runner.invoke(names["accept"], {"n": 1}, identity=None)
        with pytest.raises(InvalidLambdaFunctionOutputError):
            await runner.invoke(names["refuse"], {}, identity=None)
        with pytest.raises(SyncsvcError):
            await runner.invoke(names["boom"], {}, identity=None)
    finally:
        await runner.close()
    calls = "syncsvc_trigger_calls_total"
    assert sample(calls, trigger=names["accept"], outcome="ok") == 2
    assert sample(calls, trigger=names["refuse"], outcome="rejected") == 1
    assert sample(calls, trigger=names["boom"], outcome="TriggerRaised") == 1
    assert sample("syncsvc_trigger_call_duration_seconds_count", trigger=names["accept"]) == 2


async def test_data_key_cache_lookups_are_counted(boto: Boto) -> None:
    hits, misses = (sample("syncsvc_kms_data_key_cache_lookups_total", result=r) for r in ("hit", "miss"))
    pool = await boto.new_pool()
    me = {"IdentityPoolId": pool, "IdentityId": f"us-east-1:{uuid.uuid4()}", "DatasetName": "settings"}
    for count in range(3):
        token = (await boto.call(boto.sync, "list_records", **me))["SyncSessionToken"]
        patch = {"Op": "replace", "Key": "k", "Value": str(count), "SyncCount": count}
        await boto.call(boto.sync, "update_records", **me, SyncSessionToken=token, RecordPatches=[patch])
    grew_hits = sample("syncsvc_kms_data_key_cache_lookups_total", result="hit") - hits
    grew_misses = sample("syncsvc_kms_data_key_cache_lookups_total", result="miss") - misses
    assert grew_misses >= 1  # the new identity's key was not cached
    assert grew_hits >= 2  # the later writes found it


async def test_credentials_issued_are_counted_by_kind(boto: Boto) -> None:
    issued = "syncsvc_credentials_issued_total"
    tokens, credentials = (sample(issued, kind=kind) for kind in ("openid_token", "temporary_credentials"))
    pool = await boto.new_pool()
    identity = (await boto.call(boto.identity, "get_id", IdentityPoolId=pool))["IdentityId"]
    await boto.call(boto.identity, "get_open_id_token", IdentityId=identity)
    await boto.call(boto.identity, "get_open_id_token", IdentityId=identity)
    await boto.call(boto.identity, "get_credentials_for_identity", IdentityId=identity)
    assert sample(issued, kind="openid_token") == tokens + 2
    assert sample(issued, kind="temporary_credentials") == credentials + 1


async def test_scripts_are_timed_and_redis_failures_counted(boto: Boto) -> None:
    runs = sample("syncsvc_redis_script_duration_seconds_count", script="update_records")
    pool = await boto.new_pool()
    me = {"IdentityPoolId": pool, "IdentityId": f"us-east-1:{uuid.uuid4()}", "DatasetName": "settings"}
    token = (await boto.call(boto.sync, "list_records", **me))["SyncSessionToken"]
    patch = {"Op": "replace", "Key": "k", "Value": "v", "SyncCount": 0}
    await boto.call(boto.sync, "update_records", **me, SyncSessionToken=token, RecordPatches=[patch])
    assert sample("syncsvc_redis_script_duration_seconds_count", script="update_records") == runs + 1

    failures = sample("syncsvc_redis_errors_total", error="ConnectionError")
    nowhere = connection.connect(f"redis://127.0.0.1:{free_port()}/0")  # a real client; nothing listens there
    try:
        with pytest.raises(BackendUnavailableError):
            async with backend():
                await nowhere.ping()
    finally:
        await nowhere.aclose()
    assert sample("syncsvc_redis_errors_total", error="ConnectionError") == failures + 1


async def test_every_metric_the_grafana_dashboard_queries_is_exported(endpoint: str) -> None:
    dashboard = json.loads((REPO / "deploy" / "grafana" / "syncsvc.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bsyncsvc_[a-z_]+", target["expr"])
    }
    assert len(queried) >= 15
    _, text, _ = await read_metrics(endpoint)
    families = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}
    for name in sorted(queried):
        histogram = re.sub(r"_(bucket|count|sum)$", "", name)
        assert name in families or families.get(histogram) == "histogram", f"{name} is not exported"


async def test_json_logs_carry_each_request_and_never_a_secret_or_a_value(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    value = f"private-{uuid.uuid4().hex}"
    settings = {"SYNCSVC_LOG_FORMAT": "json", "SYNCSVC_ACCESS_LOG": "true"}
    with syncsvc_process(redis_url, log, settings) as served:
        boto = Boto(served.url)
        pool = await boto.new_pool()
        me = {"IdentityPoolId": pool, "IdentityId": f"us-east-1:{uuid.uuid4()}", "DatasetName": "settings"}
        listed = await boto.call(boto.sync, "list_records", **me)
        patch = {"Op": "replace", "Key": "k", "Value": value, "SyncCount": 0}
        written = await boto.call(
            boto.sync, "update_records", **me, SyncSessionToken=listed["SyncSessionToken"], RecordPatches=[patch]
        )
        request_id = written["ResponseMetadata"]["RequestId"]
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert {"time", "process", "level", "logger", "message"} <= lines[0].keys()
    (access,) = [line for line in lines if line.get("request_id") == request_id]
    assert access["logger"] == "syncsvc.access"
    assert (access["service"], access["operation"], access["outcome"], access["status"]) == (
        "cognito-sync",
        "UpdateRecords",
        "ok",
        200,
    )
    assert access["duration_ms"] > 0
    for secret in (value, DEVELOPER_SECRET, listed["SyncSessionToken"]):
        assert secret not in text


@pytest.mark.timeout(120)
async def test_a_lone_relay_serves_its_metrics_on_its_own_port(
    redis_url: str, warm_kafka: str, redis_client: Redis
) -> None:
    port = free_port()
    relay_run = uuid.uuid4().hex[:8]
    process = await relay_process(
        redis_url,
        warm_kafka,
        SYNCSVC_RELAY_LANES=str(LANES),
        run=relay_run,
        SYNCSVC_RELAY_METRICS_PORT=str(port),
    )
    try:
        text = ""
        async with asyncio.timeout(60):
            while "syncsvc_relay_transactions_total" not in text:
                await asyncio.sleep(0.2)
                try:
                    status, text, _ = await read_metrics(f"http://127.0.0.1:{port}")
                except aiohttp.ClientConnectionError:
                    continue
                assert status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    lanes = {
        labels["lane"]
        for (name, labels_list) in samples(text)
        if name == "syncsvc_outbox_backlog_entries"
        for labels in [dict(labels_list)]
    }
    assert lanes == {str(lane) for lane in range(LANES)}
