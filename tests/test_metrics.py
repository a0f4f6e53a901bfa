"""GET /metrics (issue 22): requests counted and timed by service, operation and outcome, with labels only from the
app's own tables; the ``SYNCSVC_METRICS`` setting (open, developer Basic auth, off); the sum over ``--workers N``."""

from __future__ import annotations

import asyncio
import base64
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, Boto, Raw
from tests.servers import syncsvc_process

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
