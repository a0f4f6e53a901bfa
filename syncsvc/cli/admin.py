"""Operator commands: ``syncsvc pools …`` and ``syncsvc identities …``, straight against Redis.

They run inside the same object graph as the server (``syncsvc.runtime``), so they obey the same rules (a deleted
identity's credentials are revoked, its data purged) and need the same ``SYNCSVC_*`` settings, not credentials.
Output is a table for people; ``--json`` prints JSON for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from syncsvc.cli.tables import Rows, answer, when
from syncsvc.config import Settings
from syncsvc.model import Caller, IdentityProfile
from syncsvc.runtime import Services


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pools = commands.add_parser("pools", help="list, describe or delete identity pools")
    pools.set_defaults(run=run)
    pool_actions = pools.add_subparsers(dest="action", required=True)
    pool_actions.add_parser("list", parents=[output], help="every identity pool")
    pool_actions.add_parser("describe", parents=[output], help="one pool, with its usage").add_argument("pool")
    pool_actions.add_parser("delete", parents=[output], help="delete a pool and its identities' data").add_argument(
        "pool"
    )
    identities = commands.add_parser("identities", help="list, describe or delete identities")
    identities.set_defaults(run=run)
    identity_actions = identities.add_subparsers(dest="action", required=True)
    listing = identity_actions.add_parser("list", parents=[output], help="the identities of a pool")
    listing.add_argument("pool")
    listing.add_argument("--limit", type=int, default=100, help="show at most this many (default 100)")
    identity_actions.add_parser("describe", parents=[output], help="one identity, with its usage").add_argument(
        "identity"
    )
    identity_actions.add_parser(
        "delete", parents=[output], help="delete identities, their logins and data"
    ).add_argument("identity", nargs="+")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Runs one operator command; returns the exit code (errors are printed as one line)."""
    return asyncio.run(answer(settings, args, _rows))


async def _rows(services: Services, args: argparse.Namespace) -> Rows:
    return await (_pools(services, args) if args.command == "pools" else _identities(services, args))


async def _pools(services: Services, args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.action == "list":
        return [
            {"IdentityPoolId": p.IdentityPoolId, "IdentityPoolName": p.IdentityPoolName}
            for p in await services.pools.page(after=None, limit=1_000_000)
        ]
    if args.action == "describe":
        pool = await services.pools.describe(args.pool)
        usage = await services.pool_sync.describe_pool_usage(args.pool)
        return [{**pool.wire(), "DataStorage": usage.storage_bytes, "SyncSessionsCount": usage.sync_sessions}]
    await services.broker.delete_pool(args.pool)
    return [{"IdentityPoolId": args.pool, "Deleted": True}]


async def _identities(services: Services, args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.action == "list":
        profiles, _ = await services.broker.page(args.pool, shard=0, after=None, limit=args.limit)
        return [_profile_row(profile) for profile in profiles]
    if args.action == "describe":
        profile = await services.broker.describe(args.identity)
        usage = await services.sync.describe_identity_usage(_developer(), profile.identity_pool_id, args.identity)
        return [{**_profile_row(profile), "DatasetCount": usage.dataset_count, "DataStorage": usage.storage_bytes}]
    failed = await services.broker.delete_identities(args.identity)
    return [{"IdentityId": identity, "Deleted": identity not in failed} for identity in args.identity]


def _developer() -> Caller:
    return Caller.developer("operator-cli")


def _profile_row(profile: IdentityProfile) -> dict[str, Any]:
    return {
        "IdentityId": profile.identity_id,
        "IdentityPoolId": profile.identity_pool_id,
        "Logins": ", ".join(sorted({provider for provider, _ in profile.logins})) or "(guest)",
        "Created": when(profile.created_ms),
        "Modified": when(profile.modified_ms),
    }
