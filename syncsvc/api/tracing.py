"""A span per request answered, when tracing is on (``SYNCSVC_TRACING``, ``syncsvc.tracing``).

The span is named ``<service>.<operation>`` from the app's own tables (``syncsvc.api.metrics.operation_of``: a
client cannot make span names grow), continues the trace of a ``traceparent`` header the client sent, and carries
the route (its template: an identity id in a path never becomes an attribute), the status, the AWS error type of a
refusal and the request id the response names. It sits outside the metrics middleware, so an access log line
carries the trace id. A push socket's span ends when the upgrade is answered (the socket itself may last hours).
"""

from __future__ import annotations

from aiohttp import web
from opentelemetry.trace import Status, StatusCode

from syncsvc import tracing
from syncsvc.api.metrics import operation_of
from syncsvc.api.middleware import Handler


@web.middleware
async def tracing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """See the module; a plain pass-through when tracing is off."""
    if not tracing.enabled():
        return await handler(request)
    service, operation = operation_of(request)
    with tracing.server_span(f"{service}.{operation}", request.headers) as span:
        response = await handler(request)
        if span is not None:
            resource = request.match_info.route.resource
            span.set_attributes(
                {
                    "rpc.system": "aws-api",
                    "rpc.service": service,
                    "rpc.method": operation,
                    "http.request.method": request.method,
                    "http.route": resource.canonical if resource is not None else "",
                    "http.response.status_code": response.status,
                    "aws.request_id": response.headers.get("x-amzn-RequestId", ""),
                }
            )
            if response.status >= 400:
                span.set_attribute("error.type", response.headers.get("x-amzn-ErrorType", str(response.status)))
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        return response
