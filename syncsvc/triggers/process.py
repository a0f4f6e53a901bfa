"""Process isolation: a trigger registered with ``isolation="process"`` runs in worker processes of its own.

Why processes, and why plain pipes
----------------------------------
A handler in a thread cannot be stopped: one that loops forever keeps its thread, and one that crashes the
interpreter (``os._exit``, a segfault in an extension) takes the server with it. A worker process can be SIGKILLed
at its deadline, and its death is only a failed call. Each worker is ``python -m syncsvc.triggers.worker`` started
with :func:`asyncio.create_subprocess_exec`, talking over its stdin/stdout: every wait is an ``await`` on a pipe
under :func:`asyncio.timeout`, so the event loop never blocks and no thread or ``multiprocessing`` machinery (which
pickles, forks a threaded server, or spawns helper processes) is involved. The worker's stderr is the server's, so
handler logs and prints land in the server's log.

The protocol (details in :mod:`syncsvc.triggers.worker`)
-------------------------------------------------------
Frames are a 4-byte big-endian length and orjson. The parent sends ``{"path", "target"}`` once and waits for
``{"ready": true}``; then each call is one request frame (event and context) and one answer frame: ``ok``,
``rejected``, ``raised`` or ``unencodable``. An answer over 16 MiB is refused.

Workers: reuse, kill and replace
--------------------------------
Idle workers wait in a list and are reused; a call finding none takes a replacement that is starting, or starts a
worker itself (that start counts against the call's deadline). The runner lets at most ``max_concurrency`` calls
in, and every worker is either idle, starting (as a replacement) or held by exactly one call, so there are never
more than ``max_concurrency`` workers. A worker whose call went wrong mid-exchange (no answer by the deadline, its
pipe closed, a garbled or oversized frame, the call cancelled) cannot be trusted to be between frames: it is
SIGKILLed on the spot, reaped by a background task that then starts its replacement, and the call fails with
:class:`TriggerTimeout`, :class:`TriggerCrashed` or :class:`TriggerOutputError`. A handler that merely raised
leaves its worker between frames, so the worker is reused. :meth:`ProcessWorkers.close` kills and reaps them all;
on Linux a worker also dies with the server (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any

import orjson

from syncsvc.triggers.failures import TriggerCrashed, TriggerOutputError, TriggerRaised, TriggerTimeout
from syncsvc.triggers.spec import LambdaContext, Rejected, TriggerSpec
from syncsvc.triggers.worker import HEADER_BYTES, MAX_FRAME_BYTES, encode_frame

log = logging.getLogger("syncsvc.triggers")
WORKER_MODULE = "syncsvc.triggers.worker"
#: What a worker may take to start and import the handler, on top of the trigger's timeout, outside of a call.
START_GRACE_SECONDS = 30.0
#: How long a worker that closed its pipes gets to exit (for its exit code) before it is killed.
EXIT_WAIT_SECONDS = 1.0
_HELLO_ANSWERS = frozenset({"ready", "error"})
_CALL_ANSWERS = frozenset({"ok", "rejected", "raised", "unencodable"})


class _GoneError(Exception):
    """The worker closed its pipes: it exited (or is exiting)."""


class _GarbledError(Exception):
    """The worker sent something that is not a protocol frame."""


class _TooBigError(_GarbledError):
    """The worker's answer frame is over :data:`MAX_FRAME_BYTES`."""


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.retired = False
        self._stdin = process.stdin
        self._stdout = process.stdout

    @property
    def pid(self) -> int:
        return self.process.pid

    async def send(self, frame: bytes) -> None:
        try:
            self._stdin.write(frame)
            await self._stdin.drain()
        except ConnectionError as exc:
            raise _GoneError from exc

    async def receive(self, expected: frozenset[str]) -> dict[str, Any]:
        """The next frame: a message with exactly one key, one of ``expected``."""
        try:
            size = int.from_bytes(await self._stdout.readexactly(HEADER_BYTES), "big")
            if size > MAX_FRAME_BYTES:
                raise _TooBigError(f"{size} bytes of JSON, more than the limit of {MAX_FRAME_BYTES}")
            message = orjson.loads(await self._stdout.readexactly(size))
        except asyncio.IncompleteReadError as exc:
            raise _GoneError from exc
        except orjson.JSONDecodeError as exc:
            raise _GarbledError(str(exc)) from exc
        if not isinstance(message, dict) or len(message) != 1 or not message.keys() <= expected:
            raise _GarbledError(f"unexpected frame {str(message)[:200]!r}")
        return message

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


class ProcessWorkers:
    """Worker processes for one trigger registered with isolation="process"."""

    def __init__(self, spec: TriggerSpec) -> None:
        self._spec = spec
        self._idle: list[_Worker] = []
        #: Replacements being started, not yet claimed by a call; a finished one moves to ``_idle``.
        self._starting: deque[asyncio.Task[_Worker]] = deque()
        #: Every worker started and not yet reaped (idle, busy, starting or killed).
        self._live: set[_Worker] = set()
        self._reaping: set[asyncio.Task[None]] = set()
        self._busy = 0
        self._closed = False

    @property
    def pids(self) -> tuple[int, ...]:
        """Process ids of the workers not yet reaped, sorted (for logs and tests)."""
        return tuple(sorted(worker.pid for worker in self._live))

    async def start(self) -> None:
        """Starts one worker and waits until it is ready, so the first call is warm; TriggerCrashed if it cannot."""
        self._check_open()
        if not (self._idle or self._starting):
            self._idle.append(await self._start_bounded())

    async def call(self, event: dict[str, Any], context: LambdaContext) -> Any:
        """The handler's return value (decoded JSON). Raises spec.Rejected(message) when the handler raised Rejected;
        TriggerTimeout when there is no answer by context.deadline (the worker is SIGKILLed, reaped, and a replacement
        started in the background); TriggerCrashed when the worker exits or closes its pipe before answering (replaced
        the same way); TriggerRaised(traceback text) when the handler raised (the worker stays and is reused);
        TriggerOutputError(message) when the value could not be encoded (or the answer frame exceeds 16 MiB)."""
        self._check_open()
        frame = encode_frame({"event": event, "context": _context_fields(context)})
        assert self._busy < self._spec.max_concurrency, "the runner lets at most max_concurrency calls in"
        self._busy += 1
        try:
            worker, answer = await self._exchange(frame, context.deadline)
        finally:
            self._busy -= 1
        if self._closed:  # closed while the handler ran: the answer stands, the worker goes
            self._retire(worker)
        elif not worker.retired:
            self._idle.append(worker)
        return self._outcome(answer)

    async def close(self) -> None:
        """Kills every worker and waits until they are reaped; idempotent."""
        self._closed = True
        self._idle.clear()
        while self._starting or self._reaping or self._live:
            starting = list(self._starting)
            self._starting.clear()
            for task in starting:
                task.cancel()
            for worker in list(self._live):
                self._retire(worker)
            await asyncio.gather(*starting, *self._reaping, return_exceptions=True)

    # --- one call -------------------------------------------------------------------------------------------------

    async def _exchange(self, frame: bytes, deadline: float) -> tuple[_Worker, dict[str, Any]]:
        """Sends ``frame`` to a worker and reads its answer by ``deadline``; a worker left mid-exchange is replaced."""
        worker: _Worker | None = None
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                worker = await self._acquire()
                await worker.send(frame)
                return worker, await worker.receive(_CALL_ANSWERS)
        except TimeoutError:
            raise self._timed_out(worker) from None
        except _GoneError:
            assert worker is not None
            raise await self._crashed(worker) from None
        except _TooBigError as exc:
            self._replace(worker)
            raise TriggerOutputError(f"returned a value that cannot be its answer ({exc})") from None
        except _GarbledError as exc:
            self._replace(worker)
            raise TriggerCrashed(f"trigger {self._spec.name!r}: worker process sent a garbled answer: {exc}") from None
        except BaseException:  # cancelled (the request went away), or TriggerCrashed from starting a worker
            self._replace(worker)
            raise

    async def _acquire(self) -> _Worker:
        """An idle worker, else a replacement being started, else a new worker."""
        while self._idle:
            worker = self._idle.pop()
            if worker.process.returncode is None:
                return worker
            self._replace(worker)  # died while idle (killed from outside)
        if self._starting:
            return await self._starting.popleft()
        return await self._spawn()

    def _outcome(self, answer: dict[str, Any]) -> Any:
        if "ok" in answer:
            return answer["ok"]
        if "rejected" in answer:
            raise Rejected(str(answer["rejected"]))
        if "raised" in answer:
            raise TriggerRaised(str(answer["raised"]))
        raise TriggerOutputError(f"returned a value that cannot be its answer ({answer['unencodable']})")

    def _timed_out(self, worker: _Worker | None) -> TriggerTimeout:
        timeout = f"no answer within {self._spec.timeout_seconds:g} s"
        if worker is None:
            return TriggerTimeout(f"{timeout} (no worker process was ready in time)")
        self._replace(worker)
        return TriggerTimeout(f"{timeout}; worker process {worker.pid} killed")

    async def _crashed(self, worker: _Worker) -> TriggerCrashed:
        try:
            code = await _exit_code(worker)
        finally:
            self._replace(worker)
        return TriggerCrashed(
            f"trigger {self._spec.name!r}: worker process {_exit_text(code)} before answering (pid {worker.pid})"
        )

    # --- starting and stopping workers ----------------------------------------------------------------------------

    async def _start_bounded(self) -> _Worker:
        limit = self._spec.timeout_seconds + START_GRACE_SECONDS
        try:
            async with asyncio.timeout(limit):
                return await self._spawn()
        except TimeoutError:
            raise TriggerCrashed(f"trigger {self._spec.name!r}: worker process not ready within {limit:g} s") from None

    async def _spawn(self) -> _Worker:
        """Starts a worker and waits for its ``ready``; TriggerCrashed if it cannot load the handler or dies."""
        self._check_open()
        name = self._spec.name
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", WORKER_MODULE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise TriggerCrashed(f"trigger {name!r}: cannot start a worker process: {exc}") from None
        worker = _Worker(process)
        self._live.add(worker)
        try:
            await worker.send(encode_frame({"path": sys.path, "target": self._spec.target}))
            hello = await worker.receive(_HELLO_ANSWERS)
        except _GoneError:
            try:
                code = await _exit_code(worker)
            finally:
                self._retire(worker)
            raise TriggerCrashed(f"trigger {name!r}: worker process {_exit_text(code)} before it was ready") from None
        except _GarbledError as exc:
            self._retire(worker)
            raise TriggerCrashed(f"trigger {name!r}: worker process sent a garbled greeting: {exc}") from None
        except BaseException:
            self._retire(worker)
            raise
        if "error" in hello:
            self._retire(worker)
            raise TriggerCrashed(f"trigger {name!r}: worker process cannot load the handler: {hello['error']}")
        if self._closed:  # close() ran while it started
            self._retire(worker)
            self._check_open()
        return worker

    def _replace(self, worker: _Worker | None) -> None:
        """Kills ``worker`` (if it is not already) and, unless closed, starts its replacement in the background."""
        if worker is None or worker.retired:
            return
        self._retire(worker)
        if not self._closed:
            task = asyncio.create_task(self._replacement(worker), name=f"trigger {self._spec.name} worker")
            self._starting.append(task)
            task.add_done_callback(self._replacement_done)

    async def _replacement(self, old: _Worker) -> _Worker:
        await old.process.wait()
        return await self._start_bounded()

    def _replacement_done(self, task: asyncio.Task[_Worker]) -> None:
        if task not in self._starting:
            return  # claimed by a call, which awaits it (or cancelled by close)
        self._starting.remove(task)
        if task.cancelled():
            return
        failure = task.exception()
        if failure is not None:
            log.warning("trigger %r: cannot start a replacement worker: %s", self._spec.name, failure)
        else:
            self._idle.append(task.result())

    def _retire(self, worker: _Worker) -> None:
        """Kills ``worker`` now and reaps it in the background."""
        if worker.retired:
            return
        worker.retired = True
        worker.kill()
        self._background(self._reap(worker))

    async def _reap(self, worker: _Worker) -> None:
        await worker.process.wait()
        self._live.discard(worker)

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    def _check_open(self) -> None:
        if self._closed:
            raise TriggerCrashed(f"trigger {self._spec.name!r}: its worker processes are closed")


def _context_fields(context: LambdaContext) -> dict[str, Any]:
    identity = context.identity
    return {
        "function_name": context.function_name,
        "aws_request_id": context.aws_request_id,
        "invoked_function_arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "identity_id": identity.cognito_identity_id if identity else None,
        "identity_pool_id": identity.cognito_identity_pool_id if identity else None,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
    }


async def _exit_code(worker: _Worker) -> int:
    """The exit code of a worker that closed its pipes: it gets a moment to exit, then it is killed. (Killing first
    would lose the code: ``Process.kill()`` polls, and so reaps, a process that already exited.)"""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(EXIT_WAIT_SECONDS):
            return await worker.process.wait()
    worker.kill()
    return await worker.process.wait()


def _exit_text(code: int) -> str:
    """``exited with code 3`` / ``was killed by SIGKILL``, from a returncode."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"
