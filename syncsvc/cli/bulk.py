"""``syncsvc bulk-publish POOL``: starts the pool's bulk publish (or follows the one in progress) with a progress bar.

The command runs the job in its own process, as a server would (see ``syncsvc.outbox.bulk``): every live dataset's
state goes to the outbox, and the relay (``syncsvc serve`` or ``syncsvc relay``) publishes it to the pool's topic.
A job already IN_PROGRESS is followed (and taken over if its worker is gone). The bar counts datasets in the outbox
out of the pool's live datasets when the job started. Exit 0 when the job SUCCEEDED; 1 when it FAILED or cannot start
(one line on stderr). Interrupted (Ctrl-C), the job stays IN_PROGRESS and resumes from where it stopped in the next
``syncsvc serve`` sweep or the next run of this command.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from syncsvc.cli.signals import cancelled_on_signals
from syncsvc.config import Settings
from syncsvc.errors import DuplicateRequestError, SyncsvcError
from syncsvc.outbox.bulk import BulkJob, BulkPublisher, BulkStatus
from syncsvc.runtime import StartupError, open_services

POLL_SECONDS = 0.2


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bulk = commands.add_parser(
        "bulk-publish", help="publish the current state of every dataset of a pool to its stream, with a progress bar"
    )
    bulk.add_argument("pool", help="identity pool id")
    bulk.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Runs ``bulk-publish``; returns the exit code."""
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    task = cancelled_on_signals(asyncio.create_task(_publish(settings, args.pool)))
    try:
        job = await task
    except asyncio.CancelledError:
        return _fail("interrupted; the bulk publish stays IN_PROGRESS and resumes where it stopped")
    except StartupError as exc:
        return _fail(str(exc))
    except SyncsvcError as exc:
        return _fail(f"{exc.code}: {exc.message}")
    if job.status is not BulkStatus.SUCCEEDED:
        reason = job.failure or "the job is gone (was the identity pool deleted?)"
        return _fail(f"bulk publish of identity pool '{args.pool}' {job.status}: {reason}")
    print(f"syncsvc: bulk publish of identity pool '{args.pool}' SUCCEEDED: {job.done} datasets published")
    return 0


async def _publish(settings: Settings, pool_id: str) -> BulkJob:
    async with open_services(settings) as services:
        return await follow(services.bulk, pool_id, Console())


async def follow(bulk: BulkPublisher, pool_id: str, console: Console) -> BulkJob:
    """Starts the pool's bulk publish, or joins the one in progress, and shows its progress until it ends."""
    try:
        await bulk.start(pool_id)
    except DuplicateRequestError:
        print(f"syncsvc: a bulk publish of identity pool '{pool_id}' is in progress; following it", file=sys.stderr)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=None),
        MofNCompleteColumn(),
        TextColumn("datasets"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("bulk publish", total=None)
        while True:
            job = await bulk.details(pool_id)
            waiting = " (waiting for the relay to publish)" if job.waiting else ""
            progress.update(bar, total=job.total, completed=job.done, description=f"bulk publish{waiting}")
            if job.ended:
                if job.status is BulkStatus.SUCCEEDED:
                    progress.update(bar, total=job.done)
                return job
            await asyncio.sleep(POLL_SECONDS)


def _fail(message: str) -> int:
    print(f"syncsvc: {message}", file=sys.stderr)
    return 1
