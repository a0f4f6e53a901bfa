"""The trigger runner: calls a registered handler with an event, within its limits, and turns every way a call can
fail into the error the device sees.

Where a handler runs (``TriggerSpec.isolation``):

* ``"inline"``: on the server's event loop. An async handler is awaited under its timeout; a sync one is simply
  called, so it blocks every request while it runs (for tiny pure functions only) and its timeout is checked when
  it returns.
* ``"thread"`` (the default): a sync handler runs in the trigger's own pool of ``max_concurrency`` threads; an
  async handler is awaited on the loop (being async, it must not block). A thread that times out cannot be stopped:
  it keeps its concurrency slot until it returns, so a handler stuck forever ends up throttled instead of piling up
  threads.
* ``"process"``: in worker processes (:mod:`syncsvc.triggers.process`), killed and replaced on a timeout or crash.

At most ``max_concurrency`` calls of one trigger are in flight; one more is refused at once with
LambdaThrottledException (no queue: the device retries, as it does when Lambda throttles). A timeout is also
LambdaThrottledException; ``Rejected`` is InvalidLambdaFunctionOutputException with the handler's message; any other
failure is InvalidLambdaFunctionOutputException with a generic message, and the details (traceback, exit code) go to
the log with the trigger's name and the call's request id.

``Settings.trace_triggers`` logs every call: trigger, request id, outcome, duration, input and output, with record
values shown as their length unless ``Settings.trace_trigger_values`` is set.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from syncsvc import metrics, tracing
from syncsvc.errors import InvalidLambdaFunctionOutputError, LambdaThrottledError
from syncsvc.triggers.failures import TriggerCrashed, TriggerFailure, TriggerOutputError, TriggerRaised, TriggerTimeout
from syncsvc.triggers.process import ProcessWorkers
from syncsvc.triggers.registry import TriggerError, TriggerRegistry
from syncsvc.triggers.spec import CognitoIdentity, LambdaContext, Rejected, TriggerSpec

log = logging.getLogger("syncsvc.triggers")
#: Fields of an event whose values are user data (redacted in traces).
_VALUE_FIELDS = frozenset({"oldValue", "newValue", "value"})
#: Longest refusal message passed on to the device.
_MAX_MESSAGE = 1024


#: Calls the runner remembers for the console.
RECENT = 100


@dataclass(frozen=True, slots=True)
class TriggerCall:
    """One call of a trigger: when it ended, which, its outcome (as ``syncsvc_trigger_calls_total`` labels it), and
    how long it took."""

    at: float
    trigger: str
    outcome: str
    seconds: float


class TriggerRunner:
    """Runs the registry's triggers. ``start`` warms process workers; ``close`` stops every worker and thread pool."""

    def __init__(
        self, registry: TriggerRegistry, *, region: str, trace: bool = False, trace_values: bool = False
    ) -> None:
        self._registry = registry
        self._region = region
        self._trace = trace
        self._trace_values = trace_values
        self._busy: dict[str, int] = {}
        self._threads: dict[str, ThreadPoolExecutor] = {}
        self._workers: dict[str, ProcessWorkers] = {
            spec.name: ProcessWorkers(spec) for spec in registry if spec.isolation == "process"
        }
        #: The last calls made here, newest last (the console's triggers page).
        self.recent: deque[TriggerCall] = deque(maxlen=RECENT)

    async def start(self) -> None:
        await asyncio.gather(*(workers.start() for workers in self._workers.values()))

    async def close(self) -> None:
        await asyncio.gather(*(workers.close() for workers in self._workers.values()))
        for pool in self._threads.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._threads.clear()

    async def invoke(
        self,
        name: str,
        event: dict[str, Any],
        *,
        identity: CognitoIdentity | None,
        label: str = "Sync trigger",
        on_rejected: Callable[[str], Exception] = InvalidLambdaFunctionOutputError,
        on_failure: Callable[[TriggerFailure], Exception] | None = None,
    ) -> Any:
        """The answer of trigger ``name`` to ``event`` (not yet checked: see :mod:`syncsvc.triggers.events`).
        ``label`` names the handler's role in the device's error messages; ``on_rejected`` makes the error a
        ``Rejected`` message becomes; ``on_failure`` (user-pool triggers) the error any other failure becomes, after
        it is logged. ``identity`` is None for callers that are not identities (user-pool triggers)."""
        try:
            spec = self._registry.get(name)
        except TriggerError:
            pool = identity.cognito_identity_pool_id if identity is not None else "(a user pool)"
            log.error("trigger %r is attached to pool %s but not registered on this server", name, pool)
            raise InvalidLambdaFunctionOutputError(f"{label} '{name}' is not registered on this server") from None
        if self._busy.get(name, 0) >= spec.max_concurrency:
            metrics.TRIGGER_CALLS.labels(name, "throttled").inc()
            self.recent.append(TriggerCall(time.time(), name, "throttled", 0.0))
            raise LambdaThrottledError(
                f"{label} '{name}' is running its limit of {spec.max_concurrency} calls; retry the sync"
            )
        context = LambdaContext(
            function_name=name,
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=f"arn:aws:lambda:{self._region}:000000000000:function:{name}",
            deadline=time.monotonic() + spec.timeout_seconds,
            identity=identity,
            log_group_name=f"/aws/lambda/{name}",
        )
        given = self._traced(event) if self._trace else ""  # now: a handler may change the event in place
        started, outcome, answer = time.monotonic(), "error", None
        try:
            with tracing.span(
                f"trigger {name}", {"faas.invoked_name": name, "faas.invocation_id": context.aws_request_id}
            ):
                answer = await self._call(spec, event, context)
            outcome = "ok"
            return answer
        except Rejected as rejected:
            outcome = "rejected"
            raise on_rejected(str(rejected.message)[:_MAX_MESSAGE]) from None
        except TriggerFailure as failure:
            outcome = type(failure).__name__
            error = _failed(spec, context, failure, label)
            raise (error if on_failure is None else on_failure(failure)) from None
        finally:
            seconds = time.monotonic() - started
            metrics.TRIGGER_CALLS.labels(name, outcome).inc()
            metrics.TRIGGER_SECONDS.labels(name).observe(seconds)
            self.recent.append(TriggerCall(time.time(), name, outcome, seconds))
            if self._trace:
                self._log_call(spec, context, outcome, seconds, given, answer)

    async def _call(self, spec: TriggerSpec, event: dict[str, Any], context: LambdaContext) -> Any:
        if spec.isolation == "process":
            self._busy[spec.name] = self._busy.get(spec.name, 0) + 1
            try:
                return await self._workers[spec.name].call(event, context)
            finally:
                self._release(spec.name)
        if spec.is_async:
            self._busy[spec.name] = self._busy.get(spec.name, 0) + 1
            try:
                async with asyncio.timeout(spec.timeout_seconds):
                    return await _guarded_async(spec, event, context)
            except TimeoutError:
                raise TriggerTimeout(f"no answer within {spec.timeout_seconds:g} s") from None
            finally:
                self._release(spec.name)
        if spec.isolation == "inline":
            answer = _guarded(spec.handler, event, context)
            if time.monotonic() > context.deadline:
                raise TriggerTimeout(f"answered after its timeout of {spec.timeout_seconds:g} s")
            return answer
        return await self._call_in_thread(spec, event, context)

    async def _call_in_thread(self, spec: TriggerSpec, event: dict[str, Any], context: LambdaContext) -> Any:
        """Runs a sync handler in the trigger's thread pool. The slot is given back when the thread returns, which
        for a handler that timed out is later than this call."""
        pool = self._threads.get(spec.name)
        if pool is None:
            pool = ThreadPoolExecutor(spec.max_concurrency, thread_name_prefix=f"trigger-{spec.name}")
            self._threads[spec.name] = pool
        loop = asyncio.get_running_loop()
        self._busy[spec.name] = self._busy.get(spec.name, 0) + 1
        try:
            future: Future[Any] = pool.submit(_guarded, spec.handler, event, context)
        except RuntimeError:  # the pool is shut down: the server is stopping
            self._release(spec.name)
            raise TriggerCrashed("the trigger's thread pool is shut down") from None
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release, spec.name))
        try:
            async with asyncio.timeout(spec.timeout_seconds):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            raise TriggerTimeout(f"no answer within {spec.timeout_seconds:g} s (its thread runs on)") from None

    def _release(self, name: str) -> None:
        self._busy[name] -= 1

    def _traced(self, value: Any) -> str:
        """``value`` as JSON for the trace, record values redacted unless trace_values."""
        return orjson.dumps(value if self._trace_values else _redacted(value), default=repr).decode()

    def _log_call(
        self, spec: TriggerSpec, context: LambdaContext, outcome: str, seconds: float, given: str, answer: Any
    ) -> None:
        log.info(
            "trigger %s request=%s outcome=%s duration_ms=%.1f input=%s output=%s",
            spec.name,
            context.aws_request_id,
            outcome,
            seconds * 1000,
            given,
            self._traced(answer),
        )


def _guarded(handler: Callable[..., Any], event: dict[str, Any], context: LambdaContext) -> Any:
    """Calls a sync handler; anything it raises but ``Rejected`` becomes TriggerRaised with the traceback."""
    try:
        return handler(event, context)
    except Rejected:
        raise
    except (Exception, SystemExit):  # a handler calling sys.exit() must not stop the server
        raise TriggerRaised(traceback.format_exc()) from None


async def _guarded_async(spec: TriggerSpec, event: dict[str, Any], context: LambdaContext) -> Any:
    try:
        return await spec.handler(event, context)
    except Rejected:
        raise
    except (Exception, SystemExit):
        raise TriggerRaised(traceback.format_exc()) from None


def _failed(spec: TriggerSpec, context: LambdaContext, failure: TriggerFailure, label: str) -> Exception:
    """The device's error for a failed call; what went wrong is logged (tracebacks may hold user data: log only)."""
    request = context.aws_request_id
    if isinstance(failure, TriggerTimeout):
        log.warning("trigger %r timed out (request %s): %s", spec.name, request, failure)
        return LambdaThrottledError(
            f"{label} '{spec.name}' did not answer within {spec.timeout_seconds:g} s; retry the sync"
        )
    if isinstance(failure, TriggerOutputError):
        return InvalidLambdaFunctionOutputError(f"{label} '{spec.name}' {failure}")
    log.error("trigger %r failed (request %s):\n%s", spec.name, request, failure)
    return InvalidLambdaFunctionOutputError(f"{label} '{spec.name}' failed (request {request})")


def _redacted(value: Any) -> Any:
    """``value`` with every record value replaced by its length."""
    if isinstance(value, dict):
        return {
            key: f"<{len(item)} chars>" if key in _VALUE_FIELDS and isinstance(item, str) else _redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value
