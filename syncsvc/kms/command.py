"""``syncsvc keys``: operator commands of the key service. ``root-key PATH`` creates the KMS root key file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from syncsvc.kms.material import RootKey


def add_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="the key service: root key")
    actions = keys.add_subparsers(dest="action", required=True)
    root = actions.add_parser("root-key", help="create the KMS root key file unless it exists (owner-only, 0600)")
    root.add_argument("path", type=Path)


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.exists():
        try:
            RootKey.from_file(path)
        except (OSError, ValueError) as exc:
            print(f"syncsvc: {path} exists but is not a root key: {exc}", file=sys.stderr)
            return 1
        print(f"root key: {path} (exists)", file=sys.stderr)
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    RootKey.generate(path)
    print(f"root key: {path} (created; back it up: without it no stored value can be read)", file=sys.stderr)
    return 0
