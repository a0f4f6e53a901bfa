"""What the operator commands (``syncsvc pools|identities|user-pools|users …``) share: running one command against
the services and printing its rows — a rich table (one object: a field / value table), or JSON with ``--json`` —
and a refusal as one line on stderr."""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from syncsvc.config import Settings
from syncsvc.errors import SyncsvcError
from syncsvc.runtime import Services, StartupError, open_services

Rows = list[dict[str, Any]]


async def answer(
    settings: Settings, args: argparse.Namespace, rows_of: Callable[[Services, argparse.Namespace], Awaitable[Rows]]
) -> int:
    """Runs one command (``rows_of``) and prints what it found; the exit code (errors are printed as one line)."""
    try:
        async with open_services(settings) as services:
            try:
                rows = await rows_of(services, args)
            except SyncsvcError as exc:
                print(f"syncsvc: {exc.code}: {exc.message}", file=sys.stderr)
                return 1
    except StartupError as exc:
        print(f"syncsvc: {exc}", file=sys.stderr)
        return 1
    show(rows, as_json=args.json)
    return 0


def when(ms: int) -> str:
    """An epoch-milliseconds moment as operators read it (UTC)."""
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def show(rows: Sequence[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(list(rows), option=orjson.OPT_INDENT_2).decode())
        return
    console = Console()  # now, not at import: it reads the terminal's width (COLUMNS) when made
    if not rows:
        console.print("(none)")
        return
    if len(rows) == 1:  # one object: a field / value table reads best
        table = Table("field", "value")
        for name, value in rows[0].items():
            table.add_row(name, _cell(value))
        console.print(table)
        return
    table = Table(*rows[0].keys())
    for row in rows:
        table.add_row(*(_cell(value) for value in row.values()))
    console.print(table)


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
