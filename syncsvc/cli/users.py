"""Operator commands for user pools: ``syncsvc user-pools …`` and ``syncsvc users …``, straight against Redis.

Like ``syncsvc pools``/``identities`` they run inside the server's object graph (``syncsvc.runtime``) with the same
``SYNCSVC_*`` settings, so they keep the server's rules: disabling a user or signing it out ends every session it
has (its tokens are refused from then on, on every instance), deleting one frees its aliases. A user is named by its
username or an alias (e-mail address, phone number, ``sub``), as AdminGetUser takes it. Output is a table for people,
``--json`` prints JSON for scripts; an error is one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from syncsvc.cli.tables import Rows, answer, when
from syncsvc.config import Settings
from syncsvc.runtime import Services
from syncsvc.userpools.filters import UserFilter
from syncsvc.userpools.model import User

#: Users read from the store per round trip while listing.
_PAGE = 200


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pools = commands.add_parser("user-pools", help="list or describe user pools")
    pools.set_defaults(run=run)
    pool_actions = pools.add_subparsers(dest="action", required=True)
    pool_actions.add_parser("list", parents=[output], help="every user pool")
    pool_actions.add_parser("describe", parents=[output], help="one user pool, with its app clients").add_argument(
        "pool"
    )
    users = commands.add_parser("users", help="list, describe, disable, enable, sign out or delete user-pool users")
    users.set_defaults(run=run)
    actions = users.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[output], help="the users of a user pool")
    listing.add_argument("pool")
    listing.add_argument("--filter", default="", help="ListUsers' filter syntax, e.g. 'email ^= \"a\"'")
    listing.add_argument("--limit", type=int, default=1000, help="show at most this many (default 1000)")
    for action, text in (
        ("describe", "one user, with its attributes and groups"),
        ("disable", "disable a user (its sessions end)"),
        ("enable", "enable a disabled user"),
        ("sign-out", "end every session of a user (its tokens are refused from now on)"),
    ):
        parser = actions.add_parser(action, parents=[output], help=text)
        parser.add_argument("pool")
        parser.add_argument("username")
    deleting = actions.add_parser("delete", parents=[output], help="delete users (their sessions end)")
    deleting.add_argument("pool")
    deleting.add_argument("username", nargs="+")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Runs one command; returns the exit code (errors are printed as one line)."""
    return asyncio.run(answer(settings, args, _rows))


async def _rows(services: Services, args: argparse.Namespace) -> Rows:
    return await (_pools(services, args) if args.command == "user-pools" else _users(services, args))


async def _pools(services: Services, args: argparse.Namespace) -> list[dict[str, Any]]:
    directory = services.userpools
    if args.action == "list":
        return [
            {"Id": pool.Id, "Name": pool.Name, "Created": when(round(pool.CreationDate * 1000))}
            for pool in await directory.pools(after=None, limit=1_000_000)
        ]
    pool = await directory.describe_pool(args.pool)
    clients = await directory.clients(args.pool)
    return [{**pool.wire(), "AppClients": [f"{c.ClientId} ({c.ClientName})" for c in clients]}]


async def _users(services: Services, args: argparse.Namespace) -> list[dict[str, Any]]:
    directory = services.userpools
    if args.action == "list":
        return [_user_row(user) for user in await _listed(services, args.pool, args.filter, args.limit)]
    if args.action == "delete":
        await directory.pool(args.pool)
        rows = []
        for username in args.username:  # one that does not exist is reported, the others still deleted
            found = await directory.find_user(args.pool, username)
            if found is not None:
                await directory.delete_user(args.pool, found.username)
            rows.append({"Username": username, "Deleted": found is not None})
        return rows
    user = await directory.user(args.pool, args.username)
    if args.action == "disable" or args.action == "enable":
        user = await directory.set_enabled(args.pool, user.username, enabled=args.action == "enable")
    elif args.action == "sign-out":
        await directory.sign_out_everywhere(args.pool, user.username)
        return [{"Username": user.username, "SignedOut": True}]
    groups = await directory.groups_of(args.pool, user.username)
    return [{**_user_row(user), "Attributes": dict(user.attributes), "Groups": groups}]


async def _listed(services: Services, pool_id: str, text: str, limit: int) -> list[User]:
    """Up to ``limit`` users of the pool in username order that ``text`` (ListUsers' filter syntax) matches."""
    chosen = UserFilter.parse(text)
    await services.userpools.pool(pool_id)
    found: list[User] = []
    after: str | None = None
    while len(found) < limit:
        batch = await services.userpools.page_users(pool_id, after=after, limit=_PAGE)
        if not batch:
            break
        found += [user for user in batch if chosen is None or chosen.matches(user)]
        after = batch[-1].username
    return found[:limit]


def _user_row(user: User) -> dict[str, Any]:
    return {
        "Username": user.username,
        "sub": user.sub,
        "email": user.attributes.get("email", ""),
        "UserStatus": user.status.value,
        "Enabled": user.enabled,
        "Created": when(user.created_ms),
        "Modified": when(user.modified_ms),
    }
