"""``syncsvc import``: copies a live Cognito Sync identity pool into this deployment; ``syncsvc import verify``
compares the two. See ``syncsvc.migration`` for what is read, how it is written and how a run resumes.

The destination is this deployment, opened as every operator command opens it (the ``SYNCSVC_*`` settings of
``syncsvc serve``); the source is named by flags and read with boto3 (``--profile``, an explicit key pair, or the
default credential chain: environment, shared files, instance role). Exit status: 0 done; 1 an error (one line on
stderr) or an interruption (run the same command again to continue); 3 the import finished but reported problems
(conflicts, or identities and datasets the destination refused: listed in the summary); for ``verify``, 1 when any
difference was found.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import botocore.exceptions
from rich.console import Console

from syncsvc.cli.signals import cancelled_on_signals
from syncsvc.config import Settings
from syncsvc.errors import SyncsvcError
from syncsvc.migration.cursors import Cursors, TransientCursors
from syncsvc.migration.report import count_lines, describe_problem, display_for, problem_kind
from syncsvc.migration.run import Importer, Plan, Summary, run_id
from syncsvc.migration.source import CognitoSource, SourceAccess, SourceError, read_logins_file
from syncsvc.migration.target import ImportTarget
from syncsvc.migration.verify import Verifier
from syncsvc.model import Limits
from syncsvc.runtime import Services, StartupError, open_services
from syncsvc.store.import_progress import RedisImportProgress

#: Exit status of an import that finished with problems: conflicts (the destination kept its side) or identities and
#: datasets the destination refused, each listed in the summary.
PROBLEMS_EXIT = 3


class UsageError(Exception):
    """A flag's value cannot be used; ``str()`` is one line."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "import",
        help="copy a live Cognito Sync identity pool into this deployment (ids, values, sync counts kept); "
        "`import verify` compares them",
        description="Copy a live Cognito Sync identity pool into this deployment, resumably; `syncsvc import verify` "
        "compares the source and the destination dataset by dataset.",
    )
    command.add_argument("action", nargs="?", choices=["verify"], help="verify: compare instead of importing")
    source = command.add_argument_group("the source")
    source.add_argument("--source-endpoint", metavar="URL", help="the source's endpoint (default: AWS's own)")
    source.add_argument("--source-region", metavar="REGION", required=True, help="the source's region")
    source.add_argument("--profile", help="a named AWS profile to read the source with")
    source.add_argument("--access-key-id", help="an access key id to read the source with (else the default chain)")
    source.add_argument("--secret-access-key", help="its secret (prefer --profile or AWS_SECRET_ACCESS_KEY)")
    source.add_argument("--pool", metavar="SRC_POOL", required=True, help="the source identity pool id")
    source.add_argument("--concurrency", type=_positive, default=8, help="source calls at once (default 8)")
    command.add_argument("--into", metavar="POOL", help="the destination pool id (default: the source pool's id)")
    command.add_argument(
        "--triggers-file", type=Path, metavar="FILE", help="JSON {lambda_arn: trigger_name} for Cognito Events"
    )
    command.add_argument(
        "--developer-users",
        action="store_true",
        help="look up the developer user ids of developer-authenticated identities (one call per identity)",
    )
    command.add_argument(
        "--logins-file", type=Path, metavar="FILE", help="CSV identity_id,provider,subject of known login subjects"
    )
    command.add_argument(
        "--dry-run", action="store_true", help="read everything, write nothing, say what would be done"
    )
    command.add_argument(
        "--since", type=_since, metavar="ISO8601", help="delta pass: only datasets modified since then (cut-over)"
    )
    command.add_argument("--restart", action="store_true", help="forget this run's progress and start from the start")
    command.set_defaults(run=run)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _since(value: str) -> int:
    """An ISO 8601 time (UTC when it names no zone) as epoch ms."""
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time (like 2024-05-01T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return round(moment.timestamp() * 1000)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Runs ``import`` or ``import verify``; returns the exit code."""
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=args.concurrency + 2))
    try:
        source = _source(args)
    except (UsageError, SourceError) as exc:
        return _fail(str(exc))
    task = cancelled_on_signals(asyncio.create_task(_command(settings, args, source)))
    try:
        return await task
    except asyncio.CancelledError:
        return _fail("interrupted; run the same command again to continue where it stopped")
    except StartupError as exc:
        return _fail(str(exc))
    except SourceError as exc:
        return _fail(f"the source: {exc}")
    except SyncsvcError as exc:
        return _fail(f"the destination: {exc.code}: {exc.message}")
    finally:
        source.close()


def _source(args: argparse.Namespace) -> CognitoSource:
    if args.profile and (args.access_key_id or args.secret_access_key):
        raise UsageError("--profile and --access-key-id/--secret-access-key exclude each other")
    if bool(args.access_key_id) != bool(args.secret_access_key):
        raise UsageError("--access-key-id and --secret-access-key go together")
    access = SourceAccess(
        region=args.source_region,
        endpoint_url=args.source_endpoint,
        profile=args.profile,
        access_key_id=args.access_key_id,
        secret_access_key=args.secret_access_key,
    )
    known = {}
    if args.logins_file is not None and args.action != "verify":
        try:
            known = read_logins_file(args.logins_file)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"--logins-file: {exc}") from None
    try:
        return CognitoSource(
            access,
            args.pool,
            concurrency=args.concurrency,
            developer_users=args.developer_users and args.action != "verify",
            known_logins=known,
        )
    except botocore.exceptions.BotoCoreError as exc:
        raise SourceError(str(exc)) from None


def _triggers(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        found: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--triggers-file: {exc}") from None
    if not isinstance(found, dict) or not all(isinstance(v, str) and isinstance(k, str) for k, v in found.items()):
        raise UsageError("--triggers-file: expected a JSON object of {lambda_arn: trigger_name} strings")
    return found


async def _command(settings: Settings, args: argparse.Namespace, source: CognitoSource) -> int:
    try:
        plan = Plan(
            into=args.into,
            triggers=_triggers(args.triggers_file),
            dry_run=args.dry_run,
            since_ms=args.since,
            concurrency=args.concurrency,
        )
    except UsageError as exc:
        return _fail(str(exc))
    console = Console(highlight=False)
    async with open_services(settings) as services:
        if args.action == "verify":
            return await _verify(services, args, source, console)
        return await _import(services, args, source, plan, console)


async def _import(
    services: Services, args: argparse.Namespace, source: CognitoSource, plan: Plan, console: Console
) -> int:
    cursors = await _cursors(services, args, plan)
    display = display_for(console)
    try:
        summary = await Importer(source, _target(services), cursors, plan, display, clock=services.clock).run()
    finally:
        display.close()
    _summarise(console, args, summary, source)
    return PROBLEMS_EXIT if summary.problems and not summary.dry_run else 0


async def _cursors(services: Services, args: argparse.Namespace, plan: Plan) -> Cursors:
    """A dry run's cursors live in memory; a run's are in Redis (forgotten first with ``--restart``)."""
    if plan.dry_run:
        return TransientCursors()
    run = run_id(f"{args.source_endpoint or ''}|{args.source_region}", args.pool, plan)
    progress = RedisImportProgress(services.store.client, run)
    if args.restart:
        await progress.clear()
    return progress


async def _verify(services: Services, args: argparse.Namespace, source: CognitoSource, console: Console) -> int:
    display = display_for(console)
    try:
        verifier = Verifier(source, _target(services), args.into or args.pool, display, concurrency=args.concurrency)
        report = await verifier.run()
    finally:
        display.close()
    verdict = "no difference" if not report.differences else f"{report.differences} differences"
    console.print(
        f"syncsvc import verify: {verdict} ({report.identities} identities, {report.datasets} datasets, "
        f"{report.records} records compared)"
    )
    return 1 if report.differences else 0


def _target(services: Services) -> ImportTarget:
    """The destination: this deployment, with its limits and its registered triggers."""
    settings = services.settings
    return ImportTarget(
        store=services.store,
        pools=services.pools,
        envelope=services.envelope,
        shards=settings.shards,
        clock=services.clock,
        limits=Limits(
            max_datasets=settings.max_datasets_per_identity,
            max_records=settings.max_records_per_dataset,
            max_bytes=settings.max_dataset_bytes,
            max_value_bytes=settings.max_value_bytes,
        ),
        registry=services.triggers,
    )


def _summarise(console: Console, args: argparse.Namespace, summary: Summary, source: CognitoSource) -> None:
    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    if summary.finished_before_ms:
        say(
            f"syncsvc import: this run started at {_iso(summary.started_ms)} and finished at "
            f"{_iso(summary.finished_before_ms)}; nothing to do (--restart runs it again, --since a delta pass)"
        )
        for line in count_lines(summary.totals):
            say(f"  {line}")
        for line in summary.problems:
            say(f"  {describe_problem(line)}")
        return
    kind = "dry run (nothing written)" if summary.dry_run else "delta pass" if args.since is not None else "import"
    say(f"syncsvc import: {kind} of pool {args.pool} into {summary.pool_id}: complete")
    for line in count_lines(summary.counts.counts, dry_run=summary.dry_run):
        say(f"  {line}")
    if summary.resumed:
        say(f"  resumed: {summary.resumed} identities' datasets were done by an earlier run (not done again)")
        for line in count_lines(summary.totals):
            say(f"  run total, {line}")
    kinds = [problem_kind(line) for line in summary.problems]
    say(f"  conflicts: {kinds.count('conflict')}; refused by the destination: {kinds.count('refused')}")
    for line in summary.problems:
        say(f"    {describe_problem(line)}")
    if not summary.dry_run:
        say(f"  started: {_iso(summary.started_ms)} (the --since of the next delta pass)")
    calls = sum(source.counts.calls.values())
    say(f"  source calls: {calls}; elapsed: {summary.elapsed_s:.1f} s")


def _iso(ms: int) -> str:
    """Epoch ms as an ISO 8601 UTC time to the millisecond (what ``--since`` takes)."""
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).isoformat(timespec="milliseconds")


def _fail(message: str) -> int:
    print(f"syncsvc import: {message}", file=sys.stderr)
    return 1
