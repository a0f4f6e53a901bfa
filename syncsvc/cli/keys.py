"""``syncsvc keys``: operator commands of the key service.

* ``root-key PATH`` creates the KMS root key file (unless it exists).
* ``reencrypt [--pool ID]`` moves every identity's data keys to the newest backing key of its pool's master key
  (after a rotation), with a progress bar; values stay sealed under the same data keys, so it reads and writes one
  small hash per identity. It can run while the service serves, and again after an interruption.
* ``rotate [--pool ID]`` rotates pool master keys (they are not on the public KMS API).
* ``rotate-root [--new PATH]`` moves everything the root key wraps to a new root key (``syncsvc.kms.rotation``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn

from syncsvc.config import Settings
from syncsvc.kms.material import RootKey
from syncsvc.kms.rotation import RotationError, rotate_root
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.runtime import Services, StartupError, open_services, read_root_key
from syncsvc.store.kms import RedisKeyStore
from syncsvc.store.redis import RedisStore


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="the key service: root key, re-encryption")
    keys.set_defaults(run=run)
    actions = keys.add_subparsers(dest="action", required=True)
    root = actions.add_parser("root-key", help="create the KMS root key file unless it exists (owner-only, 0600)")
    root.add_argument("path", type=Path)
    rotate = actions.add_parser("rotate", help="rotate each pool's master key (then `reencrypt` moves data keys)")
    rotate.add_argument("--pool", help="only this identity pool (default: every pool)")
    reencrypt = actions.add_parser("reencrypt", help="move data keys to the newest backing key of each pool's key")
    reencrypt.add_argument("--pool", help="only this identity pool (default: every pool)")
    rotate_root = actions.add_parser(
        "rotate-root", help="move everything the root key wraps to a new root key (resumable; see the README)"
    )
    rotate_root.add_argument(
        "--new",
        type=Path,
        help="the new root key file, SYNCSVC_ROOT_KEY_FILE being the old one (default: SYNCSVC_ROOT_KEY_FILE is the "
        "new key and SYNCSVC_PREVIOUS_ROOT_KEY_FILE the old one)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Runs one ``syncsvc keys`` action; returns the exit code (errors are printed as one line)."""
    if args.action == "root-key":
        return _root_key(args.path)
    try:
        if args.action == "rotate-root":
            return asyncio.run(_rotate_root(settings, args.new))
        command = _reencrypt if args.action == "reencrypt" else _rotate
        return asyncio.run(command(settings, args.pool))
    except (StartupError, RotationError) as exc:
        print(f"syncsvc: {exc}", file=sys.stderr)
        return 1


async def _rotate_root(settings: Settings, new: Path | None) -> int:
    if settings.root_key_file is None:
        raise StartupError("SYNCSVC_ROOT_KEY_FILE is not set")
    if new is not None:
        root = read_root_key(new).replacing(read_root_key(settings.root_key_file))
    elif settings.previous_root_key_file is not None:
        root = read_root_key(settings.root_key_file).replacing(read_root_key(settings.previous_root_key_file))
    else:
        raise StartupError("nothing to rotate from: give --new PATH, or set SYNCSVC_PREVIOUS_ROOT_KEY_FILE")
    store = RedisStore.connect(settings.redis_url)
    try:
        kms = RedisKeyStore(store.client)
        total = await kms.count()
        with Progress(*_columns("KMS keys"), console=Console(stderr=True)) as progress:
            bar = progress.add_task("moving to the new root key", total=total)
            report = await rotate_root(store, kms, root, on_key=lambda: progress.advance(bar))
    finally:
        await store.close()
    print(
        f"{report.moved} wrapped keys and secrets moved to the new root key ({report.already} were already, "
        f"{report.gone} deleted meanwhile); Redis now records the new key: restart every instance without "
        f"SYNCSVC_PREVIOUS_ROOT_KEY_FILE, then destroy the old key file",
        file=sys.stderr,
    )
    return 0


def _columns(unit: str) -> tuple[ProgressColumn, ...]:
    return (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=None),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
    )


async def _rotate(settings: Settings, only: str | None) -> int:
    async with open_services(settings) as services:
        pools = [only] if only else await _every_pool(services)
        rotated = 0
        for pool_id in pools:
            version = await services.envelope.rotate_pool_key(pool_id)
            if version is None:
                print(f"{pool_id}: no master key yet (made on the pool's first write)", file=sys.stderr)
            else:
                rotated += 1
                print(f"{pool_id}: master key rotated to backing key {version}", file=sys.stderr)
        print(f"{rotated} master keys rotated; `syncsvc keys reencrypt` moves existing data keys", file=sys.stderr)
        return 0


async def _reencrypt(settings: Settings, only: str | None) -> int:
    async with open_services(settings) as services:
        pools = [only] if only else await _every_pool(services)
        total = sum([await _identity_count(services, pool_id) for pool_id in pools])
        moved = 0
        with Progress(*_columns("identities"), console=Console(stderr=True)) as progress:
            bar = progress.add_task("re-encrypting data keys", total=total)
            for pool_id in pools:
                async for batch in services.store.pool_members(pool_id, settings.shards):
                    for identity_id in batch:
                        keyspace = IdentityKeyspace.of(pool_id, identity_id, settings.shards)
                        moved += await services.envelope.rewrap(keyspace)
                    progress.advance(bar, len(batch))
        print(f"{moved} data keys moved to the newest backing key of {len(pools)} pools", file=sys.stderr)
        return 0


async def _every_pool(services: Services) -> list[str]:
    pools: list[str] = []
    while page := await services.store.list_pools(after=pools[-1] if pools else None, limit=500):
        pools += page
    return pools


async def _identity_count(services: Services, pool_id: str) -> int:
    return sum([len(batch) async for batch in services.store.pool_members(pool_id, services.settings.shards)])


def _root_key(path: Path) -> int:
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
