"""``syncsvc triggers list``: the triggers this configuration registers, checked as ``syncsvc serve`` checks them.

It needs no Redis: it loads the entry points and ``SYNCSVC_TRIGGERS`` and prints a table (``--json`` for scripts).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from syncsvc.config import Settings
from syncsvc.runtime import StartupError, build_triggers
from syncsvc.triggers.spec import TriggerSpec

COLUMNS = ("name", "source", "handler", "kind", "timeout_seconds", "max_concurrency", "isolation")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    triggers = commands.add_parser("triggers", help="the registered sync triggers (Cognito Events)")
    actions = triggers.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every registered trigger, with its source and options")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    triggers.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Runs ``syncsvc triggers list``; returns the exit code (a failed registration is printed as one line)."""
    try:
        registry = build_triggers(settings)
    except StartupError as exc:
        print(f"syncsvc: {exc}", file=sys.stderr)
        return 1
    rows = [row(spec) for spec in sorted(registry, key=lambda spec: spec.name)]
    if args.json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not rows:
        print("(none: register triggers with the syncsvc.triggers entry point group or SYNCSVC_TRIGGERS)")
        return 0
    table = Table(*COLUMNS)
    for item in rows:
        table.add_row(*(str(item[column]) for column in COLUMNS))
    Console().print(table)
    return 0


def row(spec: TriggerSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "source": spec.source,
        "handler": spec.target,
        "kind": "async" if spec.is_async else "sync",
        "timeout_seconds": spec.timeout_seconds,
        "max_concurrency": spec.max_concurrency,
        "isolation": spec.isolation,
    }
