"""``syncsvc``: the command line. One module per command group; this one builds the parser and runs the command.

Each group's ``add_commands`` adds its subcommands and sets ``run`` (``run(settings, args) -> exit code``) as their
default, so the parser alone says which function a command runs. The CLI is the top layer: it may import the
composition root (``syncsvc.runtime``) and anything below it; nothing imports ``syncsvc.cli``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from syncsvc.cli import admin, bulk, importer, keys, serve, stream, triggers, users, watch
from syncsvc.config import SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncsvc", description="Self-hosted Cognito Sync compatible service")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (serve, admin, users, stream, bulk, triggers, watch, keys, importer):  # the order of `syncsvc --help`
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(host=getattr(args, "host", None), port=getattr(args, "port", None))
    except SettingsError as exc:
        print(f"syncsvc: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(args.run(settings, args))
