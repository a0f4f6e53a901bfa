"""OpenTelemetry tracing (issue 22): a server span per request with the Redis scripts and trigger calls as children,
a client's ``traceparent`` continued, the write's trace carried into the Kafka record's headers by the relay (a real
consumer reads it and continues the trace), and ``SYNCSVC_TRACING=otlp`` exporting to an OTLP/HTTP collector.

In-process servers are traced with the SDK's in-memory exporter; the OTLP test runs ``syncsvc serve`` as a process
and reads what it exports with a collector of the test's (an aiohttp server decoding the OTLP protobuf)."""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import propagate
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind
from redis.asyncio import Redis

from syncsvc import tracing
from syncsvc.outbox.record import stream_record
from syncsvc.triggers import LambdaContext, TriggerRegistry
from syncsvc.triggers.runner import TriggerRunner
from tests.conftest import Boto, Raw
from tests.servers import syncsvc_process
from tests.streams import LANES, SHARDS, create_topic, read_topic, serving_with_relay, streaming_pool

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """This process traced into memory while the test runs."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.shutdown()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def same(one: SpanContext | None, other: SpanContext | None) -> bool:
    """The same span (one seen from afar: a link, a propagated context, compares unequal as a tuple)."""
    assert one is not None
    assert other is not None
    return (one.trace_id, one.span_id) == (other.trace_id, other.span_id)


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


async def test_tracing_is_off_by_default_and_costs_a_shared_nothing() -> None:
    assert not tracing.enabled()
    assert tracing.span("a") is tracing.span("b")
    assert tracing.traceparent() == ""
    assert tracing.trace_id() == ""
    fields = {"topic": "t", "pool": "p", "identity": "i", "dataset": "d", "sc": "1", "lm": "1", "records": "[]"}
    headers = stream_record(0, "1-0", fields, cipher=None).headers  # type: ignore[arg-type]  # no records to open
    assert [name for name, _ in headers] == ["syncsvc-change-id", "content-type"]


@pytest.mark.timeout(120)  # a fresh broker takes a while to elect its transaction coordinator
async def test_a_traced_write_reaches_the_stream_with_its_trace_and_a_consumer_continues_it(
    redis_url: str, warm_kafka: str, redis_client: Redis, spans: InMemorySpanExporter
) -> None:
    run = uuid.uuid4().hex[:8]
    async with serving_with_relay(redis_url, warm_kafka, run=run, shards=SHARDS, relay_lanes=LANES) as endpoint:
        boto, topic = Boto(endpoint), f"traced-{run}"
        await create_topic(warm_kafka, topic)
        names = {"IdentityPoolId": await streaming_pool(boto, topic), "IdentityId": f"us-east-1:{uuid.uuid4()}"}
        names["DatasetName"] = "d"
        token = (await boto.call(boto.sync, "list_records", **names))["SyncSessionToken"]

        def continue_the_client_trace(request: Any, **_: Any) -> None:
            request.headers["traceparent"] = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"

        boto.sync.meta.events.register("before-sign.cognito-sync.UpdateRecords", continue_the_client_trace)
        patch = {"Op": "replace", "Key": "k", "Value": "v", "SyncCount": 0}
        await boto.call(boto.sync, "update_records", **names, SyncSessionToken=token, RecordPatches=[patch])
        (record,) = await read_topic(warm_kafka, topic, 1)

    (write,) = named(spans, "cognito-sync.UpdateRecords")
    assert write.kind == SpanKind.SERVER
    assert write.parent is not None
    assert format(write.parent.span_id, "016x") == CLIENT_SPAN
    trace_id, write_span = hex_ids(write)
    assert trace_id == CLIENT_TRACE
    assert write.attributes is not None
    assert write.attributes["rpc.method"] == "UpdateRecords"
    assert write.attributes["http.response.status_code"] == 200
    assert names["IdentityId"] not in str(write.attributes)  # the route's template, never the path
    script = next(span for span in named(spans, "EVALSHA update_records") if span.parent == write.context)
    assert script.attributes is not None
    assert script.attributes["db.system.name"] == "redis"

    headers = {name: value.decode() for name, value in record.headers}
    assert headers["traceparent"] == f"00-{CLIENT_TRACE}-{write_span}-01"
    linked = [
        span for span in named(spans, "relay publish") for link in span.links if same(link.context, write.context)
    ]
    assert len(linked) == 1  # the transaction that published it

    # the consumer's own work on the change joins the write's trace
    provider = TracerProvider()
    consumer_spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(consumer_spans))
    with provider.get_tracer("consumer").start_as_current_span("handle change", context=propagate.extract(headers)):
        pass
    (handled,) = consumer_spans.get_finished_spans()
    assert hex_ids(handled)[0] == CLIENT_TRACE
    assert handled.parent is not None
    assert handled.parent.span_id == write.context.span_id


async def test_every_request_is_a_span_named_by_its_operation_and_refusals_carry_their_error(
    raw: Raw, spans: InMemorySpanExporter
) -> None:
    status, body, _ = await raw.identity("DescribeIdentityPool", {"IdentityPoolId": "us-east-1:nonexistent"})
    assert status == 400
    (refused,) = named(spans, "cognito-identity.DescribeIdentityPool")
    assert refused.attributes is not None
    assert refused.attributes["error.type"] == body["__type"]
    assert refused.parent is None  # no traceparent sent: a trace of its own


async def test_a_trigger_call_is_a_child_span(spans: InMemorySpanExporter) -> None:
    def accept(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return event

    name = f"accept-{uuid.uuid4().hex[:8]}"
    registry = TriggerRegistry()
    registry.register(name, accept)
    runner = TriggerRunner(registry, region="us-east-1")
    await runner.start()
    try:
        with tracing.span("request") as parent:
            await runner.invoke(name, {"n": 1}, identity=None)
    finally:
        await runner.close()
    (called,) = named(spans, f"trigger {name}")
    assert parent is not None
    assert called.parent == parent.get_span_context()
    assert called.attributes is not None
    assert called.attributes["faas.invoked_name"] == name


def test_otlp_exports_a_served_process_spans_to_the_collector(redis_url: str, tmp_path: Path) -> None:
    received: list[ExportTraceServiceRequest] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            message = ExportTraceServiceRequest()
            message.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(message)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    settings = {
        "SYNCSVC_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}",
        "OTEL_SERVICE_NAME": "syncsvc-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    try:
        with syncsvc_process(redis_url, tmp_path / "serve.log", settings):  # ready: it answered /readyz
            for _ in range(300):  # bounded: 15 s
                if any("syncsvc./readyz" in _span_names(message) for message in list(received)):
                    break
                time.sleep(0.05)
    finally:
        collector.shutdown()
    assert any("syncsvc./readyz" in _span_names(message) for message in received)
    services = {
        attribute.value.string_value
        for message in received
        for resource_spans in message.resource_spans
        for attribute in resource_spans.resource.attributes
        if attribute.key == "service.name"
    }
    assert services == {"syncsvc-under-test"}


def _span_names(message: ExportTraceServiceRequest) -> set[str]:
    return {span.name for resource in message.resource_spans for scope in resource.scope_spans for span in scope.spans}
