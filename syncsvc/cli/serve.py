"""``syncsvc serve`` (the HTTP API, in one process or several sharing the port) and ``syncsvc relay`` (the relay
alone): the long-running processes of a deployment."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import sys
import tempfile
from collections.abc import AsyncIterator

import uvloop
from aiohttp import web

from syncsvc import metrics, tracing
from syncsvc.api import metrics as api_metrics
from syncsvc.api.app import create_app
from syncsvc.api.connections import serve
from syncsvc.cli.logs import configure_logging
from syncsvc.cli.signals import until_signalled
from syncsvc.config import Settings
from syncsvc.runtime import StartupError, open_services


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    server = commands.add_parser("serve", help="serve the AWS-compatible HTTP API")
    server.add_argument("--host", help="listen address (SYNCSVC_HOST, default 127.0.0.1)")
    server.add_argument("--port", type=int, help="listen port (SYNCSVC_PORT, default 8080)")
    server.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT); 0 = one per core"
    )
    server.set_defaults(run=run_serve)
    relay = commands.add_parser("relay", help="publish the outbox to Kafka (without serving HTTP); any number may run")
    relay.set_defaults(run=run_relay)


def run_serve(settings: Settings, args: argparse.Namespace) -> int:
    """`syncsvc serve`: until SIGINT/SIGTERM; the exit code."""
    _raise_open_files_limit()
    workers = args.workers or multiprocessing.cpu_count()
    if workers < 0:
        print("syncsvc: --workers must be 0 or more", file=sys.stderr)
        return 2
    if workers == 1:
        _serve_one(settings, reuse_port=False)
    else:
        _serve_many(settings, workers)
    return 0


def run_relay(settings: Settings, args: argparse.Namespace) -> int:
    """`syncsvc relay`: the relay alone, until SIGINT/SIGTERM; the exit code."""
    configure_logging(settings)
    _pin_mmap_threshold()
    tracing.configure(settings.tracing)
    try:
        with contextlib.suppress(KeyboardInterrupt), loop_runner(settings) as runner:
            return runner.run(_relay(settings))
    finally:
        tracing.shutdown()
    return 0


def loop_runner(settings: Settings) -> asyncio.Runner:
    """Runs a long-running process's loop: the standard library's unless ``SYNCSVC_EVENT_LOOP=uvloop``."""
    return asyncio.Runner(loop_factory=uvloop.new_event_loop if settings.event_loop == "uvloop" else None)


def _serve_one(settings: Settings, reuse_port: bool) -> None:
    configure_logging(settings)
    _pin_mmap_threshold()
    tracing.configure(settings.tracing)  # per process: the SDK's export thread does not cross a spawn
    try:
        with loop_runner(settings) as runner:
            runner.run(serve(create_app(settings), settings, reuse_port=reuse_port))
    except StartupError as exc:
        print(f"syncsvc: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        tracing.shutdown()


def _serve_many(settings: Settings, workers: int) -> None:
    """Runs ``workers`` processes on one port; ends them all when one ends or on SIGINT/SIGTERM. Their metrics are
    kept in a directory of their own, made here and removed when they end (``syncsvc.metrics``)."""
    with tempfile.TemporaryDirectory(prefix="syncsvc-metrics-") as shared:
        os.environ[metrics.MULTIPROCESS_DIR] = shared  # the spawned workers inherit it
        _run_workers(settings, workers)


def _run_workers(settings: Settings, workers: int) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_serve_one, args=(settings, True), daemon=False) for _ in range(workers)]
    for process in processes:
        process.start()

    def stop(*_: object) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        multiprocessing.connection.wait([process.sentinel for process in processes])
    finally:
        stop()
        for process in processes:
            process.join(timeout=10)
    codes = {process.exitcode for process in processes}
    if codes - {0, -signal.SIGTERM}:
        raise SystemExit(1)


async def _relay(settings: Settings) -> int:
    try:
        async with open_services(settings) as services, _metrics_served(settings):
            await until_signalled(services.relay.run())
            return 0
    except StartupError as exc:
        print(f"syncsvc: {exc}", file=sys.stderr)
        return 1


@contextlib.asynccontextmanager
async def _metrics_served(settings: Settings) -> AsyncIterator[None]:
    """``GET /metrics`` of a lone relay on ``SYNCSVC_RELAY_METRICS_PORT`` while the block runs (nothing when 0 or
    when ``SYNCSVC_METRICS=off``): the lanes' transactions, backlog and lag, which only this process knows."""
    if not settings.relay_metrics_port or settings.metrics == "off":
        yield
        return
    app = web.Application()
    app.add_routes(api_metrics.routes(settings))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.relay_metrics_port).start()
        yield
    finally:
        await runner.cleanup()


def _raise_open_files_limit() -> None:
    """Every device socket is an open file: lift the soft RLIMIT_NOFILE (often 1,024) to the hard limit, as servers
    that hold many connections do; worker processes inherit it. Beyond the hard limit is the operator's to raise."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


#: glibc's mallopt parameter, and the value it starts every process with: allocations this large or larger are
#: mapped on their own and given back to the system when freed.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 128 * 1024


def _pin_mmap_threshold() -> None:
    """Keeps glibc's mmap threshold at its starting 128 KiB for the life of the process (Linux with glibc; nowhere
    else is it needed or tried).

    glibc raises the threshold each time a mapped block larger than it is freed, and a long-running process that
    once met a burst (a peak of writes, the relay catching up on a backlog) then serves its large short-lived
    buffers from the heap instead: every read of asyncio's socket transport asks for 256 KiB and shrinks the
    block to what arrived, and on the heap those shrunk blocks leave holes the heap grows past. The soak measured
    it: after a peak, resident memory grew ~0.5 MiB a minute for 20 minutes and on; with the threshold pinned, as
    in a process that never met a peak, it stays flat (bench/results/soak). Setting the threshold explicitly is
    glibc's documented way to turn its adjustment off (mallopt(3))."""
    if not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
