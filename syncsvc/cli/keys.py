"""``syncsvc keys``: operator commands of the key service.

* ``root-key PATH`` creates the KMS root key file (unless it exists); ``root-key 'pkcs11:…'`` makes the root key
  inside a PKCS#11 token instead (unless the token holds it), non-extractable (``syncsvc.kms.root``).
* ``reencrypt [--pool ID]`` moves every identity's data keys to the newest backing key of its pool's master key
  (after a rotation), with a progress bar; values stay sealed under the same data keys, so it reads and writes one
  small hash per identity. It can run while the service serves, and again after an interruption.
* ``rotate [--pool ID]`` rotates pool master keys (they are not on the public KMS API).
* ``rotate-root [--new PATH|URI]`` moves everything the root key wraps to a new root key (``syncsvc.kms.rotation``),
  a file or a key in a PKCS#11 token, either way (a file to an HSM is how a deployment moves its root key into one).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn

from syncsvc.config import Settings
from syncsvc.kms.root import PKCS11_SCHEME, RootKey
from syncsvc.kms.rotation import RotationError, RotationReport, rotate_root
from syncsvc.rediskeys import IdentityKeyspace
from syncsvc.runtime import Services, StartupError, open_root, open_services, read_root_key
from syncsvc.store.kms import RedisKeyStore
from syncsvc.store.redis import RedisStore


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="the key service: root key, re-encryption")
    keys.set_defaults(run=run)
    actions = keys.add_subparsers(dest="action", required=True)
    root = actions.add_parser(
        "root-key",
        help="create the KMS root key unless it exists: a file (owner-only, 0600), or with a pkcs11: URI an AES key "
        "inside a PKCS#11 token that never leaves it",
    )
    root.add_argument("where", metavar="PATH|URI", help="a file path, or pkcs11:token=...;object=...?pin-source=...")
    rotate = actions.add_parser("rotate", help="rotate each pool's master key (then `reencrypt` moves data keys)")
    rotate.add_argument("--pool", help="only this identity pool (default: every pool)")
    reencrypt = actions.add_parser("reencrypt", help="move data keys to the newest backing key of each pool's key")
    reencrypt.add_argument("--pool", help="only this identity pool (default: every pool)")
    rotate_root = actions.add_parser(
        "rotate-root", help="move everything the root key wraps to a new root key (resumable; see the README)"
    )
    rotate_root.add_argument(
        "--new",
        metavar="PATH|URI",
        help="the new root key (a file, or a pkcs11: URI), the configured root key being the old one (default: "
        "SYNCSVC_ROOT_KEY_FILE/_PKCS11 is the new key and SYNCSVC_PREVIOUS_ROOT_KEY_FILE/_PKCS11 the old one)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Runs one ``syncsvc keys`` action; returns the exit code (errors are printed as one line)."""
    try:
        if args.action == "root-key":
            existed = args.where.startswith(PKCS11_SCHEME) or Path(args.where).exists()
            return asyncio.run(_root_key(settings, args.where, existed=existed))
        if args.action == "rotate-root":
            return asyncio.run(_rotate_root(settings, args.new))
        command = _reencrypt if args.action == "reencrypt" else _rotate
        return asyncio.run(command(settings, args.pool))
    except (StartupError, RotationError) as exc:
        print(f"syncsvc: {exc}", file=sys.stderr)
        return 1


async def _rotate_root(settings: Settings, new: str | None) -> int:
    if new is None and settings.previous_root_key is None:
        raise StartupError("nothing to rotate from: give --new PATH|URI, or set SYNCSVC_PREVIOUS_ROOT_KEY_FILE/_PKCS11")
    root = await open_root(settings)
    try:
        if new is not None:
            if root.previous is not None:
                raise StartupError("give --new or set SYNCSVC_PREVIOUS_ROOT_KEY_FILE/_PKCS11, not both")
            root = (await read_root_key(new, settings)).replacing(root)
        report = await _move_to(settings, root)
    finally:
        await root.close()
    print(
        f"{report.moved} wrapped keys and secrets moved to the new root key ({report.already} were already, "
        f"{report.gone} deleted meanwhile); Redis now records the new key: restart every instance with the new key "
        f"alone (no SYNCSVC_PREVIOUS_ROOT_KEY_FILE/_PKCS11), then destroy the old key",
        file=sys.stderr,
    )
    return 0


async def _move_to(settings: Settings, root: RootKey) -> RotationReport:
    store = RedisStore.connect(settings.redis_url)
    try:
        kms = RedisKeyStore(store.client)
        total = await kms.count()
        with Progress(*_columns("KMS keys"), console=Console(stderr=True)) as progress:
            bar = progress.add_task("moving to the new root key", total=total)
            return await rotate_root(store, kms, root, on_key=lambda: progress.advance(bar))
    finally:
        await store.close()


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


async def _root_key(settings: Settings, where: str, *, existed: bool) -> int:
    """Creates the root key unless it exists (a file, or a key inside a PKCS#11 token) and says which it was."""
    root = await read_root_key(where, settings, create=True)
    try:
        if where.startswith(PKCS11_SCHEME):
            print(f"root key: {root} (inside the token: it never leaves it)", file=sys.stderr)
        elif existed:
            print(f"root key: {where} (exists)", file=sys.stderr)
        else:
            print(f"root key: {where} (created; back it up: without it no stored value can be read)", file=sys.stderr)
    finally:
        await root.close()
    return 0
