"""OpenTelemetry tracing of a syncsvc process (issue 22): off unless ``SYNCSVC_TRACING=otlp``.

When on, every request answered is a server span named by its operation (``syncsvc.api.tracing``, continuing a
``traceparent`` the client sent), with the Redis scripts it runs (``syncsvc.store.scripts``) and the triggers it calls
(``syncsvc.triggers.runner``) as child spans. A committed change keeps the W3C ``traceparent`` of the request that
wrote it in its outbox entry, and the relay puts it in the Kafka record's headers (``syncsvc.outbox.record``), so a
stream consumer continues the write's trace (``opentelemetry.propagate.extract`` over the record's headers). The
relay's transactions are spans too, linked to the writes they publish.

Spans go to an OTLP collector over HTTP/protobuf (opentelemetry-exporter-otlp-proto-http), configured by
OpenTelemetry's own variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (default ``http://localhost:4318``),
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME`` (default ``syncsvc``), ``OTEL_TRACES_SAMPLER`` and so on. They
are exported in batches from a thread of the SDK's (never on the event loop); a collector that is down costs dropped
spans, not requests.

Off, every helper here is a check of one module variable: :func:`span` returns a shared do-nothing context and
:func:`traceparent` an empty string, so an untraced process pays nothing for the calls. Each process configures its
own tracer (``syncsvc serve`` per worker, ``syncsvc relay``); tests install one with the SDK's in-memory exporter.
Span attributes carry operation names, script names and trigger names only: never an identity, a key or a value.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

#: The header (and outbox field) a span context travels in: W3C Trace Context.
TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_NOTHING: AbstractContextManager[None] = contextlib.nullcontext()

_provider: TracerProvider | None = None
_tracer: Tracer | None = None


def configure(setting: str) -> None:
    """Tracing as ``SYNCSVC_TRACING`` says: ``off`` (nothing), or ``otlp`` (batches to the collector OpenTelemetry's
    variables name)."""
    if setting == "off":
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "syncsvc")}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)


def install(provider: TracerProvider) -> None:
    """Traces this process's work with ``provider`` from now on (:func:`configure`; tests, with an in-memory
    exporter)."""
    global _provider, _tracer
    _provider, _tracer = provider, provider.get_tracer("syncsvc")


def shutdown() -> None:
    """Exports what is still batched and stops tracing (a process ending)."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str, attributes: Mapping[str, str | int] | None = None, *, links: Sequence[Link] = ()
) -> AbstractContextManager[Span | None]:
    """A child span of the current one while the ``with`` block runs (an exception in it is recorded on the span);
    a shared do-nothing context when tracing is off."""
    if _tracer is None:
        return _NOTHING
    return _tracer.start_as_current_span(name, attributes=attributes, links=links)


@contextlib.contextmanager
def server_span(name: str, headers: Mapping[str, str]) -> Iterator[Span | None]:
    """A request's span, continuing the trace of a ``traceparent`` among ``headers`` (the client's, if it sent one);
    None when tracing is off."""
    if _tracer is None:
        yield None
        return
    parent = _PROPAGATOR.extract(headers)
    with _tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER) as current:
        yield current


def traceparent() -> str:
    """The current span's W3C ``traceparent`` ("" when tracing is off or no span is current)."""
    if _tracer is None:
        return ""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT, "")


def link(parent: str) -> Link | None:
    """A span link to the span a ``traceparent`` names (a relay transaction to the writes it publishes); None for
    an empty or malformed one."""
    if not parent:
        return None
    context = trace.get_current_span(_PROPAGATOR.extract({TRACEPARENT: parent})).get_span_context()
    return Link(context) if context.is_valid else None


def trace_id() -> str:
    """The current trace's id as 32 hex digits, for log lines ("" when tracing is off or no span is current)."""
    if _tracer is None:
        return ""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
